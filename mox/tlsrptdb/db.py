"""The TLSRPT database: TLS results of outgoing deliveries, incoming TLS reports, suppressed addresses."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mox import tlsrpt
from mox.dns import Domain, DomainError, parse_domain
from mox.sqlitethread import PerDataDir, ThreadDB

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tls_result (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_domain TEXT NOT NULL,
    day_utc TEXT NOT NULL,
    recipient_domain TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    is_host INTEGER NOT NULL,
    send_report INTEGER NOT NULL,
    sent_to_recipient_domain INTEGER NOT NULL DEFAULT 0,
    recipient_domain_reporting_addresses TEXT NOT NULL DEFAULT '[]',
    sent_to_policy_domain INTEGER NOT NULL DEFAULT 0,
    results TEXT NOT NULL,
    UNIQUE (policy_domain, day_utc, recipient_domain)
);
CREATE INDEX IF NOT EXISTS tls_result_rcpt ON tls_result (recipient_domain, day_utc);
CREATE TABLE IF NOT EXISTS tls_report (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    from_domain TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    host_report INTEGER NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    received REAL NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tls_report_domain ON tls_report (domain, start);
CREATE INDEX IF NOT EXISTS tls_report_period ON tls_report (start, end);
CREATE TABLE IF NOT EXISTS suppress_address (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    inserted REAL NOT NULL,
    reporting_address TEXT NOT NULL UNIQUE,
    until REAL NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
"""


