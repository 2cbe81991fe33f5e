"""Server response bytes (RFC 9051 section 7 and section 9 response syntax).

Functions return bytes ready to send; the FETCH builder returns a list of
chunks so a large body is sent as a literal header followed by the body
buffer (or a memoryview of it) without being concatenated
(:class:`FetchResponse`).

Strings are written quoted when they can be (RFC 9051 section 4.3: no CR,
LF or NUL; 8-bit only when the client enabled UTF-8, RFC 9051 / RFC 6855
section 3) and as literals otherwise. BINARY content is a literal8
(RFC 3516 section 4.2). Mailbox names are modified UTF-7 unless UTF-8 is
enabled (RFC 3501 section 5.1.3, RFC 9051 section 5.1).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mox.message.address import Address
from mox.message.envelope import Envelope
from mox.message.part import Part

from . import utf7
from .numset import NumSet
from .parse import _ASTRING_CHARS

__all__ = [
    "QUOTED_MAX",
    "FetchResponse",
    "ThreadNode",
    "astring",
    "body_structure",
    "continuation",
    "copyuid",
    "date_time",
    "envelope",
    "esearch",
    "flag_list",
    "id_response",
    "list_response",
    "literal",
    "literal_header",
    "mailbox",
    "metadata",
    "namespace",
    "nstring",
    "number_list",
    "quota",
    "quotaroot",
    "search",
    "sort",
    "status_response",
    "string",
    "tagged",
    "thread",
    "untagged",
    "vanished",
]

QUOTED_MAX = 1024
"""Longer strings are sent as literals, keeping lines short for clients with line limits."""

_ASTRING_SET = frozenset(_ASTRING_CHARS)


def _b(s: str | bytes) -> bytes:
    return s.encode("utf-8") if isinstance(s, str) else s


def literal_header(size: int, binary: bool = False) -> bytes:
    """``{size}`` CRLF, or ``~{size}`` CRLF for literal8; the data follows."""
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % size


def literal(data: str | bytes, binary: bool = False) -> bytes:
    d = _b(data)
    return literal_header(len(d), binary) + d


def string(s: str | bytes, utf8: bool = False) -> bytes:
    """A string: quoted when possible, else a literal."""
    d = _b(s)
    if len(d) <= QUOTED_MAX and b"\r" not in d and b"\n" not in d and b"\0" not in d and _quotable_8bit(d, utf8):
        return b'"' + d.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(d)


def _quotable_8bit(d: bytes, utf8: bool) -> bool:
    # RFC 9051 section 9 QUOTED-CHAR allows UTF-8 (not arbitrary 8-bit), RFC 3501 only 7-bit.
    if d.isascii():
        return True
    if not utf8:
        return False
    try:
        d.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def nstring(s: str | bytes | None, utf8: bool = False) -> bytes:
    return b"NIL" if s is None else string(s, utf8)


def astring(s: str | bytes, utf8: bool = False) -> bytes:
    """An atom when all characters allow it (and it is not NIL), else a string."""
    d = _b(s)
    if d and d.upper() != b"NIL" and all(c in _ASTRING_SET for c in d):
        return d
    return string(d, utf8)


def mailbox(name: str, utf8: bool = False) -> bytes:
    """A mailbox name, modified UTF-7 unless UTF-8 is enabled."""
    return astring(name if utf8 else utf7.encode(name), utf8)


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + b" ".join(f.encode("ascii") for f in flags) + b")"


def number_list(nums: Iterable[int]) -> bytes:
    return b" ".join(b"%d" % n for n in nums)


def date_time(dt: datetime.datetime) -> bytes:
    """RFC 9051 date-time, e.g. "05-Jan-2021 01:02:03 +0100"."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    off = dt.utcoffset() or datetime.timedelta()
    mins = int(off.total_seconds()) // 60
    sign = "-" if mins < 0 else "+"
    mins = abs(mins)
    mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][dt.month - 1]
    return (
        f'"{dt.day:02d}-{mon}-{dt.year:04d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} '
        f'{sign}{mins // 60:02d}{mins % 60:02d}"'
    ).encode("ascii")


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """``tag OK|NO|BAD [code] text`` CRLF; code as written, e.g. "APPENDUID 1 5", "TOOBIG"."""
    c = f"[{code}] " if code else ""
    return f"{tag} {status} {c}{text}\r\n".encode()


def untagged(text: str | bytes) -> bytes:
    """``* text`` CRLF, e.g. untagged("3 EXISTS"), untagged("OK [UIDNEXT 5] x")."""
    return b"* " + _b(text) + b"\r\n"


