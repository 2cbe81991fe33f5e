"""SCRAM exchanges: the RFC 5802 and RFC 7677 examples byte for byte, round trips, failures."""

from __future__ import annotations

import base64
from typing import NamedTuple

import pytest

from mox.scram import (
    CLIENT_MAX_ITERATIONS,
    SHA1,
    SHA256,
    ErrorCode,
    ScramClient,
    ScramCredentials,
    ScramError,
    ScramServer,
    parse_mechanism,
    salt_password,
)

# RFC 5802 section 5: user "user", password "pencil", SCRAM-SHA-1.
RFC5802_CLIENT_FIRST = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
RFC5802_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
RFC5802_CLIENT_FINAL = b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
RFC5802_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

# RFC 7677 section 3: the same with SCRAM-SHA-256.
RFC7677_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

# Test credentials are derived once per password and salt: PBKDF2 at 4096
# iterations is the slow part of these tests.
_CACHE: dict[tuple[str, str], ScramCredentials] = {}


def creds(mechanism: str, password: str = "pencil") -> ScramCredentials:
    h, _ = parse_mechanism(mechanism)
    key = (h.mechanism, password)
    if key not in _CACHE:
        _CACHE[key] = ScramCredentials.derive(h, password, salt=b"0123456789abcdef", iterations=4096)
    return _CACHE[key]


def users(mechanism: str, password: str = "pencil", name: str = "user") -> dict[str, ScramCredentials]:
    return {name: creds(mechanism, password)}


def started(
    username: str = "user", password: str = "pencil", mechanism: str = "SCRAM-SHA-256"
) -> tuple[ScramServer, ScramClient, bytes]:
    """A server and client two messages into an exchange, and the client-final-message not yet sent."""
    server = ScramServer(mechanism, users(mechanism).get)
    client = ScramClient(mechanism, username, password)
    return server, client, client.client_final(server.server_first(client.client_first()))


def exchange(client: ScramClient, server: ScramServer) -> bytes:
    """Run a whole exchange; returns the server-final-message the client accepted."""
    server_first = server.server_first(client.client_first())
    server_final = server.server_final(client.client_final(server_first))
    client.check_server_final(server_final)
    return server_final


class RFCExample(NamedTuple):
    mechanism: str
    salt: str
    client_nonce: str
    server_nonce: str
    messages: tuple[bytes, bytes, bytes, bytes]  # client-first, server-first, client-final, server-final


RFC_EXAMPLES = [
    pytest.param(
        RFCExample(
            "SCRAM-SHA-1",
            "QSXCR+Q6sek8bf92",
            "fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            (RFC5802_CLIENT_FIRST, RFC5802_SERVER_FIRST, RFC5802_CLIENT_FINAL, RFC5802_SERVER_FINAL),
        ),
        id="rfc5802-section5",
    ),
    pytest.param(
        RFCExample(
            "SCRAM-SHA-256",
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            (RFC7677_CLIENT_FIRST, RFC7677_SERVER_FIRST, RFC7677_CLIENT_FINAL, RFC7677_SERVER_FINAL),
        ),
        id="rfc7677-section3",
    ),
]


@pytest.mark.parametrize("example", RFC_EXAMPLES)
def test_rfc_example_server_side(example: RFCExample) -> None:
    h, _ = parse_mechanism(example.mechanism)
    stored = ScramCredentials.derive(h, "pencil", salt=base64.b64decode(example.salt), iterations=4096)
    server = ScramServer(example.mechanism, {"user": stored}.get, nonce=example.server_nonce)
    client_first, server_first, client_final, server_final = example.messages
    assert server.server_first(client_first) == server_first
    assert server.server_final(client_final) == server_final
    assert server.authenticated and server.username == "user" and server.authzid == ""


@pytest.mark.parametrize("example", RFC_EXAMPLES)
def test_rfc_example_client_side(example: RFCExample) -> None:
    client = ScramClient(example.mechanism, "user", "pencil", nonce=example.client_nonce)
    client_first, server_first, client_final, server_final = example.messages
    assert client.client_first() == client_first
    assert client.client_final(server_first) == client_final
    client.check_server_final(server_final)