def day_utc(t: float) -> str:
    """The UTC day (yyyymmdd) of a Unix time: TLS reports cover whole UTC days (RFC 8460 section 4.1)."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y%m%d")


def domain_name(d: Domain | str) -> str:
    """The stored form of a domain: its Unicode name (A-labels decoded), lower case."""
    if isinstance(d, Domain):
        return d.name
    try:
        return parse_domain(d.rstrip(".")).name
    except DomainError:
        return d.lower()


@dataclass
class TLSResult:
    """The TLS results of delivery attempts on one UTC day, towards one policy domain, for one recipient domain.

    Attributes:
        policy_domain: the domain whose TLSRPT record gets the report: the
            recipient domain for MTA-STS and no-policy-found results
            (is_host False), the MX host for DANE results (is_host True).
        day_utc: yyyymmdd, see :func:`day_utc`.
        recipient_domain: the domain of the recipient address being delivered to.
        is_host: True for results about an MX host (DANE/TLSA, or
            no-policy-found for a host without TLSA records).
        send_report: whether these results are a reason to send a report.
            False for deliveries of TLS reports themselves (RFC 8460 section 3
            asks not to report on them; they are kept and counted, but do not
            by themselves cause a report).
        results: the per-policy counts (:class:`mox.tlsrpt.Result`).
        sent_to_recipient_domain, sent_to_policy_domain,
        recipient_domain_reporting_addresses: bookkeeping of the sender
            (:mod:`mox.tlsrptsend`), not set by callers.
    """

    policy_domain: str
    day_utc: str
    recipient_domain: str
    is_host: bool
    send_report: bool = True
    results: list[tlsrpt.Result] = field(default_factory=list)
    created: float = 0.0
    updated: float = 0.0
    sent_to_recipient_domain: bool = False
    recipient_domain_reporting_addresses: list[str] = field(default_factory=list)
    sent_to_policy_domain: bool = False
    id: int = 0


@dataclass
class ReportRecord:
    """An incoming TLS report, stored once per policy domain of ours it is about."""

    domain: str  # our policy domain (Unicode): a configured domain, or our host name
    from_domain: str  # DKIM-verified domain of the report message's From
    mail_from: str  # SMTP MAIL FROM of the report message
    host_report: bool  # about our MX host (DANE), not a recipient domain
    report: tlsrpt.Report
    received: float = 0.0
    id: int = 0


@dataclass
class SuppressAddress:
    """A reporting address that gets no TLS reports until a time."""

    reporting_address: str
    until: float
    comment: str = ""
    inserted: float = 0.0
    id: int = 0


def _results_json(results: Iterable[tlsrpt.Result]) -> str:
    return json.dumps([r.to_json() for r in results])


def _results_from(s: str) -> list[tlsrpt.Result]:
    return [tlsrpt.result_from_json(v) for v in json.loads(s)]


class TLSRPTDB(ThreadDB):
    """The database in ``<DataDir>/tlsrpt.db``. ``await TLSRPTDB.open(path)``; ``await db.close()``.

    SQLite in WAL mode; every statement runs on the database's own thread, off the event loop.
    """

    SCHEMA = _SCHEMA
    THREAD_NAME = "tlsrptdb"

    # TLS results of outgoing deliveries.

    async def add_results(self, results: Iterable[TLSResult], *, now: float | None = None) -> None:
        """Add or merge TLS results, in one transaction.

        A result is keyed by (policy domain, UTC day, recipient domain); for an
        existing key the per-policy counts and failure details are added up
        (:meth:`mox.tlsrpt.Report.merge`), ``is_host`` is overwritten and
        ``send_report`` becomes true if either is. Domains are stored by their
        Unicode name. The results passed in are not modified.
        """
        items = list(results)
        t = time.time() if now is None else now

        def run() -> None:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                for r in items:
                    pd, rd = domain_name(r.policy_domain), domain_name(r.recipient_domain)
                    row = c.execute(
                        "SELECT id, results, send_report FROM tls_result WHERE policy_domain = ? AND day_utc = ? AND recipient_domain = ?",
                        (pd, r.day_utc, rd),
                    ).fetchone()
                    merged = tlsrpt.Report("", datetime.datetime.now(datetime.UTC), datetime.datetime.now(datetime.UTC), "", "")
                    if row is not None:
                        merged.policies = _results_from(row[1])
                    merged.merge(*r.results)
                    if row is None:
                        c.execute(
                            "INSERT INTO tls_result (policy_domain, day_utc, recipient_domain, created, updated, is_host, send_report, results) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (pd, r.day_utc, rd, t, t, r.is_host, r.send_report, _results_json(merged.policies)),
                        )
                    else:
                        c.execute(
                            "UPDATE tls_result SET results = ?, is_host = ?, send_report = ?, updated = ? WHERE id = ?",
                            (_results_json(merged.policies), r.is_host, bool(row[2]) or r.send_report, t, row[0]),
                        )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._run(run)

    def _query_results(self, where: str, args: tuple[Any, ...], order: str) -> list[TLSResult]:
        out = []
        q = (
            "SELECT id, policy_domain, day_utc, recipient_domain, created, updated, is_host, send_report, "
            "sent_to_recipient_domain, recipient_domain_reporting_addresses, sent_to_policy_domain, results "
            f"FROM tls_result WHERE {where} ORDER BY {order}"
        )
        for row in self.conn.execute(q, args):
            out.append(
                TLSResult(
                    id=row[0], policy_domain=row[1], day_utc=row[2], recipient_domain=row[3], created=row[4], updated=row[5],
                    is_host=bool(row[6]), send_report=bool(row[7]), sent_to_recipient_domain=bool(row[8]),
                    recipient_domain_reporting_addresses=json.loads(row[9]), sent_to_policy_domain=bool(row[10]),
                    results=_results_from(row[11]),
                )
            )  # fmt: skip
        return out

    async def results(self) -> list[TLSResult]:
        """All stored results, by policy domain, day and recipient domain."""
        return await self._run(self._query_results, "1=1", (), "policy_domain, day_utc, recipient_domain")

    async def results_policy_domain(self, policy_domain: Domain | str, day: str | None = None) -> list[TLSResult]:
        """Results for a policy domain, optionally of one day, by day and recipient domain."""
        where = "policy_domain = ?"
        args: tuple[str, ...] = (domain_name(policy_domain),)
        if day is not None:
            where, args = where + " AND day_utc = ?", (*args, day)
        return await self._run(self._query_results, where, args, "day_utc, recipient_domain")

    async def results_recipient_domain(self, recipient_domain: Domain | str, day: str | None = None) -> list[TLSResult]:
        """Results for a recipient domain (all its policy domains), optionally of one day."""
        where = "recipient_domain = ?"
        args: tuple[str, ...] = (domain_name(recipient_domain),)
        if day is not None:
            where, args = where + " AND day_utc = ?", (*args, day)
        return await self._run(self._query_results, where, args, "day_utc, policy_domain")

    async def results_until_day(self, day: str) -> list[TLSResult]:
        """Results of this day and earlier (what a report run processes)."""
        return await self._run(self._query_results, "day_utc <= ?", (day,), "policy_domain, day_utc, recipient_domain")

    async def mark_sent(self, *, day: str, recipient_domain: str | None = None, policy_domain: str | None = None, reporting_addresses: list[str] | None = None) -> None:
        """Sender bookkeeping: mark a day's results as reported to their recipient
        domain (with its reporting addresses) or to their policy domain."""

        def run() -> None:
            if recipient_domain is not None:
                self.conn.execute(
                    "UPDATE tls_result SET sent_to_recipient_domain = 1, recipient_domain_reporting_addresses = ? WHERE day_utc = ? AND recipient_domain = ?",
                    (json.dumps(reporting_addresses or []), day, domain_name(recipient_domain)),
                )
            if policy_domain is not None:
                self.conn.execute(
                    "UPDATE tls_result SET sent_to_policy_domain = 1 WHERE day_utc = ? AND policy_domain = ?", (day, domain_name(policy_domain))
                )

        await self._run(run)

    async def remove_results_policy_domain(self, policy_domain: Domain | str, day: str) -> int:
        return await self._run(
            lambda: self.conn.execute(
                "DELETE FROM tls_result WHERE policy_domain = ? AND day_utc = ?", (domain_name(policy_domain), day)
            ).rowcount
        )

    async def remove_results_recipient_domain(self, recipient_domain: Domain | str, day: str) -> int:
        return await self._run(
            lambda: self.conn.execute(
                "DELETE FROM tls_result WHERE recipient_domain = ? AND day_utc = ?", (domain_name(recipient_domain), day)
            ).rowcount
        )

    async def prune_results(self, before_day: str) -> int:
        """Remove results of days before a day (stale ones kept by temporary errors); returns how many."""
        return await self._run(lambda: self.conn.execute("DELETE FROM tls_result WHERE day_utc < ?", (before_day,)).rowcount)

    # Incoming reports.

    async def add_report(
        self,
        report: tlsrpt.Report,
        *,
        policy_domains: Iterable[Domain | str],
        from_domain: Domain | str,
        mail_from: str,
        host_report: bool,
        received: float | None = None,
    ) -> list[int]:
        """Store an incoming report once for each of our policy domains it is about; returns the new ids."""
        t = time.time() if received is None else received
        doms = sorted({domain_name(d) for d in policy_domains})
        doc = report.dumps()
        args = [
            (d, domain_name(from_domain), mail_from, host_report, report.start.timestamp(), report.end.timestamp(), t, doc) for d in doms
        ]

        def run() -> list[int]:
            c = self.conn
            ids = []
            c.execute("BEGIN IMMEDIATE")
            try:
                for a in args:
                    (rid,) = c.execute(
                        "INSERT INTO tls_report (domain, from_domain, mail_from, host_report, start, end, received, report) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        a,
                    ).fetchone()
                    ids.append(int(rid))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return ids

        return await self._run(run)

    def _query_reports(self, where: str, args: tuple[Any, ...]) -> list[ReportRecord]:
        rows = self.conn.execute(
            f"SELECT id, domain, from_domain, mail_from, host_report, received, report FROM tls_report WHERE {where} ORDER BY start, id", args
        )
        return [
            ReportRecord(id=r[0], domain=r[1], from_domain=r[2], mail_from=r[3], host_report=bool(r[4]), received=r[5], report=tlsrpt.parse_report(r[6]))
            for r in rows
        ]

    async def reports(self) -> list[ReportRecord]:
        """All stored incoming reports, oldest period first."""
        return await self._run(self._query_reports, "1=1", ())

    async def report(self, report_id: int) -> ReportRecord | None:
        """One stored report by id, None if there is none."""
        got = await self._run(self._query_reports, "id = ?", (report_id,))
        return got[0] if got else None

    async def reports_period_domain(self, start: float, end: float, domain: Domain | str | None = None) -> list[ReportRecord]:
        """Reports whose period overlaps [start, end), for one policy domain or all (as upstream:
        the report starts within the period, or ends within it)."""
        where = "((start >= ? AND start < ?) OR (end > ? AND end <= ?))"
        args: tuple[Any, ...] = (start, end, start, end)
        if domain is not None:
            where += " AND domain = ?"
            args = (*args, domain_name(domain))
        return await self._run(self._query_reports, where, args)

    async def report_domains(self) -> list[str]:
        """Policy domains with stored reports."""
        return await self._run(lambda: [r[0] for r in self.conn.execute("SELECT DISTINCT domain FROM tls_report ORDER BY 1")])

    # Suppressed reporting addresses.

    async def suppress_add(self, sa: SuppressAddress) -> int:
        def run() -> int:
            (sid,) = self.conn.execute(
                "INSERT INTO suppress_address (inserted, reporting_address, until, comment) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (reporting_address) DO UPDATE SET until = excluded.until, comment = excluded.comment RETURNING id",
                (sa.inserted or time.time(), sa.reporting_address.lower(), sa.until, sa.comment),
            ).fetchone()
            return int(sid)

        sa.id = await self._run(run)
        return sa.id

    async def suppress_list(self) -> list[SuppressAddress]:
        rows = await self._run(
            lambda: self.conn.execute("SELECT id, inserted, reporting_address, until, comment FROM suppress_address ORDER BY id DESC").fetchall()
        )
        return [SuppressAddress(id=r[0], inserted=r[1], reporting_address=r[2], until=r[3], comment=r[4]) for r in rows]

    async def suppress_remove(self, sid: int) -> bool:
        return bool(await self._run(lambda: self.conn.execute("DELETE FROM suppress_address WHERE id = ?", (sid,)).rowcount))

    async def is_suppressed(self, address: str, now: float | None = None) -> bool:
        t = time.time() if now is None else now
        r = await self._run(
            lambda: self.conn.execute(
                "SELECT 1 FROM suppress_address WHERE reporting_address = ? AND until > ?", (address.lower(), t)
            ).fetchone()
        )
        return r is not None


_shared = PerDataDir(TLSRPTDB, "tlsrpt.db")


async def open_data_dir(data_dir: Path) -> TLSRPTDB:
    """The shared database of a data directory (``<data_dir>/tlsrpt.db``), opened on first use.

    For the SMTP server and the outgoing queue; :func:`close_all` at shutdown.
    """
    return await _shared.get(data_dir)


async def close_all() -> None:
    """Close the databases opened by :func:`open_data_dir`."""
    await _shared.close_all()
