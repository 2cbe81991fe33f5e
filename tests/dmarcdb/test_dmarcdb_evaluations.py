"""DMARC evaluations storage: add, list per domain and period, remove after reporting, prune, suppressions."""

from __future__ import annotations

from pathlib import Path

from mox.dmarcdb import Evaluation, EvaluationDB, SuppressAddress


async def test_evaluations_round_trip_and_removal(tmp_path: Path) -> None:
    db = await EvaluationDB.open(tmp_path / "dmarceval.db")
    try:
        ev = Evaluation(
            policy_domain="Example.org",
            evaluated=1000.0,
            addresses=["mailto:dmarc@example.org"],
            policy_published={"domain": "example.org", "p": "reject", "pct": 100},
            source_ip="198.51.100.1",
            disposition="reject",
            aligned_spf_pass=True,
            header_from="example.org",
            dkim_results=[{"domain": "example.org", "selector": "s1", "result": "fail"}],
            spf_results=[{"domain": "example.org", "scope": "mfrom", "result": "pass"}],
        )
        eid = await db.add(ev)
        await db.add(Evaluation(policy_domain="example.org", evaluated=2000.0))
        await db.add(Evaluation(policy_domain="other.example", evaluated=1500.0))
        got = await db.evaluations("example.org")
        assert [e.id for e in got] == [eid, eid + 1]
        assert got[0] == ev and got[0].policy_published["p"] == "reject"
        assert await db.policy_domains() == ["example.org", "other.example"]
        assert [e.evaluated for e in await db.evaluations(before=1600)] == [1000.0, 1500.0]
        assert await db.remove("example.org", before=1500) == 1
        assert await db.prune(1800) == 1
        assert [e.evaluated for e in await db.evaluations()] == [2000.0]
    finally:
        await db.close()
    # Durable: reopened, the data is there.
    db = await EvaluationDB.open(tmp_path / "dmarceval.db")
    try:
        assert len(await db.evaluations()) == 1
    finally:
        await db.close()


async def test_suppressed_reporting_addresses(tmp_path: Path) -> None:
    db = await EvaluationDB.open(tmp_path / "dmarceval.db")
    try:
        await db.suppress(SuppressAddress("DMARC@example.org", until=5000.0, comment="bounces"))
        assert await db.is_suppressed("dmarc@example.org", now=4000.0)
        assert not await db.is_suppressed("dmarc@example.org", now=6000.0)
        await db.suppress(SuppressAddress("dmarc@example.org", until=7000.0))
        assert await db.is_suppressed("dmarc@example.org", now=6000.0)
    finally:
        await db.close()


def test_interval_hours_divides_a_day() -> None:
    from mox.dmarcdb import interval_hours

    assert [interval_hours(x) for x in (0, 1, 3600, 3601, 5 * 3600, 7 * 3600, 13 * 3600, 86400, 7 * 86400)] == [1, 1, 1, 2, 4, 6, 12, 24, 24]
