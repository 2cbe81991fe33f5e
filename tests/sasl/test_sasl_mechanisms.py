"""SASL server mechanisms (mox.sasl): PLAIN, LOGIN, CRAM-MD5, SCRAM, with RFC examples."""

from __future__ import annotations

import base64
import ssl

import pytest
from saslhelpers import ACCOUNT, PASSWORD, USER, credentials, lookup

from mox import sasl
from mox.sasl import (
    Challenge,
    Failure,
    FailureCode,
    NeedCredentials,
    SaslStateError,
    Success,
    UnsupportedMechanism,
    encode_challenge,
    mechanisms_offered,
    new_server,
    provide_credentials,
)
from mox.scram import ScramClient


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- PLAIN, RFC 4616.


def test_plain_rfc4616_example_initial_response() -> None:
    # RFC 4616 section 4: "\0tim\0tanstaaftanstaaf".
    mech = new_server("PLAIN")
    step = mech.respond(b64(b"\x00tim\x00tanstaaftanstaaf"), initial=True)
    assert step == NeedCredentials("tim")
    assert mech.provide(credentials()) == Success("tim", ACCOUNT)
    assert mech.done


def test_plain_without_initial_response_gets_empty_challenge() -> None:
    mech = new_server("plain")
    assert mech.respond(None, initial=True) == Challenge(b"")
    assert mech.respond(b64(b"tim\x00tim\x00" + PASSWORD.encode())) == NeedCredentials("tim")
    assert isinstance(mech.provide(credentials()), Success)


def test_plain_rfc4616_example_other_authzid_refused() -> None:
    # RFC 4616 section 4: "Ursel\0Kurt\0xipj3plmq", Kurt acting as Ursel; as upstream, not allowed.
    mech = new_server("PLAIN")
    step = mech.respond(b64(b"Ursel\x00Kurt\x00xipj3plmq"), initial=True)
    assert isinstance(step, Failure) and step.code is FailureCode.AUTHZ_NOT_PERMITTED
    assert step.username == "Kurt"


def test_plain_wrong_password_and_unknown_user_fail_alike() -> None:
    mech = new_server("PLAIN")
    assert mech.step(b"\x00tim\x00wrongpassword") == NeedCredentials("tim")
    bad = mech.provide(credentials())
    mech2 = new_server("PLAIN")
    mech2.step(b"\x00nobody\x00tanstaaftanstaaf")
    unknown = mech2.provide(None)
    assert isinstance(bad, Failure) and isinstance(unknown, Failure)
    assert bad.code is unknown.code is FailureCode.BAD_CREDENTIALS
    assert bad.reason == unknown.reason


@pytest.mark.parametrize(
    "data",
    [b"", b"tim", b"\x00tim", b"\x00tim\x00pw\x00", b"\x00\x00pw", b"\x00tim\x00", b"\x00\xfftim\x00pw"],
)
def test_plain_malformed(data: bytes) -> None:
    step = new_server("PLAIN").step(data)
    assert isinstance(step, Failure) and step.code is FailureCode.MALFORMED


def test_plain_empty_initial_response_convention() -> None:
    # "=" is an empty initial response (RFC 4954 section 4): for PLAIN a malformed message.
    mech = new_server("PLAIN")
    step = mech.respond("=", initial=True)
    assert isinstance(step, Failure) and step.code is FailureCode.MALFORMED
    assert "3 NUL-separated" in step.reason


def test_plain_authzid_equal_to_authcid_allowed_after_nfc() -> None:
    mech = new_server("PLAIN")
    # "é" decomposed in the authzid, composed in the authcid.
    step = mech.step("e\u0301@x\x00\u00e9@x\x00pw".encode())
    assert step == NeedCredentials("\u00e9@x")


# --- LOGIN, draft-murchison-sasl-login.


def test_login_prompts_and_success() -> None:
    mech = new_server("LOGIN")
    assert mech.plaintext
    assert mech.respond(None, initial=True) == Challenge(b"Username:")
    assert encode_challenge(b"Username:") == "VXNlcm5hbWU6"
    assert mech.respond(b64(b"tim")) == Challenge(b"Password:")
    assert mech.respond(b64(PASSWORD.encode())) == NeedCredentials("tim")
    assert mech.provide(credentials()) == Success("tim", ACCOUNT)


