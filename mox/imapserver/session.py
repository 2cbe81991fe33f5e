"""The state of one IMAP connection, its I/O (with COMPRESS=DEFLATE) and the errors commands raise.

All writes go through :meth:`Session.send`/:meth:`Session.sendlines` and
:meth:`Session.drain`, so compression (RFC 4978) and the write deadline (a
client that stops reading is disconnected, its unsent data bounded by the
transport's high-water mark) apply everywhere.
"""

from __future__ import annotations

import asyncio
import bisect
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mox import mlog
from mox.config.load import Config
from mox.imapproto import write as w
from mox.imapproto.numset import NumSet
from mox.imapproto.reader import (
    DEFAULT_LITERAL_LIMIT,
    CommandReader,
    CommandReceived,
    NeedContinuation,
    ParseFailed,
    RawLine,
)
from mox.serve.services import ConnContext
from mox.store import events as ev
from mox.store.account import Account

if TYPE_CHECKING:
    from .notify import NotifyState

IDLE_TIMEOUT = 30 * 60.0
"""RFC 9051 section 5.4: an autologout timer of at least 30 minutes (tests shorten it)."""

WRITE_TIMEOUT = 5 * 60.0
"""A client that does not read what we send for this long (e.g. during a large FETCH) is disconnected."""

READ_SIZE = 64 * 1024

DRAIN_BELOW = 64 * 1024
"""Buffered output below this is not waited for; above it, drain() waits for the client to read."""

INFLATE_CHUNK = 1024 * 1024
"""Most decompressed bytes taken from one read at a time (COMPRESS=DEFLATE), so a small
compressed input cannot make us hold a huge decompressed buffer."""

APPEND_LIMIT = DEFAULT_LITERAL_LIMIT
"""Largest message accepted by APPEND (APPENDLIMIT, RFC 7889)."""


class Bad(Exception):
    """Reply BAD with this text."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.code = code


class No(Exception):
    """Reply NO with this text (and optional response code)."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.code = code


TRACE_DATA_MIN = 1024
"""Transcript pieces larger than this are logged as bulk data (level tracedata)."""


class Closed(Exception):
    """The connection ends (LOGOUT, timeout, EOF, bad compressed data)."""


Result = tuple[str, str | None]
"""A command's tagged OK text and response code."""


