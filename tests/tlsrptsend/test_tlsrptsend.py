"""Outgoing TLS reports: per recipient domain and per MX host, headers, schema, cleanup."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path

import jsonschema
import pytest
from aiohttp import web
from reportconfig import report_config

from mox import dkim, message, tlsrpt, tlsrptdb
from mox.config.load import Config
from mox.dmarcdb.reportmsg import OutgoingReport
from mox.dns import MockResolver, parse_domain
from mox.tlsrpt import FailureDetails, ResultPolicy, ResultType
from mox.tlsrptsend import TLSReporter, https_post

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "tlsrpt" / "data" / "tlsrpt-report.schema.json").read_text())
END = datetime.datetime(2026, 3, 3, tzinfo=datetime.UTC).timestamp()  # midnight after 2026-03-02
DAYTIME = END - 7200


class Captured:
    def __init__(self) -> None:
        self.msgs: list[OutgoingReport] = []
        self.posts: list[tuple[str, bytes]] = []

    async def __call__(self, r: OutgoingReport) -> None:
        self.msgs.append(r)

    async def post(self, url: str, body: bytes) -> None:
        self.posts.append((url, body))


def _resolver(cfg: Config, mx_rua: str = "mailto:tls@mx-operator.example") -> MockResolver:
    sel = cfg.dynamic.Domains["localhost"].DKIM.Selectors["localserve"]
    return MockResolver(
        txt={
            "_smtp._tls.example.com": ["v=TLSRPTv1; rua=mailto:tls@example.com,https://reports.example.com/tlsrpt"],
            "_smtp._tls.mx.example.com": [f"v=TLSRPTv1; rua={mx_rua}"],
            "localserve._domainkey.moxtest.example": [dkim.txt_record(sel.Key)],
        }
    )


async def _setup(tmp_path: Path) -> tuple[Config, tlsrptdb.TLSRPTDB, Captured, TLSReporter]:
    cfg = report_config(tmp_path, hostname="mail.moxtest.example")
    db = await tlsrptdb.TLSRPTDB.open(tmp_path / "tlsrpt.db")
    cap = Captured()
    rep = TLSReporter(lambda: cfg, db, resolver=_resolver(cfg), submit=cap, post=cap.post, now=lambda: END + 300)
    return cfg, db, cap, rep


def _delivery(success: bool, *, send_report: bool = True, t: float = DAYTIME) -> list[tlsrptdb.TLSResult]:
    """What the queue records for one delivery to example.com over mx.example.com: an MTA-STS
    result for the recipient domain, a DANE result for the MX host."""
    sts = tlsrpt.Result(ResultPolicy.sts("example.com", ["version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"], ["mx.example.com"]))
    dane = tlsrpt.Result(ResultPolicy.tlsa("mx.example.com", ["3 1 1 abcd"]))
    if success:
        sts.add(1, 0)
        dane.add(1, 0)
    else:
        fd = FailureDetails(ResultType.TLSA_INVALID, 1, receiving_mx_hostname="mx.example.com", receiving_ip="192.0.2.25")
        sts.add(0, 1, FailureDetails(ResultType.VALIDATION_FAILURE, 1, receiving_mx_hostname="mx.example.com", failure_reason_code="dane-failure"))
        dane.add(0, 1, fd)
    return [
        tlsrptdb.new_result("example.com", "example.com", is_host=False, results=[sts], send_report=send_report, now=t),
        tlsrptdb.new_result("mx.example.com", "example.com", is_host=True, results=[dane], send_report=send_report, now=t),
    ]


def _report_of(m: OutgoingReport) -> tuple[dict[str, str], tlsrpt.Report, dict[str, object]]:
    root = message.parse(m.data)
    hdrs = {k.lower(): v.decode().strip() for k, v in root.headers(m.data)}
    (att,) = [p for p in root.parts if p.content_type == "APPLICATION/TLSRPT+GZIP"]
    doc = json.loads(gzip.decompress(att.decoded_body(m.data)))
    hdrs["filename"] = att.filename() or ""
    return hdrs, tlsrpt.parse_message(m.data), doc


async def test_tlsrptsend_recipient_domain_and_mx_host_reports(tmp_path: Path) -> None:
    _cfg, db, cap, rep = await _setup(tmp_path)
    try:
        await db.add_results(_delivery(False))
        await db.add_results(_delivery(True))
        await db.add_results(_delivery(False, t=END + 60))  # the next day: not in this report
        results = await rep.send_reports(END + 300)
        assert [(r.policy_domain, r.is_recipient_domain, r.queued) for r in results] == [
            ("example.com", True, ["tls@example.com"]),
            ("mx.example.com", False, ["tls@mx-operator.example"]),
        ]
        assert results[0].posted == ["https://reports.example.com/tlsrpt"] and len(cap.posts) == 1
        m_rcpt, m_host = cap.msgs
        assert m_rcpt.is_tls_report and m_rcpt.requiretls is False and m_rcpt.max_attempts == 5 and m_rcpt.sender == "postmaster@mail.moxtest.example"

        # The report to the recipient domain: MTA-STS and DANE results of its delivery.
        hdrs, r1, doc = _report_of(m_rcpt)
        jsonschema.validate(doc, SCHEMA)
        assert hdrs["tls-report-domain"] == "example.com" and hdrs["tls-report-submitter"] == "moxtest.example"
        assert hdrs["tls-required"] == "No"
        assert hdrs["content-type"].startswith('multipart/report; report-type="tlsrpt"')
        assert hdrs["subject"] == "Report Domain: example.com Submitter: moxtest.example Report-ID: <20260302.example.com@moxtest.example>"
        assert hdrs["filename"] == f"moxtest.example!example.com!{int(END) - 86400}!{int(END) - 1}.json.gz"
        assert r1.report_id == "20260302.example.com@moxtest.example" and r1.contact_info == "postmaster@moxtest.example"
        assert r1.start == datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)
        assert r1.end == datetime.datetime(2026, 3, 2, 23, 59, 59, tzinfo=datetime.UTC)
        assert [(p.policy.type, p.policy.domain, p.summary.total_successful_session_count, p.summary.total_failure_session_count) for p in r1.policies] == [
            ("sts", "example.com", 1, 1),
            ("tlsa", "mx.example.com", 1, 1),
        ]
        assert gzip.decompress(cap.posts[0][1]) == json.dumps(doc).encode()
        vr = await dkim.verify(m_rcpt.data, rep.resolver, now=END + 300)
        assert [str(r.status) for r in vr] == ["pass"]
        sig = vr[0].sig
        assert sig is not None and {"tls-report-domain", "tls-report-submitter"} <= {h.lower() for h in sig.signed_headers}

        # The report to the MX host: only the DANE results, about the recipient domain, host in mx-host.
        hdrs, r2, doc = _report_of(m_host)
        jsonschema.validate(doc, SCHEMA)
        assert hdrs["tls-report-domain"] == "mx.example.com"
        assert [(p.policy.type, p.policy.domain, p.policy.mx_hosts, p.summary.total_failure_session_count) for p in r2.policies] == [
            ("tlsa", "example.com", ["mx.example.com"], 1)
        ]
        assert r1.report_id != r2.report_id

        # Both arrive and are stored at their destinations (the MX host's operator runs mox too).
        from mox.tlsrptdb import incoming

        mxcfg = report_config(tmp_path / "mx", hostname="mx.example.com")
        sig_doms = [x.sig.domain for x in vr if x.sig is not None]
        from_dom = parse_domain("mail.moxtest.example")
        got = await incoming.process_incoming_report(mxcfg, "host-tlsrpt@mx.example.com", m_host.data, from_domain=from_dom, dkim_pass_domains=sig_doms, db=db)
        assert got.stored, got
        (stored,) = await db.reports()
        assert stored.domain == "mx.example.com" and stored.host_report and stored.report == r2

        # Reported results are removed; the next day's stay.
        assert [(r.policy_domain, r.day_utc) for r in await db.results()] == [("example.com", "20260303"), ("mx.example.com", "20260303")]
    finally:
        await db.close()


async def test_tlsrptsend_no_failures_and_report_deliveries(tmp_path: Path) -> None:
    cfg, db, cap, rep = await _setup(tmp_path)
    try:
        await db.add_results(_delivery(True))
        results = await rep.send_reports(END)
        assert [r.error for r in results] == ["no failures", "no failures"] and cap.msgs == []
        assert await db.results() == []
        # With OutgoingTLSReportsForAllSuccess, successes are reported too.
        cfg.static.OutgoingTLSReportsForAllSuccess = True
        await db.add_results(_delivery(True))
        results = await rep.send_reports(END)
        assert [len(r.queued) for r in results] == [1, 1]
        # Results of delivering TLS reports never cause a report.
        await db.add_results(_delivery(False, send_report=False))
        cap.msgs.clear()
        assert await rep.send_reports(END) == [] and cap.msgs == [] and await db.results() == []
    finally:
        await db.close()


async def test_tlsrptsend_same_addresses_and_errors(tmp_path: Path) -> None:
    cfg, db, cap, rep = await _setup(tmp_path)
    try:
        # The MX host's record has the recipient domain's addresses: it already got the results.
        rep.resolver = _resolver(cfg, "mailto:tls@example.com,https://reports.example.com/tlsrpt")
        await db.add_results(_delivery(False))
        results = await rep.send_reports(END)
        assert [r.queued for r in results] == [["tls@example.com"], []]
        assert results[1].error == "all results already reported to the recipient domains"
        assert await db.results() == []

        # Temporary DNS failure: results kept for a later run; no record: dropped.
        assert isinstance(rep.resolver, MockResolver)
        rep.resolver.fail["_smtp._tls.example.com"] = "temporary"
        del rep.resolver.txt["_smtp._tls.mx.example.com"]
        await db.add_results(_delivery(False))
        results = await rep.send_reports(END)
        assert [r.error.split(":")[0] for r in results] == ["looking up tlsrpt record at _smtp._tls.example.com", "no tlsrpt record"]
        assert [r.policy_domain for r in await db.results()] == ["example.com"]

        # A suppressed address gets nothing.
        rep.resolver.fail.clear()
        await db.suppress_add(tlsrptdb.SuppressAddress("tls@example.com", until=END + 86400))
        cap.msgs.clear()
        (res,) = await rep.send_reports(END)
        assert res.skipped == ["tls@example.com: suppressed"] and cap.msgs == [] and res.posted

        # Without DKIM keys for the host name's domain no report is sent.
        await db.add_results(_delivery(False))
        cfg.dynamic.Domains["moxtest.example"].DKIM.Sign = []
        results = await rep.send_reports(END)
        assert all(r.error.startswith("report cannot be dkim-signed") for r in results)
    finally:
        await db.close()


async def test_tlsrptsend_loop_and_prune(tmp_path: Path) -> None:
    _cfg, db, cap, rep = await _setup(tmp_path)
    clock = [END - 3600.0]
    sleeps: list[float] = []

    class Stop(Exception):
        pass

    async def sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] += s
        if s > 1000:
            raise Stop

    rep.now = lambda: clock[0]
    rep.sleep = sleep
    try:
        await db.add_results(_delivery(False, t=END - 5 * 86400))  # stale
        await db.add_results(_delivery(False, t=END - 3600 - 86400))  # yesterday's, left over
        with pytest.raises(Stop):
            await rep.run_forever()
        # The first run at start sends leftovers of the previous day, then it waits until after midnight.
        assert [m.recipient for m in cap.msgs] == ["tls@example.com", "tls@mx-operator.example"]
        assert sleeps[0] == 300  # reports spread out, at most 5 minutes apart
        assert 3600 - 300 + 240 <= sleeps[-1] <= 3600 - 300 + 360
        assert await db.results() == []
    finally:
        await db.close()


async def test_tlsrptsend_https_post() -> None:
    got: list[tuple[str, bytes]] = []

    async def handler(req: web.Request) -> web.Response:
        got.append((req.headers["Content-Type"], await req.read()))
        return web.Response(status=201 if req.path == "/ok" else 500)

    app = web.Application()
    app.router.add_post("/ok", handler)
    app.router.add_post("/fail", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await https_post(f"http://127.0.0.1:{port}/ok", b"\x1f\x8bdata")
        assert got == [("application/tlsrpt+gzip", b"\x1f\x8bdata")]
        with pytest.raises(RuntimeError, match="http status 500"):
            await https_post(f"http://127.0.0.1:{port}/fail", b"x")
    finally:
        await runner.cleanup()
