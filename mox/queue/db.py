"""The queue's storage: SQLite ``data/queue.db`` (WAL) plus message files under ``data/queue/``.

Synchronous; :class:`mox.queue.Queue` runs every method on the database's
own thread, never on the event loop. One row per recipient in ``msg``; the
rows of one submission share ``base_id`` and one file,
``queue/<base_id / 4096 in hex>/<base_id>``. Durability as in the store: the
file is written and fsynced in ``queue/tmp/``, renamed into place inside the
transaction that inserts its rows, its directory fsynced, then the
transaction commits; a crash before commit leaves a file without rows, which
is removed at the next open. A file is removed once no ``msg`` row refers to
its base id.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from mox.config.sconf import parse_duration
from mox.queue.model import (
    RESULT_DELIVERING,
    Filter,
    HoldRule,
    MsgResult,
    QueuedMsg,
    QueueError,
    RetiredFilter,
    RetiredMsg,
    RetiredSort,
    Sort,
    Suppressed,
    Suppression,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE msg (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    base_id INTEGER NOT NULL,
    queued REAL NOT NULL,
    hold INTEGER NOT NULL DEFAULT 0,
    sender_account TEXT NOT NULL,
    sender_localpart TEXT NOT NULL,
    sender_domain TEXT NOT NULL,
    recipient_localpart TEXT NOT NULL,
    recipient_domain TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_attempt REAL,
    results TEXT NOT NULL DEFAULT '[]',
    has8bit INTEGER NOT NULL,
    smtputf8 INTEGER NOT NULL,
    is_dmarc_report INTEGER NOT NULL,
    is_tls_report INTEGER NOT NULL,
    size INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    msg_prefix BLOB NOT NULL,
    transport TEXT NOT NULL,
    requiretls INTEGER,
    future_release_request TEXT NOT NULL,
    dsn_envid TEXT NOT NULL,
    dsn_ret TEXT NOT NULL,
    dsn_notify TEXT,
    dsn_orcpt_type TEXT NOT NULL,
    dsn_orcpt TEXT NOT NULL
);
CREATE INDEX msg_next ON msg (hold, next_attempt);
CREATE INDEX msg_base ON msg (base_id);
CREATE TABLE retired (
    id INTEGER PRIMARY KEY,
    base_id INTEGER NOT NULL,
    queued REAL NOT NULL,
    sender_account TEXT NOT NULL,
    sender_localpart TEXT NOT NULL,
    sender_domain TEXT NOT NULL,
    recipient_localpart TEXT NOT NULL,
    recipient_domain TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    last_attempt REAL,
    results TEXT NOT NULL,
    has8bit INTEGER NOT NULL,
    smtputf8 INTEGER NOT NULL,
    is_dmarc_report INTEGER NOT NULL,
    is_tls_report INTEGER NOT NULL,
    size INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    transport TEXT NOT NULL,
    requiretls INTEGER,
    future_release_request TEXT NOT NULL,
    success INTEGER NOT NULL,
    last_activity REAL NOT NULL,
    keep_until REAL NOT NULL,
    recipient_address TEXT NOT NULL
);
CREATE INDEX retired_keep ON retired (keep_until);
CREATE INDEX retired_rcpt ON retired (recipient_address, last_activity);
CREATE TABLE holdrule (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    sender_domain TEXT NOT NULL,
    recipient_domain TEXT NOT NULL
);
CREATE TABLE suppression (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    account TEXT NOT NULL,
    base_address TEXT NOT NULL,
    original_address TEXT NOT NULL,
    manual INTEGER NOT NULL,
    reason TEXT NOT NULL,
    UNIQUE (account, base_address)
);
"""

_MSG_COLUMNS = (
    "id, base_id, queued, hold, sender_account, sender_localpart, sender_domain, recipient_localpart, "
    "recipient_domain, attempts, max_attempts, next_attempt, last_attempt, results, has8bit, smtputf8, "
    "is_dmarc_report, is_tls_report, size, message_id, subject, msg_prefix, transport, requiretls, "
    "future_release_request, dsn_envid, dsn_ret, dsn_notify, dsn_orcpt_type, dsn_orcpt"
)