def test_credentials_from_upstream_salted_password_equal_derived_ones() -> None:
    salt = b"saltsaltsalt"
    salted = salt_password(SHA256, "pencil", salt, 4096)
    assert ScramCredentials.from_salted_password(SHA256, salt, 4096, salted) == ScramCredentials.derive(
        SHA256, "pencil", salt=salt, iterations=4096
    )


def test_derived_credentials_use_random_salt_and_default_iterations() -> None:
    a = ScramCredentials.derive(SHA256, "pencil")
    b = ScramCredentials.derive(SHA256, "pencil")
    assert a.salt != b.salt and a.stored_key != b.stored_key
    assert a.iterations == SHA256.default_iterations == 4096
    assert SHA1.default_iterations == 8192


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_round_trip_authenticates(mechanism: str) -> None:
    server = ScramServer(mechanism, users(mechanism).get)
    exchange(ScramClient(mechanism, "user", "pencil"), server)
    assert server.authenticated and server.user_found and server.channel_binding_type is None


@pytest.mark.parametrize("binding_type", ["tls-unique", "tls-exporter"])
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
def test_plus_round_trip_binds_the_channel(mechanism: str, binding_type: str) -> None:
    data = b"\x01binding data of this tls connection"
    server = ScramServer(mechanism, users(mechanism).get, channel_bindings={binding_type: data})
    client = ScramClient(mechanism, "user", "pencil", channel_binding=(binding_type, data))
    first = client.client_first()
    assert first.startswith(f"p={binding_type},,".encode())
    server_first = server.server_first(first)
    final = client.client_final(server_first)
    cbind = base64.b64decode(final.split(b",")[0][2:])
    assert cbind == f"p={binding_type},,".encode() + data
    client.check_server_final(server.server_final(final))
    assert server.authenticated and server.channel_binding_type == binding_type


def test_authzid_is_sent_and_reported() -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get)
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", authzid="admin")
    first = client.client_first()
    assert first.startswith(b"n,a=admin,n=user,r=")
    server.server_first(first)
    assert server.authzid == "admin"


def test_comma_and_equals_in_username_are_escaped() -> None:
    name = "a,b=c"
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256", name=name).get)
    client = ScramClient("SCRAM-SHA-256", name, "pencil", authzid="x=y,z")
    first = client.client_first()
    assert first.startswith(b"n,a=x=3Dy=2Cz,n=a=2Cb=3Dc,r=")
    exchange_rest = server.server_first(first)
    client.check_server_final(server.server_final(client.client_final(exchange_rest)))
    assert server.username == name and server.authzid == "x=y,z"


def test_lower_case_escapes_in_saslname_are_accepted() -> None:
    # RFC 5234 section 2.3: the ABNF's "=2C" and "=3D" are case-insensitive.
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get)
    server.server_first(b"n,,n=a=2cb=3dc,r=abcdefghijkl")
    assert server.username == "a,b=c"


def test_username_is_saslprepped_before_lookup() -> None:
    seen: list[str] = []

    def lookup(name: str) -> ScramCredentials | None:
        seen.append(name)
        return creds("SCRAM-SHA-256")

    server = ScramServer("SCRAM-SHA-256", lookup)
    # U+2168 ROMAN NUMERAL NINE is "IX" after NFKC; U+00AD SOFT HYPHEN maps to nothing (RFC 4013).
    server.server_first("n,,n=\u2168us\u00ader,r=abcdefghijkl".encode())
    assert seen == ["IXuser"] and server.username == "IXuser"


def test_wrong_password_fails_with_invalid_proof_which_the_client_reports() -> None:
    server, client, final = started(password="not pencil")
    with pytest.raises(ScramError) as excinfo:
        server.server_final(final)
    assert excinfo.value.code == ErrorCode.INVALID_PROOF
    assert excinfo.value.server_final == b"e=invalid-proof"
    assert not server.authenticated
    with pytest.raises(ScramError) as client_err:
        client.check_server_final(excinfo.value.server_final)
    assert client_err.value.from_server and client_err.value.code == "invalid-proof"


