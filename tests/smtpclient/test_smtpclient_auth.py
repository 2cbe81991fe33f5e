"""SASL client mechanisms (mox.sasl.client) against mox.sasl's server side, and SMTP AUTH over the wire."""

from __future__ import annotations

import base64
import functools
import ssl

import pytest
from smtpclienthelpers import CertFiles, FakeServer, make_cert, serve, server_context

from mox.sasl import AccountSecrets, Challenge, Failure, NeedCredentials, Success, new_server
from mox.sasl.client import SaslClient, SaslClientError, choose_mechanism, new_client
from mox.smtpclient import AuthConfig, AuthError, Timeouts, TLSConfig, TLSMode, connect
from mox.store.password import PasswordSecrets, make_secrets

USER = "mjl@mox.example"
PASSWORD = "test1234 with spaces"
FAST = Timeouts(
    connect=2, greeting=2, command=2, data_init=2, data_block=2, data_final=2, tls_handshake=2, quit=1
)


@functools.cache
def secrets() -> PasswordSecrets:
    return make_secrets(PASSWORD, bcrypt_cost=4, scram_iterations=4096)


async def lookup(username: str) -> AccountSecrets | None:
    return AccountSecrets("mjl", secrets()) if username == USER else None


def run_exchange(client: SaslClient, server_name: str, binding: bytes | None = None) -> object:
    """Drive client against mox.sasl's server for the same mechanism, sans-IO."""
    mech = new_server(server_name, channel_bindings={"tls-unique": binding} if binding else None)
    initial = client.initial_response()
    step = mech.respond(
        None if initial is None else (base64.b64encode(initial).decode() or "="), initial=True
    )
    for _ in range(10):
        if isinstance(step, NeedCredentials):
            creds = AccountSecrets("mjl", secrets()) if step.username == USER else None
            step = mech.provide(creds)
        elif isinstance(step, Challenge):
            step = mech.respond(base64.b64encode(client.respond(step.data)).decode())
        elif isinstance(step, Success):
            client.complete()
            return step
        else:
            assert isinstance(step, Failure)
            return step
    raise AssertionError("exchange did not end")


