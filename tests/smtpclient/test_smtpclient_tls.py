"""TLS modes, PKIX and DANE verification, and their failures, against servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from smtpclienthelpers import CA, CertFiles, FakeServer, make_ca, make_cert, serve, server_context

from mox.dns import TLSA
from mox.smtpclient import (
    MailOptions,
    ProtocolError,
    Timeouts,
    TLSConfig,
    TLSFailure,
    TLSMode,
    connect,
)

FAST = Timeouts(
    connect=2, greeting=2, command=2, data_init=2, data_block=2, data_final=2, tls_handshake=2, quit=1
)
MSG = b"Subject: tls\r\n\r\nhi\r\n"
HOST = "mx.example"


@pytest.fixture(scope="module")
def ca() -> CA:
    return make_ca()


@pytest.fixture(scope="module")
def certs(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    tmp = tmp_path_factory.mktemp("certs")
    return {
        "good": make_cert(tmp, [HOST], ca=ca, prefix="good"),
        "selfsigned": make_cert(tmp, [HOST], prefix="selfsigned"),
        "expired": make_cert(tmp, [HOST], ca=ca, expired=True, prefix="expired"),
        "wronghost": make_cert(tmp, ["other.example"], ca=ca, prefix="wronghost"),
    }


@pytest.fixture(scope="module")
def cafile(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    p = tmp_path_factory.mktemp("ca") / "ca.pem"
    p.write_text(ca.pem)
    return str(p)


async def dial(port: int, tls: TLSConfig):  # type: ignore[no-untyped-def]
    return await connect("127.0.0.1", port, ehlo_hostname="client.example", tls=tls, timeouts=FAST)


EXPECTED = {
    "selfsigned": "certificate-not-trusted",
    "expired": "certificate-expired",
    "wronghost": "certificate-host-mismatch",
}


async def test_starttls_pkix_verified(certs: dict[str, CertFiles], cafile: str) -> None:
    fake = FakeServer(tls=server_context(certs["good"]), extensions=["PIPELINING", "REQUIRETLS", "8BITMIME"])
    async with serve(fake) as (srv, port):
        c = await dial(port, TLSConfig(server_name=HOST, pkix=True, cafile=cafile))
        assert c.tls.used and c.tls.pkix_verified and c.tls.verified and c.tls.starttls_offered
        assert c.tls.version.startswith("TLSv1.") and c.tls.cipher
        assert c.extensions.requiretls  # From the EHLO after STARTTLS.
        res = await c.deliver("a@example.com", ["b@example.org"], MSG, MailOptions(requiretls=True))
        assert res.delivered
        await c.close()
    assert srv.received[0].mail_params[-1] == "REQUIRETLS"
    assert sum(1 for cmd in srv.commands if cmd.startswith("EHLO")) == 2


async def test_requiretls_needs_verified_tls(certs: dict[str, CertFiles]) -> None:
    fake = FakeServer(tls=server_context(certs["selfsigned"]), extensions=["REQUIRETLS"])
    async with serve(fake) as (_srv, port):
        c = await dial(port, TLSConfig(server_name=HOST))
        assert c.tls.used and not c.tls.verified
        with pytest.raises(Exception, match="requiretls") as ei:
            await c.deliver("a@example.com", ["b@example.org"], MSG, MailOptions(requiretls=True))
        assert getattr(ei.value, "extension", "") == "REQUIRETLS"
        await c.close()


@pytest.mark.parametrize("kind", ["selfsigned", "expired", "wronghost"])
@pytest.mark.parametrize("mode", [TLSMode.OPPORTUNISTIC, TLSMode.REQUIRED_STARTTLS])
async def test_bad_certificates(certs: dict[str, CertFiles], cafile: str, kind: str, mode: TLSMode) -> None:
    fake = FakeServer(tls=server_context(certs[kind]))
    async with serve(fake) as (srv, port):
        # Without verification the certificate does not matter.
        c = await dial(port, TLSConfig(mode=mode, server_name=HOST, cafile=cafile))
        assert c.tls.used and not c.tls.pkix_verified
        assert (await c.deliver("a@example.com", ["b@example.org"], MSG)).delivered
        await c.close()

        # PKIX required: a typed failure with the RFC 8460 result type.
        with pytest.raises(TLSFailure) as ei:
            await dial(port, TLSConfig(mode=mode, server_name=HOST, pkix=True, cafile=cafile))
        assert ei.value.result_type == EXPECTED[kind]
        assert not ei.value.permanent

        # PKIX required but "TLS-Required: No": delivered over TLS anyway, failure kept.
        n = srv.connections
        c = await dial(
            port, TLSConfig(mode=mode, server_name=HOST, pkix=True, cafile=cafile, ignore_verify_errors=True)
        )
        assert c.tls.used and not c.tls.pkix_verified
        assert [f.result_type for f in c.tls.ignored_failures] == [EXPECTED[kind]]
        assert (await c.deliver("a@example.com", ["b@example.org"], MSG)).delivered
        await c.close()
        assert srv.connections == n + 2  # Verified attempt, then one without verification.
    assert len(srv.received) == 2


@pytest.mark.parametrize("kind", ["good", "selfsigned", "expired", "wronghost"])
async def test_immediate_tls(certs: dict[str, CertFiles], cafile: str, kind: str) -> None:
    fake = FakeServer(tls=server_context(certs[kind]), implicit_tls=True)
    async with serve(fake) as (srv, port):
        if kind == "good":
            c = await dial(
                port, TLSConfig(mode=TLSMode.IMMEDIATE, server_name=HOST, pkix=True, cafile=cafile)
            )
            assert c.tls.used and c.tls.pkix_verified
            assert (await c.deliver("a@example.com", ["b@example.org"], MSG)).delivered
            await c.close()
            assert "STARTTLS" not in srv.commands
            return
        with pytest.raises(TLSFailure) as ei:
            await dial(port, TLSConfig(mode=TLSMode.IMMEDIATE, server_name=HOST, pkix=True, cafile=cafile))
        assert ei.value.result_type == EXPECTED[kind]
        tls = TLSConfig(
            mode=TLSMode.IMMEDIATE, server_name=HOST, pkix=True, cafile=cafile, ignore_verify_errors=True
        )
        c = await dial(port, tls)
        assert c.tls.used and [f.result_type for f in c.tls.ignored_failures] == [EXPECTED[kind]]
        await c.close()


async def test_no_starttls(certs: dict[str, CertFiles], cafile: str) -> None:
    fake = FakeServer(tls=server_context(certs["good"]), starttls_announce=False)
    async with serve(fake) as (_srv, port):
        # Opportunistic without verification: plaintext.
        c = await dial(port, TLSConfig(server_name=HOST))
        assert not c.tls.used and c.tls.not_offered
        assert (await c.deliver("a@example.com", ["b@example.org"], MSG)).delivered
        await c.close()
        # Verification required: an error.
        with pytest.raises(TLSFailure) as ei:
            await dial(port, TLSConfig(server_name=HOST, pkix=True, cafile=cafile))
        assert ei.value.result_type == "starttls-not-supported"
        # ... unless verification errors are ignored.
        c = await dial(port, TLSConfig(server_name=HOST, pkix=True, cafile=cafile, ignore_verify_errors=True))
        assert not c.tls.used and c.tls.ignored_failures[0].result_type == "starttls-not-supported"
        await c.close()
        # Required STARTTLS sends it even when not announced (this server does know it).
        c = await dial(
            port, TLSConfig(mode=TLSMode.REQUIRED_STARTTLS, server_name=HOST, pkix=True, cafile=cafile)
        )
        assert c.tls.used and c.tls.pkix_verified
        await c.close()
        # Skip: no TLS at all.
        c = await dial(port, TLSConfig(mode=TLSMode.SKIP))
        assert not c.tls.used
        await c.close()


async def test_starttls_refused(certs: dict[str, CertFiles]) -> None:
    fake = FakeServer(
        tls=server_context(certs["good"]), replies={"STARTTLS": b"454 4.7.0 tls not available\r\n"}
    )
    async with serve(fake) as (_srv, port):
        with pytest.raises(TLSFailure) as ei:
            await dial(port, TLSConfig(server_name=HOST))
        assert ei.value.result_type == "starttls-not-supported"
        assert ei.value.reason == "smtp-starttls-reply-code-454"
        assert ei.value.mx_helo == "fake.example"


@pytest.mark.parametrize("garbage", [b"this is not tls\r\n", b""])
async def test_handshake_failure(garbage: bytes) -> None:
    async def hook(line: str, w: asyncio.StreamWriter) -> bool:
        if line == "STARTTLS":
            w.write(b"220 go ahead\r\n")
            await w.drain()
            await asyncio.sleep(0.05)
            w.write(garbage)
            await w.drain()
            w.transport.abort()
            return True
        return False

    async with serve(FakeServer(extensions=["STARTTLS"], hook=hook)) as (_srv, port):
        with pytest.raises(TLSFailure) as ei:
            await dial(port, TLSConfig(server_name=HOST))
        assert ei.value.result_type == "validation-failure"
        assert not ei.value.permanent


async def test_starttls_response_injection(certs: dict[str, CertFiles]) -> None:
    async def hook(line: str, w: asyncio.StreamWriter) -> bool:
        if line == "STARTTLS":
            w.write(b"220 go ahead\r\n250 injected\r\n")
            await w.drain()
            return True
        return False

    async with serve(FakeServer(extensions=["STARTTLS"], hook=hook)) as (_srv, port):
        with pytest.raises(ProtocolError):
            await dial(port, TLSConfig(server_name=HOST))


@dataclass(frozen=True)
class FakeDaneResult:
    verified: bool
    record: TLSA | None
    result_type: str = ""
    reason: str = ""


class FakeDane:
    """Stands in for mox.dane: "verifies" when the leaf equals the expected DER."""

    def __init__(self, leaf: bytes, result_type: str = "validation-failure") -> None:
        self.leaf = leaf
        self.result_type = result_type
        self.calls: list[tuple[list[bytes], list[TLSA], list[str]]] = []

    def __call__(
        self, chain_der: Sequence[bytes], records: Sequence[TLSA], hostnames: Sequence[str]
    ) -> FakeDaneResult:
        self.calls.append((list(chain_der), list(records), list(hostnames)))
        if chain_der and chain_der[0] == self.leaf and records:
            return FakeDaneResult(True, records[0])
        return FakeDaneResult(False, None, self.result_type, "dane-no-match")


RECORD = TLSA(3, 1, 1, b"\x01" * 32)


async def test_dane(certs: dict[str, CertFiles]) -> None:
    # The self-signed certificate is fine for DANE-EE: no PKIX in the handshake.
    fake = FakeServer(tls=server_context(certs["selfsigned"]), extensions=["REQUIRETLS"])
    async with serve(fake) as (_srv, port):
        dane = FakeDane(certs["selfsigned"].der)
        tls = TLSConfig(
            server_name=HOST, dane_records=[RECORD], dane_verify=dane, dane_hostnames=["example.org"]
        )
        c = await dial(port, tls)
        assert c.tls.used and c.tls.dane_verified and c.tls.dane_record == RECORD and not c.tls.pkix_verified
        assert c.tls.verified
        assert (
            await c.deliver("a@example.com", ["b@example.org"], MSG, MailOptions(requiretls=True))
        ).delivered
        await c.close()
        chain, records, hostnames = dane.calls[0]
        assert (
            chain[0] == certs["selfsigned"].der and records == [RECORD] and hostnames == [HOST, "example.org"]
        )

        # Mismatch: a failure with the verifier's result type.
        for rt in ("validation-failure", "tlsa-invalid"):
            bad = FakeDane(b"other", rt)
            with pytest.raises(TLSFailure) as ei:
                await dial(port, TLSConfig(server_name=HOST, dane_records=[RECORD], dane_verify=bad))
            assert ei.value.result_type == rt

        # Ignored for TLS-Required: No.
        bad = FakeDane(b"other")
        c = await dial(
            port,
            TLSConfig(server_name=HOST, dane_records=[RECORD], dane_verify=bad, ignore_verify_errors=True),
        )
        assert c.tls.used and not c.tls.dane_verified
        assert c.tls.ignored_failures[0].result_type == "validation-failure"
        await c.close()


async def test_dane_requires_starttls(certs: dict[str, CertFiles]) -> None:
    fake = FakeServer(tls=server_context(certs["selfsigned"]), starttls_announce=False)
    async with serve(fake) as (_srv, port):
        with pytest.raises(TLSFailure) as ei:
            await dial(port, TLSConfig(server_name=HOST, dane_records=[RECORD], dane_verify=FakeDane(b"")))
        assert ei.value.result_type == "starttls-not-supported"


async def test_context_factory(certs: dict[str, CertFiles], cafile: str) -> None:
    calls: list[bool] = []

    def factory(verify: bool) -> ssl.SSLContext:
        calls.append(verify)
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    async with serve(FakeServer(tls=server_context(certs["good"]))) as (_srv, port):
        c = await dial(port, TLSConfig(server_name=HOST, pkix=True, context_factory=factory))
        assert c.tls.version == "TLSv1.2" and c.tls.pkix_verified
        await c.close()
    assert calls == [True]


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TLSConfig(dane_records=[RECORD])
    with pytest.raises(ValueError):
        TLSConfig(pkix=True)
    with pytest.raises(ValueError):
        TLSConfig(mode=TLSMode.SKIP, server_name=HOST, pkix=True)


async def test_alert_after_handshake(certs: dict[str, CertFiles], cafile: str) -> None:
    # A server demanding a client certificate: with TLS 1.3 its alert arrives at our first read.
    ctx = server_context(certs["good"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=cafile)
    async with serve(FakeServer(tls=ctx)) as (_srv, port):
        with pytest.raises(TLSFailure) as ei:
            await dial(port, TLSConfig(server_name=HOST))
        assert ei.value.result_type == "validation-failure"
        assert ei.value.reason in ("tls-connection-lost-after-handshake", "tls-remote-certificate-required")
