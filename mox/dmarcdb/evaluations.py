"""Storage of DMARC evaluations and reporting-address suppressions."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from mox.sqlitethread import ThreadDB

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_domain TEXT NOT NULL,
    evaluated REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluation_domain ON evaluation (policy_domain, evaluated);
CREATE TABLE IF NOT EXISTS suppress_address (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    inserted REAL NOT NULL,
    reporting_address TEXT NOT NULL UNIQUE,
    until REAL NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
"""


# Reporting intervals that divide a day evenly, as upstream sends at most hourly, at least daily.
_DAY_DIVISORS = (1, 2, 3, 4, 6, 8, 12, 24)


def interval_hours(ri_seconds: int) -> int:
    """The reporting interval in hours for a record's ri= (RFC 7489 section 6.3), as upstream:
    the requested hours (rounded up) brought down to the largest divisor of 24 not above them,
    so a whole number of intervals covers a day; at least 1, at most 24."""
    hours = -(-ri_seconds // 3600)
    return next((d for d in reversed(_DAY_DIVISORS) if d <= hours), 1)


@dataclass
class Evaluation:
    """One DMARC evaluation of an incoming message, with what an aggregate report row needs.

    Field meanings follow RFC 7489 appendix C (the aggregate report schema).
    """

    policy_domain: str  # the From domain's organisational or exact domain whose record applied
    evaluated: float = field(default_factory=time.time)
    optional: bool = False  # only reported when other evaluations for the domain exist (upstream's rule)
    interval_hours: int = 24  # reporting interval requested by the record's ri, rounded as upstream
    addresses: list[str] = field(default_factory=list)  # rua URIs
    policy_published: dict[str, Any] = field(default_factory=dict)  # domain, adkim, aspf, p, sp, pct, fo
    source_ip: str = ""
    disposition: str = "none"  # none, quarantine, reject
    aligned_dkim_pass: bool = False
    aligned_spf_pass: bool = False
    override_reasons: list[dict[str, str]] = field(default_factory=list)  # {"type": ..., "comment": ...}
    envelope_to: str = ""
    envelope_from: str = ""
    header_from: str = ""
    dkim_results: list[dict[str, str]] = field(default_factory=list)  # domain, selector, result
    spf_results: list[dict[str, str]] = field(default_factory=list)  # domain, scope, result
    id: int = 0


@dataclass
class SuppressAddress:
    """A reporting address that gets no reports until a time (e.g. after bounces)."""

    reporting_address: str
    until: float
    comment: str = ""
    inserted: float = field(default_factory=time.time)
    id: int = 0


class EvaluationDB(ThreadDB):
    """The evaluations database. Use ``await EvaluationDB.open(path)``; ``await db.close()``."""

    SCHEMA = _SCHEMA
    THREAD_NAME = "dmarcdb"

    async def add(self, ev: Evaluation) -> int:
        """Store an evaluation; returns its id."""

        def run() -> int:
            data = asdict(ev)
            data.pop("id")
            (eid,) = self.conn.execute(
                "INSERT INTO evaluation (policy_domain, evaluated, data) VALUES (?, ?, ?) RETURNING id",
                (ev.policy_domain.lower(), ev.evaluated, json.dumps(data)),
            ).fetchone()
            return int(eid)

        ev.id = await self._run(run)
        return ev.id

    async def evaluations(self, policy_domain: str | None = None, *, before: float | None = None) -> list[Evaluation]:
        """Evaluations, oldest first, for one policy domain or all, optionally only those before a time."""

        def run() -> list[Evaluation]:
            q = "SELECT id, data FROM evaluation WHERE 1=1"
            args: list[Any] = []
            if policy_domain is not None:
                q += " AND policy_domain = ?"
                args.append(policy_domain.lower())
            if before is not None:
                q += " AND evaluated < ?"
                args.append(before)
            out = []
            for eid, data in self.conn.execute(q + " ORDER BY evaluated, id", args):
                ev = Evaluation(**json.loads(data))
                ev.id = eid
                out.append(ev)
            return out

        return await self._run(run)

    async def policy_domains(self) -> list[str]:
        return await self._run(lambda: [r[0] for r in self.conn.execute("SELECT DISTINCT policy_domain FROM evaluation ORDER BY 1")])

    async def remove(self, policy_domain: str, *, before: float) -> int:
        """Remove a domain's evaluations before a time (after they were reported); returns how many."""
        return await self._run(
            lambda: self.conn.execute(
                "DELETE FROM evaluation WHERE policy_domain = ? AND evaluated < ?", (policy_domain.lower(), before)
            ).rowcount
        )

    async def prune(self, older_than: float) -> int:
        """Remove every evaluation older than a time, reported or not (kept data is bounded)."""
        return await self._run(lambda: self.conn.execute("DELETE FROM evaluation WHERE evaluated < ?", (older_than,)).rowcount)

    async def suppress(self, sa: SuppressAddress) -> None:
        def run() -> None:
            self.conn.execute(
                "INSERT INTO suppress_address (inserted, reporting_address, until, comment) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (reporting_address) DO UPDATE SET until = excluded.until, comment = excluded.comment",
                (sa.inserted, sa.reporting_address.lower(), sa.until, sa.comment),
            )

        await self._run(run)

    async def is_suppressed(self, address: str, now: float | None = None) -> bool:
        t = time.time() if now is None else now
        r = await self._run(
            lambda: self.conn.execute(
                "SELECT 1 FROM suppress_address WHERE reporting_address = ? AND until > ?", (address.lower(), t)
            ).fetchone()
        )
        return r is not None
