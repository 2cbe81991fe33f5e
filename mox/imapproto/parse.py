"""Parsing of client commands into typed values (RFC 9051 section 9, RFC 3501 section 9).

Also the extensions upstream mox implements: ENABLE (RFC 5161), CONDSTORE and
QRESYNC (RFC 7162), LIST-EXTENDED and LIST-STATUS (RFC 5258, RFC 5819),
SPECIAL-USE (RFC 6154), ESEARCH and SEARCHRES (RFC 4731, RFC 5182), MOVE
(RFC 6851), UIDPLUS (RFC 4315), MULTIAPPEND (RFC 3502), BINARY (RFC 3516),
ID (RFC 2971), QUOTA (RFC 9208), METADATA (RFC 5464), COMPRESS (RFC 4978),
SORT and THREAD (RFC 5256), NOTIFY (RFC 5465, basic forms), REPLACE
(RFC 8508), UTF8=ACCEPT (RFC 6855), SASL-IR (RFC 4959), APPENDLIMIT
(RFC 7889), multimailbox ESEARCH (RFC 7377).

:func:`parse_command` takes one whole command as sent, literals included
(the framing is done by :mod:`.reader`), and returns a :class:`Command`
subclass or raises :class:`ParseError`. Keywords are case-insensitive;
values keep their case except where noted (flags and keywords keep theirs,
atoms naming options are upper-cased).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from dataclasses import dataclass, field

from . import utf7
from .numset import NumRange, NumSet

__all__ = [
    "Append",
    "AppendMessage",
    "Authenticate",
    "Command",
    "Compress",
    "Copy",
    "Create",
    "Enable",
    "Esearch",
    "Examine",
    "Expunge",
    "Fetch",
    "FetchAtt",
    "GetMetadata",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "List",
    "Login",
    "Mailbox",
    "Notify",
    "NotifyGroup",
    "ParseError",
    "Qresync",
    "Rename",
    "Replace",
    "Search",
    "SearchKey",
    "Section",
    "Select",
    "SetMetadata",
    "Simple",
    "Sort",
    "Status",
    "Store",
    "Thread",
    "parse_command",
    "tag_of",
]


class ParseError(Exception):
    """A command does not follow the grammar; reply ``tag BAD [code] text``."""

    def __init__(self, text: str, tag: str | None = None, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag
        self.code = code


# RFC 9051 section 9: ATOM-CHAR is any CHAR except atom-specials
# "(" ")" "{" SP CTL list-wildcards quoted-specials resp-specials.
_ATOM_SPECIALS = set(b'(){ %*"\\]') | set(range(0x20)) | {0x7F}
_ATOM_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in _ATOM_SPECIALS)
_ASTRING_CHARS = _ATOM_CHARS + b"]"
# tag: 1*<any ASTRING-CHAR except "+">
_TAG_RE = re.compile(rb"[" + re.escape(bytes(c for c in _ASTRING_CHARS if c != ord("+"))) + rb"]+")
_LIST_CHARS = _ATOM_CHARS + b"%*]"


def tag_of(line: bytes) -> str | None:
    """The tag at the start of a command line, or None when there is none."""
    m = _TAG_RE.match(line)
    if m is None or m.end() >= len(line) or line[m.end()] != 0x20:
        return None
    return m.group().decode("ascii")


@dataclass(slots=True)
class Command:
    """Base of all commands; ``name`` is the upper-case command name."""

    tag: str
    name: str


@dataclass(slots=True)
class Simple(Command):
    """Commands without arguments: CAPABILITY NOOP LOGOUT STARTTLS CHECK CLOSE
    UNSELECT EXPUNGE IDLE NAMESPACE (and UID EXPUNGE, see :class:`Expunge`)."""


@dataclass(slots=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE with ``uids`` (RFC 4315 section 2.1)."""

    uids: NumSet | None = None


@dataclass(slots=True)
class Authenticate(Command):
    """RFC 9051 section 6.2.2; ``initial_response`` from SASL-IR, b"" for "="."""

    mechanism: str = ""
    initial_response: bytes | None = None


@dataclass(slots=True)
class Login(Command):
    username: str = ""
    password: str = ""


@dataclass(slots=True)
class Enable(Command):
    capabilities: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Compress(Command):
    mechanism: str = ""


@dataclass(slots=True)
class Qresync:
    """RFC 7162 section 3.2.5: QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])."""

    uidvalidity: int
    modseq: int
    known_uids: NumSet | None = None
    seq_match: tuple[NumSet, NumSet] | None = None


@dataclass(slots=True)
class Select(Command):
    """SELECT, or EXAMINE when ``readonly``."""

    mailbox: str = ""
    readonly: bool = False
    condstore: bool = False
    qresync: Qresync | None = None


Examine = Select


@dataclass(slots=True)
class Mailbox(Command):
    """DELETE SUBSCRIBE UNSUBSCRIBE GETQUOTAROOT: one mailbox argument."""

    mailbox: str = ""


@dataclass(slots=True)
class Create(Command):
    mailbox: str = ""
    special_use: list[str] = field(default_factory=list)
    """RFC 6154 section 3: CREATE name (USE (\\Archive ...)); as sent."""


@dataclass(slots=True)
class Rename(Command):
    old: str = ""
    new: str = ""