def continuation(text: str = "") -> bytes:
    """``+ text`` CRLF (RFC 9051 section 7.6); text may be base64 for AUTHENTICATE."""
    return b"+ " + text.encode() + b"\r\n"


def copyuid(uidvalidity: int, src: Sequence[int], dst: Sequence[int]) -> str:
    """COPYUID response code text (RFC 4315 section 3); uids in matching order."""
    return f"COPYUID {uidvalidity} {_uidset(src)} {_uidset(dst)}"


def _uidset(uids: Sequence[int]) -> str:
    # Keep the order of the pairing (RFC 4315 section 3: the sets correspond in order).
    out: list[str] = []
    i = 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        out.append(str(uids[i]) if i == j else f"{uids[i]}:{uids[j]}")
        i = j + 1
    return ",".join(out)


def vanished(uids: Sequence[int], earlier: bool = False) -> bytes:
    """``* VANISHED [(EARLIER)] uid-set`` (RFC 7162 section 3.2.10)."""
    e = b"(EARLIER) " if earlier else b""
    return b"* VANISHED " + e + str(NumSet.from_numbers(uids)).encode() + b"\r\n"


def search(nums: Iterable[int], modseq: int | None = None) -> bytes:
    """``* SEARCH n...`` (RFC 9051 section 7.3.5, RFC 7162 section 3.1.5 (MODSEQ n))."""
    line = b"* SEARCH"
    ns = number_list(nums)
    if ns:
        line += b" " + ns
        if modseq is not None:
            line += b" (MODSEQ %d)" % modseq
    return line + b"\r\n"


def esearch(
    tag: str | None,
    uid: bool,
    min: int | None = None,
    max: int | None = None,
    all: Sequence[int] | None = None,
    count: int | None = None,
    modseq: int | None = None,
    mailbox_name: str | None = None,
    uidvalidity: int | None = None,
    utf8: bool = False,
) -> bytes:
    """``* ESEARCH (TAG "t") [UID] MIN n MAX n ALL set COUNT n MODSEQ n`` (RFC 4731 section 3.1,
    RFC 7377 section 2 with MAILBOX and UIDVALIDITY)."""
    line = b"* ESEARCH"
    if tag is not None:
        line += b" (TAG " + string(tag) + b")"
        if mailbox_name is not None:
            line = line[:-1] + b" MAILBOX " + mailbox(mailbox_name, utf8) + b" UIDVALIDITY %d)" % (uidvalidity or 0)
    if uid:
        line += b" UID"
    if min is not None:
        line += b" MIN %d" % min
    if max is not None:
        line += b" MAX %d" % max
    if all:
        line += b" ALL " + str(NumSet.from_numbers(all)).encode()
    if count is not None:
        line += b" COUNT %d" % count
    if modseq is not None:
        line += b" MODSEQ %d" % modseq
    return line + b"\r\n"


def list_response(
    flags: Iterable[str],
    delimiter: str | None,
    name: str,
    utf8: bool = False,
    extended: Iterable[bytes] = (),
    lsub: bool = False,
) -> bytes:
    """``* LIST (flags) "/" name`` with extended items already encoded, e.g.
    b'("CHILDINFO" ("SUBSCRIBED"))' or b'("OLDNAME" ("x"))' (RFC 5258 section 9)."""
    delim = b"NIL" if delimiter is None else string(delimiter)
    line = b"* LSUB " if lsub else b"* LIST "
    line += flag_list(flags) + b" " + delim + b" " + mailbox(name, utf8)
    ext = list(extended)
    if ext:
        line += b" (" + b" ".join(ext) + b")"
    return line + b"\r\n"


def status_response(name: str, items: Sequence[tuple[str, int]], utf8: bool = False) -> bytes:
    """``* STATUS name (MESSAGES n UIDNEXT n ...)`` (RFC 9051 section 7.3.4)."""
    inner = b" ".join(b"%s %d" % (k.encode("ascii"), v) for k, v in items)
    return b"* STATUS " + mailbox(name, utf8) + b" (" + inner + b")\r\n"


def sort(nums: Iterable[int], modseq: int | None = None) -> bytes:
    """``* SORT n...`` (RFC 5256 section 4, RFC 7162 section 3.1.5 (MODSEQ n))."""
    return b"* SORT" + search(nums, modseq)[len(b"* SEARCH") :]