_RETIRED_COLUMNS = (
    "id, base_id, queued, sender_account, sender_localpart, sender_domain, recipient_localpart, recipient_domain, "
    "attempts, max_attempts, last_attempt, results, has8bit, smtputf8, is_dmarc_report, is_tls_report, size, "
    "message_id, subject, transport, requiretls, future_release_request, success, last_activity, keep_until"
)


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _results(s: str) -> list[MsgResult]:
    return [MsgResult.from_json(d) for d in json.loads(s)]


def _results_json(results: list[MsgResult]) -> str:
    return json.dumps([r.to_json() for r in results], separators=(",", ":"))


def _msg_from_row(r: tuple[Any, ...]) -> QueuedMsg:
    return QueuedMsg(
        id=r[0], base_id=r[1], queued=r[2], hold=bool(r[3]), sender_account=r[4], sender_localpart=r[5],
        sender_domain=r[6], recipient_localpart=r[7], recipient_domain=r[8], attempts=r[9], max_attempts=r[10],
        next_attempt=r[11], last_attempt=r[12], results=_results(r[13]), has8bit=bool(r[14]), smtputf8=bool(r[15]),
        is_dmarc_report=bool(r[16]), is_tls_report=bool(r[17]), size=r[18], message_id=r[19], subject=r[20],
        msg_prefix=bytes(r[21]), transport=r[22], requiretls=_opt_bool(r[23]), future_release_request=r[24],
        dsn_envid=r[25], dsn_ret=r[26], dsn_notify=None if r[27] is None else tuple(x for x in r[27].split(",") if x),
        dsn_orcpt_type=r[28], dsn_orcpt=r[29],
    )  # fmt: skip


def _retired_from_row(r: tuple[Any, ...]) -> RetiredMsg:
    return RetiredMsg(
        id=r[0], base_id=r[1], queued=r[2], sender_account=r[3], sender_localpart=r[4], sender_domain=r[5],
        recipient_localpart=r[6], recipient_domain=r[7], attempts=r[8], max_attempts=r[9], last_attempt=r[10],
        results=_results(r[11]), has8bit=bool(r[12]), smtputf8=bool(r[13]), is_dmarc_report=bool(r[14]),
        is_tls_report=bool(r[15]), size=r[16], message_id=r[17], subject=r[18], transport=r[19],
        requiretls=_opt_bool(r[20]), future_release_request=r[21], success=bool(r[22]), last_activity=r[23],
        keep_until=r[24],
    )  # fmt: skip


def _relative_time(name: str, s: str, now: float) -> tuple[str, float]:
    """Parse "<duration"/">duration" (also "now") into an SQL operator and a time (upstream's filter syntax)."""
    if s.startswith("<"):
        op = "<"
    elif s.startswith(">"):
        op = ">"
    else:
        raise QueueError(f'{name} {s!r}: must start with "<" for before or ">" for after a duration')
    rest = s[1:].strip()
    if rest == "now":
        return op, now
    try:
        d = parse_duration(rest)
    except ValueError as e:
        raise QueueError(f"{name}: {e}") from None
    return op, now + d.seconds


def base_address(localpart: str, domain: str) -> str:
    """The address without catchall suffix, dots or case, as upstream's suppression list compares them."""
    lp = localpart.split("+", 1)[0].split("-", 1)[0].replace(".", "").lower()
    return f"{lp}@{domain}"


