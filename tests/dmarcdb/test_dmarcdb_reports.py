"""Incoming DMARC and TLS reports: storage, queries, and the delivery-path processing."""

from __future__ import annotations

import base64
import datetime
import gzip
import json
from pathlib import Path

from reportconfig import report_config

from mox import dmarcrpt, tlsrpt, tlsrptdb
from mox.dmarcdb import incoming
from mox.dmarcdb.reports import ReportsDB, close_reports, open_reports
from mox.dns import parse_domain
from mox.tlsrptdb import incoming as tlsincoming

NOW = 1_800_000_000.0


def _feedback(domain: str = "localhost", end: int = int(NOW) - 3600) -> dmarcrpt.Feedback:
    return dmarcrpt.Feedback(
        dmarcrpt.ReportMetadata("reporter.example", "dmarc@reporter.example", "rid-1", dmarcrpt.DateRange(end - 86399, end)),
        dmarcrpt.PolicyPublished(domain, p="reject"),
        [
            dmarcrpt.ReportRecord(
                dmarcrpt.Row("192.0.2.1", 2, dmarcrpt.PolicyEvaluated("none", "pass", "pass")),
                dmarcrpt.Identifiers(domain),
                dmarcrpt.AuthResults([dmarcrpt.DKIMAuthResult(domain, "pass", "sel")], [dmarcrpt.SPFAuthResult(domain, "pass")]),
            )
        ],
    )