def test_login_initial_response_is_the_username() -> None:
    mech = new_server("LOGIN")
    assert mech.respond(b64(b"tim"), initial=True) == Challenge(b"Password:")
    assert mech.respond(b64(b"wrong-password")) == NeedCredentials("tim")
    step = mech.provide(credentials())
    assert isinstance(step, Failure) and step.code is FailureCode.BAD_CREDENTIALS


def test_login_password_not_utf8() -> None:
    mech = new_server("LOGIN")
    mech.step(b"tim")
    step = mech.step(b"\xff\xfe")
    assert isinstance(step, Failure) and step.code is FailureCode.MALFORMED


# --- CRAM-MD5, RFC 2195.

RFC2195_CHALLENGE = b"<1896.697170952@postoffice.reston.mci.net>"


def test_cram_md5_rfc2195_example() -> None:
    # RFC 2195 section 2: user tim, password tanstaaftanstaaf.
    mech = new_server("CRAM-MD5", cram_md5_challenge=RFC2195_CHALLENGE)
    step = mech.respond(None, initial=True)
    assert step == Challenge(RFC2195_CHALLENGE)
    assert encode_challenge(step.data) == "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
    step = mech.respond("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw")
    assert step == NeedCredentials("tim")
    assert mech.provide(credentials()) == Success("tim", ACCOUNT)


def test_cram_md5_challenge_form() -> None:
    mech = new_server("CRAM-MD5", hostname="mail.example.org")
    step = mech.step(None)
    assert isinstance(step, Challenge)
    text = step.data.decode()
    assert text.startswith("<") and text.endswith("@mail.example.org>")
    rand, stamp = text[1:].split("@")[0].split(".")
    assert rand.isdigit() and stamp.isdigit()
    assert new_server("CRAM-MD5").step(None) != step  # Random per exchange.


def test_cram_md5_wrong_digest_and_unknown_user() -> None:
    mech = new_server("CRAM-MD5", cram_md5_challenge=RFC2195_CHALLENGE)
    mech.step(None)
    assert mech.step(b"tim " + b"0" * 32) == NeedCredentials("tim")
    step = mech.provide(credentials())
    assert isinstance(step, Failure) and step.code is FailureCode.BAD_CREDENTIALS
    mech = new_server("CRAM-MD5", cram_md5_challenge=RFC2195_CHALLENGE)
    mech.step(None)
    mech.step(b"nobody b913a602c7eda7a495b4e6e7334d3890")
    step = mech.provide(None)
    assert isinstance(step, Failure) and step.code is FailureCode.BAD_CREDENTIALS


@pytest.mark.parametrize("data", [b"tim", b"tim b913", b" b913a602c7eda7a495b4e6e7334d3890", b""])
def test_cram_md5_malformed(data: bytes) -> None:
    mech = new_server("CRAM-MD5")
    mech.step(None)
    step = mech.step(data)
    assert isinstance(step, Failure) and step.code is FailureCode.MALFORMED


def test_cram_md5_refuses_initial_response() -> None:
    step = new_server("CRAM-MD5").respond("=", initial=True)
    assert isinstance(step, Failure) and step.code is FailureCode.MALFORMED


# --- SCRAM, RFC 5802 / RFC 7677.


def scram_exchange(
    mechanism: str,
    client: ScramClient,
    *,
    bindings: dict[str, bytes] | None = None,
    initial: bool = True,
) -> tuple[sasl.Mechanism, sasl.Step]:
    mech = new_server(mechanism, channel_bindings=bindings)
    if initial:
        step = mech.respond(b64(client.client_first()), initial=True)
    else:
        assert mech.respond(None, initial=True) == Challenge(b"")
        step = mech.respond(b64(client.client_first()))
    if not isinstance(step, NeedCredentials):
        return mech, step
    assert step.username == USER
    step = mech.provide(credentials() if step.username == USER else None)
    assert isinstance(step, Challenge)
    step = mech.respond(b64(client.client_final(step.data)))
    if not isinstance(step, Challenge):
        return mech, step
    client.check_server_final(step.data)
    return mech, mech.respond("")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
@pytest.mark.parametrize("initial", [True, False])
def test_scram_success(mechanism: str, initial: bool) -> None:
    _, step = scram_exchange(mechanism, ScramClient(mechanism, USER, PASSWORD), initial=initial)
    assert step == Success(USER, ACCOUNT)


