"""The MTA-STS policy cache: SQLite, one row per recipient domain, and its refresher.

Caching is what makes MTA-STS resist downgrades (RFC 8461 section 10.1): once
a policy is cached, an attacker who blocks the policy fetch or removes the TXT
record cannot make us deliver without verified TLS until the policy expires.

Behaviour, as upstream mox's mtastsdb:

- get: a cached, unexpired policy is used; the TXT record is looked up on
  every use, and when its id changed the policy is fetched again. When that
  check or refetch fails, the cached policy stays in use (RFC 8461 section
  5.1). Without a cached policy, the record is looked up and the policy fetched
  and stored. A failed fetch is remembered for BACKOFF_SECONDS (RFC 8461
  section 3.3 suggests not retrying at once), during which the domain is
  treated as without policy.
- refresh_once (run periodically by refresh_loop): policies not updated for
  REFRESH_AFTER are checked again (RFC 8461 section 10.2 recommends
  refreshing before expiry), at most REFRESH_BATCH per round, most recently
  used first; policies unused for UNUSED_EXPIRY are removed; cached policies of
  mode "none" whose TXT record is gone are removed, other modes are kept until
  they expire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mox import mlog
from mox.dns import Domain, Resolver, parse_domain
from mox.mtasts import (
    RESULT_STS_POLICY_FETCH_ERROR,
    FetchOptions,
    Mode,
    MTASTSError,
    NoRecordError,
    ParseError,
    Policy,
    fetch_policy,
    lookup_record,
    parse_policy,
)
from mox.sqlitethread import ThreadDB

log = mlog.new("mtastsdb")

T = TypeVar("T")

# After a failed policy fetch, how long the domain is treated as without policy
# before trying again; upstream's 5 minutes.
BACKOFF_SECONDS = 5 * 60
# Policies not updated for this long are refreshed by the refresher (upstream: 12 hours).
REFRESH_AFTER = 12 * 3600
# Policies not used for this long are removed (upstream: 180 days).
UNUSED_EXPIRY = 180 * 24 * 3600
# How often refresh_loop runs a round; upstream refreshes daily.
REFRESH_INTERVAL = 24 * 3600
# Bounded work per refresh round: at most this many domains, this many at a time.
REFRESH_BATCH = 200
REFRESH_CONCURRENCY = 4
# Time limit for one domain's refresh.
REFRESH_DOMAIN_TIMEOUT = 60.0

POLICY_TYPE_STS = "sts"
POLICY_TYPE_NO_POLICY = "no-policy-found"

FetchFn = Callable[[Resolver, Domain, FetchOptions | None], Awaitable[tuple[Policy, str]]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy (
    domain TEXT PRIMARY KEY,
    inserted REAL NOT NULL,
    valid_end REAL NOT NULL,
    last_update REAL NOT NULL,
    last_use REAL NOT NULL,
    backoff INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    max_age INTEGER NOT NULL,
    policy_text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_last_use ON policy (last_use);
CREATE INDEX IF NOT EXISTS policy_last_update ON policy (last_update)
"""
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PolicyRecord:
    """A cached policy, or (backoff) a recent failure to fetch one.

    ``policy`` is None for a backoff row. Times are Unix seconds.
    """

    domain: str
    inserted: float
    valid_end: float
    last_update: float
    last_use: float
    backoff: bool
    record_id: str
    mode: str
    max_age: int
    policy_text: str

    @property
    def policy(self) -> Policy | None:
        if self.backoff or not self.policy_text:
            return None
        try:
            return parse_policy(self.policy_text)
        except ParseError:
            return None


_COLUMNS = "domain, inserted, valid_end, last_update, last_use, backoff, record_id, mode, max_age, policy_text"


def _row(r: tuple[Any, ...]) -> PolicyRecord:
    return PolicyRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8], r[9])


