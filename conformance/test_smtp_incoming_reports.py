"""A DMARC aggregate report sent to a domain's configured DMARC reporting address is delivered
to its mailbox and its report stored for the statistics (mox.dmarcdb)."""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_harness import MoxServe
from test_smtp_delivery import stored

from mox.config import model, sconf
from mox.config.load import load_config, parse_dynamic
from mox.dmarcdb.reports import ReportsDB
from mox.dns.testserver import DNSTestServer


def _report(begin: int, end: int) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>example.net</org_name><email>dmarc@example.net</email>
    <report_id>r-{begin}</report_id><date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>
  <policy_published><domain>localhost</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record>
    <row><source_ip>127.0.0.1</source_ip><count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>localhost</header_from></identifiers>
    <auth_results><spf><domain>localhost</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>
""".encode()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MoxServe]:
    with DNSTestServer() as dns:
        dns.add_txt("example.net", "v=spf1 ip4:127.0.0.1 -all")
        dns.add_txt("_dmarc.example.net", "v=DMARC1; p=reject")
        monkeypatch.setenv("MOX_DNS", dns.address)
        m = MoxServe(tmp_path)
        dyn, _ = parse_dynamic(m.config.parent / "domains.conf")
        dyn.Domains["localhost"].DMARC = model.DMARC(Localpart="dmarcreports", Account="mox", Mailbox="DMARC")
        (m.config.parent / "domains.conf").write_text(sconf.write(dyn, header=model.DYNAMIC_HEADER))
        m.start()
        try:
            yield m
        finally:
            m.stop()


def test_dmarc_report_stored(served: MoxServe) -> None:
    m = served
    now = int(time.time())
    xml = _report(now - 86400, now - 3600)
    msg = (
        b"From: dmarc@example.net\r\nTo: dmarcreports@localhost\r\nSubject: Report Domain: localhost\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/xml\r\n\r\n" + xml
    )
    with smtplib.SMTP("127.0.0.1", m.ports.smtp, timeout=20) as s:
        s.ehlo("mail.example.net")
        assert s.sendmail("dmarc@example.net", ["dmarcreports@localhost"], msg) == {}
    m.wait_log("dmarc report stored", timeout=10)
    m.stop()
    assert len(stored(m, "DMARC")) == 1

    async def check() -> None:
        db = await ReportsDB.open(load_config(m.config).data_dir / "dmarcrpt.db")
        try:
            recs = await db.records()
        finally:
            await db.close()
        assert len(recs) == 1
        fb = recs[0].feedback
        assert fb.policy_published.domain == "localhost" and fb.report_metadata.org_name == "example.net"

    asyncio.run(check())