def test_unknown_user_gets_a_stable_made_up_salt_and_fails_like_a_wrong_password() -> None:
    def first(name: str) -> tuple[ScramServer, bytes]:
        server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get, unknown_user_key=b"k" * 32)
        client = ScramClient("SCRAM-SHA-256", name, "pencil", nonce="clientnonce")
        return server, server.server_first(client.client_first())

    def salt_and_iterations(server_first: bytes) -> list[bytes]:
        return server_first.split(b",")[1:]

    server, msg = first("nobody")
    assert not server.user_found
    assert salt_and_iterations(msg) == salt_and_iterations(first("nobody")[1])
    assert salt_and_iterations(msg) != salt_and_iterations(first("someone-else")[1])
    assert msg.endswith(b",i=4096")  # The default count, like real accounts.

    server, _, final = started(username="nobody")
    with pytest.raises(ScramError) as excinfo:
        server.server_final(final)
    assert excinfo.value.code == ErrorCode.INVALID_PROOF


def test_tampered_nonce_in_client_final_fails() -> None:
    server, _, final = started()
    c, r, p = final.split(b",")
    with pytest.raises(ScramError) as excinfo:
        server.server_final(b",".join([c, r + b"x", p]))
    assert excinfo.value.code == ErrorCode.INVALID_PROOF


def test_tampered_proof_fails() -> None:
    server, _, final = started()
    c, r, p = final.split(b",")
    proof = bytearray(base64.b64decode(p[2:]))
    proof[0] ^= 1
    with pytest.raises(ScramError) as excinfo:
        server.server_final(b",".join([c, r, b"p=" + base64.b64encode(bytes(proof))]))
    assert excinfo.value.code == ErrorCode.INVALID_PROOF


def test_short_proof_fails() -> None:
    server, _, final = started()
    c, r, _ = final.split(b",")
    with pytest.raises(ScramError) as excinfo:
        server.server_final(b",".join([c, r, b"p=AAAA"]))
    assert excinfo.value.code == ErrorCode.INVALID_PROOF


def test_server_nonce_not_extending_client_nonce_is_refused_by_client() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="clientnonce")
    client.client_first()
    with pytest.raises(ScramError, match="does not start with our nonce"):
        client.client_final(b"r=othernonce12345678,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096")


def test_wrong_server_signature_is_refused_by_client() -> None:
    server, client, final = started()
    server_final = server.server_final(final)
    forged = b"v=" + base64.b64encode(bytes(32))
    assert forged != server_final
    with pytest.raises(ScramError) as excinfo:
        client.check_server_final(forged)
    assert excinfo.value.code == ErrorCode.INVALID_PROOF and not excinfo.value.from_server


# Channel binding negotiation, RFC 5802 section 6.


def test_channel_binding_data_mismatch_fails() -> None:
    mech = "SCRAM-SHA-256-PLUS"
    server = ScramServer(mech, users(mech).get, channel_bindings={"tls-unique": b"server side"})
    client = ScramClient(mech, "user", "pencil", channel_binding=("tls-unique", b"mitm side"))
    final = client.client_final(server.server_first(client.client_first()))
    with pytest.raises(ScramError) as excinfo:
        server.server_final(final)
    assert excinfo.value.code == ErrorCode.CHANNEL_BINDINGS_DONT_MATCH
    assert excinfo.value.server_final == b"e=channel-bindings-dont-match"


def test_gs2_header_in_client_final_must_match_client_first() -> None:
    server, _, final = started()
    assert final.startswith(b"c=biws,")  # base64("n,,")
    with pytest.raises(ScramError) as excinfo:
        server.server_final(b"c=eSws," + final[len(b"c=biws,") :])  # base64("y,,")
    assert excinfo.value.code == ErrorCode.CHANNEL_BINDINGS_DONT_MATCH


def test_binding_type_the_server_lacks_is_unsupported() -> None:
    mech = "SCRAM-SHA-256-PLUS"
    server = ScramServer(mech, users(mech).get, channel_bindings={"tls-exporter": b"x"})
    client = ScramClient(mech, "user", "pencil", channel_binding=("tls-unique", b"x"))
    with pytest.raises(ScramError) as excinfo:
        server.server_first(client.client_first())
    assert excinfo.value.code == ErrorCode.UNSUPPORTED_CHANNEL_BINDING_TYPE


def test_binding_without_tls_is_not_supported() -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get)
    with pytest.raises(ScramError) as excinfo:
        server.server_first(b"p=tls-unique,,n=user,r=abcdefghijkl")
    assert excinfo.value.code == ErrorCode.CHANNEL_BINDING_NOT_SUPPORTED


