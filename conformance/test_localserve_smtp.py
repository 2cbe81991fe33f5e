"""mox localserve's SMTP behaviour, as upstream: mail for unknown addresses (any domain) goes to
the mox account, and special recipient local parts simulate failures at MAIL, RCPT or DATA."""

from __future__ import annotations

import imaplib
import smtplib
import sys
from pathlib import Path

import pytest
from serve_harness import local_ports
from test_localserve import _start

MSG = b"From: a@example.net\r\nTo: x\r\nSubject: t\r\n\r\nhi\r\n"


def test_localserve_any_address_and_simulated_failures(tmp_path: Path) -> None:
    root = tmp_path / "ls"
    ports = local_ports()
    code = (
        "from mox.localserve import run; from mox.config.example import LocalPorts; import sys; "
        f"sys.exit(run({str(root)!r}, ip='127.0.0.1', ports=LocalPorts(*{list(vars(ports).values())!r})))"
    )
    ls = _start(tmp_path, [sys.executable, "-c", code], root, ports)
    try:
        with smtplib.SMTP("127.0.0.1", ports.smtp, timeout=20) as s:
            s.ehlo("client.example.net")
            # Unknown addresses, also in other domains: delivered to the mox account.
            assert s.sendmail("a@example.net", ["nobody@localhost", "someone@elsewhere.example"], MSG) == {}
            # Failures asked for by the local part, at the command its prefix names.
            code_, _ = s.docmd("MAIL FROM:<mailfromtemperror@example.net>")
            assert code_ == 451
            s.rset()
            with pytest.raises(smtplib.SMTPRecipientsRefused) as ei:
                s.sendmail("a@example.net", ["rcpttopermerror@localhost"], MSG)
            assert ei.value.recipients["rcpttopermerror@localhost"][0] == 550
            with pytest.raises(smtplib.SMTPDataError) as ed:
                s.sendmail("a@example.net", ["x452@localhost"], MSG)
            assert ed.value.smtp_code == 452
        with imaplib.IMAP4("127.0.0.1", ports.imap, timeout=10) as c:
            c.login("mox@localhost", "moxmoxmox")
            c.select("Inbox")
            typ, data = c.search(None, "ALL")
            assert typ == "OK" and len(data[0].split()) == 1  # one message, two recipients, one account
    finally:
        ls.stop()
