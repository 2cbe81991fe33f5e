"""Sans-IO reading of IMAP commands: lines and literals (RFC 9051 section 2.2, RFC 7888).

A :class:`CommandReader` is fed bytes with :meth:`CommandReader.receive_data`
and hands out events with :meth:`CommandReader.next_event`:

- :class:`CommandReceived`: a whole command, parsed (:mod:`.parse`).
- :class:`NeedContinuation`: the client announced a synchronising literal
  ``{n}``; the server must send a ``+`` continuation before the client sends
  it (RFC 9051 section 4.3). Non-synchronising ``{n+}`` (LITERAL+/LITERAL-,
  RFC 7888) is read without asking.
- :class:`RawLine`: after :meth:`CommandReader.expect_line`, one line
  as sent (IDLE's ``DONE``, an AUTHENTICATE response).
- :class:`ParseFailed`: a syntax error or a limit. ``fatal`` means the
  reader cannot find the start of the next command and the server should
  send ``* BYE`` and close (line too long, non-synchronising literal too big).
  Otherwise the command was skipped entirely; for a rejected synchronising
  literal the client does not send the literal nor the rest of the command
  (RFC 9051 section 4.3, RFC 7888 section 4), and neither is expected.

Nothing here raises on bad input; :class:`ParseFailed` is the only error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .parse import Command, ParseError, parse_command, tag_of

__all__ = [
    "LITERAL_MINUS_MAX",
    "MAX_LINE",
    "MAX_LITERALS",
    "OTHER_LITERAL_MAX",
    "OTHER_LITERAL_TOTAL_MAX",
    "CommandReader",
    "CommandReceived",
    "Event",
    "NeedContinuation",
    "ParseFailed",
    "RawLine",
]

MAX_LINE = 64 * 1024
"""Longest line (literals excluded). RFC 7162 section 4 asks servers to accept
at least 8192 octets; upstream mox reads lines through a 64 KiB-limited reader too."""

MAX_LITERALS = 1000
"""Most literals in one command; MULTIAPPEND of many messages needs one each."""

LITERAL_MINUS_MAX = 4096
"""RFC 7888 section 3: with LITERAL-, non-synchronising literals are at most 4096 octets."""

DEFAULT_LITERAL_LIMIT = 100 * 1024 * 1024
"""Default largest literal of APPEND and REPLACE (APPENDLIMIT), as upstream's default message size limit."""

OTHER_LITERAL_MAX = 100 * 1024
"""Largest literal in commands other than APPEND and REPLACE (upstream mox: 100 KiB)."""

OTHER_LITERAL_TOTAL_MAX = 10 * OTHER_LITERAL_MAX
"""Largest sum of literals in one command other than APPEND and REPLACE (upstream mox: 1 MiB)."""

_MESSAGE_COMMAND = re.compile(rb"[^ ]+ (?:UID )?(?:APPEND|REPLACE) ", re.IGNORECASE)

_AGAIN = object()
_LITERAL_END = re.compile(rb"~?\{([0-9]{1,20})(\+?)\}\Z")