def test_flag_y_fails_when_server_supports_binding() -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get, channel_bindings={"tls-unique": b"x"})
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", binding_supported=True)
    first = client.client_first()
    assert first.startswith(b"y,,")
    with pytest.raises(ScramError) as excinfo:
        server.server_first(first)
    assert excinfo.value.code == ErrorCode.SERVER_DOES_SUPPORT_CHANNEL_BINDING


def test_flag_y_succeeds_when_server_has_no_binding() -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get)
    exchange(ScramClient("SCRAM-SHA-256", "user", "pencil", binding_supported=True), server)
    assert server.authenticated


def test_plus_mechanism_without_binding_from_client_fails() -> None:
    mech = "SCRAM-SHA-256-PLUS"
    server = ScramServer(mech, users(mech).get, channel_bindings={"tls-unique": b"x"})
    with pytest.raises(ScramError) as excinfo:
        server.server_first(b"n,,n=user,r=abcdefghijkl")
    assert excinfo.value.code == ErrorCode.CHANNEL_BINDINGS_DONT_MATCH


def test_binding_with_plain_mechanism_is_accepted_as_upstream_does() -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get, channel_bindings={"tls-unique": b"cb"})
    server.server_first(b"p=tls-unique,,n=user,r=abcdefghijkl")
    assert server.channel_binding_type == "tls-unique"


def test_plus_needs_binding_data_on_both_sides() -> None:
    with pytest.raises(ValueError):
        ScramServer("SCRAM-SHA-256-PLUS", users("SCRAM-SHA-256").get)
    with pytest.raises(ValueError):
        ScramClient("SCRAM-SHA-256-PLUS", "user", "pencil")
    with pytest.raises(ValueError):
        ScramClient("SCRAM-SHA-256", "user", "pencil", channel_binding=("tls-unique", b"x"))


def test_mechanism_names() -> None:
    assert parse_mechanism("scram-sha-256-plus") == (SHA256, True)
    assert parse_mechanism("SCRAM-SHA-1") == (SHA1, False)
    with pytest.raises(ValueError):
        parse_mechanism("SCRAM-SHA-512")
    with pytest.raises(ValueError):
        ScramServer("PLAIN", users("SCRAM-SHA-256").get)


# Malformed client messages: each fails with a ScramError and the code RFC 5802 section 7 names.


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"", ErrorCode.INVALID_ENCODING),
        (b"n,,n=user", ErrorCode.INVALID_ENCODING),
        (b"x,,n=user,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"p=,,n=user,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"p=tls unique,,n=user,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"n,b=x,n=user,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"n,,m=ext,n=user,r=abcdefghijkl", ErrorCode.EXTENSIONS_NOT_SUPPORTED),
        (b"n,,N=user,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),  # Attribute names are case-sensitive.
        (b"n,,n=,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"n,,n=us=2Xer,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"n,,n=user=,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"n,,n=\xffuser,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"n,,n=us\x00er,r=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"n,,n=us\x07er,r=abcdefghijkl", ErrorCode.INVALID_USERNAME_ENCODING),
        ("n,,n=\u00ad,r=abcdefghijkl".encode(), ErrorCode.INVALID_USERNAME_ENCODING),  # Empty after SASLprep.
        (b"n,a=\x07,n=user,r=abcdefghijkl", ErrorCode.INVALID_USERNAME_ENCODING),
        (b"n,,n=user,r=", ErrorCode.INVALID_ENCODING),
        (b"n,,n=user,r=abc def ghij", ErrorCode.INVALID_ENCODING),
        (b"n,,n=user,r=short", ErrorCode.OTHER_ERROR),
        (b"n,,n=user,s=abcdefghijkl", ErrorCode.INVALID_ENCODING),
        (b"n,,n=user,r=abcdefghijkl,", ErrorCode.INVALID_ENCODING),
        (b"n,,n=user,r=abcdefghijkl,1=x", ErrorCode.INVALID_ENCODING),
        (b"n,,n=user,r=abcdefghijkl,x=", ErrorCode.INVALID_ENCODING),
        ("n,,n=user,r=abcdefghijkl,\u0130=x".encode(), ErrorCode.INVALID_ENCODING),  # ALPHA is ASCII.
    ],
)
def test_malformed_client_first_fails_with_code(message: bytes, code: ErrorCode) -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get)
    with pytest.raises(ScramError) as excinfo:
        server.server_first(message)
    assert excinfo.value.code == code
    with pytest.raises(RuntimeError):
        server.server_first(b"n,,n=user,r=abcdefghijkl")  # The exchange is over.


