"""Storage of incoming DMARC aggregate reports (``<DataDir>/dmarcrpt.db``), with the queries the admin pages need."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from mox import dmarcrpt
from mox.dns import Domain, DomainError, parse_domain
from mox.sqlitethread import PerDataDir, ThreadDB

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS domain_feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    from_domain TEXT NOT NULL,
    begin_time INTEGER NOT NULL,
    end_time INTEGER NOT NULL,
    received REAL NOT NULL,
    feedback TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS domain_feedback_domain ON domain_feedback (domain, begin_time);
CREATE INDEX IF NOT EXISTS domain_feedback_from ON domain_feedback (from_domain);
CREATE INDEX IF NOT EXISTS domain_feedback_period ON domain_feedback (begin_time, end_time);
"""


def _name(d: Domain | str) -> str:
    if isinstance(d, Domain):
        return d.name
    try:
        return parse_domain(d.rstrip(".")).name
    except DomainError:
        return d.lower()


@dataclass
class DomainFeedback:
    """A stored aggregate report.

    ``domain`` is the report's policy domain (where the DMARC record was
    found, Unicode), ``from_domain`` the domain of the report message's From.
    """

    domain: str
    from_domain: str
    feedback: dmarcrpt.Feedback
    received: float = 0.0
    id: int = 0


def _feedback_from_json(d: dict[str, Any]) -> dmarcrpt.Feedback:
    m = d["report_metadata"]
    return dmarcrpt.Feedback(
        report_metadata=dmarcrpt.ReportMetadata(**{**m, "date_range": dmarcrpt.DateRange(**m["date_range"])}),
        policy_published=dmarcrpt.PolicyPublished(**d["policy_published"]),
        records=[
            dmarcrpt.ReportRecord(
                row=dmarcrpt.Row(
                    source_ip=r["row"]["source_ip"],
                    count=r["row"]["count"],
                    policy_evaluated=dmarcrpt.PolicyEvaluated(
                        **{
                            **r["row"]["policy_evaluated"],
                            "reasons": [dmarcrpt.PolicyOverrideReason(**x) for x in r["row"]["policy_evaluated"]["reasons"]],
                        }
                    ),
                ),
                identifiers=dmarcrpt.Identifiers(**r["identifiers"]),
                auth_results=dmarcrpt.AuthResults(
                    dkim=[dmarcrpt.DKIMAuthResult(**x) for x in r["auth_results"]["dkim"]],
                    spf=[dmarcrpt.SPFAuthResult(**x) for x in r["auth_results"]["spf"]],
                ),
            )
            for r in d["records"]
        ],
        version=d["version"],
    )


class ReportsDB(ThreadDB):
    """Incoming aggregate reports. ``await ReportsDB.open(path)``; ``await db.close()``. SQLite (WAL) on its own thread."""

    SCHEMA = _SCHEMA
    THREAD_NAME = "dmarcrpt"

    async def add_report(self, feedback: dmarcrpt.Feedback, from_domain: Domain | str, *, received: float | None = None) -> int:
        """Store a report; returns its id. The policy domain is taken from the report."""
        t = time.time() if received is None else received
        dr = feedback.report_metadata.date_range
        args = (_name(feedback.policy_published.domain), _name(from_domain), dr.begin, dr.end, t, json.dumps(asdict(feedback)))

        def run() -> int:
            (rid,) = self.conn.execute(
                "INSERT INTO domain_feedback (domain, from_domain, begin_time, end_time, received, feedback) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                args,
            ).fetchone()
            return int(rid)

        return await self._run(run)

    def _query(self, where: str, args: tuple[Any, ...]) -> list[DomainFeedback]:
        rows = self.conn.execute(
            f"SELECT id, domain, from_domain, received, feedback FROM domain_feedback WHERE {where} ORDER BY begin_time, id", args
        )
        return [DomainFeedback(id=r[0], domain=r[1], from_domain=r[2], received=r[3], feedback=_feedback_from_json(json.loads(r[4]))) for r in rows]

    async def records(self) -> list[DomainFeedback]:
        """All stored reports, oldest period first."""
        return await self._run(self._query, "1=1", ())

    async def record(self, report_id: int) -> DomainFeedback | None:
        got = await self._run(self._query, "id = ?", (report_id,))
        return got[0] if got else None

    async def records_period_domain(self, start: float, end: float, domain: Domain | str | None = None) -> list[DomainFeedback]:
        """Reports whose period overlaps [start, end) (begins or ends within it, as upstream),
        for one policy domain or all."""
        where = "((begin_time >= ? AND begin_time < ?) OR (end_time > ? AND end_time <= ?))"
        args: tuple[Any, ...] = (start, end, start, end)
        if domain is not None:
            where += " AND domain = ?"
            args = (*args, _name(domain))
        return await self._run(self._query, where, args)

    async def domains(self) -> list[str]:
        """Policy domains with stored reports."""
        return await self._run(lambda: [r[0] for r in self.conn.execute("SELECT DISTINCT domain FROM domain_feedback ORDER BY 1")])


_shared = PerDataDir(ReportsDB, "dmarcrpt.db")


async def open_reports(data_dir: Path) -> ReportsDB:
    """The shared reports database of a data directory, opened on first use; :func:`close_reports` at shutdown."""
    return await _shared.get(data_dir)


async def close_reports() -> None:
    await _shared.close_all()
