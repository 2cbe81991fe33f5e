"""SMTP replies as a client reads them: pure parsing with bounded memory.

A reply (RFC 5321 section 4.2) is one or more lines ``code SP text`` or, on
all but the last line, ``code - text``; every line of one reply carries the
same code (section 4.2.1). With ENHANCEDSTATUSCODES (RFC 2034) the text
starts with ``class.subject.detail`` (RFC 3463 section 2), its class matching
the first digit of the code.

RFC 5321 section 4.5.3.1.5 limits a reply line to 512 octets with CRLF; real
servers send longer ones, so we accept up to :data:`MAX_REPLY_LINE` and
treat anything longer as a protocol error instead of buffering it: a peer
sending a 10 MB line costs us at most that much memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_REPLY_LINE",
    "MAX_REPLY_LINES",
    "Reply",
    "ReplyLine",
    "ReplyParseError",
    "ReplyReader",
    "parse_enhanced",
    "parse_reply_line",
]

# Lenient bound on one reply line including CRLF: sixteen times RFC 5321
# section 4.5.3.1.5's 512 octets.
MAX_REPLY_LINE = 8 * 1024
# Lines in one multiline reply. EHLO replies have a few dozen at most.
MAX_REPLY_LINES = 256


class ReplyParseError(ValueError):
    """The peer sent something that is not an SMTP reply (or an over-long one).

    ``line`` is the offending line (shortened), for error messages.
    """

    def __init__(self, msg: str, line: str = "") -> None:
        super().__init__(msg)
        self.line = line


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """One parsed reply line."""

    code: int
    last: bool  # No "-" after the code: the reply ends with this line.
    text: str  # After the code and separator, as sent.


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete reply.

    Attributes:
        code: the three-digit code.
        enhanced: the enhanced status code "class.subject.detail" (RFC 3463)
            of the first line, or empty when the peer did not announce
            ENHANCEDSTATUSCODES or the line has none.
        lines: the text of each line, the enhanced code removed from the
            first line when parsed.
        raw: the lines as received, without CRLF, for error messages.
    """

    code: int
    enhanced: str
    lines: tuple[str, ...]
    raw: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def secode(self) -> str:
        """The enhanced code without its class ("subject.detail"), as upstream's Secode."""
        return self.enhanced.partition(".")[2]

    @property
    def first_line(self) -> str:
        return self.raw[0] if self.raw else ""

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return " / ".join(self.raw)


_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")


def parse_enhanced(code: int, text: str) -> tuple[str, str]:
    """Split an enhanced status code (RFC 3463 section 2) off the start of text.

    Returns ("class.subject.detail", rest) when text starts with one whose
    class is the code's first digit, and ("", text) otherwise.
    """
    m = _ENHANCED.match(text)
    if m is None or int(m.group(1)) != code // 100:
        return "", text
    return f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}", text[m.end() :]


def parse_reply_line(line: bytes) -> ReplyLine:
    """Parse one reply line, without its line ending.

    Reply codes are three digits, the first 2 to 5 (RFC 5321 section 4.2:
    %x32-35 %x30-35 %x30-39; we accept any second and third digit). A line
    with just the code is accepted as last line (section 4.2 allows the text
    to be absent, as upstream).

    Raises:
        ReplyParseError: no code, or no space or dash after it.
    """
    if len(line) < 3 or not line[:3].isdigit() or line[0] not in b"2345":
        raise ReplyParseError("reply line does not start with a reply code", _show(line))
    code = int(line[:3])
    sep = line[3:4]
    if sep == b"":
        return ReplyLine(code, True, "")
    if sep not in (b" ", b"-"):
        raise ReplyParseError("no space or dash after reply code", _show(line))
    # RFC 6531 section 3.7.4.2 lets a server send UTF-8 text to an SMTPUTF8 client.
    return ReplyLine(code, sep == b" ", line[4:].decode("utf-8", "replace"))


