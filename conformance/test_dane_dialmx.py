"""mox dane dialmx: MX routing with DNSSEC, STARTTLS verified with DANE, then stdin/stdout copy.
A small SMTP server with STARTTLS listens on port 25 of 127.0.0.4, so this needs root."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "smtpclient"))
from smtpclienthelpers import make_cert, server_context

from mox.dns.testserver import DNSTestServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="listening on port 25 needs root")

IP = "127.0.0.4"


async def _session(r: asyncio.StreamReader, w: asyncio.StreamWriter, ctx: object) -> None:
    w.write(b"220 mx.example.org ESMTP\r\n")
    while line := await r.readline():
        cmd = line.strip().upper()
        if cmd.startswith(b"EHLO"):
            w.write(b"250-mx.example.org\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
        elif cmd == b"STARTTLS":
            w.write(b"220 go ahead\r\n")
            await w.drain()
            await w.start_tls(ctx)  # type: ignore[arg-type]
        elif cmd == b"QUIT":
            w.write(b"221 2.0.0 bye\r\n")
            await w.drain()
            break
        else:
            w.write(b"250 ok\r\n")
        await w.drain()
    w.close()


@pytest.fixture
def mx(tmp_path: Path) -> Iterator[bytes]:
    cert = make_cert(tmp_path, ["mx.example.org"])
    ctx = server_context(cert)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        srv = loop.run_until_complete(asyncio.start_server(lambda r, w: _session(r, w, ctx), IP, 25))
        started.set()
        loop.run_forever()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait(5)
    spki = x509.load_der_x509_certificate(cert.der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        yield hashlib.sha256(spki).hexdigest().encode()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)


def _dialmx(dns: DNSTestServer) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "MOX_DNS": dns.address}
    return subprocess.run(
        [sys.executable, "-m", "mox", "dane", "dialmx", "example.org"],
        input=b"QUIT\r\n", capture_output=True, env=env, timeout=60,
    )  # fmt: skip


def test_dialmx_verified(mx: bytes) -> None:
    with DNSTestServer(authentic=True) as dns:
        dns.add("example.org", "MX", "10 mx.example.org.")
        dns.add_ip("mx.example.org", IP)
        dns.add("_25._tcp.mx.example.org", "TLSA", "3 1 1 " + mx.decode())
        p = _dialmx(dns)
    assert p.returncode == 0, p.stderr
    assert b"dane verified" in p.stderr and b"221 2.0.0 bye" in p.stdout


def test_dialmx_mismatch_and_insecure(mx: bytes) -> None:
    with DNSTestServer(authentic=True) as dns:
        dns.add("example.org", "MX", "10 mx.example.org.")
        dns.add_ip("mx.example.org", IP)
        dns.add("_25._tcp.mx.example.org", "TLSA", "3 1 1 " + "00" * 32)
        p = _dialmx(dns)
    assert p.returncode == 1 and b"no host could be connected to with dane" in p.stderr
    with DNSTestServer(authentic=False) as dns:
        dns.add("example.org", "MX", "10 mx.example.org.")
        p = _dialmx(dns)
    assert p.returncode == 1 and b"not dnssec-secure" in p.stderr