@dataclass(frozen=True)
class GetResult:
    """What delivery needs from :meth:`PolicyDB.get`.

    Attributes:
        policy: the policy to apply, None when the domain has none (or is in backoff).
        fresh: the policy was fetched now or its TXT id was confirmed now; False
            when a cached policy is used because the check failed.
        policy_type: for the TLS report: "sts", or "no-policy-found".
        policy_text: the policy as fetched, for the report's policy-string.
        record_id: the TXT record id the policy belongs to.
        result_type: RFC 8460 failure result type ("sts-policy-fetch-error",
            "sts-policy-invalid", "sts-webpki-invalid"), "" when none.
        reason: failure reason code, e.g. "policy-syntax-error+fallback-to-cached-policy".
        temporary_error: set when nothing could be decided (e.g. a DNS failure
            without a cached policy): delivery should be retried later.
    """

    policy: Policy | None
    fresh: bool
    policy_type: str
    policy_text: str = ""
    record_id: str = ""
    result_type: str = ""
    reason: str = ""
    temporary_error: str = ""

    @property
    def policy_strings(self) -> list[str]:
        """The policy's lines, for the TLS report's policy-string (RFC 8460 section 4.3)."""
        text = self.policy_text or (self.policy.text() if self.policy is not None else "")
        return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []

    @property
    def mx_hosts(self) -> list[str]:
        """The policy's mx patterns, for the TLS report's mx-host."""
        return [m.text() for m in self.policy.mx] if self.policy is not None else []