@pytest.mark.parametrize("name", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_mechanisms(name: str) -> None:
    assert isinstance(run_exchange(new_client(name, USER, PASSWORD), name), Success)
    res = run_exchange(new_client(name, USER, "wrong"), name)
    assert isinstance(res, Failure)


@pytest.mark.parametrize("name", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
def test_scram_plus(name: str) -> None:
    cb = b"\x07" * 12
    assert isinstance(run_exchange(new_client(name, USER, PASSWORD, channel_binding=cb), name, cb), Success)
    # A man in the middle has different binding data: refused.
    res = run_exchange(new_client(name, USER, PASSWORD, channel_binding=b"\x08" * 12), name, cb)
    assert isinstance(res, Failure)
    with pytest.raises(ValueError):
        new_client(name, USER, PASSWORD)


def test_scram_downgrade_detected() -> None:
    # We could bind but the mechanism offered is without -PLUS: flag "y"; a server that does bind refuses.
    client = new_client("SCRAM-SHA-256", USER, PASSWORD, channel_binding=b"\x07" * 12)
    res = run_exchange(client, "SCRAM-SHA-256", b"\x07" * 12)
    assert isinstance(res, Failure)


def test_scram_server_must_prove() -> None:
    client = new_client("SCRAM-SHA-256", USER, PASSWORD)
    client.initial_response()
    # Success claimed before the server-final-message: not accepted.
    with pytest.raises(SaslClientError):
        client.complete()


def test_bad_challenges() -> None:
    c = new_client("CRAM-MD5", USER, PASSWORD)
    with pytest.raises(SaslClientError):
        c.respond(b"no angle brackets")
    login = new_client("LOGIN", USER, PASSWORD)
    login.respond(b"Username:")
    login.respond(b"Password:")
    with pytest.raises(SaslClientError):
        login.respond(b"again?")
    scram = new_client("SCRAM-SHA-1", USER, PASSWORD)
    scram.initial_response()
    with pytest.raises(SaslClientError):
        scram.respond(b"garbage")
    with pytest.raises(ValueError):
        new_client("XOAUTH2", USER, PASSWORD)
    with pytest.raises(ValueError):
        new_client("PLAIN", "a\x00b", PASSWORD)


def test_choose_mechanism() -> None:
    offered = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]
    assert choose_mechanism(offered, tls=True, channel_binding=b"x") == "SCRAM-SHA-256-PLUS"
    assert choose_mechanism(offered, tls=True) == "SCRAM-SHA-256"
    assert choose_mechanism(["plain", "login"], tls=True) == "PLAIN"
    assert choose_mechanism(offered, tls=False) is None
    assert choose_mechanism(offered, tls=False, allow_insecure=True) == "SCRAM-SHA-256"
    assert choose_mechanism(offered, tls=True, allowed=["login"]) == "LOGIN"
    assert choose_mechanism(["XOAUTH2"], tls=True) is None


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_cert(tmp_path_factory.mktemp("authcert"), ["smarthost.example"])


MECHS = [
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-1",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
]


@pytest.mark.parametrize(
    "offered, tls12, expect",
    [
        (MECHS, True, "SCRAM-SHA-256-PLUS"),  # tls-unique exists for TLS 1.2.
        (MECHS, False, "SCRAM-SHA-256"),  # No tls-unique with TLS 1.3.
        (["SCRAM-SHA-1", "PLAIN"], True, "SCRAM-SHA-1"),
        (["CRAM-MD5", "PLAIN"], False, "CRAM-MD5"),
        (["LOGIN"], False, "LOGIN"),
    ],
)
async def test_smtp_auth(cert: CertFiles, offered: list[str], tls12: bool, expect: str) -> None:
    ctx = server_context(cert, max_version=ssl.TLSVersion.TLSv1_2 if tls12 else None)
    fake = FakeServer(tls=ctx, auth=offered, auth_lookup=lookup)
    async with serve(fake) as (srv, port):
        c = await connect(
            "127.0.0.1",
            port,
            ehlo_hostname="client.example",
            tls=TLSConfig(mode=TLSMode.REQUIRED_STARTTLS, server_name="smarthost.example"),
            auth=AuthConfig(USER, PASSWORD),
            timeouts=FAST,
        )
        assert c.auth_mechanism == expect
        assert (await c.deliver("a@example.com", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")).delivered
        await c.close()
    assert srv.authenticated == [USER]


async def test_smtp_auth_failures(cert: CertFiles) -> None:
    fake = FakeServer(tls=server_context(cert), auth=["SCRAM-SHA-256", "PLAIN"], auth_lookup=lookup)
    async with serve(fake) as (srv, port):
        tls = TLSConfig(server_name="smarthost.example")
        with pytest.raises(AuthError) as ei:
            await connect(
                "127.0.0.1",
                port,
                ehlo_hostname="c.example",
                tls=tls,
                auth=AuthConfig(USER, "bad"),
                timeouts=FAST,
            )
        assert ei.value.code == 535 and ei.value.permanent

        # No TLS: refused before sending anything.
        skip = TLSConfig(mode=TLSMode.SKIP)
        with pytest.raises(AuthError, match="without tls"):
            await connect(
                "127.0.0.1",
                port,
                ehlo_hostname="c.example",
                tls=skip,
                auth=AuthConfig(USER, PASSWORD),
                timeouts=FAST,
            )
        assert not any(cmd.startswith("AUTH") and "PLAIN" in cmd for cmd in srv.commands[-3:])
        # Explicitly allowed.
        c = await connect(
            "127.0.0.1",
            port,
            ehlo_hostname="c.example",
            tls=skip,
            auth=AuthConfig(USER, PASSWORD, allow_insecure=True),
            timeouts=FAST,
        )
        assert c.auth_mechanism == "SCRAM-SHA-256"
        await c.close()

        # No mechanism in common.
        with pytest.raises(AuthError, match="no usable"):
            await connect(
                "127.0.0.1",
                port,
                ehlo_hostname="c.example",
                tls=tls,
                auth=AuthConfig(USER, PASSWORD, mechanisms=["CRAM-MD5"]),
                timeouts=FAST,
            )


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
async def test_no_secrets_in_trace(cert: CertFiles, mech: str) -> None:
    import io

    from mox import mlog

    out = io.StringIO()
    levels = mlog.get_config()
    mlog.set_output(out)
    mlog.set_config({"": mlog.Level.TRACE})
    try:
        fake = FakeServer(tls=server_context(cert), auth=[mech], auth_lookup=lookup)
        async with serve(fake) as (_srv, port):
            c = await connect(
                "127.0.0.1",
                port,
                ehlo_hostname="client.example",
                tls=TLSConfig(server_name="smarthost.example"),
                auth=AuthConfig(USER, PASSWORD),
                timeouts=FAST,
            )
            await c.deliver("a@example.com", ["b@example.org"], b"Subject: secret body\r\n\r\nx\r\n")
            await c.close()
    finally:
        mlog.set_output(None)
        mlog.set_config(levels)
    text = out.getvalue()
    assert "LC: EHLO client.example" in text  # Tracing was on.
    assert "remote=127.0.0.1:" in text
    assert "LC: ***" in text
    for secret in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode()[:12], "secret body"):
        assert secret not in text
    assert base64.b64encode(f"\x00{USER}\x00{PASSWORD}".encode()).decode() not in text
