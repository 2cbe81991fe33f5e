"""Assigning threads to all messages of an account: ``mox reassignthreads`` and the account upgrade step.

Delivery threads each new message as it arrives (mox.store.account). This
module recomputes the thread fields of every message from the message files,
in arrival (id) order, with the same rules: a parent by References and
In-Reply-To with the same base subject (nearest first; an unknown immediate
parent sets the missing-link flag), else, for replies and forwards, the latest
message with the same base subject received in the 4 weeks before; replies
seen before their parent are moved under it when it comes.

It works in batches: headers are read and parsed off the database thread, and
each batch is written in its own short transaction, so deliveries and IMAP
commands interleave with it and never wait long (RFC 5256 section 2.2 has the
REFERENCES algorithm this approximates incrementally, as upstream does).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mox import mlog
from mox.store.account import THREAD_SUBJECT_WINDOW, Account, MessageInfo

log = mlog.new("store")

# Messages per transaction: small enough that other work waits at most tens of milliseconds.
REASSIGN_BATCH = 250


@dataclass
class _Node:
    id: int
    received: float
    message_id: str
    subject: str
    thread_id: int = 0
    parents: list[int] = field(default_factory=list)
    missing: bool = False


@dataclass
class ThreadAssigner:
    """The in-memory state of a full reassignment; feed messages in arrival order."""

    nodes: dict[int, _Node] = field(default_factory=dict)
    by_message_id: dict[str, int] = field(default_factory=dict)  # latest message with that Message-ID
    by_subject: dict[str, list[int]] = field(default_factory=dict)  # message ids in arrival order
    members: dict[int, set[int]] = field(default_factory=dict)  # thread id to message ids
    pending: dict[str, list[int]] = field(default_factory=dict)  # missing parent Message-ID to children

    def add(self, mid: int, received: float, info: MessageInfo) -> set[int]:
        """Thread one message; returns the ids whose thread fields changed (this one included)."""
        n = _Node(mid, received, info.message_id, info.subject_base)
        self.nodes[mid] = n
        parent: _Node | None = None
        refs = info.referenced_ids
        for i in range(len(refs) - 1, -1, -1):
            pid = self.by_message_id.get(refs[i])
            if pid is not None and self.nodes[pid].subject == n.subject:
                parent = self.nodes[pid]
                n.missing = i != len(refs) - 1
                break
        else:
            n.missing = bool(refs)
            if not refs and info.is_response and n.subject:
                for pid in reversed(self.by_subject.get(n.subject, [])):
                    p = self.nodes[pid]
                    if received - THREAD_SUBJECT_WINDOW <= p.received <= received:
                        parent = p
                        break
        if parent is not None:
            n.thread_id, n.parents = parent.thread_id, [parent.id, *parent.parents]
        else:
            n.thread_id = mid
        self.members.setdefault(n.thread_id, set()).add(mid)
        if n.message_id:
            self.by_message_id[n.message_id] = mid
        if n.subject:
            self.by_subject.setdefault(n.subject, []).append(mid)
        changed = {mid}
        if n.missing and refs:
            self.pending.setdefault(refs[-1], []).append(mid)
        if n.message_id:
            for child_id in self.pending.pop(n.message_id, []):
                changed |= self._reattach(self.nodes[child_id], n)
        return changed

    def _reattach(self, child: _Node, parent: _Node) -> set[int]:
        if child.subject != parent.subject or child.id in parent.parents or child.id == parent.id:
            return set()
        new_parents = [parent.id, *parent.parents]
        old = self.members.get(child.thread_id, set())
        changed = set()
        for mid in list(old):
            m = self.nodes[mid]
            if mid == child.id:
                m.parents, m.missing = new_parents, False
            elif child.id in m.parents:
                m.parents = m.parents[: m.parents.index(child.id) + 1] + new_parents
            else:
                continue
            old.discard(mid)
            m.thread_id = parent.thread_id
            self.members.setdefault(parent.thread_id, set()).add(mid)
            changed.add(mid)
        return changed


async def reassign_threads(
    acc: Account,
    read_info: Callable[[bytes], MessageInfo],
    *,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = REASSIGN_BATCH,
) -> int:
    """Recompute Message-ID, base subject and thread fields of every message; returns the count."""

    def list_ids() -> list[tuple[int, float]]:
        return [(r[0], r[1]) for r in acc.conn.execute("SELECT id, received FROM message WHERE expunged = 0 ORDER BY id")]

    ids = await acc._db(list_ids)
    assigner = ThreadAssigner()
    done = 0
    t0 = time.monotonic()
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]

        def read_chunk(chunk: list[tuple[int, float]] = chunk) -> list[tuple[int, float, MessageInfo]]:
            out = []
            for mid, received in chunk:
                try:
                    with open(acc.message_path(mid), "rb") as f:
                        head = _read_header(f)
                except FileNotFoundError:
                    continue  # expunged meanwhile
                out.append((mid, received, read_info(head)))
            return out

        infos = await asyncio.to_thread(read_chunk)
        changed: set[int] = set()
        for mid, received, info in infos:
            changed |= assigner.add(mid, received, info)
        infos_by_id = {mid: info for mid, _, info in infos}
        rows = []
        for mid in sorted(changed):
            n = assigner.nodes[mid]
            rows.append((n.thread_id, json.dumps(n.parents), int(n.missing), mid))

        def write(rows: list[tuple[int, str, int, int]] = rows, infos_by_id: dict[int, MessageInfo] = infos_by_id) -> None:
            with acc._tx() as c:
                c.executemany(
                    "UPDATE message SET message_id = ?, subject_base = ? WHERE id = ?",
                    [(i.message_id, i.subject_base, mid) for mid, i in infos_by_id.items()],
                )
                c.executemany("UPDATE message SET thread_id = ?, thread_parent_ids = ?, thread_missing_link = ? WHERE id = ?", rows)

        await acc._db(write)
        done += len(chunk)
        if progress is not None:
            progress(done, len(ids))
        await asyncio.sleep(0)  # let other work of this account run between batches

    def finish() -> None:
        with acc._tx() as c:
            c.execute("DELETE FROM thread_pending")
            c.executemany(
                "INSERT OR IGNORE INTO thread_pending (ref, message) VALUES (?, ?)",
                [(ref, mid) for ref, mids in assigner.pending.items() for mid in mids],
            )
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('threads', 1)")

    await acc._db(finish)
    log.info("threads assigned", account=acc.name, messages=done, duration=round(time.monotonic() - t0, 2))
    return done


# Header sections larger than this are cut for threading; the fields we need come first in practice.
MAX_HEADER_READ = 256 * 1024


def _read_header(f: object) -> bytes:
    """The message header (up to and including the empty line), read in small pieces."""
    read = f.read  # type: ignore[attr-defined]
    buf = b""
    while len(buf) < MAX_HEADER_READ:
        chunk = read(8192)
        if not chunk:
            break
        buf += chunk
        for sep in (b"\r\n\r\n", b"\n\n"):
            i = buf.find(sep)
            if i >= 0:
                return buf[: i + len(sep)]
    return buf
