"""Outgoing DMARC aggregate reports: composition, rua verification, size limits, cleanup."""

from __future__ import annotations

import datetime
import gzip
from pathlib import Path

import pytest
import xmlschema
from reportconfig import report_config

from mox import dkim, dmarcrpt, message
from mox.config.load import Config
from mox.dmarcdb import Evaluation, EvaluationDB, SuppressAddress
from mox.dmarcdb.reportmsg import OutgoingReport
from mox.dmarcdb.send import DMARCReporter, intervals_for_hour, next_whole_hour
from mox.dns import MockResolver

SCHEMA = xmlschema.XMLSchema(Path(__file__).resolve().parents[1] / "dmarcrpt" / "data" / "rfc7489-appendix-c.xsd")
END = datetime.datetime(2026, 3, 2, 13, tzinfo=datetime.UTC).timestamp()  # 13:00 UTC


def _ev(t: float, ip: str = "192.0.2.10", *, optional: bool = False, interval: int = 1, domain: str = "example.org") -> Evaluation:
    return Evaluation(
        policy_domain=domain,
        evaluated=t,
        optional=optional,
        interval_hours=interval,
        addresses=[f"mailto:dmarc@{domain}"],
        policy_published={"domain": domain, "adkim": "r", "aspf": "r", "p": "reject", "sp": "reject", "pct": 100},
        source_ip=ip,
        disposition="reject",
        aligned_spf_pass=False,
        envelope_to="localhost",
        envelope_from=domain,
        header_from=domain,
        dkim_results=[{"domain": domain, "selector": "s1", "result": "fail"}],
        spf_results=[{"domain": domain, "scope": "mfrom", "result": "softfail"}],
    )


def _resolver(cfg: Config, rua: str) -> MockResolver:
    sel = cfg.dynamic.Domains["localhost"].DKIM.Selectors["localserve"]
    return MockResolver(
        txt={
            "_dmarc.example.org": [f"v=DMARC1; p=reject; rua={rua}"],
            "example.org._report._dmarc.external.example": ["v=DMARC1; rua=mailto:other@external.example,mailto:x@elsewhere.example"],
            "example.org._report._dmarc.plain.example": ["v=DMARC1"],
            "localserve._domainkey.moxtest.example": [dkim.txt_record(sel.Key)],
        }
    )


class Captured:
    def __init__(self) -> None:
        self.msgs: list[OutgoingReport] = []

    async def __call__(self, r: OutgoingReport) -> None:
        self.msgs.append(r)


async def _setup(tmp_path: Path, rua: str) -> tuple[Config, EvaluationDB, Captured, DMARCReporter]:
    cfg = report_config(tmp_path, hostname="mail.moxtest.example")
    db = await EvaluationDB.open(tmp_path / "dmarceval.db")
    cap = Captured()
    rep = DMARCReporter(lambda: cfg, db, resolver=_resolver(cfg, rua), submit=cap, now=lambda: END + 60)
    return cfg, db, cap, rep


def test_dmarcdb_send_intervals() -> None:
    at = lambda h: datetime.datetime(2026, 3, 2, h, tzinfo=datetime.UTC).timestamp()  # noqa: E731
    assert intervals_for_hour(at(13)) == [1]
    assert intervals_for_hour(at(12)) == [12, 6, 4, 3, 2, 1]
    assert intervals_for_hour(at(0)) == [24, 12, 8, 6, 4, 3, 2, 1]
    assert intervals_for_hour(at(16)) == [8, 4, 2, 1]
    assert next_whole_hour(at(13) + 1) == at(14) and next_whole_hour(at(13)) == at(14)


