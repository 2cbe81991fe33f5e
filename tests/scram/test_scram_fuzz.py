"""Arbitrary input to either side of SCRAM gives a ScramError, never another exception (DESIGN.md section 5)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from mox.scram import SHA256, ScramClient, ScramCredentials, ScramError, ScramServer

CREDENTIALS = ScramCredentials.derive(SHA256, "pencil", salt=b"0123456789abcdef", iterations=4096)
USERS = {"user": CREDENTIALS}

# Pieces that look like SCRAM attributes, so generated messages get past the
# first checks more often than random bytes would.
_pieces = st.sampled_from(
    [
        b"n",
        b"y",
        b"p=tls-unique",
        b"p=tls-exporter",
        b"",
        b"a=admin",
        b"n=user",
        b"n=u=2Cser",
        b"n=u=ser",
        b"m=x",
        b"r=clientnonce",
        b"r=clientnonceservernonce",
        b"r=",
        b"c=biws",
        b"c=cD10bHMtdW5pcXVlLCxjYg==",
        b"p=AAAA",
        b"p=" + b"A" * 43 + b"=",
        b"s=MDEyMzQ1Njc4OWFiY2RlZg==",
        b"i=4096",
        b"i=0",
        b"v=AAAA",
        b"e=invalid-proof",
        b"x=1",
        b"=",
        b"\xff",
        b"\x00",
    ]
)
messages = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(_pieces, st.binary(max_size=12)), max_size=8).map(b",".join),
)


@given(messages)
@settings(max_examples=300, deadline=None)
def test_server_first_accepts_or_raises_scram_error(message: bytes) -> None:
    server = ScramServer("SCRAM-SHA-256", USERS.get, channel_bindings={"tls-unique": b"cb"})
    with contextlib.suppress(ScramError):
        assert server.server_first(message).startswith(b"r=")


@given(st.sampled_from([b"n,,n=user,r=clientnonce", b"p=tls-unique,,n=user,r=clientnonce"]), messages)
@settings(max_examples=300, deadline=None)
def test_server_final_answers_or_raises_scram_error(first: bytes, message: bytes) -> None:
    server = ScramServer(
        "SCRAM-SHA-256", USERS.get, channel_bindings={"tls-unique": b"cb"}, nonce="servernonce"
    )
    server.server_first(first)
    with contextlib.suppress(ScramError):
        server.server_final(message)
        raise AssertionError("arbitrary client-final-message authenticated")


@given(messages, messages)
@settings(max_examples=200, deadline=None)
def test_client_raises_only_scram_error(server_first: bytes, server_final: bytes) -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="clientnonce")
    client.client_first()
    with contextlib.suppress(ScramError):
        client.client_final(server_first)
        with contextlib.suppress(ScramError):
            client.check_server_final(server_final)
            raise AssertionError("arbitrary server-final-message accepted")


# Names SASLprep keeps as they are (letters, digits, some punctuation,
# including the "," and "=" that need escaping).
_names = st.text(
    alphabet=st.sampled_from("abcXYZ019.@-_,=+é"),
    min_size=1,
    max_size=20,
)


@given(_names, _names)
@settings(max_examples=30, deadline=None)
def test_round_trip_with_any_username_and_authzid(username: str, authzid: str) -> None:
    server = ScramServer("SCRAM-SHA-256", {username: CREDENTIALS}.get)
    client = ScramClient("SCRAM-SHA-256", username, "pencil", authzid=authzid)
    server_first = server.server_first(client.client_first())
    client.check_server_final(server.server_final(client.client_final(server_first)))
    assert server.authenticated and server.username == username and server.authzid == authzid
