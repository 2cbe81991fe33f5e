"""Change events of an account, published after commit, in commit order (DESIGN.md section 4).

IMAP IDLE/NOTIFY and the webmail event stream subscribe with
:meth:`ChangeBus.subscribe`. A subscriber has a bounded queue of committed
change batches; a subscriber that falls behind never blocks delivery: its
queue is dropped and it receives a single :class:`Resync`, after which it
must re-read the state it cares about.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from mox.store.model import Flags, MailboxCounts, SpecialUse

# A subscriber may lag this many commits before it is told to resynchronise.
SUBSCRIBER_QUEUE_MAX = 1000


@dataclass(frozen=True)
class MessageAdded:
    mailbox_id: int
    uid: int
    message_id: int
    modseq: int
    flags: Flags
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class MessagesRemoved:
    """Messages expunged (or moved out) of a mailbox."""

    mailbox_id: int
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True)
class FlagsChanged:
    mailbox_id: int
    uid: int
    modseq: int
    mask: Flags  # which system flags changed
    flags: Flags
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class ThreadChanged:
    message_ids: tuple[int, ...]
    muted: bool
    collapsed: bool


@dataclass(frozen=True)
class MailboxAdded:
    mailbox_id: int
    name: str
    special_use: SpecialUse | None


@dataclass(frozen=True)
class MailboxRemoved:
    mailbox_id: int
    name: str


@dataclass(frozen=True)
class MailboxRenamed:
    mailbox_id: int
    old_name: str
    new_name: str


@dataclass(frozen=True)
class SubscriptionAdded:
    name: str


@dataclass(frozen=True)
class SubscriptionRemoved:
    name: str


@dataclass(frozen=True)
class MailboxSpecialUse:
    mailbox_id: int
    name: str
    special_use: SpecialUse | None


@dataclass(frozen=True)
class MailboxKeywords:
    mailbox_id: int
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class AnnotationChanged:
    """An IMAP METADATA entry of a mailbox (or of the account: mailbox_id 0, name "") was set or removed."""

    mailbox_id: int
    name: str
    key: str


@dataclass(frozen=True)
class MailboxCountsChanged:
    mailbox_id: int
    counts: MailboxCounts


Change = (
    MessageAdded
    | MessagesRemoved
    | FlagsChanged
    | ThreadChanged
    | MailboxAdded
    | MailboxRemoved
    | MailboxRenamed
    | SubscriptionAdded
    | SubscriptionRemoved
    | MailboxSpecialUse
    | MailboxKeywords
    | MailboxCountsChanged
    | AnnotationChanged
)


@dataclass(frozen=True)
class Resync:
    """The subscriber missed changes; it must re-read state."""


@dataclass(frozen=True)
class Batch:
    """The changes of one committed transaction."""

    changes: tuple[Change, ...]
    source: object = None  # the subscriber/session that made the change, to skip self-notification


@dataclass
class Subscription:
    """A subscriber's view: iterate with ``async for item in sub`` (Batch or Resync)."""

    bus: ChangeBus
    loop: asyncio.AbstractEventLoop
    queue: deque[Batch | Resync] = field(default_factory=deque)
    waiter: asyncio.Future[None] | None = None
    closed: bool = False
    maxsize: int = SUBSCRIBER_QUEUE_MAX

    def _deliver(self, item: Batch) -> None:
        # On the subscriber's loop.
        if self.closed:
            return
        if len(self.queue) >= self.maxsize:
            self.queue.clear()
            self.queue.append(Resync())
        elif not (self.queue and isinstance(self.queue[-1], Resync)):
            self.queue.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def pending(self) -> list[Batch | Resync]:
        """Take everything queued now, without waiting."""
        items = list(self.queue)
        self.queue.clear()
        return items

    async def get(self) -> Batch | Resync:
        while not self.queue:
            if self.closed:
                raise StopAsyncIteration
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.queue.popleft()

    def __aiter__(self) -> AsyncIterator[Batch | Resync]:
        return self

    async def __anext__(self) -> Batch | Resync:
        return await self.get()

    def close(self) -> None:
        self.closed = True
        self.bus._remove(self)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class ChangeBus:
    """Fan-out of committed change batches to subscribers; thread-safe publish."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(self, maxsize: int = SUBSCRIBER_QUEUE_MAX) -> Subscription:
        sub = Subscription(self, asyncio.get_running_loop(), maxsize=maxsize)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, batch: Batch) -> None:
        """Queue a committed batch for every subscriber. Callable from any thread;
        call_soon_threadsafe keeps the order of calls, so commit order is kept."""
        if not batch.changes:
            return
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.loop.call_soon_threadsafe(sub._deliver, batch)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