@dataclass(slots=True)
class ThreadNode:
    """A message of a thread and its replies (RFC 5256 section 4 thread-list)."""

    num: int
    children: list[ThreadNode] = field(default_factory=list)


def _thread(node: ThreadNode) -> bytes:
    # A chain of single replies is written flat "(1 2 3)"; branches as "(1 (2)(3))".
    out = b"%d" % node.num
    while len(node.children) == 1:
        node = node.children[0]
        out += b" %d" % node.num
    if node.children:
        out += b" " + b"".join(b"(" + _thread(c) + b")" for c in node.children)
    return out


def thread(roots: Sequence[ThreadNode]) -> bytes:
    """``* THREAD (1 2)(3 (4)(5))`` (RFC 5256 section 4)."""
    return b"* THREAD " + b"".join(b"(" + _thread(r) + b")" for r in roots) + b"\r\n" if roots else b"* THREAD\r\n"


def id_response(params: Sequence[tuple[str, str]] | None) -> bytes:
    """``* ID ("name" "mox" ...)`` or ``* ID NIL`` (RFC 2971 section 3.2)."""
    if params is None:
        return b"* ID NIL\r\n"
    return b"* ID (" + b" ".join(string(k) + b" " + string(v) for k, v in params) + b")\r\n"


def namespace(personal: str | None, delimiter: str = "/") -> bytes:
    """``* NAMESPACE (("" "/")) NIL NIL``: one personal namespace, none other (RFC 9051 section 7.3.3)."""
    if personal is None:
        return b"* NAMESPACE NIL NIL NIL\r\n"
    return b"* NAMESPACE ((" + string(personal) + b" " + string(delimiter) + b")) NIL NIL\r\n"


def quota(root: str, resources: Sequence[tuple[str, int, int]]) -> bytes:
    """``* QUOTA root (STORAGE used limit ...)``; storage in KiB (RFC 9208 section 5.1)."""
    inner = b" ".join(b"%s %d %d" % (n.encode("ascii"), u, lim) for n, u, lim in resources)
    return b"* QUOTA " + astring(root) + b" (" + inner + b")\r\n"


def quotaroot(name: str, roots: Sequence[str], utf8: bool = False) -> bytes:
    """``* QUOTAROOT mailbox root...`` (RFC 9208 section 5.2)."""
    return b"* QUOTAROOT " + mailbox(name, utf8) + b"".join(b" " + astring(r) for r in roots) + b"\r\n"


def metadata(name: str, values: Sequence[tuple[str, bytes | None]], utf8: bool = False) -> bytes:
    """``* METADATA mailbox (entry value ...)``, "" for the server (RFC 5464 section 4.4.1).

    Values are nstrings; binary values (with NUL) as literal8.
    """
    items = []
    for k, v in values:
        if v is not None and b"\0" in v:
            val = literal(v, binary=True)
        else:
            val = nstring(v, utf8)
        items.append(astring(k) + b" " + val)
    mb = b'""' if name == "" else mailbox(name, utf8)
    return b"* METADATA " + mb + b" (" + b" ".join(items) + b")\r\n"


# ENVELOPE and BODYSTRUCTURE, RFC 9051 section 7.5.2.


def _header_text(s: str, utf8: bool) -> str:
    """Envelope text: non-ASCII as an RFC 2047 encoded word for non-UTF-8 clients."""
    if utf8 or s.isascii():
        return s
    return "=?utf-8?b?" + base64.b64encode(s.encode("utf-8")).decode("ascii") + "?="


