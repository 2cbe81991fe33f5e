"""TLSRPT database: merging TLS results of outgoing deliveries, incoming reports, suppressions."""

from __future__ import annotations

import datetime
from pathlib import Path

from mox import tlsrpt, tlsrptdb
from mox.tlsrpt import FailureDetails, ResultPolicy, ResultType, Summary

DAY1 = datetime.datetime(2026, 3, 1, 10, tzinfo=datetime.UTC).timestamp()
DAY2 = DAY1 + 86400


def _sts(success: int, failure: int, *fds: FailureDetails) -> tlsrpt.Result:
    r = tlsrpt.Result(ResultPolicy.sts("example.com", ["version: STSv1", "mode: enforce"], ["mx.example.com"]))
    r.add(success, failure, *fds)
    return r


def _dane(success: int, failure: int, *fds: FailureDetails) -> tlsrpt.Result:
    r = tlsrpt.Result(ResultPolicy.tlsa("mx.example.com", ["3 1 1 bb", "3 1 1 aa"]))
    r.add(success, failure, *fds)
    return r


async def test_tlsrptdb_results_merge(tmp_path: Path) -> None:
    db = await tlsrptdb.TLSRPTDB.open(tmp_path / "tlsrpt.db")
    try:
        fd = FailureDetails(ResultType.CERTIFICATE_EXPIRED, 1, receiving_mx_hostname="mx.example.com", receiving_ip="192.0.2.1")
        sts1 = _sts(1, 0)
        await db.add_results(
            [
                tlsrptdb.new_result("Example.COM", "example.com", is_host=False, results=[sts1], now=DAY1),
                tlsrptdb.new_result("mx.example.com", "example.com", is_host=True, results=[_dane(0, 1, fd)], now=DAY1),
            ],
            now=DAY1,
        )
        await db.add_results(
            [
                tlsrptdb.new_result("example.com", "example.com", is_host=False, results=[_sts(2, 1, fd)], send_report=False, now=DAY1 + 60),
                tlsrptdb.new_result("mx.example.com", "example.com", is_host=True, results=[_dane(0, 2, fd, fd)], now=DAY1 + 60),
                tlsrptdb.new_result("example.com", "example.com", is_host=False, results=[_sts(5, 0)], now=DAY2),
                tlsrptdb.new_result("mx.example.com", "other.example", is_host=True, results=[_dane(1, 0)], send_report=False, now=DAY1),
            ]
        )
        assert sts1.summary == Summary(1, 0)  # inputs untouched
        got = await db.results()
        assert [(r.policy_domain, r.day_utc, r.recipient_domain, r.is_host, r.send_report) for r in got] == [
            ("example.com", "20260301", "example.com", False, True),  # send_report stays true once set
            ("example.com", "20260302", "example.com", False, True),
            ("mx.example.com", "20260301", "example.com", True, True),
            ("mx.example.com", "20260301", "other.example", True, False),
        ]
        (sts,) = got[0].results
        assert sts.summary == Summary(3, 1) and sts.failure_details[0].failed_session_count == 1
        (dane,) = got[2].results
        assert dane.policy.strings == ["3 1 1 aa", "3 1 1 bb"]
        assert dane.summary == Summary(0, 3) and [d.failed_session_count for d in dane.failure_details] == [3]

        assert [r.recipient_domain for r in await db.results_policy_domain("mx.example.com", "20260301")] == ["example.com", "other.example"]
        assert [r.policy_domain for r in await db.results_recipient_domain("example.com", "20260301")] == ["example.com", "mx.example.com"]
        assert len(await db.results_until_day("20260301")) == 3

        await db.mark_sent(day="20260301", recipient_domain="example.com", reporting_addresses=["mailto:tls@example.com"])
        await db.mark_sent(day="20260301", policy_domain="mx.example.com")
        got = await db.results_policy_domain("mx.example.com", "20260301")
        assert got[0].sent_to_recipient_domain and got[0].recipient_domain_reporting_addresses == ["mailto:tls@example.com"]
        assert all(r.sent_to_policy_domain for r in got) and not got[1].sent_to_recipient_domain

        assert await db.remove_results_policy_domain("mx.example.com", "20260301") == 2
        assert await db.remove_results_recipient_domain("example.com", "20260301") == 1
        assert await db.prune_results("20260303") == 1
        assert await db.results() == []
    finally:
        await db.close()


async def test_tlsrptdb_reports(tmp_path: Path) -> None:
    db = await tlsrptdb.TLSRPTDB.open(tmp_path / "tlsrpt.db")
    t0 = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    rep = tlsrpt.Report("Reporter", t0, t0 + datetime.timedelta(seconds=86399), "postmaster@reporter.example", "r1", [_sts(3, 1)])
    try:
        ids = await db.add_report(rep, policy_domains=["example.com", "EXAMPLE.com"], from_domain="reporter.example", mail_from="a@reporter.example", host_report=False, received=5.0)
        (ids2,) = [await db.add_report(rep, policy_domains=["mx.example.com"], from_domain="reporter.example", mail_from="", host_report=True)]
        assert len(ids) == 1 and len(ids2) == 1
        got = await db.report(ids[0])
        assert got is not None and got.report == rep and got.domain == "example.com" and got.received == 5.0 and not got.host_report
        assert await db.report(12345) is None
        assert len(await db.reports()) == 2
        start = t0.timestamp()
        assert [r.domain for r in await db.reports_period_domain(start, start + 86400)] == ["example.com", "mx.example.com"]
        assert [r.id for r in await db.reports_period_domain(start, start + 86400, "mx.example.com")] == ids2
        assert await db.reports_period_domain(start + 86400, start + 2 * 86400) == []
        assert await db.reports_period_domain(start - 86400, start) == []
        assert await db.report_domains() == ["example.com", "mx.example.com"]
    finally:
        await db.close()
    # Durable across reopen.
    db = await tlsrptdb.TLSRPTDB.open(tmp_path / "tlsrpt.db")
    try:
        assert len(await db.reports()) == 2
    finally:
        await db.close()


async def test_tlsrptdb_suppress(tmp_path: Path) -> None:
    db = await tlsrptdb.open_data_dir(tmp_path)
    try:
        assert await tlsrptdb.open_data_dir(tmp_path) is db
        sid = await db.suppress_add(tlsrptdb.SuppressAddress("TLS@example.com", until=200.0, comment="bounces"))
        assert await db.is_suppressed("tls@example.com", now=100.0)
        assert not await db.is_suppressed("tls@example.com", now=300.0)
        assert [s.reporting_address for s in await db.suppress_list()] == ["tls@example.com"]
        assert await db.suppress_remove(sid)
        assert not await db.is_suppressed("tls@example.com", now=100.0)
    finally:
        await tlsrptdb.close_all()