def _show(line: bytes | bytearray) -> str:
    s = bytes(line[:200]).decode("utf-8", "replace")
    return s + "..." if len(line) > 200 else s


class ReplyReader:
    """Bytes in, replies out: the reading half of the client's sans-IO protocol.

    ``feed`` the bytes as they arrive, then take replies with ``next_reply``
    until it returns None. Memory is bounded: an incomplete line longer than
    :data:`MAX_REPLY_LINE`, or a reply with more than :data:`MAX_REPLY_LINES`
    lines, raises :class:`ReplyParseError` at once.

    Only CRLF ends a line (RFC 5321 section 2.3.8); a bare LF is tolerated as
    line end as well, as most clients do.

    ``enhanced_codes`` says whether to split enhanced status codes off replies;
    set it once the peer announced ENHANCEDSTATUSCODES (RFC 2034 section 3).
    """

    def __init__(self, *, max_line: int = MAX_REPLY_LINE, max_lines: int = MAX_REPLY_LINES) -> None:
        self.enhanced_codes = False
        self._buf = bytearray()
        self._lines: list[ReplyLine] = []
        self._raw: list[str] = []
        self._max_line = max_line
        self._max_lines = max_lines
        self.failed: ReplyParseError | None = None

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a returned reply's lines."""
        return len(self._buf)

    def take_buffered(self) -> bytes:
        """Remove and return unparsed octets, e.g. the start of a TLS handshake after "220" to STARTTLS."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def feed(self, data: bytes) -> None:
        if self.failed is not None:
            raise self.failed
        self._buf += data
        if len(self._buf) > self._max_line and self._buf.find(b"\n", 0, self._max_line) < 0:
            self._fail(ReplyParseError(f"reply line longer than {self._max_line} octets", _show(self._buf)))

    def _fail(self, e: ReplyParseError) -> None:
        self.failed = e
        self._buf.clear()
        raise e

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None when more data is needed.

        Raises:
            ReplyParseError: malformed or over-long line, mixed codes in one
                reply, too many lines. The reader stays failed.
        """
        if self.failed is not None:
            raise self.failed
        buf = self._buf
        pos = 0
        try:
            while True:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if len(buf) - pos > self._max_line:
                        raise ReplyParseError(
                            f"reply line longer than {self._max_line} octets", _show(buf[pos:])
                        )
                    return None
                if nl + 1 - pos > self._max_line:
                    raise ReplyParseError(f"reply line longer than {self._max_line} octets", _show(buf[pos:]))
                end = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl
                raw = bytes(buf[pos:end])
                pos = nl + 1
                line = parse_reply_line(raw)
                if self._lines and line.code != self._lines[0].code:
                    # RFC 5321 section 4.2.1: every line of a multiline reply has the same code.
                    raise ReplyParseError(
                        f"multiline reply with different codes {self._lines[0].code} and {line.code}",
                        _show(raw),
                    )
                self._lines.append(line)
                self._raw.append(raw.decode("utf-8", "replace"))
                if line.last:
                    return self._finish()
                if len(self._lines) >= self._max_lines:
                    raise ReplyParseError(f"reply with more than {self._max_lines} lines", _show(raw))
        except ReplyParseError as e:
            self._fail(e)
            raise  # pragma: no cover  (_fail raises)
        finally:
            if pos and self.failed is None:
                del buf[:pos]

    def _finish(self) -> Reply:
        lines = [ln.text for ln in self._lines]
        code = self._lines[0].code
        enhanced = ""
        if self.enhanced_codes:
            # RFC 2034 section 4: every line starts with the code; we keep the first and strip all.
            enhanced, lines[0] = parse_enhanced(code, lines[0])
            if enhanced:
                for i in range(1, len(lines)):
                    e, rest = parse_enhanced(code, lines[i])
                    if e == enhanced:
                        lines[i] = rest
        reply = Reply(code, enhanced, tuple(lines), tuple(self._raw))
        self._lines = []
        self._raw = []
        return reply
