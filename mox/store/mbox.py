"""The mbox format: reading (import) and writing (export), without I/O. See RFC 4155.

An mbox file is messages one after the other, each introduced by a "From "
line (``From sender Sat Jan  1 00:00:00 2022``) and followed by an empty line.
This module also holds what import and export of both mailbox formats share
(mbox here, maildir in :mod:`mox.store.maildir`): line-ending conversion, the
message record an importer gets, and the names of flags kept as keywords.

Decisions, following upstream mox where it decided:

- Messages are stored with CRLF line endings (as SMTP delivers them). Import
  turns a bare LF into CRLF and leaves CRLF alone (upstream does the same, line
  by line, so files mixing both work); export turns CRLF back into LF, except
  after a CR (a line whose content ends in CR keeps its CRLF, so the round
  trip gives the same bytes). A bare LF in a stored message comes back as
  CRLF; stored messages have none unless a client appended one.
- Quoting is mboxrd: export prepends ">" to every line matching ``^>*From ``;
  import removes one ">" from every line matching ``^>+From ``. Together they
  are exact. There is no detection of mboxo files (which only quote
  ``From ``): it cannot be done reliably, and upstream reads every file as
  mboxrd; in an mboxo file a body line that was ``>From `` loses its ">".
- A message starts at a line beginning with ``From `` that follows an empty
  line (or starts the file), as upstream (RFC 4155 section 2). The empty line
  before it is the separator, not part of the message: export writes one
  after every message (terminating a last line without line ending first),
  import removes it. A message without final line ending therefore comes back
  with CRLF appended; nothing else about a stored message changes.
- Flags travel in header fields, as written by mutt, Dovecot and upstream:
  ``Status: R`` (seen), ``X-Status: AFTD`` (answered, flagged, draft,
  deleted) and ``X-Keywords: $Forwarded,$Junk,custom`` (comma separated as
  upstream writes; import also splits on white space, as Dovecot writes).
  Export writes them right after the From line and also writes custom
  keywords (upstream writes only the well-known ones). Import removes them
  from the stored message (as Dovecot hides them from IMAP clients; upstream
  keeps them), and so does export, along with ``Content-Length`` (mboxcl
  readers would trust it, but line-ending conversion changes the length), so
  a stored message never carries stale flags. They are single-line fields,
  as every mbox writer makes them (upstream assumes the same).
- The received time comes from the From line's date (asctime form, UTC, with
  an optional zone as upstream accepts), else from the Date header, else it is
  the time of import. Export writes it in UTC, as RFC 4155 says.
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from dataclasses import dataclass, field

from mox.store.model import Flags

MAX_MESSAGE_SIZE = 100 * 1024 * 1024
"""Largest message imported; larger ones are skipped and reported. Upstream's
default SMTP message size limit (config.DefaultMaxMsgSize) is the same."""

MAX_FROM_LINE = 64 * 1024
"""Longest "From " line; a longer one means the data is not an mbox."""

# Names (lower case) of the flags upstream keeps as flags but mail software
# writes as keywords, with the spellings upstream and Dovecot accept.
KEYWORD_FLAGS: dict[str, Flags] = {
    "$forwarded": Flags.FORWARDED,
    "forwarded": Flags.FORWARDED,
    "$junk": Flags.JUNK,
    "junk": Flags.JUNK,
    "$notjunk": Flags.NOTJUNK,
    "notjunk": Flags.NOTJUNK,
    "$nonjunk": Flags.NOTJUNK,
    "nonjunk": Flags.NOTJUNK,
    "$phishing": Flags.PHISHING,
    "phishing": Flags.PHISHING,
    "$mdnsent": Flags.MDNSENT,
    "mdnsent": Flags.MDNSENT,
}

# How export names them, in the order written.
FLAG_KEYWORDS: list[tuple[Flags, str]] = [
    (Flags.FORWARDED, "$Forwarded"),
    (Flags.JUNK, "$Junk"),
    (Flags.NOTJUNK, "$NotJunk"),
    (Flags.PHISHING, "$Phishing"),
    (Flags.MDNSENT, "$MDNSent"),
]

_SYSTEM_FLAGS = {"\\answered", "\\flagged", "\\deleted", "\\seen", "\\draft"}
_KEYWORD_SPECIALS = set('(){%*"\\]')


def valid_keyword(kw: str) -> bool:
    """Whether kw (lower case) can be stored as a keyword: an IMAP atom
    (RFC 9051 section 9, flag-keyword) in lower case, not a system or
    well-known flag (as upstream's CheckKeyword)."""
    if not kw or kw in _SYSTEM_FLAGS or (kw in KEYWORD_FLAGS and kw.startswith("$")):
        return False
    return all(" " < c <= "~" and not ("A" <= c <= "Z") and c not in _KEYWORD_SPECIALS for c in kw)


def flags_from_keywords(words: list[str]) -> tuple[Flags, list[str]]:
    """Split keyword names (any case) into well-known flags and valid keywords (lower case, sorted)."""
    flags = Flags.NONE
    keywords: set[str] = set()
    for w in words:
        kw = w.strip().lower()
        f = KEYWORD_FLAGS.get(kw)
        if f is not None:
            flags |= f
        elif valid_keyword(kw):
            keywords.add(kw)
    return flags, sorted(keywords)


def flag_keyword_names(flags: Flags, keywords: list[str]) -> list[str]:
    """The well-known flags as keywords ("$Junk"), then the custom keywords."""
    return [name for f, name in FLAG_KEYWORDS if flags & f] + list(keywords)


@dataclass
class ImportMessage:
    """A message read from an mbox or maildir, ready for the store."""

    data: bytes  # CRLF line endings
    flags: Flags = Flags.NONE
    keywords: list[str] = field(default_factory=list)
    received: float | None = None  # unix time; None: the time of import
    position: str = ""  # where it was found, for messages to the user


@dataclass
class ImportProblem:
    """A message that was skipped, or something else the user should know about an import."""

    position: str
    reason: str
    skipped: bool = True  # a message was skipped (not: a warning, e.g. about a keywords file)

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


class MboxFormatError(Exception):
    """The data is not an mbox file at all (it does not start with a From line)."""


# Line endings.


def to_crlf(data: bytes) -> bytes:
    """Message bytes with every line ending CRLF: a bare LF becomes CRLF, CRLF stays.

    (Replacing CRLF by LF first and then every LF by CRLF does exactly that, at C speed.)
    """
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


_CRLF_NOT_AFTER_CR = re.compile(rb"(?<!\r)\r\n")


def to_lf(data: bytes) -> bytes:
    """Message bytes with CRLF turned into LF, except where the line's content ends in CR.

    to_crlf(to_lf(m)) == m for every m without bare LF.
    """
    if b"\r\r\n" in data:
        return _CRLF_NOT_AFTER_CR.sub(b"\n", data)
    return data.replace(b"\r\n", b"\n")


# Quoting (mboxrd).

_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")
_FROM_LINE = re.compile(rb"(?m)^(>*From )")


def unquote_from(data: bytes) -> bytes:
    """Remove one ">" from lines matching ^>+From (mboxrd)."""
    if b">From " not in data:
        return data
    return _QUOTED_FROM.sub(rb"\1", data)


def quote_from(data: bytes) -> bytes:
    """Prepend ">" to lines matching ^>*From (mboxrd)."""
    if b"From " not in data:
        return data
    return _FROM_LINE.sub(rb">\1", data)


# Flag headers.


def _header_end(data: bytes) -> int:
    """Offset just past the header's lines (the empty line not included); len(data) without empty line."""
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        return 0
    i = data.find(b"\n\n")
    j = data.find(b"\n\r\n", 0, i if i >= 0 else len(data))
    if j >= 0:
        return j + 1
    return i + 1 if i >= 0 else len(data)


_META_LINE = re.compile(rb"(?im)^(status|x-status|x-keywords|content-length)[ \t]*:([^\n]*)(?:\n|$)")


def split_meta_headers(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Remove the mbox metadata fields (Status, X-Status, X-Keywords, Content-Length) from the header.

    Returns the message without them, and the removed (lower-case name, value) pairs.
    Only single lines are removed (see the module docstring).
    """
    end = _header_end(data)
    head = data[:end]
    low = head.lower()
    if b"status" not in low and b"x-keywords" not in low and b"content-length" not in low:
        return data, []
    removed = [(m.group(1).lower(), m.group(2).strip()) for m in _META_LINE.finditer(head)]
    if not removed:
        return data, []
    return _META_LINE.sub(b"", head) + data[end:], removed


def flags_from_meta(fields: list[tuple[bytes, bytes]]) -> tuple[Flags, list[str]]:
    """Flags and keywords from Status, X-Status and X-Keywords values (as upstream and Dovecot)."""
    flags = Flags.NONE
    keywords: list[str] = []
    for name, value in fields:
        if name == b"status":
            if b"R" in value:
                flags |= Flags.SEEN
        elif name == b"x-status":
            for c, f in (
                (b"A", Flags.ANSWERED),
                (b"F", Flags.FLAGGED),
                (b"T", Flags.DRAFT),
                (b"D", Flags.DELETED),
            ):
                if c in value:
                    flags |= f
        elif name == b"x-keywords":
            words = value.decode("utf-8", "replace").replace(",", " ").split()
            kwflags, kws = flags_from_keywords(words)
            flags |= kwflags
            keywords.extend(kws)
    return flags, sorted(set(keywords))


def meta_headers(flags: Flags, keywords: list[str]) -> bytes:
    """The Status/X-Status/X-Keywords lines (LF) for flags, empty if none apply."""
    out = b""
    if flags & Flags.SEEN:
        out += b"Status: R\n"
    xs = b""
    for c, f in ((b"A", Flags.ANSWERED), (b"F", Flags.FLAGGED), (b"T", Flags.DRAFT), (b"D", Flags.DELETED)):
        if flags & f:
            xs += c
    if xs:
        out += b"X-Status: " + xs + b"\n"
    words = flag_keyword_names(flags, keywords)
    if words:
        out += b"X-Keywords: " + ",".join(words).encode() + b"\n"
    return out


# From line dates.

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
# asctime: "Sat Jan  1 00:00:00 2022", optionally with a zone before the year
# ("Sat Jan  1 00:00:00 UTC 2022", "Sat Jan 01 00:00:00 +0100 2022"), as
# upstream's ANSIC, UnixDate and RubyDate layouts.
_ASCTIME = re.compile(
    rb"[A-Za-z]{3} +([A-Za-z]{3}) +(\d{1,2}) +(\d{1,2}):(\d{2}):(\d{2}) +(?:([A-Za-z]{1,5}|[+-]\d{4}) +)?(\d{4})\s*$"
)


@functools.lru_cache(maxsize=256)
def parse_from_line_date(line: bytes) -> float | None:
    """The date of a From line ("From sender date") as unix time, or None."""
    parts = line.rstrip(b"\r\n").split(b" ", 2)
    if len(parts) < 3:
        return None
    m = _ASCTIME.search(parts[2].strip())
    if m is None:
        return None
    mon = _MONTHS.get(m.group(1).decode().lower())
    if mon is None:
        return None
    try:
        t = calendar.timegm(
            (
                int(m.group(7)),
                mon,
                int(m.group(2)),
                int(m.group(3)),
                int(m.group(4)),
                int(m.group(5)),
                0,
                0,
                0,
            )
        )
    except (ValueError, OverflowError):
        return None
    zone = m.group(6)
    if zone and zone[:1] in b"+-":
        off = int(zone[1:3]) * 3600 + int(zone[3:5]) * 60
        t -= off if zone[:1] == b"+" else -off
    return float(t)


def from_line(received: float, sender: str = "mox") -> bytes:
    """A From line (LF) with received as its UTC date, as upstream writes it."""
    if not sender or any(c.isspace() for c in sender):
        sender = "mox"
    return (
        b"From "
        + sender.encode("utf-8", "replace")
        + b" "
        + time.asctime(time.gmtime(received)).encode()
        + b"\n"
    )


def _date_header(data: bytes) -> float | None:
    """The Date header of a message as unix time, for messages whose From line has no usable date."""
    from email.utils import parsedate_tz

    end = _header_end(data)
    m = re.search(rb"(?im)^date:[ \t]*([^\r\n]*)", data[:end])
    if m is None:
        return None
    t = parsedate_tz(m.group(1).decode("ascii", "replace"))
    if t is None:
        return None
    try:
        return float(calendar.timegm(t[:9]) - (t[9] or 0))
    except (ValueError, OverflowError):
        return None


# Writing.


def mbox_entry(data: bytes, flags: Flags, keywords: list[str], received: float, sender: str = "mox") -> bytes:
    """One message as written to an mbox file: From line, flag fields, the message
    (LF, quoted, without stale metadata fields), the empty separator line."""
    body, _ = split_meta_headers(data)
    body = quote_from(to_lf(body))
    end = b"\n" if body and not body.endswith(b"\n") else b""
    return from_line(received, sender) + meta_headers(flags, keywords) + body + end + b"\n"


# Reading.


def message_from_raw(raw: bytes, from_line_bytes: bytes, position: str) -> ImportMessage:
    """Turn one mbox entry (between From line and separator, as in the file) into a message for the store."""
    data, meta = split_meta_headers(raw)
    flags, keywords = flags_from_meta(meta)
    data = to_crlf(unquote_from(data))
    received = parse_from_line_date(from_line_bytes)
    if received is None:
        received = _date_header(data)
    return ImportMessage(data, flags, keywords, received, position)


class MessageCounter:
    """Counts the messages in an mbox file fed in chunks, cheaply (for progress on the sending side).

    Counts From lines after an empty line, and the first line; the exact
    parse is MboxReader's.
    """

    _PATTERNS = (b"\n\nFrom ", b"\n\r\nFrom ")

    def __init__(self) -> None:
        self.count = 0
        self._tail = b""
        self._first = True

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Add bytes; returns the count so far."""
        b = bytes(data)
        if self._first and b:
            self._first = False
            self.count += b.startswith(b"From ")
        for pat in self._PATTERNS:
            # The tail is shorter than the pattern, so no match is counted twice.
            self.count += (self._tail[-(len(pat) - 1) :] + b).count(pat)
        self._tail = (self._tail + b[-7:])[-7:]
        return self.count


class MboxReader:
    """Incremental mbox parser: feed it the file's bytes in chunks of any size.

    ``feed`` and ``close`` return the messages completed so far
    (:class:`ImportMessage`) and problems (:class:`ImportProblem`: skipped
    messages, with their number, byte offset and line in the file). Memory
    is one message plus one chunk (a message over the size limit is skipped
    without being kept). Data that does not start with a From line raises
    :class:`MboxFormatError`.
    """

    def __init__(self, name: str = "mbox", max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self.name = name
        self.max_message_size = max_message_size
        self.bytes_read = 0
        self.messages = 0  # messages seen so far, imported or skipped
        self._buf = bytearray()  # from the current message's From line on
        self._buf_offset = 0  # file offset of _buf[0]
        self._line_idx = 0  # _buf index up to which newlines were counted
        self._line = 1  # line number at _line_idx
        self._started = False
        self._from_end = -1  # _buf index just past the current From line; -1: not complete yet
        self._scan = 0  # where to continue looking for a separator
        self._skipping = False  # the current message is too large and being dropped
        self._closed = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[ImportMessage | ImportProblem]:
        """Add bytes of the file; returns the messages they completed."""
        if self._closed:
            raise ValueError("mbox reader already closed")
        self._buf += data
        self.bytes_read += len(data)
        out: list[ImportMessage | ImportProblem] = []
        self._process(out, final=False)
        return out

    def close(self) -> list[ImportMessage | ImportProblem]:
        """End of file: returns the last message."""
        out: list[ImportMessage | ImportProblem] = []
        if not self._closed:
            self._closed = True
            self._process(out, final=True)
            self._buf = bytearray()
        return out

    def _line_at(self, i: int) -> int:
        self._line += self._buf.count(b"\n", self._line_idx, i)
        self._line_idx = i
        return self._line

    def _position(self, start: int) -> str:
        return f"{self.name}: message {self.messages} at byte offset {self._buf_offset + start} (line {self._line_at(start)})"

    def _drop(self, n: int) -> None:
        """Forget _buf[:n]."""
        if n <= 0:
            return
        self._line_at(n)
        self._line_idx = 0
        self._buf_offset += n
        del self._buf[:n]
        self._from_end = self._from_end - n if self._from_end >= 0 else -1
        self._scan = max(0, self._scan - n)

    def _process(self, out: list[ImportMessage | ImportProblem], final: bool) -> None:
        buf = self._buf
        if not self._started:
            if len(buf) < 5 and not final:
                return
            if buf and not buf.startswith(b"From "):
                raise MboxFormatError(f'{self.name}: not an mbox file: it does not start with a "From " line')
            self._started = True
        start = 0  # _buf index of the current message's From line
        while start < len(buf):
            if self._from_end < 0:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    if len(buf) - start > MAX_FROM_LINE:
                        raise MboxFormatError(
                            f"{self.name}: line at byte offset {self._buf_offset + start} too long for a From line"
                        )
                    if final:
                        self._emit(out, start, len(buf))
                        start = len(buf)
                    break
                self._from_end = self._scan = nl + 1
            # A separator is an empty line (LF or CRLF) followed by a line starting with "From ".
            # The empty line may directly follow the From line (an empty message).
            fe = self._from_end
            content_end = -1
            p = buf.find(b"\nFrom ", self._scan)
            while p >= 0:
                if buf[p - 1] == 0x0A and p - 1 >= fe - 1:
                    content_end = p
                    break
                if p - 2 >= fe - 1 and buf[p - 1] == 0x0D and buf[p - 2] == 0x0A:
                    content_end = p - 1
                    break
                p = buf.find(b"\nFrom ", p + 1)
            if p < 0:
                if final:
                    # RFC 4155: the last message is followed by an empty line too.
                    end = len(buf)
                    if buf.endswith(b"\n\n") and end - 1 >= fe:
                        end -= 1
                    elif buf.endswith(b"\n\r\n") and end - 2 >= fe:
                        end -= 2
                    self._emit(out, start, end)
                    start = len(buf)
                    break
                self._scan = max(fe, len(buf) - 5)
                # A separator not yet seen can still end the message at most 6 bytes back.
                if not self._skipping and len(buf) - 6 - fe > self.max_message_size:
                    self.messages += 1
                    self._skipping = True
                    out.append(
                        ImportProblem(
                            self._position(start),
                            f"message larger than {self.max_message_size} bytes, skipped",
                        )
                    )
                if self._skipping:
                    # Keep only the bytes a separator spanning into the next chunk needs.
                    keep_from = max(fe, len(buf) - 8)
                    self._drop(keep_from)
                    buf = self._buf
                    self._from_end = 0
                    start = 0
                break
            self._emit(out, start, content_end)
            start = p + 1
            self._from_end = -1
            self._scan = start
        self._drop(start)

    def _emit(self, out: list[ImportMessage | ImportProblem], start: int, content_end: int) -> None:
        """The message whose From line starts at start ends at content_end."""
        if self._skipping:
            self._skipping = False
            return
        self.messages += 1
        buf = self._buf
        fe = self._from_end if self._from_end >= 0 else len(buf)
        size = content_end - fe
        if size > self.max_message_size:
            out.append(
                ImportProblem(
                    self._position(start), f"message larger than {self.max_message_size} bytes, skipped"
                )
            )
        elif size <= 0 or (size <= 2 and not buf[fe:content_end].strip(b"\r\n")):
            out.append(ImportProblem(self._position(start), "empty message, skipped"))
        else:
            out.append(
                message_from_raw(bytes(buf[fe:content_end]), bytes(buf[start:fe]), self._position(start))
            )
