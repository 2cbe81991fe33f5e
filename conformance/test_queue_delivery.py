"""One `mox serve` delivering to another through its outgoing queue: MX lookup in a test DNS,
SMTP on port 25 of a second loopback address, STARTTLS, and the recipient reading it over IMAP.

Port 25 needs root (CI runs as root); elsewhere the test is skipped.
"""

from __future__ import annotations

import imaplib
import os
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_harness import MoxServe
from test_smtp_delivery import set_password, stored

from mox.config import model, sconf
from mox.config.load import parse_static
from mox.dns.testserver import DNSTestServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="listening on port 25 needs root")

B_IP = "127.0.0.2"


def _listen_on(m: MoxServe, ip: str, smtp_port: int) -> None:
    static, _ = parse_static(m.config)
    lst = static.Listeners["local"]
    lst.IPs = [ip]
    lst.SMTP.Port = smtp_port
    m.config.write_text(sconf.write(static, header=model.STATIC_HEADER))


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MoxServe, MoxServe]]:
    with DNSTestServer() as dns:
        dns.add("mox2.example", "MX", "10 mail.mox2.example.")
        dns.add_ip("mail.mox2.example", B_IP)
        monkeypatch.setenv("MOX_DNS", dns.address)
        a, b = MoxServe(tmp_path / "a"), MoxServe(tmp_path / "b")
        _listen_on(b, B_IP, 25)
        b.start()
        try:
            assert b.mox("config", "domain", "add", "mox2.example", "mox").returncode == 0
            assert b.mox("config", "address", "add", "user@mox2.example", "mox").returncode == 0
            a.start()
            try:
                yield a, b
            finally:
                a.stop()
        finally:
            b.stop()


def test_delivery_between_two_instances(two: tuple[MoxServe, MoxServe]) -> None:
    a, b = two
    set_password(a, "moxmoxmox")
    msg = b"From: mox@localhost\r\nTo: user@mox2.example\r\nSubject: across\r\n\r\nhello from a\r\n"
    with smtplib.SMTP("127.0.0.1", a.ports.submission, timeout=20) as s:
        s.login("mox@localhost", "moxmoxmox")
        assert s.sendmail("mox@localhost", ["user@mox2.example", "user2@mox2.example"], msg) == {}
    b.wait_log("message delivered", timeout=30)
    # The unknown second recipient bounced: a DSN for it only.
    a.wait_log("delivered dsn to local account", timeout=30)
    assert "queued" not in a.mox("queue", "list").stdout.split("\n", 1)[1]

    set_password(b, "moxmoxmox")
    im = imaplib.IMAP4(B_IP, b.ports.imap, timeout=10)
    try:
        im.login("mox@localhost", "moxmoxmox")
        im.select("Inbox")
        typ, data = im.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK"
        raw = data[0][1]
        assert isinstance(raw, bytes)
    finally:
        im.logout()
    assert b"hello from a" in raw
    # Received by b over STARTTLS from a, with a's own Received header from the submission.
    assert b"with ESMTPS" in raw and raw.count(b"Received:") >= 2
    a.stop()
    dsns = [x for x in stored(a) if b"multipart/report" in x]
    assert len(dsns) == 1 and b"user2@mox2.example" in dsns[0] and b"550" in dsns[0]