def test_scram_wrong_password_sends_server_error() -> None:
    _, step = scram_exchange("SCRAM-SHA-256", ScramClient("SCRAM-SHA-256", USER, "wrongpassword"))
    assert isinstance(step, Failure) and step.code is FailureCode.BAD_CREDENTIALS
    assert step.server_data == b"e=invalid-proof"
    assert step.username == USER


def test_scram_unknown_user_fails_like_wrong_password() -> None:
    mech = new_server("SCRAM-SHA-256")
    client = ScramClient("SCRAM-SHA-256", "nobody", PASSWORD)
    assert mech.step(client.client_first()) == NeedCredentials("nobody")
    step = mech.provide(None)
    assert isinstance(step, Challenge)  # A made-up salt.
    step = mech.step(client.client_final(step.data))
    assert isinstance(step, Failure) and step.code is FailureCode.BAD_CREDENTIALS
    assert step.server_data == b"e=invalid-proof"


def test_scram_plus_binding_match() -> None:
    bindings = {"tls-unique": b"finished-message-1"}
    client = ScramClient(
        "SCRAM-SHA-256-PLUS", USER, PASSWORD, channel_binding=("tls-unique", b"finished-message-1")
    )
    _, step = scram_exchange("SCRAM-SHA-256-PLUS", client, bindings=bindings)
    assert step == Success(USER, ACCOUNT)


def test_scram_plus_binding_mismatch() -> None:
    bindings = {"tls-unique": b"server-side-view"}
    client = ScramClient("SCRAM-SHA-1-PLUS", USER, PASSWORD, channel_binding=("tls-unique", b"mitm-view"))
    _, step = scram_exchange("SCRAM-SHA-1-PLUS", client, bindings=bindings)
    assert isinstance(step, Failure) and step.code is FailureCode.CHANNEL_BINDING
    assert step.server_data == b"e=channel-bindings-dont-match"


def test_scram_plus_needs_binding() -> None:
    with pytest.raises(UnsupportedMechanism):
        new_server("SCRAM-SHA-256-PLUS")
    with pytest.raises(UnsupportedMechanism):
        new_server("SCRAM-SHA-256-PLUS", channel_bindings={})


def test_scram_downgrade_detected() -> None:
    # The client could bind but saw no -PLUS mechanism: flag "y". We do support binding.
    client = ScramClient("SCRAM-SHA-256", USER, PASSWORD, binding_supported=True)
    _, step = scram_exchange("SCRAM-SHA-256", client, bindings={"tls-unique": b"x"})
    assert isinstance(step, Failure) and step.code is FailureCode.CHANNEL_BINDING


def test_scram_plus_client_without_binding_flag() -> None:
    client = ScramClient("SCRAM-SHA-256", USER, PASSWORD)
    _, step = scram_exchange("SCRAM-SHA-256-PLUS", client, bindings={"tls-unique": b"x"})
    assert isinstance(step, Failure) and step.code is FailureCode.CHANNEL_BINDING


def test_scram_other_authzid_refused() -> None:
    client = ScramClient("SCRAM-SHA-256", USER, PASSWORD, authzid="other")
    _, step = scram_exchange("SCRAM-SHA-256", client)
    assert isinstance(step, Failure) and step.code is FailureCode.AUTHZ_NOT_PERMITTED


def test_scram_same_authzid_allowed() -> None:
    client = ScramClient("SCRAM-SHA-256", USER, PASSWORD, authzid=USER)
    _, step = scram_exchange("SCRAM-SHA-256", client)
    assert step == Success(USER, ACCOUNT)


def test_scram_malformed_first_message() -> None:
    step = new_server("SCRAM-SHA-1").step(b"x,,n=tim,r=abcdefghij")
    assert isinstance(step, Failure) and step.code is FailureCode.MALFORMED and step.server_data is None


# --- Framing: base64, cancel, limits, state.


def test_cancel_with_star() -> None:
    for name in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"):
        mech = new_server(name)
        mech.respond(None, initial=True)
        step = mech.respond("*")
        assert isinstance(step, Failure) and step.code is FailureCode.ABORTED
        assert mech.done


