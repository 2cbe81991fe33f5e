"""Incoming mail for two local recipients where one copy cannot be stored (over quota): the
message is accepted, the other recipient has it, and the sender's MX receives a DSN for the
failed one (RFC 3464) from the queue, with a null reverse-path. Port 25 needs root."""

from __future__ import annotations

import os
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from serve_harness import MoxServe
from test_smtp_delivery import stored

from mox.config import model, sconf
from mox.config.load import parse_dynamic
from mox.dns.testserver import DNSTestServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a sink on port 25 needs root")

SINK_IP = "127.0.0.3"


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 ok"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MoxServe, Sink]]:
    sink = Sink()
    ctl = Controller(sink, hostname=SINK_IP, port=25)
    ctl.start()
    try:
        with DNSTestServer() as dns:
            dns.add("example.net", "MX", "10 mx.example.net.")
            dns.add_ip("mx.example.net", SINK_IP)
            monkeypatch.setenv("MOX_DNS", dns.address)
            m = MoxServe(tmp_path)
            m.start()
            try:
                yield m, sink
            finally:
                m.stop()
    finally:
        ctl.stop()


def test_partial_failure_gives_dsn(setup: tuple[MoxServe, Sink]) -> None:
    m, sink = setup
    assert m.mox("config", "account", "add", "full", "full@localhost").returncode == 0
    dyn, _ = parse_dynamic(m.config.parent / "domains.conf")
    dyn.Accounts["full"].QuotaMessageSize = 10
    (m.config.parent / "domains.conf").write_text(sconf.write(dyn, header=model.DYNAMIC_HEADER))
    m.wait_log("domains.conf reloaded", timeout=10)
    msg = b"From: a@example.net\r\nTo: mox@localhost, full@localhost\r\nSubject: two\r\n\r\nhello\r\n"
    with smtplib.SMTP("127.0.0.1", m.ports.smtp, timeout=20) as s:
        s.ehlo("client.example.net")
        assert s.sendmail("a@example.net", ["mox@localhost", "full@localhost"], msg) == {}
    deadline = time.monotonic() + 30
    while not sink.got and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sink.got, m.log()
    mail_from, rcpts, report = sink.got[0]
    assert mail_from == "<>" and rcpts == ["a@example.net"]
    assert b"multipart/report" in report and b"Final-Recipient: rfc822; full@localhost" in report
    assert b"Action: failed" in report and b"mox@localhost" not in report.split(b"Final-Recipient")[1].split(b"\r\n\r\n")[0]
    m.stop()
    assert any(b"Subject: two" in x for x in stored(m))
