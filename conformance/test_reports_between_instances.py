"""TLS reporting between two instances: A delivers to B, A's TLS results for B's domain become a
TLS report (RFC 8460) that A sends to B's TLSRPT address, DKIM-signed, through its queue; B
checks and stores it, and B's parsed statistics show it. Port 25 on 127.0.0.2 needs root."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_harness import MoxServe
from test_smtp_delivery import set_password, stored

from mox.config import model, sconf
from mox.config.load import load_config, parse_dynamic, parse_static
from mox.dkim import txt_record
from mox.dns.testserver import DNSTestServer
from mox.tlsrptdb import TLSRPTDB

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="listening on port 25 needs root")

B_IP = "127.0.0.2"


def _static(m: MoxServe, edit: object) -> None:
    static, _ = parse_static(m.config)
    edit(static)  # type: ignore[operator]
    m.config.write_text(sconf.write(static, header=model.STATIC_HEADER))


def _dynamic(m: MoxServe, edit: object) -> None:
    p = m.config.parent / "domains.conf"
    dyn, _ = parse_dynamic(p)
    edit(dyn)  # type: ignore[operator]
    p.write_text(sconf.write(dyn, header=model.DYNAMIC_HEADER))


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MoxServe, MoxServe, DNSTestServer]]:
    with DNSTestServer() as dns:
        dns.add("mox2.example", "MX", "10 mail.mox2.example.")
        dns.add_ip("mail.mox2.example", B_IP)
        dns.add_txt("_smtp._tls.mox2.example", "v=TLSRPTv1; rua=mailto:tlsrpt@mox2.example")
        monkeypatch.setenv("MOX_DNS", dns.address)
        a, b = MoxServe(tmp_path / "a"), MoxServe(tmp_path / "b")

        def a_static(s: model.Static) -> None:
            s.Hostname = "mail.mox1.example"
            s.OutgoingTLSReportsForAllSuccess = True

        def b_static(s: model.Static) -> None:
            s.Listeners["local"].IPs = [B_IP]
            s.Listeners["local"].SMTP.Port = 25

        _static(a, a_static)
        _static(b, b_static)
        b.start()
        try:
            assert b.mox("config", "domain", "add", "mox2.example", "mox").returncode == 0
            assert b.mox("config", "address", "add", "user@mox2.example", "mox").returncode == 0

            def b_tlsrpt(d: model.Dynamic) -> None:
                d.Domains["mox2.example"].TLSRPT = model.TLSRPT(Localpart="tlsrpt", Account="mox", Mailbox="TLSRPT")

            _dynamic(b, b_tlsrpt)
            b.wait_log("domains.conf reloaded", timeout=10)
            # A signs reports as its host name's domain; B finds the key in DNS.
            assert a.mox("config", "domain", "add", "mox1.example", "mox").returncode == 0
            dkim = load_config(a.config).dynamic.Domains["mox1.example"].DKIM
            for name, sel in dkim.Selectors.items():
                dns.add_txt(f"{name}._domainkey.mox1.example", txt_record(sel.Key.public_key()))
            a.start()
            try:
                yield a, b, dns
            finally:
                a.stop()
        finally:
            b.stop()


def test_tls_report_from_a_reaches_b(two: tuple[MoxServe, MoxServe, DNSTestServer]) -> None:
    a, b, _dns = two
    set_password(a, "moxmoxmox")
    msg = b"From: mox@localhost\r\nTo: user@mox2.example\r\nSubject: to b\r\n\r\nhi\r\n"
    with smtplib.SMTP("127.0.0.1", a.ports.submission, timeout=20) as s:
        s.login("mox@localhost", "moxmoxmox")
        assert s.sendmail("mox@localhost", ["user@mox2.example"], msg) == {}
    b.wait_log("message delivered", timeout=30)
    # A's TLS results are buffered for a few seconds before they are written; sendreports writes
    # them first, so one run right after the delivery reports it.
    a.wait_log("delivered batch", timeout=10)
    asyncio.run(asyncio.sleep(0.2))
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    r = a.mox("tlsrpt", "sendreports", day)
    assert r.returncode == 0, r.stderr
    assert "mox2.example" in r.stdout and "tlsrpt@mox2.example" in r.stdout, f"no report sent: {r.stdout}\n{a.log()}"
    b.wait_log("tls report stored", timeout=30)
    b.stop()
    reports = stored(b, "TLSRPT")
    assert len(reports) == 1 and b"application/tlsrpt+gzip" in reports[0]

    async def check() -> None:
        db = await TLSRPTDB.open(load_config(b.config).data_dir / "tlsrpt.db")
        try:
            recs = await db.reports()
        finally:
            await db.close()
        assert len(recs) == 1
        rep = recs[0].report
        (pol,) = [p for p in rep.policies if p.policy.domain == "mox2.example"]
        assert pol.summary.total_successful_session_count >= 1
        assert json.dumps(rep.to_json())  # the stored report serialises

    asyncio.run(check())
