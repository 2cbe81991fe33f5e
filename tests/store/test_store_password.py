"""Password secrets: bcrypt, SCRAM credentials, CRAM-MD5 midstates over a hand-written MD5, JSON storage."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.scram import SHA1, SHA256, ScramClient, ScramCredentials, ScramServer, parse_mechanism, salt_password
from mox.store.password import (
    BCRYPT_COST,
    MD5_BLOCK_SIZE,
    MD5_INITIAL_STATE,
    CramMD5Secret,
    PasswordError,
    PasswordSecrets,
    cram_md5_verify,
    make_secrets,
    md5_compress,
    md5_resume,
    verify_plain,
)

# Fast parameters: bcrypt's minimum cost, the SCRAM client's minimum count.
FAST = {"bcrypt_cost": 4, "scram_iterations": 4096}
PASSWORD = "tanstaaftanstaaf"


@pytest.fixture(scope="module")
def secrets() -> PasswordSecrets:
    return make_secrets(PASSWORD, **FAST)


# MD5, RFC 1321 appendix A.5 test suite.
@pytest.mark.parametrize(
    ("message", "digest"),
    [
        (b"", "d41d8cd98f00b204e9800998ecf8427e"),
        (b"a", "0cc175b9c0f1b6a831c399e269772661"),
        (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
        (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        (
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        ),
        (b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
    ],
)
def test_md5_rfc1321_test_suite(message: bytes, digest: str) -> None:
    assert md5_resume(MD5_INITIAL_STATE, 0, message).hex() == digest


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=3))
@settings(max_examples=200, deadline=None)
def test_md5_resumed_from_midstate_equals_hashlib(data: bytes, blocks: int) -> None:
    prefix = bytes(range(64)) * blocks
    state = MD5_INITIAL_STATE
    for i in range(blocks):
        state = md5_compress(state, prefix[i * MD5_BLOCK_SIZE : (i + 1) * MD5_BLOCK_SIZE])
    assert md5_resume(state, len(prefix), data) == hashlib.md5(prefix + data).digest()


def test_md5_refuses_partial_blocks() -> None:
    with pytest.raises(ValueError):
        md5_compress(MD5_INITIAL_STATE, b"short")
    with pytest.raises(ValueError):
        md5_resume(MD5_INITIAL_STATE, 10, b"")


# HMAC-MD5 from midstates, RFC 2104 appendix (and RFC 2202 section 2 for the long key).
@pytest.mark.parametrize(
    ("key", "data", "digest"),
    [
        (b"\x0b" * 16, b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
        (b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
        (b"\xaa" * 16, b"\xdd" * 50, "56be34521d144c88dbb8c733f0e8b3f6"),
        (
            b"\xaa" * 80,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
        ),
    ],
)
def test_hmac_md5_test_vectors(key: bytes, data: bytes, digest: str) -> None:
    assert CramMD5Secret.from_key(key).hmac(data).hex() == digest


@given(st.binary(max_size=100), st.binary(max_size=200))
@settings(max_examples=100, deadline=None)
def test_hmac_md5_from_midstates_equals_hmac_module(key: bytes, data: bytes) -> None:
    assert CramMD5Secret.from_key(key).hmac(data) == hmac.new(key, data, "md5").digest()


# CRAM-MD5, RFC 2195 section 2 example.
RFC2195_CHALLENGE = b"<1896.697170952@postoffice.reston.mci.net>"
RFC2195_DIGEST = "b913a602c7eda7a495b4e6e7334d3890"


def test_cram_md5_rfc2195_example(secrets: PasswordSecrets) -> None:
    assert cram_md5_verify(secrets.cram_md5, RFC2195_CHALLENGE, RFC2195_DIGEST)


@pytest.mark.parametrize(
    "response",
    [
        RFC2195_DIGEST.upper(),  # RFC 2195: lower-case hex.
        "b913a602c7eda7a495b4e6e7334d3891",
        RFC2195_DIGEST[:-1],
        RFC2195_DIGEST + "0",
        "z" * 32,
        "",
        " " + RFC2195_DIGEST[1:],
    ],
)
def test_cram_md5_refuses_other_responses(secrets: PasswordSecrets, response: str) -> None:
    assert not cram_md5_verify(secrets.cram_md5, RFC2195_CHALLENGE, response)


def test_cram_md5_refuses_other_challenge(secrets: PasswordSecrets) -> None:
    assert not cram_md5_verify(secrets.cram_md5, b"<other@challenge>", RFC2195_DIGEST)


def test_cram_md5_long_password_is_hashed_first_as_rfc2104_says() -> None:
    # 80 bytes: longer than an MD5 block (make_secrets stops at bcrypt's 72, from_key does not).
    password = "a long password " * 5
    secret = CramMD5Secret.from_key(password.encode())
    expected = hmac.new(password.encode(), b"<c@x>", "md5").hexdigest()
    assert cram_md5_verify(secret, b"<c@x>", expected)


# Making and checking secrets.


def test_plain_password_verifies_and_others_do_not(secrets: PasswordSecrets) -> None:
    assert verify_plain(secrets, PASSWORD)
    assert not verify_plain(secrets, PASSWORD + "x")
    assert not verify_plain(secrets, PASSWORD.upper())
    assert not verify_plain(secrets, "")
    assert not verify_plain(secrets, "x" * 100)
    assert not verify_plain(secrets, "tanstaaf\x00tanstaaf")


def test_default_costs_are_upstreams() -> None:
    made = make_secrets("correct horse battery staple")
    assert BCRYPT_COST == 10 and made.bcrypt_hash.startswith(b"$2b$10$")
    assert made.scram_sha1.iterations == 8192
    assert made.scram_sha256.iterations == 4096


def test_password_is_normalized_before_hashing() -> None:
    made = make_secrets("caf\u00e9\u00a0au lait", **FAST)  # NFC, and a NO-BREAK SPACE.
    assert verify_plain(made, "cafe\u0301 au lait")  # NFD and an ASCII space: the same password.
    expected = hmac.new("caf\u00e9 au lait".encode(), b"<c@x>", "md5").hexdigest()
    assert cram_md5_verify(made.cram_md5, b"<c@x>", expected)


@pytest.mark.parametrize(
    ("password", "match"),
    [
        ("short", "at least 8"),
        ("\u00e9\u00e9\u00e9", "at least 8"),
        ("x" * 73, "at most 72"),
        ("\u00e9" * 37, "at most 72"),  # 74 bytes.
        ("", "precis"),
        ("tab\there!!", "precis"),
    ],
)
def test_unusable_passwords_are_refused(password: str, match: str) -> None:
    with pytest.raises(PasswordError, match=match):
        make_secrets(password, **FAST)


def test_secrets_never_contain_the_password(secrets: PasswordSecrets) -> None:
    blob = secrets.to_json()
    for encoded in (PASSWORD.encode(), base64.b64encode(PASSWORD.encode()), PASSWORD.encode().hex().encode()):
        assert encoded not in blob.encode()
    for creds in (secrets.scram_sha1, secrets.scram_sha256):
        for h in (SHA1, SHA256):
            assert salt_password(h, PASSWORD, creds.salt, creds.iterations) not in blob.encode()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"])
def test_scram_authenticates_from_stored_secrets(secrets: PasswordSecrets, mechanism: str) -> None:
    stored = PasswordSecrets.from_json(secrets.to_json())
    h, plus = parse_mechanism(mechanism)
    binding = ("tls-unique", b"binding") if plus else None
    server = ScramServer(
        mechanism,
        lambda name: stored.scram(h) if name == "mjl@mox.example" else None,
        channel_bindings=dict([binding]) if binding else None,
    )
    client = ScramClient(mechanism, "mjl@mox.example", PASSWORD, channel_binding=binding)
    server_first = server.server_first(client.client_first())
    client.check_server_final(server.server_final(client.client_final(server_first)))
    assert server.authenticated


def test_scram_with_wrong_password_fails_against_stored_secrets(secrets: PasswordSecrets) -> None:
    server = ScramServer("SCRAM-SHA-256", lambda name: secrets.scram(SHA256))
    client = ScramClient("SCRAM-SHA-256", "mjl", PASSWORD + "!")
    final = client.client_final(server.server_first(client.client_first()))
    with pytest.raises(Exception, match="invalid-proof"):
        server.server_final(final)


def test_scram_salts_differ_between_hashes_and_passwords(secrets: PasswordSecrets) -> None:
    other = make_secrets(PASSWORD, **FAST)
    assert secrets.scram_sha1.salt != secrets.scram_sha256.salt
    assert secrets.scram_sha256.salt != other.scram_sha256.salt
    assert secrets.bcrypt_hash != other.bcrypt_hash
    assert secrets.cram_md5 == other.cram_md5  # Unsalted, by the nature of CRAM-MD5.


# Storage as JSON.


def test_json_round_trip_and_format(secrets: PasswordSecrets) -> None:
    blob = secrets.to_json()
    assert PasswordSecrets.from_json(blob) == secrets
    assert PasswordSecrets.from_json(blob.encode()) == secrets
    obj = json.loads(blob)
    assert set(obj) == {"version", "bcrypt", "scram_sha1", "scram_sha256", "cram_md5"}
    assert obj["version"] == 1
    assert obj["bcrypt"] == secrets.bcrypt_hash.decode()
    assert set(obj["scram_sha256"]) == {"salt", "iterations", "stored_key", "server_key"}
    assert base64.b64decode(obj["scram_sha256"]["stored_key"]) == secrets.scram_sha256.stored_key
    assert base64.b64decode(obj["cram_md5"]["inner"]) == secrets.cram_md5.inner


def _mutated(secrets: PasswordSecrets, path: list[str], value: object) -> str:
    obj = json.loads(secrets.to_json())
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(obj)


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["version"], 2),
        (["version"], _DELETE),
        (["bcrypt"], "plaintext"),
        (["bcrypt"], 12),
        (["scram_sha1"], _DELETE),
        (["scram_sha1", "salt"], "not base64!"),
        (["scram_sha1", "salt"], ""),
        (["scram_sha1", "iterations"], 0),
        (["scram_sha1", "iterations"], "4096"),
        (["scram_sha1", "iterations"], True),
        (["scram_sha256", "stored_key"], base64.b64encode(b"x" * 20).decode()),  # SHA-1 size for SHA-256.
        (["scram_sha256", "server_key"], base64.b64encode(b"x" * 31).decode()),
        (["cram_md5", "inner"], base64.b64encode(b"x" * 15).decode()),
        (["cram_md5"], []),
    ],
)
def test_malformed_json_is_refused(secrets: PasswordSecrets, path: list[str], value: object) -> None:
    with pytest.raises(ValueError, match="password secrets"):
        PasswordSecrets.from_json(_mutated(secrets, path, value))


@given(st.one_of(st.text(max_size=50), st.binary(max_size=50)))
@settings(max_examples=200, deadline=None)
def test_arbitrary_json_input_raises_only_value_error(text: str | bytes) -> None:
    with contextlib.suppress(ValueError):
        PasswordSecrets.from_json(text)
        raise AssertionError("arbitrary input parsed")


def test_scram_lookup_picks_the_hash(secrets: PasswordSecrets) -> None:
    assert secrets.scram(SHA1) is secrets.scram_sha1
    assert secrets.scram(SHA256) is secrets.scram_sha256
    assert isinstance(secrets.scram_sha1, ScramCredentials)