async def test_dmarcdb_send_report(tmp_path: Path) -> None:
    rua = "mailto:dmarc@example.org,mailto:reports@external.example,mailto:nope@plain.example,mailto:no@unlisted.example,https://x.example/"
    _cfg, db, cap, rep = await _setup(tmp_path, rua)
    try:
        await db.add(_ev(END - 1800))
        await db.add(_ev(END - 1700))
        await db.add(_ev(END - 100, "2001:db8::1"))
        await db.add(_ev(END + 10))  # after the period: stays for the next report
        await db.add(_ev(END - 100, interval=24, domain="daily.example"))  # its interval does not end at 13:00
        (res,) = await rep.send_reports(END + 59)
        assert res.domain == "example.org" and res.cleaned
        # The external address that opted in was replaced by its same-host replacement; other hosts refused.
        assert res.queued == ["dmarc@example.org", "other@external.example", "nope@plain.example"]
        assert any("unlisted.example" in e and "opt-in" in e for e in res.errors)
        assert any("replacement address x@elsewhere.example" in e for e in res.errors)
        assert [m.recipient for m in cap.msgs] == res.queued
        m = cap.msgs[0]
        assert m.is_dmarc_report and not m.is_tls_report and m.max_attempts == 5 and m.account == "mox" and m.sender == "postmaster@mail.moxtest.example"
        assert all(x.data == m.data for x in cap.msgs)

        # The message: headers, attachment, DKIM signature by the host's domain.
        root = message.parse(m.data)
        hdrs = {k.lower(): v.decode().strip() for k, v in root.headers(m.data)}
        assert hdrs["subject"] == f"Report Domain: example.org Submitter: mail.moxtest.example Report-ID: <{res.report_id}>"
        assert hdrs["from"] == "<postmaster@mail.moxtest.example>"
        (att,) = [p for p in root.parts if p.content_type == "APPLICATION/GZIP"]
        assert att.filename() == f"mail.moxtest.example!example.org!{int(END) - 3600}!{int(END) - 1}.xml.gz"
        xml = gzip.decompress(att.decoded_body(m.data))
        SCHEMA.validate(xml.decode())
        results = await dkim.verify(m.data, rep.resolver, now=END + 60)
        assert [(str(r.status), r.sig.domain.ascii if r.sig else "", r.error) for r in results] == [("pass", "moxtest.example", "")]

        f = dmarcrpt.parse_message(m.data)
        assert f.report_metadata.org_name == "mail.moxtest.example" and f.report_metadata.email == "postmaster@mail.moxtest.example"
        assert f.report_metadata.date_range == dmarcrpt.DateRange(int(END) - 3600, int(END) - 1)
        assert f.report_metadata.report_id.startswith("20260302.13.")
        assert f.policy_published == dmarcrpt.PolicyPublished("example.org", "r", "r", "reject", "reject", 100, "0")
        assert sorted((r.row.source_ip, r.row.count) for r in f.records) == [("192.0.2.10", 2), ("2001:0db8:0000:0000:0000:0000:0000:0001", 1)]
        r0 = f.records[0]
        assert r0.row.policy_evaluated == dmarcrpt.PolicyEvaluated("reject", "fail", "fail")
        assert r0.auth_results.dkim == [dmarcrpt.DKIMAuthResult("example.org", "fail", "s1")]
        assert r0.auth_results.spf == [dmarcrpt.SPFAuthResult("example.org", "softfail", "mfrom")]

        # Reported evaluations are gone; the later one and the other interval's remain.
        assert sorted((e.policy_domain, e.evaluated) for e in await db.evaluations()) == [("daily.example", END - 100), ("example.org", END + 10)]
        # The daily one goes out at 00:00 UTC, covering a whole day.
        midnight = datetime.datetime(2026, 3, 3, tzinfo=datetime.UTC).timestamp()
        rep.resolver = MockResolver(txt={"_dmarc.daily.example": ["v=DMARC1; p=none; rua=mailto:d@daily.example"]})
        results = await rep.send_reports(midnight)
        daily = next(r for r in results if r.domain == "daily.example")
        assert daily.queued == ["d@daily.example"]
        fd = dmarcrpt.parse_message(cap.msgs[-1].data)
        assert fd.report_metadata.date_range == dmarcrpt.DateRange(int(midnight) - 86400, int(midnight) - 1)
    finally:
        await db.close()


async def test_dmarcdb_send_size_limits_and_error_report(tmp_path: Path) -> None:
    cfg, db, cap, rep = await _setup(tmp_path, "mailto:small@example.org!1k,mailto:big@example.org!1m")
    try:
        await db.add(_ev(END - 100))
        (res,) = await rep.send_reports(END)
        assert res.queued == ["big@example.org"] and res.skipped[0].startswith("small@example.org: report of")
        assert res.error_report == []
        # Nobody takes it: a short error report goes to those whose limit was too small (section 7.2.2).
        rep.resolver = _resolver(cfg, "mailto:small@example.org!1k,mailto:tiny@example.org!1")
        await db.add(_ev(END + 100))
        cap.msgs.clear()
        (res,) = await rep.send_reports(END + 3600)
        assert res.queued == [] and res.error_report == ["small@example.org", "tiny@example.org"]
        assert [m.recipient for m in cap.msgs] == ["small@example.org", "tiny@example.org"]
        body = cap.msgs[0].data
        assert b"Report-Size: " in body and b"Report-Domain: example.org" in body and b"multipart" not in body
        assert res.cleaned
    finally:
        await db.close()