@dataclass(slots=True)
class List(Command):
    """LIST (RFC 9051 section 6.3.9, RFC 5258) or LSUB (``name`` "LSUB").

    Selection and return options are upper-cased; ``return_status`` holds
    the STATUS items of RETURN (STATUS (...)) (RFC 5819), None without.
    Patterns are decoded like mailbox names.
    """

    reference: str = ""
    patterns: list[str] = field(default_factory=list)
    selection: list[str] = field(default_factory=list)
    return_options: list[str] = field(default_factory=list)
    return_status: list[str] | None = None
    extended: bool = False
    """Whether the extended syntax was used (selection options, multiple patterns or RETURN)."""
    return_metadata: list[str] | None = None
    """Entry names of RETURN (METADATA (...)) (RFC 9590), None without."""


@dataclass(slots=True)
class Status(Command):
    mailbox: str = ""
    items: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AppendMessage:
    flags: list[str] = field(default_factory=list)
    date_time: datetime.datetime | None = None
    data: bytes = b""
    binary: bool = False
    """Sent as literal8 ``~{n}`` (RFC 3516 section 4.4)."""
    utf8: bool = False
    """Sent as UTF8 (literal8) (RFC 6855 section 4)."""


@dataclass(slots=True)
class Append(Command):
    """APPEND with one or more messages (MULTIAPPEND, RFC 3502)."""

    mailbox: str = ""
    messages: list[AppendMessage] = field(default_factory=list)


@dataclass(slots=True)
class SearchKey:
    """A search key (RFC 9051 section 6.4.4).

    ``op`` is the upper-case key name; "AND" holds a parenthesised list in
    ``keys``, "OR" two ``keys``, "NOT" one. A bare sequence set is op "SEQ"
    (``nums``), UID is "UID" (``nums``). Strings are in ``text``, header
    names in ``field``, dates in ``date``, numbers in ``number``, flags and
    keywords in ``text``. MODSEQ: ``number`` and the optional entry name and
    type in ``field``/``text`` (RFC 7162 section 3.1.5). RFC 8514's SAVEDATESUPPORTED etc. not handled.
    """

    op: str
    keys: list[SearchKey] = field(default_factory=list)
    text: str | None = None
    field: str | None = None
    date: datetime.date | None = None
    number: int | None = None
    nums: NumSet | None = None


@dataclass(slots=True)
class Search(Command):
    """SEARCH / UID SEARCH. ``return_options`` None means no RETURN (plain
    SEARCH response); [] means RETURN () which RFC 4731 treats as ALL."""

    uid: bool = False
    charset: str | None = None
    key: SearchKey = field(default_factory=lambda: SearchKey("AND"))
    return_options: list[str] | None = None


@dataclass(slots=True)
class Esearch(Command):
    """RFC 7377 multimailbox ESEARCH: sources as (filter, mailboxes)."""

    uid: bool = False
    sources: list[tuple[str, list[str]]] = field(default_factory=list)
    charset: str | None = None
    key: SearchKey = field(default_factory=lambda: SearchKey("AND"))
    return_options: list[str] | None = None


@dataclass(slots=True)
class Section:
    """BODY[...] section (RFC 9051 section 6.4.5): ``part`` numbers then
    ``text`` one of None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
    "TEXT", "MIME", with header field names in ``fields`` (upper-cased)."""

    part: list[int] = field(default_factory=list)
    text: str | None = None
    fields: list[str] = field(default_factory=list)


@dataclass(slots=True)
class FetchAtt:
    """A fetch attribute. ``name`` upper-case: ENVELOPE FLAGS INTERNALDATE
    RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE BODY BODYSTRUCTURE UID
    MODSEQ BINARY BINARY.SIZE PREVIEW SAVEDATE EMAILID THREADID. ``section``
    for BODY[...]/BINARY[...] (BINARY sections are only part numbers);
    ``peek`` for .PEEK; ``partial`` (offset, count) for <o.c>."""

    name: str
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None
    lazy: bool = False
    """PREVIEW (LAZY) (RFC 8970 section 3)."""


@dataclass(slots=True)
class Fetch(Command):
    """FETCH / UID FETCH; macros ALL FAST FULL are expanded (RFC 9051 section 6.4.5).

    ``changedsince``/``vanished`` are the RFC 7162 section 3.1.4/3.2.6 modifiers.
    """

    uid: bool = False
    nums: NumSet = field(default_factory=NumSet)
    atts: list[FetchAtt] = field(default_factory=list)
    changedsince: int | None = None
    vanished: bool = False


@dataclass(slots=True)
class Store(Command):
    """STORE; ``mode`` "+" "-" or "" (replace); RFC 7162 UNCHANGEDSINCE."""

    uid: bool = False
    nums: NumSet = field(default_factory=NumSet)
    mode: str = ""
    silent: bool = False
    flags: list[str] = field(default_factory=list)
    unchangedsince: int | None = None


@dataclass(slots=True)
class Copy(Command):
    """COPY or MOVE (``name``), UID or not."""

    uid: bool = False
    nums: NumSet = field(default_factory=NumSet)
    mailbox: str = ""


@dataclass(slots=True)
class Id(Command):
    """RFC 2971; ``params`` None for NIL. Values may be None (NIL)."""

    params: list[tuple[str, str | None]] | None = None


@dataclass(slots=True)
class GetQuota(Command):
    root: str = ""


GetQuotaRoot = Mailbox