@dataclass
class _DomainLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class PolicyDB(ThreadDB):
    """The cache. ``db = await PolicyDB.open(path)``; ``await db.close()``.

    Args:
        path: the database file, e.g. data/mtasts.db.
        fetch: the policy fetcher (tests inject one); default mox.mtasts.fetch_policy.
        fetch_options: passed to fetch (CA context, port, timeout).
        now: clock, Unix seconds (tests drive it).
    """

    THREAD_NAME = "mtastsdb"

    def __init__(
        self,
        path: Path | str,
        *,
        fetch: FetchFn = fetch_policy,
        fetch_options: FetchOptions | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(path)
        self.fetch = fetch
        self.fetch_options = fetch_options
        self.now = now
        # Per-domain lock and number of users, so concurrent gets share one fetch.
        self._locks: dict[str, _DomainLock] = {}

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        fetch: FetchFn = fetch_policy,
        fetch_options: FetchOptions | None = None,
        now: Callable[[], float] = time.time,
    ) -> PolicyDB:
        db = cls(path, fetch=fetch, fetch_options=fetch_options, now=now)
        await db._run(db._open_sync)
        return db

    def _open_sync(self) -> None:
        c = self._connect()
        (version,) = c.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            c.close()
            raise RuntimeError(f"{self.path}: schema version {version} is newer than this mox ({SCHEMA_VERSION})")
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                c.execute(stmt)
        c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._conn = c

    # Rows.

    async def lookup(self, domain: Domain | str) -> PolicyRecord | None:
        """The unexpired row for domain (marking it used), or None."""
        name = _domain(domain).ascii
        now = self.now()

        def run() -> PolicyRecord | None:
            r = self.conn.execute(
                f"SELECT {_COLUMNS} FROM policy WHERE domain = ? AND valid_end > ?", (name, now)
            ).fetchone()
            if r is None:
                return None
            self.conn.execute("UPDATE policy SET last_use = ? WHERE domain = ?", (now, name))
            return _row(r)

        return await self._run(run)

    async def upsert(self, domain: Domain | str, record_id: str, policy: Policy | None, policy_text: str) -> None:
        """Store a fetched policy, or (policy None) a failed fetch to back off from."""
        name = _domain(domain).ascii
        now = self.now()
        if policy is None:
            mode, max_age, text, backoff = Mode.NONE.value, BACKOFF_SECONDS, "", 1
        else:
            mode, max_age, text, backoff = policy.mode.value, policy.cache_seconds, policy_text or policy.text(), 0

        def run() -> None:
            self.conn.execute(
                f"""INSERT INTO policy ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (domain) DO UPDATE SET valid_end = excluded.valid_end,
                    last_update = excluded.last_update, last_use = excluded.last_use,
                    backoff = excluded.backoff, record_id = excluded.record_id, mode = excluded.mode,
                    max_age = excluded.max_age, policy_text = excluded.policy_text""",
                (name, now, now + max_age, now, now, backoff, record_id, mode, max_age, text),
            )

        await self._run(run)

    async def remove(self, domain: Domain | str) -> bool:
        name = _domain(domain).ascii

        def run() -> bool:
            return self.conn.execute("DELETE FROM policy WHERE domain = ?", (name,)).rowcount > 0

        return await self._run(run)

    async def records(self) -> list[PolicyRecord]:
        """All rows, most recently used first."""

        def run() -> list[PolicyRecord]:
            rows = self.conn.execute(f"SELECT {_COLUMNS} FROM policy ORDER BY last_use DESC, domain").fetchall()
            return [_row(r) for r in rows]

        return await self._run(run)

    # Use during delivery.

    async def get(self, resolver: Resolver, domain: Domain | str) -> GetResult:
        """The MTA-STS policy to apply for a recipient domain (see the module doc).

        Concurrent calls for one domain are serialized, so one fetch serves them.
        """
        d = _domain(domain)
        entry = self._locks.get(d.ascii)
        if entry is None:
            entry = self._locks[d.ascii] = _DomainLock()
        entry.users += 1
        try:
            async with entry.lock:
                return await self._get(resolver, d)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[d.ascii]

    async def _get(self, resolver: Resolver, d: Domain) -> GetResult:
        cached = await self.lookup(d)
        if cached is not None and cached.backoff:
            # RFC 8461 section 3.3: a recent fetch failed; act as without policy.
            return GetResult(
                None,
                False,
                POLICY_TYPE_STS,
                record_id=cached.record_id,
                result_type=RESULT_STS_POLICY_FETCH_ERROR,
                reason="back-off-after-recent-fetch-error",
            )
        cached_policy = cached.policy if cached is not None else None
        if cached is None or cached_policy is None:
            return await self._get_new(resolver, d)

        ptype = POLICY_TYPE_NO_POLICY if cached_policy.mode == Mode.NONE else POLICY_TYPE_STS
        try:
            record, _ = await lookup_record(resolver, d)
        except MTASTSError as e:
            if isinstance(e, NoRecordError) and cached_policy.mode == Mode.NONE:
                # The domain phased out MTA-STS: forget the "none" policy.
                await self.remove(d)
                return GetResult(None, True, POLICY_TYPE_NO_POLICY)
            if isinstance(e, NoRecordError):
                log.error(
                    "no mta-sts txt record while a cached policy is valid; the domain removed mta-sts "
                    "without phasing it out with mode none, or this is a downgrade attempt; "
                    "continuing with cached policy",
                    domain=d.ascii,
                )
            else:
                log.errorx("checking mta-sts txt record, continuing with cached policy", e, domain=d.ascii)
            return self._cached_result(cached, cached_policy, e)
        if record.id == cached.record_id:
            return GetResult(cached_policy, True, ptype, cached.policy_text, cached.record_id)

        # A new policy is published.
        try:
            policy, text = await self.fetch(resolver, d, self.fetch_options)
        except MTASTSError as e:
            log.errorx("fetching updated mta-sts policy, continuing with cached policy", e, domain=d.ascii)
            return self._cached_result(cached, cached_policy, e)
        await self.upsert(d, record.id, policy, text)
        return _fresh_result(policy, text, record.id)

    def _cached_result(self, cached: PolicyRecord, policy: Policy, e: MTASTSError) -> GetResult:
        reason = e.reason
        if policy.mode != Mode.NONE:
            reason += "+fallback-to-cached-policy"
        ptype = POLICY_TYPE_NO_POLICY if policy.mode == Mode.NONE else POLICY_TYPE_STS
        return GetResult(
            policy,
            False,
            ptype,
            cached.policy_text,
            cached.record_id,
            e.result_type or RESULT_STS_POLICY_FETCH_ERROR,
            reason,
        )

    async def _get_new(self, resolver: Resolver, d: Domain) -> GetResult:
        try:
            record, _ = await lookup_record(resolver, d)
        except NoRecordError:
            return GetResult(None, True, POLICY_TYPE_NO_POLICY)
        except MTASTSError as e:
            if e.temporary:
                return GetResult(
                    None, False, POLICY_TYPE_STS, result_type=e.result_type, reason=e.reason, temporary_error=str(e)
                )
            # Multiple or malformed records: as if the domain has no MTA-STS
            # (RFC 8461 section 3.1), reported.
            return GetResult(None, True, POLICY_TYPE_STS, result_type=e.result_type, reason=e.reason)
        try:
            policy, text = await self.fetch(resolver, d, self.fetch_options)
        except MTASTSError as e:
            log.debugx("fetching mta-sts policy, backing off", e, domain=d.ascii)
            await self.upsert(d, record.id, None, "")
            return GetResult(
                None, True, POLICY_TYPE_STS, record_id=record.id, result_type=e.result_type, reason=e.reason
            )
        await self.upsert(d, record.id, policy, text)
        return _fresh_result(policy, text, record.id)

    # Refreshing.

    async def refresh_once(self, resolver: Resolver, *, batch: int = REFRESH_BATCH) -> int:
        """One refresh round (see the module doc); returns the number of domains checked."""
        now = self.now()

        def select() -> list[PolicyRecord]:
            self.conn.execute("DELETE FROM policy WHERE last_use < ?", (now - UNUSED_EXPIRY,))
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM policy WHERE last_update < ? ORDER BY last_use DESC LIMIT ?",
                (now - REFRESH_AFTER, batch),
            ).fetchall()
            return [_row(r) for r in rows]

        todo = await self._run(select)
        sem = asyncio.Semaphore(REFRESH_CONCURRENCY)

        async def one(pr: PolicyRecord) -> None:
            async with sem:
                try:
                    async with asyncio.timeout(REFRESH_DOMAIN_TIMEOUT):
                        await self.refresh_domain(resolver, pr)
                except Exception as e:
                    # One bad domain must not stop the others.
                    log.errorx("refreshing mta-sts policy", e, domain=pr.domain)

        await asyncio.gather(*(one(pr) for pr in todo))
        if todo:
            log.debug("refreshed mta-sts policies", count=len(todo))
        return len(todo)

    async def refresh_domain(self, resolver: Resolver, pr: PolicyRecord) -> None:
        """Check one cached policy against DNS and refetch it when its id changed."""
        d = _domain(pr.domain)
        try:
            record, _ = await lookup_record(resolver, d)
            err: MTASTSError | None = None
        except MTASTSError as e:
            record, err = None, e
        if record is not None and record.id == pr.record_id and not pr.backoff:
            now = self.now()

            def touch() -> None:
                self.conn.execute(
                    "UPDATE policy SET last_update = ?, valid_end = ? WHERE domain = ? AND last_update = ?",
                    (now, now + pr.max_age, pr.domain, pr.last_update),
                )

            await self._run(touch)
            return
        if err is not None and pr.mode == Mode.NONE:
            if isinstance(err, NoRecordError):
                # Mode none and the record is gone: the domain left MTA-STS.
                log.debug("removing mta-sts policy with mode none, txt record gone", domain=pr.domain)
                await self.remove(d)
            # Else a temporary problem for a policy that asks nothing; keep it.
            return
        if err is not None:
            log.errorx("looking up mta-sts record for refresh, trying the policy anyway", err, domain=pr.domain)
        try:
            policy, text = await self.fetch(resolver, d, self.fetch_options)
        except MTASTSError as e:
            log.errorx("refreshing mta-sts policy, keeping cached policy until it expires", e, domain=pr.domain)
            return
        now = self.now()
        record_id = record.id if record is not None else pr.record_id
        max_age = policy.cache_seconds

        def update() -> None:
            self.conn.execute(
                """UPDATE policy SET last_update = ?, valid_end = ?, backoff = 0, record_id = ?,
                    mode = ?, max_age = ?, policy_text = ? WHERE domain = ? AND last_update = ?""",
                (now, now + max_age, record_id, policy.mode.value, max_age, text, pr.domain, pr.last_update),
            )

        await self._run(update)

    async def refresh_loop(
        self, resolver: Resolver, *, interval: float = REFRESH_INTERVAL, stop: asyncio.Event | None = None
    ) -> None:
        """Run refresh_once now and then every interval seconds, until stop is set or cancelled."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.refresh_once(resolver)
            except Exception as e:
                log.errorx("periodic refresh of cached mta-sts policies", e)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass


def _fresh_result(policy: Policy, text: str, record_id: str) -> GetResult:
    ptype = POLICY_TYPE_NO_POLICY if policy.mode == Mode.NONE else POLICY_TYPE_STS
    return GetResult(policy, True, ptype, text, record_id)


def _domain(domain: Domain | str) -> Domain:
    if isinstance(domain, Domain):
        return domain
    return parse_domain(domain.rstrip(".").lower())