def test_unknown_extension_in_client_first_is_ignored() -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get, nonce="servernonce")
    assert server.server_first(b"n,,n=user,r=abcdefghijkl,x=1,Y=a=b") == (
        b"r=abcdefghijklservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096"
    )


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"c=biws",
        b"c=biws,r=NONCE",
        b"c=bi!s,r=NONCE,p=AAAA",
        b"c=biw,r=NONCE,p=AAAA",
        b"x=biws,r=NONCE,p=AAAA",
        b"c=biws,r=NONCE,p=AA$A",
        b"c=biws,r=NONCE,q=AAAA",
        b"c=biws,r=NONCE,1=2,p=AAAA",
        b"c=biws,r=,p=AAAA",
        b"c=biws,r=NONCE,p=AAAA\xff",
    ],
)
def test_malformed_client_final_fails_with_invalid_encoding(message: bytes) -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get, nonce="servernonce")
    server.server_first(b"n,,n=user,r=clientnonce")
    with pytest.raises(ScramError) as excinfo:
        server.server_final(message.replace(b"NONCE", b"clientnonceservernonce"))
    assert excinfo.value.code == ErrorCode.INVALID_ENCODING
    assert excinfo.value.server_final == b"e=invalid-encoding"
    with pytest.raises(RuntimeError):
        server.server_final(message)


def test_extension_in_client_final_is_ignored_but_covered_by_the_proof() -> None:
    mech = "SCRAM-SHA-256"
    server = ScramServer(mech, users(mech).get, nonce="servernonce")
    client = ScramClient(mech, "user", "pencil", nonce="clientnonce")
    server_first = server.server_first(client.client_first())
    c, r, p = client.client_final(server_first).split(b",")
    # The proof covers client-final-without-proof, so an inserted extension breaks it.
    with pytest.raises(ScramError) as excinfo:
        server.server_final(b",".join([c, r, b"x=1", p]))
    assert excinfo.value.code == ErrorCode.INVALID_PROOF


def test_server_calls_out_of_order_are_caller_errors() -> None:
    server = ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get)
    with pytest.raises(RuntimeError):
        server.server_final(b"c=biws,r=x,p=AAAA")


# Client-side checks of the server's messages.


@pytest.mark.parametrize(
    ("server_first", "match"),
    [
        (b"m=x,r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", "mandatory extension"),
        (b"r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==", "too short"),
        (b"r=clientnonceserver,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", "nonce too short"),
        (b"r=clientnonceservernonce,s=MDEyMzQ=,i=4096", "salt too short"),
        (b"r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4095", "iteration count"),
        (
            f"r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i={CLIENT_MAX_ITERATIONS + 1}".encode(),
            "iteration count",
        ),
        (b"r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=0", "bad iteration count"),
        (b"r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=04096", "bad iteration count"),
        (
            b"r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=99999999999999999999",
            "bad iteration count",
        ),
        (b"r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg=,i=4096", "base64"),
        (b"r=clientnonceservernonce,i=4096,s=MDEyMzQ1Njc4OWFiY2RlZg==", "expected attribute 's'"),
    ],
)
def test_client_refuses_bad_server_first(server_first: bytes, match: str) -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="clientnonce")
    client.client_first()
    with pytest.raises(ScramError, match=match):
        client.client_final(server_first)


def test_client_reports_server_error_values_including_unknown_ones() -> None:
    for value in ("other-error", "some-future-error"):
        client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="clientnonce")
        client.client_first()
        client.client_final(b"r=clientnonceservernonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096")
        with pytest.raises(ScramError) as excinfo:
            client.check_server_final(f"e={value}".encode())
        assert excinfo.value.from_server and excinfo.value.code == value


def test_client_refuses_bad_usernames_and_nonces() -> None:
    with pytest.raises(ValueError):
        ScramClient("SCRAM-SHA-256", "us\x07er", "pencil")
    with pytest.raises(ValueError):
        ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="has,comma")
    with pytest.raises(ValueError):
        ScramServer("SCRAM-SHA-256", users("SCRAM-SHA-256").get, nonce="has space")