@dataclass(slots=True)
class GetMetadata(Command):
    """RFC 5464 section 4.2; options MAXSIZE and DEPTH ("0" "1" "infinity")."""

    mailbox: str = ""
    entries: list[str] = field(default_factory=list)
    maxsize: int | None = None
    depth: str | None = None


@dataclass(slots=True)
class SetMetadata(Command):
    """RFC 5464 section 4.3; None value removes the entry."""

    mailbox: str = ""
    values: list[tuple[str, bytes | None]] = field(default_factory=list)


@dataclass(slots=True)
class Sort(Command):
    """RFC 5256 section 3 SORT; ``criteria`` as (reverse, key) pairs,
    key ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO (RFC 5957)."""

    uid: bool = False
    criteria: list[tuple[bool, str]] = field(default_factory=list)
    charset: str = ""
    key: SearchKey = field(default_factory=lambda: SearchKey("AND"))
    return_options: list[str] | None = None


@dataclass(slots=True)
class Thread(Command):
    """RFC 5256 section 3 THREAD."""

    uid: bool = False
    algorithm: str = ""
    charset: str = ""
    key: SearchKey = field(default_factory=lambda: SearchKey("AND"))


@dataclass(slots=True)
class NotifyGroup:
    """One event group of NOTIFY SET (RFC 5465 section 6): filter is SELECTED,
    SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE or MAILBOXES."""

    filter: str
    mailboxes: list[str] = field(default_factory=list)
    events: list[str] | None = None
    """Event names upper-cased; None for NONE. FETCH attributes of MessageNew in ``fetch_atts``."""
    fetch_atts: list[FetchAtt] = field(default_factory=list)


@dataclass(slots=True)
class Notify(Command):
    """NOTIFY NONE (``groups`` None) or NOTIFY SET [STATUS] groups."""

    status: bool = False
    groups: list[NotifyGroup] | None = None


@dataclass(slots=True)
class Replace(Command):
    """RFC 8508 REPLACE / UID REPLACE."""

    uid: bool = False
    num: int = 0
    mailbox: str = ""
    message: AppendMessage = field(default_factory=AppendMessage)


_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]

# RFC 9051 section 6.4.4 search keys by argument kind.
_SK_NONE = {
    "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN", "UNANSWERED", "UNDELETED", "UNDRAFT",
    "UNFLAGGED", "UNSEEN", "NEW", "OLD", "RECENT", "SAVEDATESUPPORTED",
}
_SK_STRING = {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
_SK_DATE = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"}
_SK_NUMBER = {"LARGER", "SMALLER", "OLDER", "YOUNGER"}
_SK_FLAG = {"KEYWORD", "UNKEYWORD"}

_STATUS_ITEMS = {
    "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "HIGHESTMODSEQ",
    "APPENDLIMIT", "MAILBOXID", "DELETED-STORAGE",
}

_FETCH_SIMPLE = {
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "RFC822.SIZE",
    "BODYSTRUCTURE", "UID", "MODSEQ", "PREVIEW", "SAVEDATE", "EMAILID", "THREADID",
}
_FETCH_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}

_SORT_KEYS = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}

_MAX_DEPTH = 100
"""Deepest nesting of search keys and lists; deeper input is refused rather than recursing on."""

_NUMBER_MAX = 0xFFFFFFFF
_NUMBER64_MAX = 0x7FFFFFFFFFFFFFFF  # RFC 9051 number64, RFC 7162 mod-sequence-value (up to 2^63-1)