def _attach(ctype: str, body: bytes, boundary: str = "b") -> bytes:
    return (
        f'From: dmarc@reporter.example\r\nSubject: report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nreport\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(body).replace(b"\n", b"\r\n") + f"--{boundary}--\r\n".encode()


async def test_dmarcdb_reports_db(tmp_path: Path) -> None:
    db = await ReportsDB.open(tmp_path / "dmarcrpt.db")
    try:
        f = _feedback()
        rid = await db.add_report(f, parse_domain("reporter.example"), received=5.0)
        await db.add_report(_feedback("other.example", end=int(NOW) + 86400 * 3), "reporter.example")
        got = await db.record(rid)
        assert got is not None and got.feedback == f and got.domain == "localhost" and got.from_domain == "reporter.example"
        assert await db.record(999) is None
        assert len(await db.records()) == 2
        b = f.report_metadata.date_range.begin
        assert [r.id for r in await db.records_period_domain(b, b + 86400)] == [rid]
        assert [r.id for r in await db.records_period_domain(b - 86400, b + 86400 * 10, "localhost")] == [rid]
        assert await db.records_period_domain(b - 86400 * 2, b - 86400) == []
        assert await db.domains() == ["localhost", "other.example"]
    finally:
        await db.close()


async def test_dmarcdb_incoming_dmarc_report(tmp_path: Path) -> None:
    cfg = report_config(tmp_path)
    msg = _attach("application/gzip", gzip.compress(dmarcrpt.feedback_xml(_feedback())))
    from_dom = parse_domain("reporter.example")
    try:
        assert incoming.dmarc_report_domains(cfg, "DMARC-Reports+tag@localhost") == {"localhost"}
        assert incoming.dmarc_report_domains(cfg, "mox@localhost") == set()
        assert incoming.is_report_address(cfg, "tls-reports@localhost") and not incoming.is_report_address(cfg, "mox@localhost")

        out = await incoming.process_incoming_report(cfg, "dmarc-reports@localhost", msg, dmarc_pass=True, from_domain=from_dom, now=NOW)
        assert out.stored and out.header == ""
        db = await open_reports(cfg.data_dir)
        (rec,) = await db.records()
        assert rec.id == out.ids[0] and rec.feedback == dmarcrpt.parse_feedback(dmarcrpt.feedback_xml(_feedback()))

        cases = [
            ("mox@localhost", msg, True, "not a dmarc reporting address"),
            ("dmarc-reports@localhost", msg, False, "no DMARC pass"),
            ("dmarc-reports@localhost", _attach("application/gzip", b"junk"), True, "could not parse report"),
            ("dmarc-reports@localhost", b"Subject: hi\r\n\r\nhi\r\n", True, "could not parse report"),
            ("dmarc-reports@localhost", _attach("text/xml", dmarcrpt.feedback_xml(_feedback("foreign.example"))), True, "published policy domain unrecognized"),
            ("dmarc-reports@localhost", _attach("text/xml", dmarcrpt.feedback_xml(_feedback(end=int(NOW) + 3600))), True, "report has end date in the future"),
        ]
        for rcpt, m, dpass, err in cases:
            o = await incoming.process_incoming_report(cfg, rcpt, m, dmarc_pass=dpass, from_domain=from_dom, now=NOW)
            assert not o.stored and o.error == err and o.header == f"X-Mox-DMARCReport-Error: {err}\r\n"
        # A subdomain's report (its own record with rua pointing here) is accepted.
        o = await incoming.process_incoming_report(
            cfg, "dmarc-reports@localhost", _attach("text/xml", dmarcrpt.feedback_xml(_feedback("sub.localhost"))), dmarc_pass=True, from_domain=from_dom, now=NOW
        )
        assert o.stored
        assert len(await db.records()) == 2
    finally:
        await close_reports()


def _tls_report(*domains: str) -> tlsrpt.Report:
    t0 = datetime.datetime(2027, 1, 14, tzinfo=datetime.UTC)
    rep = tlsrpt.Report("Reporter", t0, t0 + datetime.timedelta(seconds=86399), "tls@reporter.example", "2027-01-14.x")
    for d in domains:
        r = tlsrpt.Result(tlsrpt.ResultPolicy.no_policy(d))
        r.add(10, 1, tlsrpt.FailureDetails(tlsrpt.ResultType.STARTTLS_NOT_SUPPORTED, 1, receiving_mx_hostname="mail.example.org"))
        rep.merge(r)
    return rep


def _tls_msg(rep: tlsrpt.Report) -> bytes:
    return _attach("application/tlsrpt+gzip", gzip.compress(rep.dumps().encode())).replace(b"multipart/mixed", b'multipart/report; report-type="tlsrpt"')


async def test_tlsrptdb_incoming_tls_reports(tmp_path: Path) -> None:
    cfg = report_config(tmp_path, hostname="mail.example.org")
    rep = tlsrpt.parse_message(_tls_msg(_tls_report("localhost", "foreign.example")))
    sig = [parse_domain("reporter.example")]
    from_dom = parse_domain("reporter.example")
    try:
        assert tlsincoming.tls_report_address(cfg, "tls-reports@localhost").domains == {"localhost"}
        assert tlsincoming.tls_report_address(cfg, "host-tlsrpt@mail.example.org").host
        assert not tlsincoming.tls_report_address(cfg, "mox@localhost")

        out = await tlsincoming.process_incoming_report(
            cfg, "tls-reports@localhost", _tls_msg(_tls_report("localhost", "foreign.example")), from_domain=from_dom,
            dkim_pass_domains=sig, mail_from="bounce@reporter.example", now=NOW,
        )  # fmt: skip
        assert out.stored and len(out.ids) == 1
        # A report about our host, to the host address; signed by the parent domain of the From domain.
        out2 = await tlsincoming.process_incoming_report(
            cfg, "host-tlsrpt@mail.example.org", _tls_msg(_tls_report("mail.example.org")), from_domain=parse_domain("mail.reporter.example"),
            dkim_pass_domains=sig, now=NOW,
        )  # fmt: skip
        assert out2.stored
        db = await tlsrptdb.open_data_dir(cfg.data_dir)
        recs = await db.reports()
        assert [(r.domain, r.host_report, r.mail_from) for r in recs] == [("localhost", False, "bounce@reporter.example"), ("mail.example.org", True, "")]
        assert recs[0].report == rep

        cases = [
            ("mox@localhost", _tls_msg(_tls_report("localhost")), sig, "not a tls reporting address"),
            ("tls-reports@localhost", _tls_msg(_tls_report("localhost")), [], "no acceptable DKIM signature"),
            ("tls-reports@localhost", _tls_msg(_tls_report("localhost")), [parse_domain("other.example")], "no acceptable DKIM signature"),
            ("tls-reports@localhost", _attach("application/tlsrpt+json", b"{}"), sig, "could not parse TLS report"),
            ("tls-reports@localhost", _tls_msg(_tls_report("foreign.example")), sig, "report for unknown domain"),
            # The host address only takes reports about the host; the domain address not about the host.
            ("host-tlsrpt@mail.example.org", _tls_msg(_tls_report("localhost")), sig, "report for unknown domain"),
            ("tls-reports@localhost", _tls_msg(_tls_report("mail.example.org")), sig, "report for unknown domain"),
        ]
        for rcpt, m, dk, err in cases:
            o = await tlsincoming.process_incoming_report(cfg, rcpt, m, from_domain=from_dom, dkim_pass_domains=dk, now=NOW)
            assert not o.stored and o.error == err, (rcpt, err, o)
            assert o.header == f"X-Mox-TLSReport-Error: {err}\r\n"
        assert len(await db.reports()) == 2

        # The single entry point of the delivery path dispatches by address.
        outs = await incoming.process_report_delivery(
            cfg, "tls-reports@localhost", _tls_msg(_tls_report("localhost")), from_domain=from_dom, dmarc_pass=True, dkim_pass_domains=sig, now=NOW
        )
        assert [o.stored for o in outs] == [True]
        assert await incoming.process_report_delivery(cfg, "mox@localhost", b"x", from_domain=None, dmarc_pass=False, dkim_pass_domains=[]) == []
        # Never raises, even on nonsense.
        outs = await incoming.process_report_delivery(cfg, "tls-reports@localhost", b"\xff" * 10, from_domain=from_dom, dmarc_pass=True, dkim_pass_domains=sig)
        assert not outs[0].stored
    finally:
        await tlsrptdb.close_all()


def test_tlsrpt_json_in_db_is_schema_shaped(tmp_path: Path) -> None:
    # The stored report JSON is the RFC shape (what the admin pages will show).
    doc = json.loads(_tls_report("localhost").dumps())
    assert set(doc) == {"organization-name", "date-range", "contact-info", "report-id", "policies"}