def _ascii_host(host: str) -> str:
    """A non-ASCII domain as IDNA A-labels; as it is (sent as a literal) if it is no valid IDN."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _addresses(addrs: list[Address], utf8: bool) -> bytes:
    if not addrs:
        return b"NIL"
    out = []
    for a in addrs:
        name = nstring(_header_text(a.name, utf8) if a.name else None, utf8)
        host = nstring(a.host if utf8 or a.host.isascii() else _ascii_host(a.host), utf8)
        out.append(b"(" + name + b" NIL " + nstring(a.user, utf8) + b" " + host + b")")
    return b"(" + b"".join(out) + b")"


def envelope(env: Envelope, utf8: bool = False) -> bytes:
    """ENVELOPE value. Sender and reply-to default to from (RFC 9051 section 7.5.2)."""
    sender = env.sender or env.from_
    reply_to = env.reply_to or env.from_
    parts = [
        nstring(env.date or None, utf8),
        nstring(_header_text(env.subject, utf8) if env.subject else None, utf8),
        _addresses(env.from_, utf8),
        _addresses(sender, utf8),
        _addresses(reply_to, utf8),
        _addresses(env.to, utf8),
        _addresses(env.cc, utf8),
        _addresses(env.bcc, utf8),
        nstring(env.in_reply_to or None, utf8),
        nstring(env.message_id or None, utf8),
    ]
    return b"(" + b" ".join(parts) + b")"


def _params(params: dict[str, str], utf8: bool) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(string(k.upper(), utf8) + b" " + string(v, utf8) for k, v in params.items()) + b")"


def _disposition(p: Part, utf8: bool) -> bytes:
    if not p.disposition:
        return b"NIL"
    return b"(" + string(p.disposition.upper(), utf8) + b" " + _params(p.disposition_params, utf8) + b")"


def _language(p: Part, utf8: bool) -> bytes:
    if not p.language:
        return b"NIL"
    langs = [s.strip() for s in p.language.split(",") if s.strip()]
    if len(langs) == 1:
        return string(langs[0], utf8)
    return b"(" + b" ".join(string(s, utf8) for s in langs) + b")"


def body_structure(p: Part, extensible: bool, utf8: bool = False) -> bytes:
    """BODYSTRUCTURE (``extensible``) or BODY value of a part tree."""
    if p.media_type.upper() == "MULTIPART":
        children = p.parts or [Part()]
        out = b"(" + b"".join(body_structure(c, extensible, utf8) for c in children)
        out += b" " + string(p.media_subtype.upper(), utf8)
        if extensible:
            out += b" " + _params(p.params, utf8) + b" " + _disposition(p, utf8)
            out += b" " + _language(p, utf8) + b" " + nstring(p.location, utf8)
        return out + b")"
    fields = [
        string(p.media_type.upper(), utf8),
        string(p.media_subtype.upper(), utf8),
        _params(p.params, utf8),
        nstring(p.content_id, utf8),
        nstring(p.content_description, utf8),
        string(p.content_transfer_encoding.upper(), utf8),
        b"%d" % max(0, p.end_offset - p.body_offset),
    ]
    mt = p.media_type.upper()
    if mt == "MESSAGE" and p.media_subtype.upper() in ("RFC822", "GLOBAL") and p.message is not None:
        fields.append(envelope(p.message.envelope or Envelope(), utf8))
        fields.append(body_structure(p.message, extensible, utf8))
        fields.append(b"%d" % p.body_lines)
    elif mt == "TEXT":
        fields.append(b"%d" % p.body_lines)
    if extensible:
        fields += [nstring(p.md5, utf8), _disposition(p, utf8), _language(p, utf8), nstring(p.location, utf8)]
    return b"(" + b" ".join(fields) + b")"


class FetchResponse:
    """Builds ``* n FETCH (...)`` as chunks, for writing without concatenation.

    Example::

        r = FetchResponse(3)
        r.add(b"UID", b"17")
        r.add(b"FLAGS", flag_list(["\\\\Seen"]))
        r.add_literal(b"BODY[]", body_bytes)
        transport.writelines(r.chunks())
    """

    def __init__(self, seq: int, uidfetch: bool = False) -> None:
        # RFC 9586 section 3.3: with UIDONLY, "* uid UIDFETCH (...)" instead of FETCH.
        self._chunks: list[bytes | memoryview] = [(b"* %d UIDFETCH (" if uidfetch else b"* %d FETCH (") % seq]
        self._first = True

    def _sep(self) -> None:
        if not self._first:
            self._chunks.append(b" ")
        self._first = False

    def add(self, name: bytes, value: bytes) -> None:
        """An item with its value already encoded (number, list, nstring)."""
        self._sep()
        self._chunks.append(name + b" " + value)

    def add_literal(self, name: bytes, data: bytes | memoryview, binary: bool = False) -> None:
        """An item whose value is a literal (literal8 for BINARY[...]); data is not copied."""
        self._sep()
        self._chunks.append(name + b" " + literal_header(len(data), binary))
        self._chunks.append(data)

    def add_string(self, name: bytes, data: bytes, utf8: bool = False) -> None:
        """An item with an nstring value, quoted when possible."""
        if len(data) > QUOTED_MAX:
            self.add_literal(name, data)
        else:
            self.add(name, string(data, utf8))

    def chunks(self) -> list[bytes | memoryview]:
        """The response, closing parenthesis and CRLF included."""
        return [*self._chunks, b")\r\n"]