class _Parser:
    def __init__(self, data: bytes, utf8: bool) -> None:
        self.d = data
        self.p = 0
        self.utf8 = utf8
        self.tag: str | None = None
        self.depth = 0

    # Low level.

    def err(self, msg: str) -> ParseError:
        return ParseError(msg, self.tag)

    def peek(self) -> int:
        return self.d[self.p] if self.p < len(self.d) else -1

    def take(self, s: bytes) -> bool:
        """Consume s (case-insensitive) if present."""
        n = len(s)
        if self.d[self.p : self.p + n].upper() == s.upper():
            self.p += n
            return True
        return False

    def need(self, s: bytes) -> None:
        if not self.take(s):
            raise self.err(f"expected {s.decode()!r}")

    def sp(self) -> None:
        self.need(b" ")

    def at_end(self) -> bool:
        return self.d[self.p :] == b"\r\n"

    def end(self) -> None:
        if not self.at_end():
            raise self.err("unexpected data at end of command")

    def chars(self, allowed: bytes, what: str) -> bytes:
        s = self.p
        d = self.d
        while self.p < len(d) and d[self.p] in allowed:
            self.p += 1
        if self.p == s:
            raise self.err(f"expected {what}")
        return d[s : self.p]

    def atom(self) -> str:
        return self.chars(_ATOM_CHARS, "atom").decode("ascii")

    def keyword(self) -> str:
        return self.atom().upper()

    def number(self, maxval: int = _NUMBER_MAX) -> int:
        b = self.chars(b"0123456789", "number")
        if len(b) > 20 or int(b) > maxval:
            raise self.err("number too large")
        return int(b)

    def nznumber(self, maxval: int = _NUMBER_MAX) -> int:
        n = self.number(maxval)
        if n == 0:
            raise self.err("expected nonzero number")
        return n

    def push(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.err("too deeply nested")

    def pop(self) -> None:
        self.depth -= 1

    # Strings.

    def quoted(self) -> bytes:
        self.need(b'"')
        out = bytearray()
        d = self.d
        while True:
            if self.p >= len(d):
                raise self.err("unterminated quoted string")
            c = d[self.p]
            self.p += 1
            if c == 0x22:
                return bytes(out)
            if c == 0x5C:
                if self.p >= len(d) or d[self.p] not in b'"\\':
                    raise self.err("bad escape in quoted string")
                out.append(d[self.p])
                self.p += 1
            elif c in (0x0D, 0x0A, 0):
                raise self.err("CR, LF or NUL in quoted string")
            else:
                out.append(c)

    def literal(self, allow8: bool = False) -> bytes:
        """{n}CRLF data, {n+}, and ~{n} when allow8 (literal8)."""
        if self.take(b"~"):
            if not allow8:
                raise self.err("literal8 not allowed here")
        self.need(b"{")
        n = self.number(1 << 62)
        self.take(b"+")
        self.need(b"}\r\n")
        if self.p + n > len(self.d):
            raise self.err("short literal")
        data = self.d[self.p : self.p + n]
        self.p += n
        if not allow8 and b"\0" in data:
            raise self.err("NUL in literal")
        return data

    def at_literal(self) -> bool:
        """Whether a literal (or a literal8, "~{") starts here; "~" alone is an atom character."""
        c = self.peek()
        return c == 0x7B or (c == 0x7E and self.d[self.p + 1 : self.p + 2] == b"{")

    def string(self) -> bytes:
        if self.peek() == 0x22:
            return self.quoted()
        if self.at_literal():
            return self.literal()
        raise self.err("expected string")

    def astring_bytes(self) -> bytes:
        if self.peek() == 0x22 or self.at_literal():
            return self.string()
        return self.chars(_ASTRING_CHARS, "astring")

    def text(self, b: bytes) -> str:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise self.err("invalid UTF-8") from None

    def astring(self) -> str:
        return self.text(self.astring_bytes())

    def nstring(self) -> bytes | None:
        if self.take(b"NIL"):
            return None
        return self.string()

    def mailbox_name(self, raw: bytes) -> str:
        s = self.text(raw)
        # RFC 9051 section 5.1: INBOX is case-insensitive.
        if s.upper() == "INBOX":
            return "INBOX"
        if not self.utf8:
            try:
                s = utf7.decode(s)
            except utf7.UTF7Error as e:
                raise self.err(f"invalid mailbox name: {e}") from None
            if s.upper() == "INBOX":
                return "INBOX"
        return s

    def mailbox(self) -> str:
        return self.mailbox_name(self.astring_bytes())

    def list_mailbox(self) -> str:
        if self.peek() == 0x22 or self.at_literal():
            raw = self.string()
        else:
            raw = self.chars(_LIST_CHARS, "list-mailbox")
        s = self.text(raw)
        if not self.utf8:
            try:
                s = utf7.decode(s)
            except utf7.UTF7Error as e:
                raise self.err(f"invalid mailbox pattern: {e}") from None
        return s

    def paren_list(self, item: str) -> list[str]:
        """( item *(SP item) ) of atoms or flags; empty allowed."""
        self.need(b"(")
        out: list[str] = []
        while not self.take(b")"):
            if out:
                self.sp()
            out.append(self.flag() if item == "flag" else self.atom())
        return out

    def flag(self) -> str:
        if self.take(b"\\"):
            if self.take(b"*"):
                return "\\*"
            return "\\" + self.atom()
        return self.atom()

    def flag_list(self) -> list[str]:
        return self.paren_list("flag")

    # Sequence sets.

    def seq_number(self) -> int | None:
        if self.take(b"*"):
            return None
        return self.nznumber()

    def numset(self, allow_search_result: bool = True) -> NumSet:
        if self.take(b"$"):
            if not allow_search_result:
                raise self.err("$ not allowed here")
            return NumSet(search_result=True)
        ranges: list[NumRange] = []
        while True:
            a = self.seq_number()
            b = a
            if self.take(b":"):
                b = self.seq_number()
            ranges.append(NumRange(a, b))
            if not self.take(b","):
                return NumSet(tuple(ranges))

    # Dates.

    def date(self) -> datetime.date:
        q = self.take(b'"')
        day = self.chars(b"0123456789", "day")
        if len(day) > 2:
            raise self.err("bad day")
        self.need(b"-")
        mon = self.d[self.p : self.p + 3].upper().decode("ascii", "replace")
        if mon not in _MONTHS:
            raise self.err("bad month")
        self.p += 3
        self.need(b"-")
        year = self.chars(b"0123456789", "year")
        if len(year) != 4:
            raise self.err("bad year")
        if q:
            self.need(b'"')
        try:
            return datetime.date(int(year), _MONTHS.index(mon) + 1, int(day))
        except ValueError:
            raise self.err("invalid date") from None

    def date_time(self) -> datetime.datetime:
        """RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz", day may start with a space."""
        m = re.compile(
            rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
        ).match(self.d, self.p)
        if m is None:
            raise self.err("bad date-time")
        mon = m.group(2).decode().upper()
        if mon not in _MONTHS:
            raise self.err("bad month in date-time")
        try:
            off = datetime.timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
            if m.group(7) == b"-":
                off = -off
            dt = datetime.datetime(
                int(m.group(3)), _MONTHS.index(mon) + 1, int(m.group(1).strip()),
                int(m.group(4)), int(m.group(5)), int(m.group(6)), tzinfo=datetime.timezone(off),
            )
        except ValueError:
            raise self.err("invalid date-time") from None
        self.p = m.end()
        return dt

    # Search.

    def search_program(self) -> SearchKey:
        """search-key *(SP search-key), as an AND."""
        keys = [self.search_key()]
        while self.take(b" "):
            keys.append(self.search_key())
        return keys[0] if len(keys) == 1 else SearchKey("AND", keys)

    def search_key(self) -> SearchKey:
        self.push()
        try:
            return self._search_key()
        finally:
            self.pop()

    def _search_key(self) -> SearchKey:
        if self.take(b"("):
            keys = [self.search_key()]
            while not self.take(b")"):
                self.sp()
                keys.append(self.search_key())
            return SearchKey("AND", keys)
        c = self.peek()
        if c == 0x2A or c == 0x24 or 0x30 <= c <= 0x39:
            return SearchKey("SEQ", nums=self.numset())
        op = self.keyword()
        if op in _SK_NONE:
            return SearchKey(op)
        self.sp()
        if op in _SK_STRING:
            return SearchKey(op, text=self.astring())
        if op in _SK_DATE:
            return SearchKey(op, date=self.date())
        if op in ("OLDER", "YOUNGER"):
            # RFC 5032 section 4: WITHIN takes nz-number.
            return SearchKey(op, number=self.nznumber())
        if op in _SK_NUMBER:
            return SearchKey(op, number=self.number(_NUMBER64_MAX))
        if op in _SK_FLAG:
            return SearchKey(op, text=self.flag())
        if op == "HEADER":
            name = self.astring()
            self.sp()
            return SearchKey(op, field=name, text=self.astring())
        if op == "NOT":
            return SearchKey(op, [self.search_key()])
        if op == "OR":
            a = self.search_key()
            self.sp()
            return SearchKey(op, [a, self.search_key()])
        if op == "UID":
            return SearchKey(op, nums=self.numset())
        if op == "MODSEQ":
            # RFC 7162 section 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
            if self.peek() == 0x22:
                name = self.text(self.quoted())
                self.sp()
                typ = self.keyword().lower()
                if typ not in ("priv", "shared", "all"):
                    raise self.err("bad MODSEQ entry type")
                self.sp()
                return SearchKey(op, field=name, text=typ, number=self.number(_NUMBER64_MAX))
            return SearchKey(op, number=self.number(_NUMBER64_MAX))
        raise self.err(f"unknown search key {op}")

    def search_return(self) -> list[str] | None:
        """RFC 4731 section 3: RETURN (MIN MAX ALL COUNT SAVE), RFC 9051 also PARTIAL not supported."""
        if not self.take(b"RETURN "):
            return None
        opts = [o.upper() for o in self.paren_list("atom")]
        for o in opts:
            if o not in ("MIN", "MAX", "ALL", "COUNT", "SAVE"):
                raise self.err(f"unknown search return option {o}")
        self.sp()
        return opts

    def search_charset(self) -> str | None:
        if self.take(b"CHARSET "):
            cs = self.astring()
            self.sp()
            return cs
        return None

    # Fetch.

    def section(self) -> Section:
        sec = Section()
        self.need(b"[")
        if self.take(b"]"):
            return sec
        while 0x30 <= self.peek() <= 0x39:
            sec.part.append(self.nznumber())
            if not self.take(b"."):
                self.need(b"]")
                return sec
        if self.take(b"HEADER.FIELDS.NOT"):
            sec.text = "HEADER.FIELDS.NOT"
        elif self.take(b"HEADER.FIELDS"):
            sec.text = "HEADER.FIELDS"
        elif self.take(b"HEADER"):
            sec.text = "HEADER"
        elif self.take(b"TEXT"):
            sec.text = "TEXT"
        elif sec.part and self.take(b"MIME"):
            sec.text = "MIME"
        else:
            raise self.err("bad section")
        if sec.text.startswith("HEADER.FIELDS"):
            self.sp()
            self.need(b"(")
            while True:
                sec.fields.append(self.astring().upper())
                if self.take(b")"):
                    break
                self.sp()
        self.need(b"]")
        return sec

    def partial(self) -> tuple[int, int] | None:
        if not self.take(b"<"):
            return None
        # RFC 9051 section 9: partial = "<" number64 "." nz-number64 ">"
        o = self.number(_NUMBER64_MAX)
        self.need(b".")
        n = self.nznumber(_NUMBER64_MAX)
        self.need(b">")
        return (o, n)

    def fetch_att(self) -> FetchAtt:
        s = self.p
        name = self.chars(_ATOM_CHARS.replace(b"[", b"").replace(b"<", b""), "fetch attribute").decode().upper()
        if name == "PREVIEW" and self.take(b" (LAZY)"):
            return FetchAtt(name, lazy=True)
        if name in _FETCH_SIMPLE:
            return FetchAtt(name)
        if name in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK"):
            base, _, peek = name.partition(".")
            if self.peek() != 0x5B:
                if name == "BODY":
                    return FetchAtt("BODY")
                raise self.err(f"{name} needs a section")
            sec = self.section()
            if base == "BINARY" and sec.text is not None:
                raise self.err("BINARY section must be part numbers only")
            return FetchAtt(base, sec, bool(peek), self.partial())
        if name == "BINARY.SIZE":
            sec = self.section()
            if sec.text is not None:
                raise self.err("BINARY.SIZE section must be part numbers only")
            return FetchAtt(name, sec)
        self.p = s
        raise self.err(f"unknown fetch attribute {name}")

    def fetch_atts(self) -> list[FetchAtt]:
        if self.take(b"("):
            atts = [self.fetch_att()]
            while not self.take(b")"):
                self.sp()
                atts.append(self.fetch_att())
            return atts
        for macro, names in _FETCH_MACROS.items():
            if self.take(macro.encode()):
                if 0x21 <= self.peek() and self.peek() not in (0x28, 0x29):
                    self.p -= len(macro)
                    break
                return [FetchAtt(n) for n in names]
        return [self.fetch_att()]

    # Commands.

    def command(self) -> Command:
        m = _TAG_RE.match(self.d)
        if m is None:
            raise self.err("missing tag")
        self.tag = m.group().decode("ascii")
        self.p = m.end()
        self.sp()
        name = self.keyword()
        uid = False
        if name == "UID":
            self.sp()
            uid = True
            name = self.keyword()
            if name not in ("FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD", "REPLACE"):
                raise self.err(f"unknown UID command {name}")
        fn = getattr(self, "cmd_" + name.lower().replace("-", "_"), None)
        if fn is None:
            raise self.err(f"unknown command {name}")
        cmd: Command = fn(name, uid)
        self.end()
        return cmd

    def simple(self, name: str, uid: bool) -> Command:
        return Simple(self.tag or "", name)

    cmd_capability = cmd_noop = cmd_logout = cmd_starttls = cmd_check = simple
    cmd_close = cmd_unselect = cmd_idle = cmd_namespace = simple

    def cmd_expunge(self, name: str, uid: bool) -> Command:
        if uid:
            self.sp()
            return Expunge(self.tag or "", "UID EXPUNGE", self.numset(False))
        return Expunge(self.tag or "", name)

    def cmd_authenticate(self, name: str, uid: bool) -> Command:
        self.sp()
        mech = self.keyword()
        ir: bytes | None = None
        if self.take(b" "):
            # RFC 4959 section 7: initial-response = base64 / "="
            if self.take(b"="):
                ir = b""
            else:
                raw = self.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", "base64")
                try:
                    ir = base64.b64decode(raw, validate=True)
                except binascii.Error:
                    raise self.err("bad base64 in initial response") from None
        return Authenticate(self.tag or "", name, mech, ir)

    def cmd_login(self, name: str, uid: bool) -> Command:
        self.sp()
        user = self.astring()
        self.sp()
        return Login(self.tag or "", name, user, self.astring())

    def cmd_enable(self, name: str, uid: bool) -> Command:
        caps: list[str] = []
        while self.take(b" "):
            caps.append(self.keyword())
        if not caps:
            raise self.err("ENABLE needs capabilities")
        return Enable(self.tag or "", name, caps)

    def cmd_compress(self, name: str, uid: bool) -> Command:
        self.sp()
        return Compress(self.tag or "", name, self.keyword())

    def cmd_select(self, name: str, uid: bool) -> Command:
        self.sp()
        cmd = Select(self.tag or "", name, self.mailbox(), readonly=name == "EXAMINE")
        if self.take(b" ("):
            # RFC 4466 section 2.1 select-params; RFC 7162 CONDSTORE and QRESYNC.
            first = True
            while not self.take(b")"):
                if not first:
                    self.sp()
                first = False
                p = self.keyword()
                if p == "CONDSTORE":
                    cmd.condstore = True
                elif p == "QRESYNC":
                    self.need(b" (")
                    uv = self.nznumber()
                    self.sp()
                    ms = self.number(_NUMBER64_MAX)
                    q = Qresync(uv, ms)
                    if self.take(b" "):
                        if self.peek() != 0x28:
                            q.known_uids = self.numset(False)
                        if self.peek() != 0x29:
                            if q.known_uids is not None:
                                self.sp()
                            self.need(b"(")
                            seqs = self.numset(False)
                            self.sp()
                            uids = self.numset(False)
                            self.need(b")")
                            q.seq_match = (seqs, uids)
                    self.need(b")")
                    cmd.qresync = q
                else:
                    raise self.err(f"unknown select parameter {p}")
        return cmd

    cmd_examine = cmd_select

    def one_mailbox(self, name: str, uid: bool) -> Command:
        self.sp()
        return Mailbox(self.tag or "", name, self.mailbox())

    cmd_delete = cmd_subscribe = cmd_unsubscribe = cmd_getquotaroot = one_mailbox

    def cmd_create(self, name: str, uid: bool) -> Command:
        self.sp()
        cmd = Create(self.tag or "", name, self.mailbox())
        if self.take(b" ("):
            while not self.take(b")"):
                if self.take(b"USE "):
                    cmd.special_use += self.flag_list()
                else:
                    raise self.err("unknown create parameter")
                self.take(b" ")
        return cmd

    def cmd_rename(self, name: str, uid: bool) -> Command:
        self.sp()
        old = self.mailbox()
        self.sp()
        return Rename(self.tag or "", name, old, self.mailbox())

    def cmd_list(self, name: str, uid: bool) -> Command:
        cmd = List(self.tag or "", name)
        self.sp()
        if name == "LIST" and self.peek() == 0x28:
            cmd.extended = True
            cmd.selection = [o.upper() for o in self.paren_list("atom")]
            self.sp()
        cmd.reference = self.mailbox()
        self.sp()
        if name == "LIST" and self.peek() == 0x28:
            cmd.extended = True
            self.need(b"(")
            while True:
                cmd.patterns.append(self.list_mailbox())
                if self.take(b")"):
                    break
                self.sp()
        else:
            cmd.patterns.append(self.list_mailbox())
        if name == "LIST" and self.take(b" RETURN ("):
            cmd.extended = True
            while not self.take(b")"):
                if cmd.return_options:
                    self.sp()
                opt = self.keyword()
                cmd.return_options.append(opt)
                if opt == "STATUS":
                    self.sp()
                    cmd.return_status = self.status_items()
                elif opt == "METADATA":
                    # RFC 9590 section 3: METADATA (entry *(SP entry)).
                    self.need(b" (")
                    cmd.return_metadata = [self.astring()]
                    while not self.take(b")"):
                        self.sp()
                        cmd.return_metadata.append(self.astring())
        return cmd

    cmd_lsub = cmd_list

    def status_items(self) -> list[str]:
        items = [i.upper() for i in self.paren_list("atom")]
        if not items:
            raise self.err("no status items")
        for i in items:
            if i not in _STATUS_ITEMS:
                raise self.err(f"unknown status item {i}")
        return items

    def cmd_status(self, name: str, uid: bool) -> Command:
        self.sp()
        mb = self.mailbox()
        self.sp()
        return Status(self.tag or "", name, mb, self.status_items())

    def append_message(self) -> AppendMessage:
        msg = AppendMessage()
        if self.peek() == 0x28:
            msg.flags = self.flag_list()
            self.sp()
        if self.peek() == 0x22:
            msg.date_time = self.date_time()
            self.sp()
        if self.take(b"UTF8 ("):
            msg.utf8 = True
            msg.binary = self.peek() == 0x7E
            msg.data = self.literal(allow8=True)
            self.need(b")")
        else:
            msg.binary = self.peek() == 0x7E
            msg.data = self.literal(allow8=True)
        return msg

    def cmd_append(self, name: str, uid: bool) -> Command:
        self.sp()
        cmd = Append(self.tag or "", name, self.mailbox())
        while self.take(b" "):
            cmd.messages.append(self.append_message())
        if not cmd.messages:
            raise self.err("APPEND needs a message")
        return cmd

    def cmd_search(self, name: str, uid: bool) -> Command:
        self.sp()
        ret = self.search_return()
        cs = self.search_charset()
        key = self.search_program()
        return Search(self.tag or "", ("UID " if uid else "") + name, uid, cs, key, ret)

    def cmd_esearch(self, name: str, uid: bool) -> Command:
        # RFC 7377 section 2: ESEARCH [SP esearch-source-opts] [SP search-return-opts] SP search-program
        cmd = Esearch(self.tag or "", name, uid)
        self.sp()
        if self.take(b"IN ("):
            while True:
                f = self.keyword()
                mbs: list[str] = []
                if f in ("MAILBOXES", "SUBTREE", "SUBTREE-ONE"):
                    self.sp()
                    if self.take(b"("):
                        while True:
                            mbs.append(self.mailbox())
                            if self.take(b")"):
                                break
                            self.sp()
                    else:
                        mbs.append(self.mailbox())
                cmd.sources.append((f, mbs))
                if self.take(b")"):
                    break
                self.sp()
            self.sp()
        cmd.return_options = self.search_return()
        cmd.charset = self.search_charset()
        cmd.key = self.search_program()
        return cmd

    def cmd_fetch(self, name: str, uid: bool) -> Command:
        self.sp()
        cmd = Fetch(self.tag or "", ("UID " if uid else "") + name, uid, self.numset())
        self.sp()
        cmd.atts = self.fetch_atts()
        if self.take(b" ("):
            # RFC 4466 fetch-modifiers; RFC 7162 CHANGEDSINCE and VANISHED (UID FETCH only).
            first = True
            while not self.take(b")"):
                if not first:
                    self.sp()
                first = False
                m = self.keyword()
                if m == "CHANGEDSINCE":
                    self.sp()
                    cmd.changedsince = self.number(_NUMBER64_MAX)
                elif m == "VANISHED" and uid:
                    cmd.vanished = True
                else:
                    raise self.err(f"unknown fetch modifier {m}")
            if cmd.vanished and cmd.changedsince is None:
                raise self.err("VANISHED requires CHANGEDSINCE")
        return cmd

    def cmd_store(self, name: str, uid: bool) -> Command:
        self.sp()
        cmd = Store(self.tag or "", ("UID " if uid else "") + name, uid, self.numset())
        self.sp()
        if self.take(b"(UNCHANGEDSINCE "):
            cmd.unchangedsince = self.number(_NUMBER64_MAX)
            self.need(b") ")
        if self.take(b"+"):
            cmd.mode = "+"
        elif self.take(b"-"):
            cmd.mode = "-"
        self.need(b"FLAGS")
        cmd.silent = self.take(b".SILENT")
        self.sp()
        if self.peek() == 0x28:
            cmd.flags = self.flag_list()
        else:
            cmd.flags = [self.flag()]
            while self.take(b" "):
                cmd.flags.append(self.flag())
        return cmd

    def cmd_copy(self, name: str, uid: bool) -> Command:
        self.sp()
        nums = self.numset()
        self.sp()
        return Copy(self.tag or "", ("UID " if uid else "") + name, uid, nums, self.mailbox())

    cmd_move = cmd_copy

    def cmd_id(self, name: str, uid: bool) -> Command:
        self.sp()
        if self.take(b"NIL"):
            return Id(self.tag or "", name, None)
        self.need(b"(")
        params: list[tuple[str, str | None]] = []
        while not self.take(b")"):
            if params:
                self.sp()
            k = self.text(self.string())
            self.sp()
            v = self.nstring()
            params.append((k, None if v is None else self.text(v)))
        return Id(self.tag or "", name, params)

    def cmd_getquota(self, name: str, uid: bool) -> Command:
        self.sp()
        return GetQuota(self.tag or "", name, self.astring())

    def cmd_getmetadata(self, name: str, uid: bool) -> Command:
        self.sp()
        cmd = GetMetadata(self.tag or "", name)
        if self.take(b"("):
            while not self.take(b")"):
                if self.take(b"MAXSIZE "):
                    cmd.maxsize = self.number()
                elif self.take(b"DEPTH "):
                    d = self.keyword()
                    if d not in ("0", "1", "INFINITY"):
                        raise self.err("bad DEPTH")
                    cmd.depth = d.lower()
                else:
                    raise self.err("unknown GETMETADATA option")
                self.take(b" ")
            self.sp()
        cmd.mailbox = self.mailbox()  # "" is the server (RFC 5464 section 4.2).
        self.sp()
        if self.take(b"("):
            while True:
                cmd.entries.append(self.astring())
                if self.take(b")"):
                    break
                self.sp()
        else:
            cmd.entries.append(self.astring())
        return cmd

    def cmd_setmetadata(self, name: str, uid: bool) -> Command:
        self.sp()
        cmd = SetMetadata(self.tag or "", name)
        cmd.mailbox = self.mailbox()
        self.need(b" (")
        while True:
            e = self.astring()
            self.sp()
            if self.take(b"NIL"):
                v: bytes | None = None
            elif self.at_literal():
                v = self.literal(allow8=True)
            else:
                v = self.string()
            cmd.values.append((e, v))
            if self.take(b")"):
                break
            self.sp()
        return cmd

    def cmd_sort(self, name: str, uid: bool) -> Command:
        self.sp()
        cmd = Sort(self.tag or "", ("UID " if uid else "") + name, uid)
        cmd.return_options = self.search_return()
        self.need(b"(")
        while True:
            rev = self.take(b"REVERSE ")
            k = self.keyword()
            if k not in _SORT_KEYS:
                raise self.err(f"unknown sort key {k}")
            cmd.criteria.append((rev, k))
            if self.take(b")"):
                break
            self.sp()
        self.sp()
        cmd.charset = self.astring()
        self.sp()
        cmd.key = self.search_program()
        return cmd

    def cmd_thread(self, name: str, uid: bool) -> Command:
        self.sp()
        alg = self.keyword()
        self.sp()
        cs = self.astring()
        self.sp()
        return Thread(self.tag or "", ("UID " if uid else "") + name, uid, alg, cs, self.search_program())

    def cmd_notify(self, name: str, uid: bool) -> Command:
        self.sp()
        if self.take(b"NONE"):
            return Notify(self.tag or "", name)
        self.need(b"SET")
        cmd = Notify(self.tag or "", name, groups=[])
        if self.take(b" STATUS"):
            cmd.status = True
        assert cmd.groups is not None
        while self.take(b" "):
            # RFC 5465 section 8: event-group = "(" filter-mailboxes [SP events] ")"
            self.need(b"(")
            f = self.keyword()
            g = NotifyGroup(f)
            if f in ("SUBTREE", "MAILBOXES"):
                self.sp()
                if self.take(b"("):
                    while True:
                        g.mailboxes.append(self.mailbox())
                        if self.take(b")"):
                            break
                        self.sp()
                else:
                    g.mailboxes.append(self.mailbox())
            elif f not in ("SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED"):
                raise self.err(f"unknown NOTIFY filter {f}")
            self.sp()
            if self.take(b"NONE"):
                g.events = None
            else:
                g.events = []
                self.need(b"(")
                while True:
                    ev = self.keyword()
                    g.events.append(ev)
                    if ev == "MESSAGENEW" and self.take(b" ("):
                        while True:
                            g.fetch_atts.append(self.fetch_att())
                            if self.take(b")"):
                                break
                            self.sp()
                    if self.take(b")"):
                        break
                    self.sp()
            self.need(b")")
            cmd.groups.append(g)
        return cmd

    def cmd_replace(self, name: str, uid: bool) -> Command:
        self.sp()
        n = self.nznumber()
        self.sp()
        mb = self.mailbox()
        self.sp()
        return Replace(self.tag or "", ("UID " if uid else "") + name, uid, n, mb, self.append_message())


def parse_command(data: bytes, utf8: bool = False) -> Command:
    """Parse one command, from tag to final CRLF, literals inline as sent.

    Args:
        data: the command bytes, ending in CRLF.
        utf8: mailbox names are UTF-8 rather than modified UTF-7.

    Raises:
        ParseError: with the tag when one could be read.
    """
    p = _Parser(data, utf8)
    try:
        return p.command()
    except RecursionError:
        raise ParseError("too deeply nested", p.tag) from None