async def test_dmarcdb_send_skips_and_keeps(tmp_path: Path) -> None:
    _cfg, db, cap, rep = await _setup(tmp_path, "mailto:dmarc@example.org,mailto:reports@external.example")
    try:
        # Only optional evaluations (e.g. of incoming reports): no report, removed.
        await db.add(_ev(END - 100, optional=True))
        (res,) = await rep.send_reports(END)
        assert res.error == "only optional evaluations" and res.cleaned and cap.msgs == [] and await db.evaluations() == []

        # A temporary error verifying the external destination: sent to the others, evaluations kept for a retry.
        assert isinstance(rep.resolver, MockResolver)
        rep.resolver.fail["example.org._report._dmarc.external.example"] = "temporary"
        await db.add(_ev(END - 100))
        (res,) = await rep.send_reports(END)
        assert res.queued == ["dmarc@example.org"] and not res.cleaned
        assert len(await db.evaluations()) == 1

        # Suppressed addresses get nothing; no record any more: evaluations dropped.
        await db.suppress(SuppressAddress("dmarc@example.org", until=END + 86400))
        rep.resolver.fail.clear()
        cap.msgs.clear()
        (res,) = await rep.send_reports(END)
        assert res.skipped == ["dmarc@example.org: suppressed"] and res.queued == ["other@external.example"]
        await db.add(_ev(END - 100))
        rep.resolver = MockResolver()
        (res,) = await rep.send_reports(END)
        assert res.cleaned and res.error.startswith("no dmarc record") and await db.evaluations() == []

        # A temporary DNS error for the DMARC record keeps the evaluations.
        await db.add(_ev(END - 100))
        rep.resolver = MockResolver(fail={"_dmarc.example.org": "temporary"})
        (res,) = await rep.send_reports(END)
        assert not res.cleaned and len(await db.evaluations()) == 1
        # Evaluations older than 48 hours are pruned at the start of a run.
        assert await rep.send_reports(END + 49 * 3600) == []
        assert await db.evaluations() == []
    finally:
        await db.close()


class StopLoop(Exception):
    pass


async def test_dmarcdb_send_loop_waits_for_the_hour(tmp_path: Path) -> None:
    _cfg, db, cap, rep = await _setup(tmp_path, "mailto:dmarc@example.org")
    clock = [END - 600.0]
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] += s
        if len(sleeps) > 1:
            raise StopLoop

    rep.now = lambda: clock[0]
    rep.sleep = sleep
    try:
        await db.add(_ev(END - 300))
        with pytest.raises(StopLoop):
            await rep.run_forever()
        assert 600 + 30 <= sleeps[0] <= 600 + 90
        assert [m.recipient for m in cap.msgs] == ["dmarc@example.org"]
    finally:
        await db.close()


async def test_dmarcdb_send_report_round_trip_to_incoming(tmp_path: Path) -> None:
    """A report we send about a domain arrives at that domain's reporting address (here: our own domain) and is stored."""
    from mox.dmarcdb import incoming
    from mox.dmarcdb.reports import ReportsDB

    cfg, db, cap, rep = await _setup(tmp_path, "mailto:dmarc-reports@moxtest.example")
    assert isinstance(rep.resolver, MockResolver)
    rep.resolver.txt["_dmarc.moxtest.example"] = ["v=DMARC1; p=none; rua=mailto:dmarc-reports@moxtest.example"]
    rdb = await ReportsDB.open(tmp_path / "dmarcrpt.db")
    try:
        await db.add(_ev(END - 100, domain="moxtest.example"))
        (res,) = await rep.send_reports(END)
        assert res.queued == ["dmarc-reports@moxtest.example"], res
        out = await incoming.process_incoming_report(
            cfg, "dmarc-reports@moxtest.example", cap.msgs[0].data, dmarc_pass=True, from_domain=cfg.static.HostnameDomain, db=rdb, now=END + 60
        )
        assert out.stored
        (stored,) = await rdb.records()
        assert stored.domain == "moxtest.example" and stored.feedback == dmarcrpt.parse_message(cap.msgs[0].data)
        assert stored.feedback.records[0].row.count == 1
    finally:
        await db.close()
        await rdb.close()