class QueueDB:
    """The queue database and message files. Every method runs on one thread (see module doc)."""

    def __init__(self, data_dir: Path, now: Callable[[], float] = time.time) -> None:
        self.data_dir = data_dir
        self.dir = data_dir / "queue"
        self.tmp = self.dir / "tmp"
        self.path = data_dir / "queue.db"
        self.now = now
        self._conn: sqlite3.Connection | None = None
        self._made_dirs: set[Path] = set()
        self._dirty_dirs: set[Path] = set()
        self._renamed: list[tuple[Path, Path]] = []
        self._tmp_seq = 0

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise QueueError("queue database not open")
        return self._conn

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def message_path(self, base_id: int) -> Path:
        return self.dir / format(base_id >> 12, "x") / str(base_id)

    # Opening and closing

    def open(self) -> dict[str, int]:
        """Open (creating) the database; remove orphan files; reschedule attempts a crash interrupted."""
        self.dir.mkdir(mode=0o770, parents=True, exist_ok=True)
        self.tmp.mkdir(mode=0o770, exist_ok=True)
        for p in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                p.unlink()
        c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        self._conn = c
        have = c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if have is None:
            with self.tx():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
        else:
            (version,) = c.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if int(version) > SCHEMA_VERSION:
                raise QueueError(f"queue database schema {version} is newer than this moxmail ({SCHEMA_VERSION})")
        orphans = self._remove_orphans()
        interrupted = self._reschedule_interrupted()
        return {"orphans": orphans, "interrupted": interrupted}

    def _remove_orphans(self) -> int:
        bases = {r[0] for r in self.conn.execute("SELECT DISTINCT base_id FROM msg")}
        n = 0
        for sub in self.dir.iterdir():
            if sub == self.tmp or not sub.is_dir():
                continue
            for f in sub.iterdir():
                try:
                    bid = int(f.name)
                except ValueError:
                    continue
                if bid not in bases:
                    with contextlib.suppress(OSError):
                        f.unlink()
                        n += 1
        return n

    def _reschedule_interrupted(self) -> int:
        """Attempts still "delivering..." were cut off by a crash: try again now.

        The remote may have accepted such a message before the crash (its 250
        arrived but our commit did not): then it is delivered twice. That is
        the duplicate window; an accepted message is never lost.
        """
        now = self.now()
        rows = self.conn.execute(
            f"SELECT {_MSG_COLUMNS} FROM msg WHERE results LIKE ?", (f'%"Error":"{RESULT_DELIVERING}"}}]',)
        ).fetchall()
        n = 0
        with self.tx() as c:
            for r in rows:
                m = _msg_from_row(r)
                last = m.last_result()
                if last is None or last.error != RESULT_DELIVERING:
                    continue
                last.error = "delivery attempt interrupted by a restart of mox"
                last.duration = max(0.0, now - last.start)
                c.execute("UPDATE msg SET results = ?, next_attempt = ? WHERE id = ?", (_results_json(m.results), now, m.id))
                n += 1
        return n

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # Adding

    def write_tmp(self, data: bytes) -> Path:
        """Write data to a new file in tmp/ and fsync it (before any row refers to it)."""
        self._tmp_seq += 1
        p = self.tmp / f"{os.getpid()}-{time.monotonic_ns()}-{self._tmp_seq}"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        return p

    def add(self, tmp_path: Path, rows: list[dict[str, Any]], check_suppression: bool) -> list[int]:
        """Insert rows (one per recipient, one submission) and move the file into place, atomically.

        Rows matching a hold rule are put on hold. With check_suppression, a
        recipient on the sender account's suppression list refuses the whole
        submission (Suppressed). Returns the ids.
        """
        return self.run_group([lambda c: self.add_tx(c, tmp_path, rows, check_suppression)])[0].result()

    def add_tx(self, c: sqlite3.Connection, tmp_path: Path, rows: list[dict[str, Any]], check_suppression: bool) -> list[int]:
        """The part of add inside a transaction (see run_group): rows inserted, file renamed into place.

        If the transaction does not commit, the caller removes the file again (see add_cleanup).
        """
        if not rows:
            raise QueueError("must queue at least one recipient")
        if check_suppression:
            suppressed = []
            for r in rows:
                if r["sender_account"] and self._suppressed(c, r["sender_account"], r["recipient_localpart"], r["recipient_domain"]):
                    suppressed.append(f"{r['recipient_localpart']}@{r['recipient_domain']}")
            if suppressed:
                raise Suppressed(suppressed)
        rules = self._holdrules(c)
        ids: list[int] = []
        cols = list(rows[0].keys())
        sql = f"INSERT INTO msg (base_id, hold, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 2))}) RETURNING id"
        base_id = 0
        for r in rows:
            hold = any(h.matches(r["sender_account"], r["sender_domain"], r["recipient_domain"]) for h in rules)
            (mid,) = c.execute(sql, (base_id, int(hold), *[r[k] for k in cols])).fetchone()
            if not base_id:
                base_id = mid
                c.execute("UPDATE msg SET base_id = ? WHERE id = ?", (mid, mid))
            ids.append(mid)
        dst = self.message_path(base_id)
        if dst.exists():
            # Left by a crash between rename and commit with an id SQLite then reused.
            dst.unlink()
        if dst.parent not in self._made_dirs:
            dst.parent.mkdir(mode=0o770, exist_ok=True)
            self._dirty_dirs.add(self.dir)
            self._made_dirs.add(dst.parent)
        os.rename(tmp_path, dst)
        self._dirty_dirs.add(dst.parent)
        self._renamed.append((tmp_path, dst))
        return ids

    def run_group(self, fns: list[Callable[[sqlite3.Connection], Any]]) -> list[GroupResult]:
        """Run several independent changes in one transaction (group commit): one commit and one fsync
        per directory for all of them. Each runs in a savepoint: one failing does not affect the others.
        Files renamed into place by add_tx are moved out again when the transaction does not commit.
        """
        out: list[GroupResult] = []
        self._dirty_dirs = set()
        self._renamed = []
        try:
            with self.tx() as c:
                for fn in fns:
                    before = len(self._renamed)
                    c.execute("SAVEPOINT g")
                    try:
                        out.append(GroupResult(fn(c), None))
                        c.execute("RELEASE g")
                    except Exception as e:
                        c.execute("ROLLBACK TO g")
                        c.execute("RELEASE g")
                        out.append(GroupResult(None, e))
                        # This change's file goes away; the others stay.
                        for tmp, dst in self._renamed[before:]:
                            with contextlib.suppress(OSError):
                                dst.unlink()
                            with contextlib.suppress(OSError):
                                tmp.unlink()
                        del self._renamed[before:]
                for d in sorted(self._dirty_dirs):
                    _fsync_dir(d)
        except BaseException:
            # Not committed: no row refers to the files.
            for tmp, dst in self._renamed:
                for p in (tmp, dst):
                    with contextlib.suppress(OSError):
                        p.unlink()
            raise
        finally:
            self._dirty_dirs = set()
            self._renamed = []
        return out

    # Reading

    def get(self, mid: int) -> QueuedMsg | None:
        r = self.conn.execute(f"SELECT {_MSG_COLUMNS} FROM msg WHERE id = ?", (mid,)).fetchone()
        return None if r is None else _msg_from_row(r)

    def count(self) -> int:
        (n,) = self.conn.execute("SELECT COUNT(*) FROM msg").fetchone()
        return int(n)

    def _select(self, c: sqlite3.Connection, f: Filter, sort: Sort | None = None) -> list[QueuedMsg]:
        where: list[str] = []
        params: list[Any] = []
        now = self.now()
        if f.ids:
            where.append(f"id IN ({', '.join('?' * len(f.ids))})")
            params += f.ids
        if f.account:
            where.append("sender_account = ?")
            params.append(f.account)
        if f.hold is not None:
            where.append("hold = ?")
            params.append(int(f.hold))
        if f.submitted:
            op, t = _relative_time("submitted", f.submitted, now)
            where.append(f"queued {op} ?")
            params.append(t)
        if f.next_attempt:
            op, t = _relative_time("nextattempt", f.next_attempt, now)
            where.append(f"next_attempt {op} ?")
            params.append(t)
        if f.transport is not None:
            where.append("transport = ?")
            params.append(f.transport)
        order = ""
        if sort is not None:
            fieldname = {"NextAttempt": "next_attempt", "": "next_attempt", "Queued": "queued"}.get(sort.field)
            if fieldname is None:
                raise QueueError(f"unknown sort order field {sort.field!r}")
            d = "ASC" if sort.asc else "DESC"
            order = f" ORDER BY {fieldname} {d}, id {d}"
        sql = f"SELECT {_MSG_COLUMNS} FROM msg" + (f" WHERE {' AND '.join(where)}" if where else "") + order
        out = []
        for r in c.execute(sql, params):
            m = _msg_from_row(r)
            # As upstream: From and To match substrings of the addresses; either one matching is enough.
            if (f.from_ or f.to) and not (
                (f.from_ and f.from_ in m.sender_address) or (f.to and f.to in m.recipient_address)
            ):
                continue
            out.append(m)
            if f.max and len(out) >= f.max:
                break
        return out

    def list_messages(self, f: Filter, sort: Sort) -> list[QueuedMsg]:
        return self._select(self.conn, f, sort)

    def due(self, now: float, exclude: set[int], limit: int) -> list[QueuedMsg]:
        """Messages not on hold whose next attempt is due, oldest first, not in exclude."""
        out = []
        for r in self.conn.execute(
            f"SELECT {_MSG_COLUMNS} FROM msg WHERE hold = 0 AND next_attempt <= ? ORDER BY next_attempt, id", (now,)
        ):
            if r[0] in exclude:
                continue
            out.append(_msg_from_row(r))
            if len(out) >= limit:
                break
        return out

    def next_due(self, exclude: set[int]) -> float | None:
        """The earliest next attempt of a message not on hold and not in exclude."""
        for mid, t in self.conn.execute("SELECT id, next_attempt FROM msg WHERE hold = 0 ORDER BY next_attempt, id"):
            if mid not in exclude:
                return float(t)
        return None

    def base_refs(self, base_ids: Iterable[int]) -> set[int]:
        """The base ids (of those given) still referenced by a queued message."""
        out = set()
        for b in set(base_ids):
            if self.conn.execute("SELECT 1 FROM msg WHERE base_id = ? LIMIT 1", (b,)).fetchone() is not None:
                out.add(b)
        return out

    def remove_files(self, base_ids: Iterable[int]) -> list[str]:
        """Remove message files no queued message refers to any more; returns errors."""
        errors = []
        ids = set(base_ids)
        for b in ids - self.base_refs(ids):
            try:
                self.message_path(b).unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                errors.append(f"{self.message_path(b)}: {e}")
        return errors

    # Delivery bookkeeping

    def claim_tx(self, c: sqlite3.Connection, msgs: list[QueuedMsg], now: float, backoff: float) -> None:
        """Register the start of an attempt: attempts+1, last attempt now, next attempt after backoff, a
        "delivering..." result. A crash during the attempt then retries it (see _reschedule_interrupted)."""
        for m in msgs:
            m.attempts += 1
            m.last_attempt = now
            m.next_attempt = now + backoff
            m.results.append(MsgResult(start=now, error=RESULT_DELIVERING))
            c.execute(
                "UPDATE msg SET attempts = ?, last_attempt = ?, next_attempt = ?, results = ? WHERE id = ?",
                (m.attempts, now, m.next_attempt, _results_json(m.results), m.id),
            )

    def update_results(self, c: sqlite3.Connection, m: QueuedMsg) -> None:
        c.execute(
            "UPDATE msg SET results = ?, next_attempt = ?, attempts = ?, last_attempt = ? WHERE id = ?",
            (_results_json(m.results), m.next_attempt, m.attempts, m.last_attempt, m.id),
        )

    def retire(self, c: sqlite3.Connection, m: QueuedMsg, success: bool, now: float, keep: float) -> None:
        """Delete the row; keep a retired copy for keep seconds when keep > 0 (upstream: KeepRetiredMessagePeriod)."""
        c.execute("DELETE FROM msg WHERE id = ?", (m.id,))
        if keep <= 0:
            return
        c.execute(
            f"INSERT OR REPLACE INTO retired ({_RETIRED_COLUMNS}, recipient_address) VALUES ({', '.join('?' * 26)})",
            (m.id, m.base_id, m.queued, m.sender_account, m.sender_localpart, m.sender_domain, m.recipient_localpart,
             m.recipient_domain, m.attempts, m.max_attempts, m.last_attempt, _results_json(m.results), int(m.has8bit),
             int(m.smtputf8), int(m.is_dmarc_report), int(m.is_tls_report), m.size, m.message_id, m.subject,
             m.transport, None if m.requiretls is None else int(m.requiretls), m.future_release_request, int(success),
             now, now + keep, m.recipient_address),
        )  # fmt: skip

    # Admin changes

    def hold_set(self, f: Filter, hold: bool) -> int:
        with self.tx() as c:
            ids = [m.id for m in self._select(c, f)]
            c.executemany("UPDATE msg SET hold = ? WHERE id = ?", [(int(hold), i) for i in ids])
        return len(ids)

    def next_attempt_add(self, f: Filter, seconds: float) -> int:
        with self.tx() as c:
            msgs = self._select(c, f)
            c.executemany("UPDATE msg SET next_attempt = ? WHERE id = ?", [(m.next_attempt + seconds, m.id) for m in msgs])
        return len(msgs)

    def next_attempt_set(self, f: Filter, t: float) -> int:
        with self.tx() as c:
            ids = [m.id for m in self._select(c, f)]
            c.executemany("UPDATE msg SET next_attempt = ? WHERE id = ?", [(t, i) for i in ids])
        return len(ids)

    def transport_set(self, f: Filter, transport: str) -> int:
        with self.tx() as c:
            ids = [m.id for m in self._select(c, f)]
            c.executemany("UPDATE msg SET transport = ? WHERE id = ?", [(transport, i) for i in ids])
        return len(ids)

    def requiretls_set(self, f: Filter, requiretls: bool | None) -> int:
        v = None if requiretls is None else int(requiretls)
        with self.tx() as c:
            ids = [m.id for m in self._select(c, f)]
            c.executemany("UPDATE msg SET requiretls = ? WHERE id = ?", [(v, i) for i in ids])
        return len(ids)

    def select(self, f: Filter) -> list[QueuedMsg]:
        return self._select(self.conn, f)

    # Hold rules

    def _holdrules(self, c: sqlite3.Connection) -> list[HoldRule]:
        return [HoldRule(*r) for r in c.execute("SELECT id, account, sender_domain, recipient_domain FROM holdrule ORDER BY id")]

    def holdrules(self) -> list[HoldRule]:
        return self._holdrules(self.conn)

    def holdrule_add(self, hr: HoldRule) -> tuple[HoldRule, int]:
        """Add a rule and put matching queued messages on hold; returns the rule and the count."""
        with self.tx() as c:
            (hid,) = c.execute(
                "INSERT INTO holdrule (account, sender_domain, recipient_domain) VALUES (?, ?, ?) RETURNING id",
                (hr.account, hr.sender_domain, hr.recipient_domain),
            ).fetchone()
            rule = HoldRule(hid, hr.account, hr.sender_domain, hr.recipient_domain)
            rows = c.execute("SELECT id, sender_account, sender_domain, recipient_domain FROM msg WHERE hold = 0").fetchall()
            ids = [r[0] for r in rows if rule.matches(r[1], r[2], r[3])]
            c.executemany("UPDATE msg SET hold = 1 WHERE id = ?", [(i,) for i in ids])
        return rule, len(ids)

    def holdrule_remove(self, rid: int) -> None:
        with self.tx() as c:
            if c.execute("DELETE FROM holdrule WHERE id = ?", (rid,)).rowcount == 0:
                raise QueueError(f"no hold rule with id {rid}")

    # Suppression list

    def _suppressed(self, c: sqlite3.Connection, account: str, localpart: str, domain: str) -> bool:
        ba = base_address(localpart, domain)
        return c.execute("SELECT 1 FROM suppression WHERE account = ? AND base_address = ?", (account, ba)).fetchone() is not None

    def suppressed(self, account: str, localpart: str, domain: str) -> bool:
        return self._suppressed(self.conn, account, localpart, domain)

    def suppression_list(self, account: str) -> list[Suppression]:
        sql = "SELECT id, created, account, base_address, original_address, manual, reason FROM suppression"
        rows = self.conn.execute(sql + (" WHERE account = ?" if account else "") + " ORDER BY id", (account,) if account else ())
        return [Suppression(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def suppression_lookup(self, account: str, localpart: str, domain: str) -> Suppression | None:
        ba = base_address(localpart, domain)
        sql = "SELECT id, created, account, base_address, original_address, manual, reason FROM suppression WHERE base_address = ?"
        params: tuple[Any, ...] = (ba,)
        if account:
            sql += " AND account = ?"
            params = (ba, account)
        r = self.conn.execute(sql + " ORDER BY id LIMIT 1", params).fetchone()
        return None if r is None else Suppression(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6])

    def suppression_add_tx(self, c: sqlite3.Connection, account: str, localpart: str, domain: str, manual: bool, reason: str) -> bool:
        ba = base_address(localpart, domain)
        cur = c.execute(
            "INSERT OR IGNORE INTO suppression (created, account, base_address, original_address, manual, reason) VALUES (?, ?, ?, ?, ?, ?)",
            (self.now(), account, ba, f"{localpart}@{domain}", int(manual), reason),
        )
        return cur.rowcount > 0

    def suppression_add(self, account: str, localpart: str, domain: str, reason: str) -> None:
        with self.tx() as c:
            if not self.suppression_add_tx(c, account, localpart, domain, True, reason):
                raise QueueError(f"address {base_address(localpart, domain)} already on suppression list of account {account}")

    def suppression_remove(self, account: str, localpart: str, domain: str) -> None:
        with self.tx() as c:
            cur = c.execute("DELETE FROM suppression WHERE account = ? AND base_address = ?", (account, base_address(localpart, domain)))
            if cur.rowcount == 0:
                raise QueueError("address not on suppression list")

    def recent_failures(self, c: sqlite3.Connection, address: str, exclude_id: int, n: int) -> list[bool]:
        """Success flags of the n most recent retired deliveries to address (newest first)."""
        rows = c.execute(
            "SELECT success FROM retired WHERE recipient_address = ? AND id != ? ORDER BY last_activity DESC LIMIT ?",
            (address, exclude_id, n),
        )
        return [bool(r[0]) for r in rows]

    # Retired

    def retired_list(self, f: RetiredFilter, sort: RetiredSort) -> list[RetiredMsg]:
        where: list[str] = []
        params: list[Any] = []
        now = self.now()
        if f.ids:
            where.append(f"id IN ({', '.join('?' * len(f.ids))})")
            params += f.ids
        if f.account:
            where.append("sender_account = ?")
            params.append(f.account)
        if f.submitted:
            op, t = _relative_time("submitted", f.submitted, now)
            where.append(f"queued {op} ?")
            params.append(t)
        if f.last_activity:
            op, t = _relative_time("lastactivity", f.last_activity, now)
            where.append(f"last_activity {op} ?")
            params.append(t)
        if f.transport is not None:
            where.append("transport = ?")
            params.append(f.transport)
        if f.success is not None:
            where.append("success = ?")
            params.append(int(f.success))
        fieldname = {"LastActivity": "last_activity", "": "last_activity", "Queued": "queued"}.get(sort.field)
        if fieldname is None:
            raise QueueError(f"unknown sort order field {sort.field!r}")
        d = "ASC" if sort.asc else "DESC"
        sql = f"SELECT {_RETIRED_COLUMNS} FROM retired" + (f" WHERE {' AND '.join(where)}" if where else "")
        out = []
        for r in self.conn.execute(sql + f" ORDER BY {fieldname} {d}, id {d}", params):
            m = _retired_from_row(r)
            if (f.from_ or f.to) and not (
                (f.from_ and f.from_ in m.sender_address) or (f.to and f.to in m.recipient_address)
            ):
                continue
            out.append(m)
            if f.max and len(out) >= f.max:
                break
        return out

    def retired_cleanup(self) -> int:
        with self.tx() as c:
            return c.execute("DELETE FROM retired WHERE keep_until < ?", (self.now(),)).rowcount


class GroupResult:
    """The outcome of one change of run_group: its value or its exception."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: Exception | None) -> None:
        self.value = value
        self.error = error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
