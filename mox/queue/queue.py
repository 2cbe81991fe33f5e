"""The outgoing queue: adding messages, the delivery loop, results, DSNs, admin operations.

:class:`Queue` wraps :class:`~mox.queue.db.QueueDB`, running all database
work on one thread. The delivery loop picks due messages, groups those that
can share one SMTP transaction (same submission, recipient domain, transport,
TLS requirement and attempt count), claims them (the attempt is recorded
before the deliverer runs) and hands the batches to the injected
:class:`~mox.queue.model.Deliverer` in runs: one task per run delivers its
batches one after the other (over the connection the deliverer keeps open),
recording each batch's outcome while the next is delivered. At most
``max_concurrent`` runs are in flight overall and ``max_per_domain`` per
recipient domain, each with at most RUN_MAX messages. Adding a
message or changing the schedule wakes the loop at once; otherwise it sleeps
until the next due time.

At-least-once delivery and the duplicate window: a message is acknowledged to
its submitter only after the commit that inserts it (file fsynced before).
Each attempt is committed as started before any SMTP; a crash (kill -9)
during the attempt leaves the attempt marked "delivering...", and the next
start retries those at once. If the remote had already accepted the message
(sent its 250 after the data) but our commit of the success had not happened
yet, the message is delivered again: that is the duplicate window, from the
remote's final reply to our commit of the outcome (normally milliseconds; in
a crash or kill -9, every batch in flight). Messages of a run that were claimed
but not yet delivered at a crash are retried at once too; they were not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any, TypeVar

from mox import dsn, mlog
from mox.message.headers import decode_text, header_value, parse_headers
from mox.queue import schedule
from mox.queue.db import QueueDB
from mox.queue.model import (
    RESULT_DELIVERING,
    Deliverer,
    DSNOptions,
    Filter,
    HoldRule,
    MessageSource,
    MsgResult,
    NewRecipient,
    Outcome,
    OutcomeKind,
    QueuedMsg,
    QueueError,
    RetiredFilter,
    RetiredMsg,
    RetiredSort,
    Sort,
    Suppression,
    format_ip_domain,
)
from mox.smtp.path import Path

if TYPE_CHECKING:
    from mox.config.load import Config

log = mlog.new("queue")

T = TypeVar("T")

# Batches in flight at most, overall and per recipient domain (upstream: 10 overall, 1 per domain).
MAX_CONCURRENT = 10
MAX_PER_DOMAIN = 2
# Recipients per SMTP transaction at most (RFC 5321 section 4.5.3.1.8: servers take at least 100).
MAX_BATCH = 100
# Messages (recipients) one task delivers in turn for a domain, batch after batch over one
# connection; bounds the messages whose attempt is claimed ahead of their delivery.
RUN_MAX = 50
# Due messages looked at per round of the loop.
DUE_LIMIT = 1000
# Longest sleep of the loop without a due message.
MAX_SLEEP = 3600.0
# Changes committed in one transaction at most (group commit); more wait for the next.
GROUP_COMMIT_MAX = 256
# With due messages all blocked (busy domains), check again after this long at the latest.
BLOCKED_RECHECK = 1.0
# Retired messages are cleaned up this often (upstream: hourly).
RETIRED_CLEANUP_INTERVAL = 3600.0
# Seconds deliveries in flight get to finish at close, before they are cancelled.
CLOSE_GRACE = 3.0

# Upstream's codes that put a recipient on the suppression list at once: the remote says the address
# does not exist or does not want mail from us (RFC 5321 section 4.2.3, RFC 3463 section 3).
_IMMEDIATE_BLOCK_CODES = {521, 550, 551, 553, 556}
_IMMEDIATE_BLOCK_SECODES = {"1.1", "1.2", "1.3", "1.6", "2.1", "7.1"}


def _short_secode(secode: str) -> str:
    """Enhanced code without its class digit ("5.1.1" -> "1.1"), as stored (upstream's Secode)."""
    parts = secode.split(".")
    if len(parts) == 3 and parts[0] in ("2", "4", "5"):
        return ".".join(parts[1:])
    return secode


class Queue:
    """The outgoing queue of one data directory. Get it with :func:`open_queue`."""

    def __init__(
        self,
        data_dir: FsPath,
        config: Callable[[], Config] | None = None,
        *,
        now: Callable[[], float] = time.time,
        jitter: Callable[[], float] = schedule.random_jitter,
        max_concurrent: int = MAX_CONCURRENT,
        max_per_domain: int = MAX_PER_DOMAIN,
    ) -> None:
        self.data_dir = FsPath(data_dir)
        self._config = config
        self.now = now
        self.jitter = jitter
        self.max_concurrent = max_concurrent
        self.max_per_domain = max_per_domain
        self.db = QueueDB(self.data_dir, now)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queue-db")
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._inflight: set[int] = set()
        self._busy: Counter[str] = Counter()
        self.deliverer: Deliverer | None = None
        self._closed = False
        self._stopping = False
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def config(self) -> Config | None:
        return self._config() if self._config is not None else None

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise QueueError("queue is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a change on the database thread, committed together with changes queued meanwhile
        (group commit: one transaction and one round of fsyncs for all). Returns after the commit."""
        if self._closed:
            raise QueueError("queue is closed")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        # Shielded: a cancelled caller does not undo a change that may commit anyway.
        result: T = await asyncio.shield(fut)
        return result

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:GROUP_COMMIT_MAX], self._pending[GROUP_COMMIT_MAX:]
            try:
                results = await self._db(self.db.run_group, [fn for fn, _ in batch])
            except BaseException as e:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e if isinstance(e, Exception) else QueueError(f"queue write: {e!r}"))
                if not isinstance(e, Exception):
                    raise
                continue
            for r, (_, fut) in zip(results, batch, strict=True):
                if fut.done():
                    continue
                if r.error is not None:
                    fut.set_exception(r.error)
                else:
                    fut.set_result(r.value)

    def kick(self) -> None:
        """Wake the delivery loop (new message, changed schedule, finished batch)."""
        self._wake.set()

    # Life cycle

    async def _open(self) -> None:
        stats = await self._db(self.db.open)
        if stats["orphans"]:
            log.info("removed queue message files without database record", count=stats["orphans"])
        if stats["interrupted"]:
            log.info("delivery attempts interrupted by restart, retrying now", count=stats["interrupted"])

    def start(self, deliverer: Deliverer | None) -> None:
        """Start the retired-message cleanup and, with a deliverer, the delivery loop."""
        if self._cleanup_task is None:
            self._cleanup_task = asyncio.create_task(self._cleanup_retired())
        if deliverer is None:
            return
        self.deliverer = deliverer
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop the loop; deliveries in flight get CLOSE_GRACE seconds, then are cancelled; close the database."""
        if self._closed:
            return
        self._stopping = True
        self.kick()
        for t in (self._loop_task, self._cleanup_task):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        self._loop_task = self._cleanup_task = None
        if self._batches:
            _, pending = await asyncio.wait(set(self._batches), timeout=CLOSE_GRACE)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.db.close)
        self._closed = True
        self._executor.shutdown(wait=False)
        global _current
        if _current is self:
            _current = None

    # Adding

    async def add(
        self,
        sender_account: str,
        sender: Path | None,
        recipients: Sequence[NewRecipient | Path],
        data: bytes,
        *,
        msg_prefix: bytes = b"",
        has8bit: bool | None = None,
        smtputf8: bool = False,
        message_id: str | None = None,
        subject: str | None = None,
        requiretls: bool | None = None,
        next_attempt: float | None = None,
        future_release_request: str = "",
        dsn_options: DSNOptions | None = None,
        is_dmarc_report: bool = False,
        is_tls_report: bool = False,
        transport: str = "",
        max_attempts: int = 0,
        check_suppression: bool = True,
    ) -> list[int]:
        """Queue data (one message) for recipients, atomically; returns the ids (one per recipient).

        Returns only after the commit: the caller may then acknowledge the
        message. sender None is the null reverse-path. next_attempt (epoch
        seconds) delays the first attempt (FUTURERELEASE HOLDFOR/HOLDUNTIL,
        RFC 4865; at most 60 days ahead), with future_release_request its
        original form for DSNs ("for;<seconds>" or "until;<date-time>").
        has8bit, message_id and subject are taken from the message when not
        given. Messages matching a hold rule are added on hold.

        Raises:
            Suppressed: a recipient is on sender_account's suppression list (nothing added).
            QueueError: bad arguments.
        """
        if not recipients:
            raise QueueError("must queue at least one recipient")
        now = self.now()
        if next_attempt is None:
            next_attempt = now
        elif next_attempt > now + schedule.FUTURE_RELEASE_MAX:
            raise QueueError("future release more than 60 days ahead")
        dopts = dsn_options or DSNOptions()
        if dopts.ret not in ("", "FULL", "HDRS"):
            raise QueueError(f"dsn ret must be FULL or HDRS, not {dopts.ret!r}")
        if sender is not None and sender.is_postmaster_only():
            raise QueueError("sender must be an address with a domain")
        sender_lp = sender.localpart if sender is not None else ""
        sender_dom = format_ip_domain(sender.domain, sender.ip) if sender is not None else ""

        def prepare() -> tuple[FsPath, bool, str, str]:
            eight = has8bit if has8bit is not None else not (msg_prefix.isascii() and data.isascii())
            mid, subj = message_id, subject
            if mid is None or subj is None:
                headers = parse_headers(dsn.header_section(data))
                if mid is None:
                    mid = decode_text((header_value(headers, "Message-ID") or "").encode("utf-8")).strip()
                if subj is None:
                    from mox.message import decode_words

                    subj = decode_words(header_value(headers, "Subject") or "")
            return self.db.write_tmp(data), eight, mid or "", subj or ""

        tmp_path, eight, mid, subj = await asyncio.to_thread(prepare)
        rows = []
        for r in recipients:
            nr = r if isinstance(r, NewRecipient) else NewRecipient(r)
            if nr.path.is_postmaster_only():
                raise QueueError("recipient must be an address with a domain")
            if nr.notify is not None and not set(nr.notify) <= {"NEVER", "SUCCESS", "FAILURE", "DELAY"}:
                raise QueueError(f"bad notify {nr.notify!r}")
            rows.append({
                "queued": now, "sender_account": sender_account, "sender_localpart": sender_lp,
                "sender_domain": sender_dom, "recipient_localpart": nr.path.localpart,
                "recipient_domain": format_ip_domain(nr.path.domain, nr.path.ip), "max_attempts": max_attempts,
                "next_attempt": next_attempt, "has8bit": int(eight), "smtputf8": int(smtputf8),
                "is_dmarc_report": int(is_dmarc_report), "is_tls_report": int(is_tls_report),
                "size": len(msg_prefix) + len(data), "message_id": mid, "subject": subj, "msg_prefix": msg_prefix,
                "transport": transport, "requiretls": None if requiretls is None else int(requiretls),
                "future_release_request": future_release_request, "dsn_envid": dopts.envid, "dsn_ret": dopts.ret,
                "dsn_notify": None if nr.notify is None else ",".join(nr.notify),
                "dsn_orcpt_type": nr.orcpt_type, "dsn_orcpt": nr.orcpt,
            })  # fmt: skip
        try:
            ids = await self._write(lambda c: self.db.add_tx(c, tmp_path, rows, check_suppression))
        except BaseException:
            with contextlib.suppress(OSError):
                tmp_path.unlink()
            raise
        log.debug("queued message", ids=ids, sender=sender_account or "(none)", recipients=len(rows))
        self.kick()
        return ids

    async def is_suppressed(self, account: str, recipient: Path) -> bool:
        """Whether account's suppression list has recipient (for refusing at RCPT TO)."""
        return await self._db(self.db.suppressed, account, recipient.localpart, format_ip_domain(recipient.domain, recipient.ip))

    # Reading and admin operations (upstream's queue functions)

    async def list_messages(self, f: Filter | None = None, sort: Sort | None = None) -> list[QueuedMsg]:
        return await self._db(self.db.list_messages, f or Filter(), sort or Sort())

    async def get(self, mid: int) -> QueuedMsg | None:
        return await self._db(self.db.get, mid)

    async def count(self) -> int:
        return await self._db(self.db.count)

    async def read_message(self, mid: int) -> bytes:
        """The message as it will be sent: prefix plus file."""
        m = await self.get(mid)
        if m is None:
            raise QueueError(f"no message with id {mid} in queue")
        path = self.db.message_path(m.base_id)
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError as e:
            raise QueueError(f"reading message file: {e}") from None
        return m.msg_prefix + body

    async def hold_set(self, f: Filter, hold: bool) -> int:
        n = await self._db(self.db.hold_set, f, hold)
        self.kick()
        return n

    async def next_attempt_add(self, f: Filter, seconds: float) -> int:
        n = await self._db(self.db.next_attempt_add, f, seconds)
        self.kick()
        return n

    async def next_attempt_set(self, f: Filter, t: float) -> int:
        n = await self._db(self.db.next_attempt_set, f, t)
        self.kick()
        return n

    async def transport_set(self, f: Filter, transport: str) -> int:
        cfg = self.config
        if transport and cfg is not None and transport not in cfg.static.Transports:
            raise QueueError(f"unknown transport {transport!r}")
        n = await self._db(self.db.transport_set, f, transport)
        self.kick()
        return n

    async def requiretls_set(self, f: Filter, requiretls: bool | None) -> int:
        n = await self._db(self.db.requiretls_set, f, requiretls)
        self.kick()
        return n

    async def fail(self, f: Filter) -> int:
        """Fail matching messages (not being delivered right now): failure DSN (as NOTIFY allows), retire."""
        return await self._fail_drop(f, True)

    async def drop(self, f: Filter) -> int:
        """Remove matching messages (not being delivered right now) without DSN; retired as failed."""
        return await self._fail_drop(f, False)

    async def _fail_drop(self, f: Filter, fail: bool) -> int:
        msgs = [m for m in await self._db(self.db.select, f) if m.id not in self._inflight]
        if not msgs:
            return 0
        now = self.now()
        text = "delivery canceled by admin"
        for m in msgs:
            m.results.append(MsgResult(start=now, error=text))
            if m.last_attempt is None:
                m.last_attempt = now
        if fail:
            groups: dict[int, list[QueuedMsg]] = {}
            for m in msgs:
                groups.setdefault(m.base_id, []).append(m)
            for group in groups.values():
                await self._dsn(group, [Outcome.permanent(text)] * len(group), dsn.Action.FAILED)
        keeps = {m.sender_account: self._keep_retired(m.sender_account) for m in msgs}

        def change(c: sqlite3.Connection) -> None:
            for m in msgs:
                self.db.retire(c, m, False, now, keeps[m.sender_account])

        await self._write(change)
        await self._remove_files([m.base_id for m in msgs])
        self.kick()
        return len(msgs)

    async def _remove_files(self, base_ids: list[int]) -> None:
        for e in await self._db(self.db.remove_files, base_ids):
            log.error("removing queue message file", err=e)

    # Hold rules

    async def holdrules(self) -> list[HoldRule]:
        return await self._db(self.db.holdrules)

    async def holdrule_add(self, hr: HoldRule) -> HoldRule:
        rule, n = await self._db(self.db.holdrule_add, hr)
        log.info("hold rule added, matching queued messages put on hold", id=rule.id, messages=n)
        return rule

    async def holdrule_remove(self, rid: int) -> None:
        await self._db(self.db.holdrule_remove, rid)

    # Suppression list

    async def suppression_list(self, account: str = "") -> list[Suppression]:
        return await self._db(self.db.suppression_list, account)

    async def suppression_lookup(self, account: str, address: Path) -> Suppression | None:
        return await self._db(self.db.suppression_lookup, account, address.localpart, format_ip_domain(address.domain, address.ip))

    async def suppression_add(self, account: str, address: Path, reason: str = "added through mox cli") -> None:
        await self._db(self.db.suppression_add, account, address.localpart, format_ip_domain(address.domain, address.ip), reason)

    async def suppression_remove(self, account: str, address: Path) -> None:
        await self._db(self.db.suppression_remove, account, address.localpart, format_ip_domain(address.domain, address.ip))

    # Retired

    async def retired_list(self, f: RetiredFilter | None = None, sort: RetiredSort | None = None) -> list[RetiredMsg]:
        return await self._db(self.db.retired_list, f or RetiredFilter(), sort or RetiredSort())

    def _keep_retired(self, account: str) -> float:
        cfg = self.config
        if cfg is None or not account:
            return 0.0
        acc = cfg.dynamic.Accounts.get(account)
        return acc.KeepRetiredMessagePeriod.seconds if acc is not None else 0.0

    async def _cleanup_retired(self) -> None:
        await asyncio.sleep(3)
        while True:
            try:
                n = await self._db(self.db.retired_cleanup)
                if n:
                    log.debug("cleaned up retired messages", count=n)
            except Exception as e:
                log.errorx("cleaning up retired messages", e)
            await asyncio.sleep(RETIRED_CLEANUP_INTERVAL)

    # The delivery loop

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                launched = await self._launch()
                nxt = await self._db(self.db.next_due, set(self._inflight))
                delay = MAX_SLEEP if nxt is None else min(MAX_SLEEP, max(0.0, nxt - self.now()))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.errorx("queue delivery loop", e)
                launched, delay = 0, 1.0
            if delay <= 0:
                if launched:
                    continue
                # Due messages wait for a busy domain or a free slot: a finishing batch kicks us; the
                # timeout only guards against a message that became due just after the launch.
                delay = BLOCKED_RECHECK
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a cancellation that
            # arrives as the wait completes (a kick at close), and the loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _launch(self) -> int:
        """Start batches for due messages as concurrency allows; returns how many."""
        if self._stopping or len(self._batches) >= self.max_concurrent or self.deliverer is None:
            return 0
        now = self.now()
        due = await self._db(self.db.due, now, set(self._inflight), DUE_LIMIT)
        groups: dict[tuple[Any, ...], list[QueuedMsg]] = {}
        for m in due:
            key = (m.base_id, m.recipient_domain.lower(), m.transport, m.requiretls, m.attempts)
            g = groups.setdefault(key, [])
            if len(g) < MAX_BATCH:
                g.append(m)
        # Runs: the batches one task delivers one after the other, over the connection the
        # deliverer keeps open, so a busy domain gets several messages per connection while
        # at most max_per_domain connections are in use for it.
        runs: list[list[list[QueuedMsg]]] = []
        open_runs: dict[str, list[list[list[QueuedMsg]]]] = {}
        busy = Counter(self._busy)
        for (_, dom, *_rest), g in groups.items():
            fits = [r for r in open_runs.get(dom, []) if sum(len(x) for x in r) + len(g) <= RUN_MAX]
            if fits:
                min(fits, key=lambda r: sum(len(x) for x in r)).append(g)
                continue
            if len(self._batches) + len(runs) >= self.max_concurrent or busy[dom] >= self.max_per_domain:
                continue
            busy[dom] += 1
            run = [g]
            runs.append(run)
            open_runs.setdefault(dom, []).append(run)
        if not runs:
            return 0
        claims = [(g, schedule.backoff(g[0].attempts, self.jitter())) for run in runs for g in run]

        def claim_all(c: sqlite3.Connection) -> None:
            for g, b in claims:
                self.db.claim_tx(c, g, now, b)

        await self._write(claim_all)
        for run in runs:
            dom = run[0][0].recipient_domain.lower()
            self._busy[dom] += 1
            self._inflight.update(m.id for g in run for m in g)
            t = asyncio.create_task(self._deliver_run(run))
            self._batches.add(t)
        return len(runs)

    async def _deliver_run(self, run: list[list[QueuedMsg]]) -> None:
        """Deliver the batches of a run in turn; each batch's outcome is recorded while the next
        is being delivered (their commits join others in a group commit)."""
        dom = run[0][0].recipient_domain.lower()
        processing: list[asyncio.Task[None]] = []
        try:
            for msgs in run:
                if self._stopping:
                    break
                delivered = asyncio.Event()
                t = asyncio.create_task(self._deliver_batch(msgs, delivered))
                processing.append(t)
                # The next batch starts when this one's delivery (not its commit) is done.
                waiter = asyncio.ensure_future(delivered.wait())
                try:
                    await asyncio.wait({waiter, t}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
            await asyncio.gather(*processing)
        except asyncio.CancelledError:
            for t in processing:
                t.cancel()
            await asyncio.gather(*processing, return_exceptions=True)
            raise
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._batches.discard(task)
            for msgs in run:
                self._inflight.difference_update(m.id for m in msgs)
            self._busy[dom] -= 1
            if self._busy[dom] <= 0:
                del self._busy[dom]
            self.kick()

    async def _deliver_batch(self, msgs: list[QueuedMsg], delivered: asyncio.Event) -> None:
        """Deliver one batch and record the outcomes; ``delivered`` is set between the two."""
        try:
            outcomes: list[Outcome | None] = [None] * len(msgs)
            # As upstream, the suppression list is checked again at delivery.
            for i, m in enumerate(msgs):
                if not m.sender_account:
                    continue
                if await self._db(self.db.suppressed, m.sender_account, m.recipient_localpart, m.recipient_domain):
                    outcomes[i] = Outcome.permanent(f"not delivering to recipient address {m.recipient_address}: address is on suppression list")
            # As upstream: while the sender's domain is disabled, attempts fail temporarily.
            cfg = self.config
            if cfg is not None:
                sender_dom = cfg.dynamic.Domains.get(msgs[0].sender_domain)
                if sender_dom is not None and sender_dom.Disabled:
                    outcomes = [o or Outcome.temporary("domain of sender temporarily disabled") for o in outcomes]
            todo = [i for i, o in enumerate(outcomes) if o is None]
            if todo:
                m0 = msgs[todo[0]]
                source = MessageSource(m0.msg_prefix, self.db.message_path(m0.base_id), m0.size)
                batch = [msgs[i] for i in todo]
                assert self.deliverer is not None
                try:
                    got = await self.deliverer(batch, source)
                    if len(got) != len(batch):
                        raise QueueError(f"deliverer returned {len(got)} outcomes for {len(batch)} messages")
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.errorx("deliverer failed", e, ids=[m.id for m in batch])
                    got = [Outcome.temporary(f"delivery error: {e}")] * len(batch)
                for i, o in zip(todo, got, strict=True):
                    outcomes[i] = o
            delivered.set()
            await self._process(msgs, [o for o in outcomes if o is not None])
        except asyncio.CancelledError:
            log.info("delivery cancelled at shutdown, retried at next start", ids=[m.id for m in msgs])
            raise
        except Exception as e:
            log.errorx("processing delivery results", e, ids=[m.id for m in msgs])
        finally:
            delivered.set()

    async def _process(self, msgs: list[QueuedMsg], outcomes: list[Outcome]) -> None:
        """Record outcomes: retire delivered and failed messages, reschedule temporary failures, send DSNs."""
        now = self.now()
        delivered: list[tuple[QueuedMsg, Outcome]] = []
        failed: list[tuple[QueuedMsg, Outcome]] = []
        delayed: list[tuple[QueuedMsg, Outcome]] = []
        retry: list[QueuedMsg] = []
        for m, o in zip(msgs, outcomes, strict=True):
            res = m.results[-1] if m.results and m.results[-1].error == RESULT_DELIVERING else None
            if res is None:
                res = MsgResult(start=now)
                m.results.append(res)
            res.duration = max(0.0, now - res.start)
            res.code = o.code
            res.secode = _short_secode(o.secode)
            res.success = o.kind == OutcomeKind.DELIVERED
            res.error = "" if res.success else (o.text or "delivery failed")
            if o.kind == OutcomeKind.DELIVERED:
                delivered.append((m, o))
                log.info("delivered from queue", id=m.id, recipient=m.recipient_address, remote=o.remote.name)
            elif o.kind == OutcomeKind.PERMANENT or schedule.give_up(m.attempts, m.max_attempts):
                failed.append((m, o))
                log.info("permanent failure delivering from queue", id=m.id, recipient=m.recipient_address,
                         attempts=m.attempts, code=o.code, err=o.text)  # fmt: skip
            else:
                retry.append(m)
                if schedule.send_delay_dsn(m.attempts, m.max_attempts):
                    delayed.append((m, o))
                log.info("temporary failure delivering from queue", id=m.id, recipient=m.recipient_address,
                         attempts=m.attempts, code=o.code, err=o.text, nextattempt=m.next_attempt)  # fmt: skip

        # DSNs before the outcome commits: a crash in between repeats a DSN rather than losing it.
        for items, action in ((delivered, dsn.Action.DELIVERED), (failed, dsn.Action.FAILED), (delayed, dsn.Action.DELAYED)):
            sel = [(m, o) for m, o in items if _wants_dsn(m, action)]
            if sel:
                await self._dsn([m for m, _ in sel], [o for _, o in sel], action)

        keeps = {m.sender_account: self._keep_retired(m.sender_account) for m in msgs}

        def change(c: sqlite3.Connection) -> None:
            for m, _ in delivered:
                self.db.retire(c, m, True, now, keeps[m.sender_account])
            for m, o in failed:
                self._suppression_process(c, m, o)
                self.db.retire(c, m, False, now, keeps[m.sender_account])
            for m in retry:
                self.db.update_results(c, m)

        await self._write(change)
        if delivered or failed:
            await self._remove_files([m.base_id for m, _ in delivered + failed])

    def _suppression_process(self, c: Any, m: QueuedMsg, o: Outcome) -> None:
        """Upstream's suppression rules for a remote permanent failure (on the DB thread)."""
        # Only answers of a remote SMTP server count (upstream: an SMTP error from the remote), not
        # local failures such as a recipient domain that does not exist.
        remote_answer = bool(o.lines) or not o.remote.is_zero()
        if not m.sender_account or o.code == 0 or not remote_answer or o.kind == OutcomeKind.TEMPORARY:
            return
        secode = _short_secode(o.secode)
        if o.code in _IMMEDIATE_BLOCK_CODES or (o.code // 100 == 5 and secode in _IMMEDIATE_BLOCK_SECODES):
            reason = f"delivery failure from queue with smtp code {o.code}, enhanced code {secode!r}"
        else:
            prev = self.db.recent_failures(c, m.recipient_address, m.id, 2)
            if len(prev) < 2 or any(prev):
                return
            reason = "delivery failure from queue and three consecutive failures"
        if self.db.suppression_add_tx(c, m.sender_account, m.recipient_localpart, m.recipient_domain, False, reason):
            log.info("recipient added to suppression list", account=m.sender_account, recipient=m.recipient_address)

    # DSNs

    async def _dsn(self, msgs: list[QueuedMsg], outcomes: list[Outcome], action: dsn.Action) -> None:
        """Compose one DSN about msgs (one submission) and deliver it to the sender; errors are logged."""
        m0 = msgs[0]
        try:
            data = await self._compose_dsn(msgs, outcomes, action)
            await self._deliver_dsn(m0, data)
        except Exception as e:
            log.errorx("sending dsn, sender will not be informed", e, ids=[m.id for m in msgs], action=str(action))

    async def _compose_dsn(self, msgs: list[QueuedMsg], outcomes: list[Outcome], action: dsn.Action) -> bytes:
        cfg = self.config
        hostname = cfg.static.HostnameDomain if cfg is not None else None
        host = hostname.ascii if hostname is not None else "localhost"
        m0 = msgs[0]
        sender = m0.sender()
        assert sender is not None
        try:
            original = await asyncio.to_thread(self.db.message_path(m0.base_id).read_bytes)
        except OSError as e:
            raise QueueError(f"reading queued message: {e}") from None
        original = m0.msg_prefix + original
        # RFC 3461 section 4.3: RET=FULL returns the message, otherwise its header; RFC 8689 section 5:
        # never the full content of a REQUIRETLS message.
        full = m0.dsn_ret == "FULL" and m0.requiretls is not True
        status_class = {dsn.Action.FAILED: "5", dsn.Action.DELAYED: "4"}.get(action, "2")
        recipients = []
        lines: list[str] = []
        for m, o in zip(msgs, outcomes, strict=True):
            secode = _short_secode(o.secode) or "0.0"
            diag = " ".join(o.lines) if o.lines else (f"{o.code} {o.text}" if o.code else "")
            recipients.append(dsn.Recipient(
                final_recipient=m.recipient().xstring(m.smtputf8),
                action=action,
                status=f"{status_class}.{secode}",
                status_comment=o.text if action != dsn.Action.DELIVERED else "",
                original_recipient=m.dsn_orcpt,
                original_recipient_type=m.dsn_orcpt_type or "rfc822",
                remote_mta=o.remote,
                diagnostic_code=diag,
                last_attempt_date=_dt.datetime.fromtimestamp(m.last_attempt or self.now(), _dt.UTC),
                will_retry_until=_dt.datetime.fromtimestamp(schedule.retry_until(m.last_attempt or self.now(), m.attempts, m.max_attempts), _dt.UTC)
                if action == dsn.Action.DELAYED else None,
            ))  # fmt: skip
            lines.append(f"\t{m.recipient().xstring(m.smtputf8)}")
            if action != dsn.Action.DELIVERED:
                lines.append(f"\t\terror: {o.text or 'delivery failed'}")
                if o.lines:
                    lines.append("\t\tSMTP response: " + " / ".join(o.lines))
        if action == dsn.Action.FAILED:
            subject = "mail delivery failed"
            text = "Delivery of your message has failed permanently for:\n\n" + "\n".join(lines) + "\n\nNo further delivery attempts will be made.\n"
        elif action == dsn.Action.DELAYED:
            until = recipients[0].will_retry_until
            subject = "mail delivery delayed"
            assert until is not None
            text = ("Delivery of your message has been delayed for:\n\n" + "\n".join(lines) +
                    f"\n\nDelivery will be attempted until {until:%Y-%m-%d %H:%M} UTC. You will get another\n"
                    "message if those attempts fail too.\n")  # fmt: skip
        else:
            subject = "mail delivered"
            text = "Your message has been delivered to:\n\n" + "\n".join(lines) + "\n\nYou asked for this notification (NOTIFY=SUCCESS).\n"
        if m0.subject:
            text += f"\nSubject of the original message: {m0.subject}\n"
        msg = dsn.Message(
            from_addr=f"postmaster@{hostname.xname(m0.smtputf8) if hostname else host}",
            to_addr=sender.xstring(m0.smtputf8),
            subject=subject,
            message_id=f"{secrets.token_urlsafe(15)}@{host}",
            references=m0.message_id,
            reporting_mta=host,
            recipients=recipients,
            text_body=text,
            smtputf8=m0.smtputf8,
            original_envelope_id=m0.dsn_envid,
            arrival_date=_dt.datetime.fromtimestamp(m0.queued, _dt.UTC),
            future_release_request=m0.future_release_request,
            original=original,
            original_full=full,
        )
        # A DSN to a local account can use UTF-8; a queued DSN is sent to a remote that may lack SMTPUTF8,
        # then it is sent with SMTPUTF8 only if the original needed it anyway.
        return dsn.compose(msg, smtputf8=m0.smtputf8)

    async def _deliver_dsn(self, m: QueuedMsg, data: bytes) -> None:
        """Deliver a DSN: reports' DSNs quietly to the postmaster's submailbox, local senders' to their Inbox,
        others through the queue with a null reverse-path (so a failing DSN is never answered by another)."""
        cfg = self.config
        sender = m.sender()
        assert sender is not None
        if m.is_dmarc_report or m.is_tls_report:
            if cfg is None:
                raise QueueError("no configuration to find the postmaster account")
            pm = cfg.static.Postmaster
            mailbox = f"{pm.Mailbox}/{'dmarc' if m.is_dmarc_report else 'tlsrpt'}"
            await self._deliver_local(cfg, pm.Account, mailbox, data, seen=True, sender=sender)
            log.info("delivered dsn for outgoing report to postmaster mailbox", mailbox=mailbox, id=m.id)
            return
        if m.sender_account and cfg is not None and m.sender_account in cfg.dynamic.Accounts:
            await self._deliver_local(cfg, m.sender_account, "Inbox", data, seen=False, sender=sender)
            log.info("delivered dsn to local account", account=m.sender_account, id=m.id)
            return
        ids = await self.add("", None, [sender], data, smtputf8=m.smtputf8, check_suppression=False)
        log.info("queued dsn", ids=ids, id=m.id)

    async def _deliver_local(self, cfg: Config, account: str, mailbox: str, data: bytes, *, seen: bool, sender: Path) -> None:
        from mox.store.deliver import open_config_account
        from mox.store.model import Flags

        prefix = f"Return-Path: <>\r\nDelivered-To: {sender.xstring(True)}\r\n".encode()
        acc = await open_config_account(cfg, account)
        try:
            await acc.add_message(mailbox, prefix + data, flags=Flags.SEEN if seen else Flags.NONE)
        finally:
            await acc.close()


def _wants_dsn(m: QueuedMsg, action: dsn.Action) -> bool:
    """Whether a DSN of this kind goes out for m: never for the null reverse-path (no DSN loops), as
    NOTIFY says (RFC 3461 section 4.1); for our own DMARC/TLS reports only failures (to the postmaster)."""
    if m.sender() is None:
        return False
    if m.is_dmarc_report or m.is_tls_report:
        return action == dsn.Action.FAILED
    notify = {dsn.Action.DELIVERED: "SUCCESS", dsn.Action.FAILED: "FAILURE", dsn.Action.DELAYED: "DELAY"}[action]
    return m.notify_allows(notify)


def server_deliverer(config: Callable[[], Config]) -> Deliverer | None:
    """The deliverer ``mox serve`` uses: ``mox.queue.remote.make_deliverer(config)`` when the remote
    delivery module provides it; None (no delivery loop, messages wait in the queue) until then."""
    try:
        from mox.queue import remote
    except ImportError:
        remote = None  # type: ignore[assignment]
    make = getattr(remote, "make_deliverer", None)
    if make is None:
        log.info("outgoing delivery not implemented yet, queued messages wait for it")
        return None
    deliverer: Deliverer = make(config)
    return deliverer


_current: Queue | None = None


async def open_queue(
    data_dir: FsPath,
    config: Callable[[], Config] | None = None,
    **kwargs: Any,
) -> Queue:
    """Open the queue of data_dir (creating it), without starting delivery; it becomes :func:`current`."""
    global _current
    q = Queue(FsPath(data_dir), config, **kwargs)
    await q._open()
    _current = q
    return q


def current() -> Queue:
    """The queue the server opened (for SMTP submission and other packages). Raises QueueError if none."""
    if _current is None:
        raise QueueError("queue not open")
    return _current
