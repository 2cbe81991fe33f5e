"""`mox serve` with ACME: certificates from a real ACME CA (pebble) for IMAPS, SMTP STARTTLS and MTA-STS."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_harness import MoxServe
from test_smtp_delivery import set_password

from mox.config import model, sconf
from mox.config.load import parse_static
from mox.dns.testserver import DNSTestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "autotls"))
from pebblehelpers import free_port, run_pebble

HOST = "mail.mox1.example"


def _acme_config(m: MoxServe, directory_url: str, pebble_ca: Path, acme_port: int) -> None:
    static, _ = parse_static(m.config)
    static.Hostname = HOST
    static.ACME = {"pebble": model.ACME(DirectoryURL=directory_url, ContactEmail="postmaster@localhost", Port=acme_port)}
    static.TLS = model.GlobalTLS(CA=model.CAConfig(CertFiles=[str(pebble_ca)]))
    lst = static.Listeners["local"]
    lst.TLS = model.ListenerTLS(ACME="pebble")
    lst.MTASTSHTTPS = model.MTASTSListener(Enabled=True, Port=acme_port)
    m.config.write_text(sconf.write(static, header=model.STATIC_HEADER))


@pytest.fixture
def acme_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MoxServe, bytes]]:
    with DNSTestServer() as dns_server:
        yield from _acme_serve(tmp_path, dns_server, monkeypatch)


def _acme_serve(tmp_path: Path, dns_server: DNSTestServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MoxServe, bytes]]:
    dns_server.add_ip(HOST, "127.0.0.1")
    monkeypatch.setenv("MOX_DNS", dns_server.address)
    m = MoxServe(tmp_path / "mox")
    acme_port = free_port()
    with run_pebble(tmp_path, dns_server.address, m.ports.http, acme_port) as pebble:
        _acme_config(m, pebble.directory_url, pebble.ca_file, acme_port)
        m.start()
        try:
            m.wait_log("certificate obtained", timeout=60)
            yield m, pebble.root_pem()
        finally:
            m.stop()


def test_acme_certificate_served_on_imaps_and_starttls(acme_serve: tuple[MoxServe, bytes]) -> None:
    m, root = acme_serve
    ctx = ssl.create_default_context(cadata=root.decode())
    # IMAPS with the host name verified against pebble's root.
    with socket.create_connection(("127.0.0.1", m.ports.imaps), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=HOST) as s:
        assert s.recv(100).startswith(b"* OK")
        cert = s.getpeercert()
        assert ("DNS", HOST) in cert["subjectAltName"]
    # SMTP STARTTLS on port 25's stand-in.
    with smtplib.SMTP("127.0.0.1", m.ports.smtp, local_hostname="client.example", timeout=10) as c:
        c._host = HOST  # the name checked against the certificate
        c.starttls(context=ctx)
        assert c.noop()[0] == 250
    # Clients that send no SNI get the host name's certificate too.
    noverify = ssl.create_default_context(cadata=root.decode())
    noverify.check_hostname = False
    with socket.create_connection(("127.0.0.1", m.ports.imaps), timeout=10) as raw, noverify.wrap_socket(raw) as s:
        assert ("DNS", HOST) in s.getpeercert()["subjectAltName"]
    # The certificate and account key are kept for the next start.
    assert (m.data / "acme" / "keycerts" / "pebble" / HOST).exists()
    # A login over IMAP with STARTTLS, the certificate verified.
    set_password(m, "moxmoxmox")
    c2 = imaplib.IMAP4("127.0.0.1", m.ports.imap, timeout=10)
    c2.host = HOST
    c2.starttls(ssl_context=ctx)
    assert c2.login("mox@localhost", "moxmoxmox")[0] == "OK"
    c2.logout()


def test_acme_restart_uses_cache(acme_serve: tuple[MoxServe, bytes]) -> None:
    m, root = acme_serve
    m.stop()
    offset = len(m.log())
    m.start()
    # No new order: the cached certificate is valid and served at once.
    ctx = ssl.create_default_context(cadata=root.decode())
    with socket.create_connection(("127.0.0.1", m.ports.imaps), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=HOST) as s:
        assert s.recv(100).startswith(b"* OK")
    time.sleep(0.5)
    assert "certificate obtained" not in m.log()[offset:]