@dataclass
class Session:
    ctx: ConnContext
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    remote_ip: str
    slog: mlog.Log
    tls: bool
    creader: CommandReader = field(default_factory=lambda: CommandReader(literal_limit=APPEND_LIMIT))
    account: Account | None = None
    account_name: str = ""
    sub: ev.Subscription | None = None
    mailbox: str | None = None
    mailbox_id: int = 0
    uidvalidity: int = 0
    modseq: int = 0
    """Highest modseq of the selected mailbox whose changes the session has taken in (read at SELECT,
    raised by every change event); after missed changes, flags changed since then are reported."""
    readonly: bool = False
    uids: list[int] = field(default_factory=list)
    enabled: set[str] = field(default_factory=set)
    """Capabilities turned on with ENABLE (upper case), and CONDSTORE once a command used it."""
    search_result: list[int] = field(default_factory=list)
    """UIDs saved with SEARCH RETURN (SAVE), for "$" (RFC 5182)."""
    notify: NotifyState | None = None
    """Set by NOTIFY SET (RFC 5465), None without NOTIFY or after NOTIFY NONE."""
    disabled: set[str] = field(default_factory=set)
    """Capabilities the account's IMAPCapabilitiesDisabled hides."""
    _deflate: zlib._Compress | None = None
    _inflate: zlib._Decompress | None = None
    _inflate_tail: bytes = b""
    _deflate_unflushed: bool = False

    @property
    def cfg(self) -> Config:
        """The server's current configuration (an account added or a password changed meanwhile counts at the
        next command of an open connection), as upstream."""
        return self.ctx.server.cfg

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        """Mailbox names and strings in UTF-8 (IMAP4rev2 or UTF8=ACCEPT, RFC 6855 section 3)."""
        return "IMAP4REV2" in self.enabled or "UTF8=ACCEPT" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def uidonly(self) -> bool:
        """RFC 9586: no sequence numbers; UIDFETCH and VANISHED instead of FETCH and EXPUNGE."""
        return "UIDONLY" in self.enabled

    def fetch_response(self, seq: int, uid: int) -> w.FetchResponse:
        return w.FetchResponse(uid, uidfetch=True) if self.uidonly else w.FetchResponse(seq)

    # Output.

    def _trace(self, prefix: str, data: bytes | memoryview) -> None:
        """Protocol transcript at the trace levels (mlog): pieces over TRACE_DATA_MIN bytes are bulk
        data (messages: shown at tracedata), and what the client sends before it is logged in may hold
        credentials (shown at traceauth); the rest at trace."""
        if len(data) > TRACE_DATA_MIN:
            level = mlog.Level.TRACEDATA
        elif prefix == "RC: " and self.account is None:
            level = mlog.Level.TRACEAUTH
        else:
            level = mlog.Level.TRACE
        self.slog.trace_line(level, prefix, data)

    def send(self, data: bytes) -> None:
        self._trace("LS: ", data)
        if self._deflate is not None:
            self._deflate_unflushed = True
            data = self._deflate.compress(data)
            if not data:
                return
        self.writer.write(data)

    def sendlines(self, chunks: Iterable[bytes | memoryview]) -> None:
        if self._deflate is not None:
            for c in chunks:
                self.send(bytes(c))
            return
        if self.slog.enabled(mlog.Level.TRACE):
            chunks = list(chunks)
            for c in chunks:
                self._trace("LS: ", c)
        self.writer.writelines(chunks)

    async def drain(self) -> None:
        """Flush compression and wait until the transport takes our data, at most WRITE_TIMEOUT."""
        if self._deflate is not None and self._deflate_unflushed:
            # Only after output: a sync flush of nothing still makes an empty block, which
            # clients (mbsync: "IMAP error: empty response") take for a response.
            self._deflate_unflushed = False
            data = self._deflate.flush(zlib.Z_SYNC_FLUSH)
            if data:
                self.writer.write(data)
        transport = self.writer.transport
        if transport.get_write_buffer_size() <= DRAIN_BELOW and not transport.is_closing():
            # What we wrote went to the socket, or little is left: no need to wait (and no
            # timer and task per FETCH response).
            return
        try:
            await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT)
        except TimeoutError:
            self.slog.info("imap client not reading, disconnecting")
            self.writer.transport.abort()
            raise Closed() from None

    def start_compress(self) -> None:
        """Compress everything sent after this and decompress everything read (RFC 4978 section 3)."""
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)

    @property
    def compressing(self) -> bool:
        return self._deflate is not None

    # Input.

    async def read_more(self) -> None:
        while True:
            if self._inflate is not None and self._inflate_tail:
                data = self._inflate_tail
            else:
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_SIZE), IDLE_TIMEOUT)
                except TimeoutError:
                    self.send(w.untagged("BYE autologout: idle too long"))
                    raise Closed() from None
                if not data:
                    raise Closed()
            if self._inflate is None:
                self._trace("RC: ", data)
                self.creader.receive_data(data)
                return
            try:
                out = self._inflate.decompress(data, INFLATE_CHUNK)
            except zlib.error:
                self.slog.info("imap client sent bad compressed data")
                raise Closed() from None
            self._inflate_tail = self._inflate.unconsumed_tail
            if self._inflate.eof:
                raise Closed()
            if out:
                self._trace("RC: ", out)
                self.creader.receive_data(out)
                return

    async def next_event(self) -> CommandReceived | NeedContinuation | RawLine | ParseFailed:
        while True:
            e = self.creader.next_event()
            if e is not None:
                return e
            await self.drain()
            await self.read_more()

    # Selected mailbox.

    def acc(self) -> Account:
        assert self.account is not None
        return self.account

    def seq_of(self, uid: int) -> int:
        """The sequence number of a known UID, 0 if unknown."""
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else 0

    def msg_index(self, uid: bool, nums: NumSet) -> list[tuple[int, int]]:
        """(sequence number, uid) pairs addressed by a sequence or UID set (or "$", RFC 5182)."""
        if nums.search_result:
            saved = set(self.search_result)
            return [(i + 1, u) for i, u in enumerate(self.uids) if u in saved]
        if uid:
            return [(bisect.bisect_left(self.uids, u) + 1, u) for u in nums.uids(self.uids)]
        if "UIDONLY" in self.enabled:
            raise Bad("sequence numbers not allowed with UIDONLY", "UIDREQUIRED")
        if not self.uids or nums.max_seq(len(self.uids)) > len(self.uids):
            # Also "*" in an empty mailbox (RFC 9051 section 9, seq-number).
            # RFC 9051 section 9 (seq-number): a number above the count is invalid.
            raise Bad(f"message sequence number out of range, mailbox has {len(self.uids)} messages")
        return [(s, self.uids[s - 1]) for s in nums.seqs(len(self.uids))]

    def mailbox_out(self, name: str) -> bytes:
        """A mailbox name for a response: INBOX for Inbox, modified UTF-7 unless UTF-8 is enabled."""
        return w.mailbox(imap_name(name), self.utf8)


def store_name(name: str) -> str:
    """The store's name for a client's mailbox name (INBOX in any case is Inbox)."""
    if name.upper() == "INBOX":
        return "Inbox"
    if name[:6].upper() == "INBOX/":
        return "Inbox" + name[5:]
    return name


def imap_name(name: str) -> str:
    return "INBOX" if name == "Inbox" else name