@dataclass(frozen=True, slots=True)
class CommandReceived:
    command: Command


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """Send ``+ ...`` now; ``size`` octets follow."""

    tag: str
    size: int


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line requested with expect_line, without CRLF."""

    line: bytes


@dataclass(frozen=True, slots=True)
class ParseFailed:
    """Reply ``tag BAD text`` (``[code]`` if set; untagged when tag is None)."""

    tag: str | None
    text: str
    code: str | None = None
    fatal: bool = False


Event = CommandReceived | NeedContinuation | RawLine | ParseFailed


class CommandReader:
    """Frames and parses client commands.

    Args:
        literal_limit: largest literal accepted in APPEND and REPLACE
            (APPENDLIMIT); larger ones fail with code TOOBIG before their
            data is read. Other commands: OTHER_LITERAL_MAX each,
            OTHER_LITERAL_TOTAL_MAX together.
        literal_plus: LITERAL+ announced (any size non-synchronising).
        literal_minus: LITERAL- announced instead (at most 4096).
        utf8: mailbox names are UTF-8 (IMAP4rev2 enabled, or UTF8=ACCEPT),
            not modified UTF-7. May be changed between commands.
    """

    def __init__(
        self,
        literal_limit: int = DEFAULT_LITERAL_LIMIT,
        literal_plus: bool = True,
        literal_minus: bool = False,
        utf8: bool = False,
    ) -> None:
        self.literal_limit = literal_limit
        self.literal_plus = literal_plus
        self.literal_minus = literal_minus
        self.utf8 = utf8
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._literal: int | None = None  # Octets of literal still to read.
        self._literals = 0
        self._literal_total = 0
        self._expect_line = False
        self._dead = False
        self._scanned = 0

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the connection."""
        if not self._dead:
            self._buf += data

    def expect_line(self) -> None:
        """Make the next event a RawLine (IDLE DONE, AUTHENTICATE responses)."""
        self._expect_line = True

    def next_event(self) -> Event | None:
        """The next event, or None when more data is needed."""
        while True:
            ev = self._step()
            if ev is not _AGAIN:
                return ev  # type: ignore[return-value]

    def _step(self) -> Event | object | None:
        if self._dead:
            return None
        if self._literal is not None:
            if len(self._buf) < self._literal:
                return None
            n = self._literal
            self._parts.append(bytes(self._buf[:n]))
            del self._buf[:n]
            self._literal = None
            self._scanned = 0
        i = self._buf.find(b"\r\n", self._scanned)
        if i < 0:
            # Do not search the same bytes again when more arrive in small pieces.
            self._scanned = max(0, len(self._buf) - 1)
            if len(self._buf) > MAX_LINE:
                return self._fail(self._tag(bytes(self._buf[:200])), "line too long", fatal=True)
            return None
        if i > MAX_LINE:
            return self._fail(self._tag(bytes(self._buf[:200])), "line too long", fatal=True)
        self._scanned = 0
        line = bytes(self._buf[:i])
        del self._buf[: i + 2]
        if self._expect_line and not self._parts:
            self._expect_line = False
            return RawLine(line)
        self._parts.append(line + b"\r\n")
        m = _LITERAL_END.search(line)
        if m is None:
            raw = b"".join(self._parts)
            self._parts = []
            self._literals = 0
            self._literal_total = 0
            try:
                return CommandReceived(parse_command(raw, utf8=self.utf8))
            except ParseError as e:
                return ParseFailed(e.tag, e.text, e.code)
        tag = self._tag(self._parts[0])
        size = int(m.group(1))
        sync = not m.group(2)
        self._literals += 1
        if not sync and not (self.literal_plus or self.literal_minus):
            return self._fail(tag, "non-synchronizing literal not allowed", fatal=True)
        if not sync and not self.literal_plus and size > LITERAL_MINUS_MAX:
            # RFC 7888 section 4: the client sends the data anyway; we cannot skip it safely.
            return self._fail(tag, "non-synchronizing literal too big", code="TOOBIG", fatal=True)
        self._literal_total += size
        what = ""
        if _MESSAGE_COMMAND.match(self._parts[0]):
            if size > self.literal_limit:
                what = "literal too big"
        elif size > OTHER_LITERAL_MAX:
            what = "literal too big"
        elif self._literal_total > OTHER_LITERAL_TOTAL_MAX:
            what = "literals of command too big"
        if self._literals > MAX_LITERALS:
            what = "too many literals"
        if what:
            # RFC 7888 section 4 and RFC 9051 section 7.1: TOOBIG.
            code = "TOOBIG"
            if not sync:
                return self._fail(tag, what, code=code, fatal=True)
            self._parts = []
            self._literals = 0
            self._literal_total = 0
            return ParseFailed(tag, what, code)
        self._literal = size
        if sync:
            return NeedContinuation(tag or "", size)
        return _AGAIN

    def _tag(self, first: bytes) -> str | None:
        return tag_of(first)

    def _fail(self, tag: str | None, text: str, code: str | None = None, fatal: bool = False) -> ParseFailed:
        if fatal:
            self._dead = True
            self._buf.clear()
            self._scanned = 0
        self._parts = []
        self._literals = 0
        self._literal_total = 0
        self._literal = None
        return ParseFailed(tag, text, code, fatal)