def test_bad_base64_is_a_clear_failure() -> None:
    for line in ("!!!", "dGlt=", "dGl", b"\xff\xfe", "=", "dGlt dGlt"):
        mech = new_server("LOGIN")
        mech.respond(None, initial=True)
        step = mech.respond(line)
        assert isinstance(step, Failure) and step.code is FailureCode.MALFORMED
        assert step.reason.startswith("invalid base64")


def test_empty_initial_argument_is_malformed() -> None:
    step = new_server("PLAIN").respond("", initial=True)
    assert isinstance(step, Failure) and step.code is FailureCode.MALFORMED


def test_empty_continuation_is_empty_data() -> None:
    mech = new_server("LOGIN")
    mech.respond(None, initial=True)
    assert mech.respond("") == Challenge(b"Password:")


def test_length_limits() -> None:
    mech = new_server("PLAIN")
    step = mech.respond("A" * (sasl.MAX_LINE_LENGTH + 4), initial=True)
    assert isinstance(step, Failure) and step.code is FailureCode.TOO_LONG
    step = new_server("PLAIN").step(b"\x00" * (sasl.MAX_DATA_BYTES + 1))
    assert isinstance(step, Failure) and step.code is FailureCode.TOO_LONG
    # A line at the limit is fine.
    line = b64(b"\x00tim\x00" + b"p" * (sasl.MAX_DATA_BYTES - 5))
    assert len(line) == sasl.MAX_LINE_LENGTH
    assert new_server("PLAIN").respond(line, initial=True) == NeedCredentials("tim")


def test_state_errors() -> None:
    mech = new_server("PLAIN")
    with pytest.raises(SaslStateError):
        mech.provide(None)
    mech.step(None)
    with pytest.raises(SaslStateError):
        mech.step(None)
    mech.step(b"\x00tim\x00pw")
    with pytest.raises(SaslStateError):
        mech.step(b"more")
    mech.provide(None)
    with pytest.raises(SaslStateError):
        mech.respond("*")
    with pytest.raises(SaslStateError):
        new_server("PLAIN").respond(None)


def test_unknown_mechanism() -> None:
    with pytest.raises(UnsupportedMechanism):
        new_server("DIGEST-MD5")
    with pytest.raises(UnsupportedMechanism):
        new_server("EXTERNAL")


async def test_provide_credentials_with_async_lookup() -> None:
    mech = new_server("PLAIN")
    step = mech.step(b"\x00tim\x00" + PASSWORD.encode())
    assert isinstance(step, NeedCredentials)
    assert await provide_credentials(mech, step, lookup) == Success(USER, ACCOUNT)
    mech = new_server("PLAIN")
    step = mech.step(b"\x00nobody\x00" + PASSWORD.encode())
    assert isinstance(step, NeedCredentials)
    result = await provide_credentials(mech, step, lookup)
    assert isinstance(result, Failure) and result.code is FailureCode.BAD_CREDENTIALS


# --- What is offered.


def test_mechanisms_offered_order_and_conditions() -> None:
    assert mechanisms_offered(True, True, False) == list(sasl.MECHANISMS)
    assert mechanisms_offered(True, False, False) == [
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "CRAM-MD5",
        "PLAIN",
        "LOGIN",
    ]
    assert mechanisms_offered(False, False, False) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"]
    assert mechanisms_offered(False, False, True) == [
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "CRAM-MD5",
        "PLAIN",
        "LOGIN",
    ]
    # Binding data without TLS cannot exist; no -PLUS.
    assert "SCRAM-SHA-256-PLUS" not in mechanisms_offered(False, True, True)
    assert "LOGIN" not in mechanisms_offered(True, True, False, login=False)


def test_channel_bindings_none_without_tls() -> None:
    assert sasl.channel_bindings(None) == {}


class _FakeSSL:
    def __init__(self, version: str, data: bytes | None) -> None:
        self._version = version
        self._data = data

    def version(self) -> str:
        return self._version

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        assert cb_type == "tls-unique"
        return self._data


def test_channel_bindings_only_tls12_tls_unique() -> None:
    fake12: ssl.SSLObject = _FakeSSL("TLSv1.2", b"finished")  # type: ignore[assignment]
    fake13: ssl.SSLObject = _FakeSSL("TLSv1.3", b"finished")  # type: ignore[assignment]
    assert sasl.channel_bindings(fake12) == {"tls-unique": b"finished"}
    assert sasl.channel_bindings(fake13) == {}
