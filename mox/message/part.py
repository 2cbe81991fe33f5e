"""The MIME structure of a message, as byte offsets into the raw message.

:func:`parse` turns a raw message into a tree of :class:`Part` (RFC 2045,
RFC 2046), recording where each part's header and body are, so IMAP can serve
``BODY[1.2]``, ``BODY[1.2.MIME]``, ``BINARY[...]`` and BODYSTRUCTURE (RFC 3501
section 6.4.5 and 7.4.2, RFC 9051) by slicing the raw bytes, without
re-encoding. The tree is small and JSON-serialisable (:meth:`Part.to_json`),
so the store keeps it next to the message.

Decisions:

- Media types and subtypes are UPPER case ("TEXT", "PLAIN"), as upstream mox
  stores them and IMAP BODYSTRUCTURE shows them. Defaults are applied: a
  part without Content-Type is TEXT/PLAIN, or MESSAGE/RFC822 inside a
  multipart/digest (RFC 2046 section 5.1.5). Parameter names are lower case,
  values as found. Content-Transfer-Encoding is upper case, default 7BIT
  (RFC 2045 section 6.1). Content-Disposition's type is lower case.
- Every part that is MULTIPART has at least one child in ``parts``, and every
  MESSAGE/RFC822 or MESSAGE/GLOBAL part has ``message`` set. A part for
  which that cannot be done (multipart without boundary or without any
  delimiter line, or nesting deeper than :data:`MAX_NESTING_DEPTH`) becomes an
  APPLICATION/OCTET-STREAM leaf, as upstream falls back to for unparseable
  messages; its parameters are kept and a defect is recorded.
- Never raises on malformed input: lines may end in CRLF, bare LF, or bare CR
  (messages without any LF); a missing closing delimiter ends the last part
  at the end of its parent; a header without empty line ends at the first
  line that is not a header field (the body starts there). Problems are
  listed in ``Part.defects``; ``strict=True`` adds more checks and does not
  guess a media type from a malformed Content-Type.
- Parsing is iterative (no recursion) and linear in the message size times
  the nesting depth, which is capped at :data:`MAX_NESTING_DEPTH`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .charset import decode_charset
from .encodedword import decode_words
from .envelope import ENVELOPE_FIELDS, Envelope, envelope_from_fields
from .headers import line_ending, parse_headers, scan_header, unfold
from .params import is_token, parse_value
from .transfer import IDENTITY_ENCODINGS, decode_transfer

MAX_NESTING_DEPTH = 100
"""Deepest nesting of multipart and message/rfc822 parts that is parsed.

Deeper parts become APPLICATION/OCTET-STREAM leaves. Real mail nests a few
levels (forwarded DSNs of forwarded messages reach perhaps 10); parsing
cost grows with depth, and IMAP part specifiers and JSON get unwieldy.
Dovecot caps at 100 too (message_max_nesting), upstream mox has no limit.
"""

MAX_LINE_LENGTH = 998
"""Longest line without CRLF (RFC 5322 section 2.1.1); only checked in strict mode."""

# Defect descriptions, in Part.defects.
DEFECT_BARE_LF = "bare LF line ending"
DEFECT_BARE_CR = "bare CR"
DEFECT_LONG_LINE = "line longer than 998 octets"
DEFECT_NO_SEPARATOR = "header not ended by an empty line"
DEFECT_BAD_CONTENT_TYPE = "malformed Content-Type"
DEFECT_NO_BOUNDARY = "multipart without boundary parameter"
DEFECT_NO_PARTS = "multipart without delimiter line"
DEFECT_NO_CLOSE = "multipart without closing delimiter"
DEFECT_TOO_DEEP = "nesting too deep"

_LONG_LINE = re.compile(rb"[^\r\n]{%d}" % (MAX_LINE_LENGTH + 1))


@dataclass(slots=True, eq=True)
class Part:
    """A message or one part of it. Offsets are into the raw message bytes.

    The header (with the empty line ending it, if any) is
    raw[header_offset:body_offset], the body raw[body_offset:end_offset].
    For a multipart the body includes preamble, children and epilogue. The
    offsets of the tree below ``message`` of a part with ``message_decoded``
    set are into that part's decoded body instead (see
    :meth:`message_source`).
    """

    header_offset: int = 0
    body_offset: int = 0
    end_offset: int = 0
    body_lines: int = 0
    """Lines in the raw body (RFC 3501 body-fld-lines), a last line without line ending included; 0 for multiparts."""
    media_type: str = "TEXT"
    media_subtype: str = "PLAIN"
    params: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None
    content_description: str | None = None
    content_transfer_encoding: str = "7BIT"
    disposition: str | None = None
    disposition_params: dict[str, str] = field(default_factory=dict)
    language: str | None = None
    location: str | None = None
    md5: str | None = None
    parts: list[Part] = field(default_factory=list)
    message: Part | None = None
    """The embedded message of a MESSAGE/RFC822 or MESSAGE/GLOBAL part."""
    envelope: Envelope | None = None
    """Set on message roots: the top part, and each ``message`` of a message part."""
    message_decoded: bool = False
    """The body of this message part had a transfer encoding; ``message`` offsets are into the decoded body."""
    defects: list[str] = field(default_factory=list)

    # Slicing and decoding.

    @property
    def content_type(self) -> str:
        """Media type and subtype, e.g. "TEXT/PLAIN"."""
        return f"{self.media_type}/{self.media_subtype}"

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "MULTIPART"

    def header_bytes(self, raw: bytes) -> bytes:
        """The header section, including the empty line that ends it (if present)."""
        return raw[self.header_offset : self.body_offset]

    def body_bytes(self, raw: bytes) -> bytes:
        """The raw (still transfer-encoded) body."""
        return raw[self.body_offset : self.end_offset]

    def headers(self, raw: bytes) -> list[tuple[str, bytes]]:
        """The header fields of this part, as :func:`mox.message.parse_headers` returns them."""
        return parse_headers(self.header_bytes(raw))

    def decoded_body(self, raw: bytes, *, text_crlf: bool = False) -> bytes:
        """The body with its Content-Transfer-Encoding (base64, quoted-printable) decoded, leniently.

        With text_crlf, line endings of TEXT parts become CRLF (bare LF and
        bare CR), as upstream mox serves IMAP BINARY for text (RFC 3516
        section 4.2 asks for canonical form).
        """
        body = decode_transfer(self.body_bytes(raw), self.content_transfer_encoding)
        if text_crlf and self.media_type == "TEXT":
            body = to_crlf(body)
        return body

    def decoded_size(self, raw: bytes, *, text_crlf: bool = False) -> int:
        """Size of the decoded body (IMAP BINARY.SIZE, RFC 3516 section 4.2); text_crlf as for decoded_body."""
        if self.content_transfer_encoding in IDENTITY_ENCODINGS and not (
            text_crlf and self.media_type == "TEXT"
        ):
            return self.end_offset - self.body_offset
        return len(self.decoded_body(raw, text_crlf=text_crlf))

    def text(self, raw: bytes) -> str:
        """The decoded body as text, in the charset parameter; never raises.

        See :func:`mox.message.charset.decode_charset` for the fallbacks.
        """
        return decode_charset(self.decoded_body(raw), self.params.get("charset"))

    def filename(self) -> str | None:
        """The file name from Content-Disposition "filename", else Content-Type "name".

        RFC 2231 encoding is decoded by the parser; RFC 2047 encoded-words,
        which many mailers use instead (RFC 2047 section 5 disallows them
        there), are decoded here. None if there is neither parameter.
        """
        name = self.disposition_params.get("filename") or self.params.get("name")
        if name is None:
            return None
        return decode_words(name) if "=?" in name else name

    def is_dsn(self) -> bool:
        """Whether this is a delivery status notification (RFC 3464 section 2): multipart/report
        with a message/delivery-status (or RFC 6533 global-delivery-status) second part."""
        return (
            self.content_type == "MULTIPART/REPORT"
            and len(self.parts) >= 2
            and self.parts[1].media_type == "MESSAGE"
            and self.parts[1].media_subtype in ("DELIVERY-STATUS", "GLOBAL-DELIVERY-STATUS")
        )

    def message_source(self, raw: bytes) -> bytes:
        """The bytes that offsets in ``message`` refer to: raw, or the decoded body if ``message_decoded``."""
        return self.decoded_body(raw) if self.message_decoded else raw

    # Tree navigation.

    def walk(self) -> Iterator[Part]:
        """Yield this part and all parts below it (children and embedded messages), in document order."""
        stack: list[Part] = [self]
        while stack:
            p = stack.pop()
            yield p
            if p.message is not None:
                stack.append(p.message)
            stack.extend(reversed(p.parts))

    def all_defects(self) -> list[str]:
        """The defects of this part and all parts below it."""
        return [d for p in self.walk() for d in p.defects]

    def section(self, raw: bytes, path: Sequence[int]) -> tuple[Part, bytes] | None:
        """Find the part for an IMAP section part specifier (RFC 3501 section 6.4.5).

        path are the 1-based part numbers, e.g. [4, 2, 1] for "4.2.1". Returns
        the part and the bytes its offsets refer to (raw, or a decoded body
        for a transfer-encoded embedded message), or None if there is no such
        part. An empty path is the message itself. Part 1 of a non-multipart
        message is its body, so the part itself is returned; numbers inside a
        MESSAGE/RFC822 part address the parts of the embedded message.
        """
        cur = self
        src = raw
        may_self = True  # Whether part number 1 may refer to cur itself.
        for n in path:
            if cur.message is not None:
                src = cur.message_source(src)
                cur = cur.message
                may_self = True
            if cur.parts:
                if not 1 <= n <= len(cur.parts):
                    return None
                cur = cur.parts[n - 1]
                may_self = False
            elif n == 1 and may_self:
                may_self = False
            else:
                return None
        return cur, src

    # Serialisation.

    def to_json(self) -> dict[str, Any]:
        """A compact JSON-serialisable dict; fields with default values are left out.

        Keys: h, b, e (offsets), n (body_lines), t, s (media type, subtype;
        absent for TEXT/PLAIN), p (params), id, desc, cte, disp, dp, lang,
        loc, md5, parts, msg (message), env (:meth:`Envelope.to_json`), md
        (message_decoded), x (defects).
        """
        d: dict[str, Any] = {"h": self.header_offset, "b": self.body_offset, "e": self.end_offset}
        if self.body_lines:
            d["n"] = self.body_lines
        if self.media_type != "TEXT" or self.media_subtype != "PLAIN":
            d["t"] = self.media_type
            d["s"] = self.media_subtype
        if self.params:
            d["p"] = self.params
        if self.content_id is not None:
            d["id"] = self.content_id
        if self.content_description is not None:
            d["desc"] = self.content_description
        if self.content_transfer_encoding != "7BIT":
            d["cte"] = self.content_transfer_encoding
        if self.disposition is not None:
            d["disp"] = self.disposition
        if self.disposition_params:
            d["dp"] = self.disposition_params
        if self.language is not None:
            d["lang"] = self.language
        if self.location is not None:
            d["loc"] = self.location
        if self.md5 is not None:
            d["md5"] = self.md5
        if self.parts:
            d["parts"] = [p.to_json() for p in self.parts]
        if self.message is not None:
            d["msg"] = self.message.to_json()
        if self.envelope is not None:
            d["env"] = self.envelope.to_json()
        if self.message_decoded:
            d["md"] = True
        if self.defects:
            d["x"] = self.defects
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Part:
        """Inverse of :meth:`to_json`."""
        env = d.get("env")
        msg = d.get("msg")
        return cls(
            header_offset=d["h"],
            body_offset=d["b"],
            end_offset=d["e"],
            body_lines=d.get("n", 0),
            media_type=d.get("t", "TEXT"),
            media_subtype=d.get("s", "PLAIN"),
            params=dict(d.get("p", {})),
            content_id=d.get("id"),
            content_description=d.get("desc"),
            content_transfer_encoding=d.get("cte", "7BIT"),
            disposition=d.get("disp"),
            disposition_params=dict(d.get("dp", {})),
            language=d.get("lang"),
            location=d.get("loc"),
            md5=d.get("md5"),
            parts=[cls.from_json(p) for p in d.get("parts", ())],
            message=None if msg is None else cls.from_json(msg),
            envelope=None if env is None else Envelope.from_json(env),
            message_decoded=bool(d.get("md", False)),
            defects=list(d.get("x", ())),
        )


@dataclass(slots=True)
class _Job:
    """A part still to be parsed: its region data[start:end] and context."""

    part: Part
    data: bytes
    nl: bytes
    start: int
    end: int
    depth: int
    is_message: bool
    default_type: tuple[str, str]


def parse(data: bytes, *, strict: bool = False) -> Part:
    """Parse a raw message into its MIME tree; never raises on malformed input.

    Args:
        data: the whole message, header and body.
        strict: also record bare CR and over-long lines as defects, and do
            not recover a media type from a malformed Content-Type (it
            becomes APPLICATION/OCTET-STREAM, as upstream mox in strict mode).

    Returns:
        The top part, with ``envelope`` set.
    """
    root = Part()
    nl = line_ending(data)
    _check_lines(root, data, nl, strict)
    work = [_Job(root, data, nl, 0, len(data), 0, True, ("TEXT", "PLAIN"))]
    while work:
        _parse_one(work.pop(), work, strict)
    return root


def _check_lines(root: Part, data: bytes, nl: bytes, strict: bool) -> None:
    # RFC 5322 section 2.3: CR and LF only together as CRLF.
    crlf = data.count(b"\r\n")
    if nl == b"\r" or data.count(b"\n") != crlf:
        root.defects.append(DEFECT_BARE_LF if nl == b"\n" else DEFECT_BARE_CR)
    elif strict and data.count(b"\r") != crlf:
        root.defects.append(DEFECT_BARE_CR)
    if strict and _LONG_LINE.search(data) is not None:
        root.defects.append(DEFECT_LONG_LINE)


def _count_lines(data: bytes, start: int, end: int, nl: bytes) -> int:
    if end <= start:
        return 0
    n = data.count(nl, start, end)
    if data[end - 1] != nl[0]:
        n += 1
    return n


def _first_word(s: str) -> str:
    for i, c in enumerate(s):
        if c in " \t(;":
            return s[:i]
    return s


def _parse_one(job: _Job, work: list[_Job], strict: bool) -> None:
    p = job.part
    data = job.data
    nl = job.nl
    start, end = job.start, job.end
    p.header_offset = start
    fields_end, body_start, fields = scan_header(data, start, end, nl)
    p.body_offset = body_start
    p.end_offset = end
    if fields_end == body_start and body_start < end:
        p.defects.append(DEFECT_NO_SEPARATOR)

    ct: bytes | None = None
    envfields: dict[bytes, list[bytes]] = {}
    for name, vs, ve in fields:
        lname = name.lower()
        if lname.startswith(b"content-"):
            key = lname[8:]
            if key == b"type":
                if ct is None:
                    ct = data[vs:ve]
            elif key == b"transfer-encoding":
                if p.content_transfer_encoding == "7BIT":
                    cte = _first_word(unfold(data[vs:ve])).upper()
                    if cte:
                        p.content_transfer_encoding = cte
            elif key == b"id":
                if p.content_id is None:
                    p.content_id = unfold(data[vs:ve])
            elif key == b"description":
                if p.content_description is None:
                    p.content_description = unfold(data[vs:ve])
            elif key == b"disposition":
                if p.disposition is None:
                    disp, dparams, _ = parse_value(unfold(data[vs:ve]))
                    p.disposition = disp.lower()
                    p.disposition_params = dparams
            elif key == b"language":
                if p.language is None:
                    p.language = unfold(data[vs:ve])
            elif key == b"location":
                if p.location is None:
                    p.location = unfold(data[vs:ve])
            elif key == b"md5" and p.md5 is None:
                p.md5 = unfold(data[vs:ve])
        elif job.is_message and lname in ENVELOPE_FIELDS:
            envfields.setdefault(lname, []).append(data[vs:ve])
    if job.is_message:
        p.envelope = envelope_from_fields(envfields)

    # RFC 2045 section 5.1 Content-Type; section 5.2 defaults.
    mtype, msub = job.default_type
    if ct is not None:
        main, params, valid = parse_value(unfold(ct))
        if main:
            t, sep, s = main.partition("/")
            t = t.strip()
            s = s.strip()
            if sep and is_token(t) and is_token(s) and (valid or not strict):
                mtype, msub = t.upper(), s.upper()
                if not valid:
                    p.defects.append(DEFECT_BAD_CONTENT_TYPE)
            else:
                # As upstream: APPLICATION/OCTET-STREAM for what we cannot make sense of.
                mtype, msub = "APPLICATION", "OCTET-STREAM"
                p.defects.append(DEFECT_BAD_CONTENT_TYPE)
            p.params = params
        else:
            p.defects.append(DEFECT_BAD_CONTENT_TYPE)
    p.media_type, p.media_subtype = mtype, msub

    if mtype == "MULTIPART":
        _add_children(job, work)
    elif mtype == "MESSAGE" and msub in ("RFC822", "GLOBAL"):
        _add_message(job, work)
    if p.media_type != "MULTIPART":
        # For multiparts body_lines stays 0: IMAP does not show it for them, and
        # counting at every level would cost time proportional to the depth.
        p.body_lines = _count_lines(data, body_start, end, nl)


def _add_children(job: _Job, work: list[_Job]) -> None:
    """Find the parts of a multipart and queue them for parsing (RFC 2046 section 5.1)."""
    p = job.part
    if job.depth >= MAX_NESTING_DEPTH:
        _make_opaque(p, DEFECT_TOO_DEEP)
        return
    boundary = p.params.get("boundary", "")
    if not boundary:
        _make_opaque(p, DEFECT_NO_BOUNDARY)
        return
    data, nl, start, end = job.data, job.nl, p.body_offset, job.end
    spans, closed = _split_multipart(data, start, end, b"--" + boundary.encode("utf-8"), nl)
    if not spans and not boundary.isascii():
        # A header that is not UTF-8 was decoded as ISO-8859-1 (headers.decode_text).
        spans, closed = _split_multipart(data, start, end, b"--" + boundary.encode("latin-1", "replace"), nl)
    if not spans:
        _make_opaque(p, DEFECT_NO_PARTS)
        return
    if not closed:
        p.defects.append(DEFECT_NO_CLOSE)
    # RFC 2046 section 5.1.5: in a digest, the default type is message/rfc822.
    default = ("MESSAGE", "RFC822") if p.media_subtype == "DIGEST" else ("TEXT", "PLAIN")
    for cstart, cend in spans:
        child = Part()
        p.parts.append(child)
        work.append(_Job(child, data, nl, cstart, cend, job.depth + 1, False, default))


def _add_message(job: _Job, work: list[_Job]) -> None:
    """Queue the embedded message of a message/rfc822 (RFC 2046 section 5.2.1) or
    message/global (RFC 6532 section 3.5) part for parsing."""
    p = job.part
    if job.depth >= MAX_NESTING_DEPTH:
        _make_opaque(p, DEFECT_TOO_DEEP)
        return
    child = Part()
    p.message = child
    start, end = p.body_offset, job.end
    if p.content_transfer_encoding in IDENTITY_ENCODINGS:
        work.append(_Job(child, job.data, job.nl, start, end, job.depth + 1, True, ("TEXT", "PLAIN")))
        return
    # RFC 2046 section 5.2.1 forbids encoding message/rfc822, but it is done;
    # message/global may be encoded (RFC 6532 section 3.5). The embedded
    # message is parsed from the decoded body.
    inner = decode_transfer(job.data[start:end], p.content_transfer_encoding)
    p.message_decoded = True
    work.append(_Job(child, inner, line_ending(inner), 0, len(inner), job.depth + 1, True, ("TEXT", "PLAIN")))


def to_crlf(data: bytes) -> bytes:
    """Return data with every line ending (CRLF, bare LF, bare CR) as CRLF."""
    crlf = data.count(b"\r\n")
    if crlf == data.count(b"\n") == data.count(b"\r"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _make_opaque(p: Part, defect: str) -> None:
    p.media_type, p.media_subtype = "APPLICATION", "OCTET-STREAM"
    p.defects.append(defect)


def _split_multipart(
    data: bytes, start: int, end: int, delim: bytes, nl: bytes
) -> tuple[list[tuple[int, int]], bool]:
    """Find the parts of a multipart body data[start:end] (RFC 2046 section 5.1.1).

    A delimiter line starts with "--" boundary at the beginning of a line; the
    line ending before it belongs to the delimiter, not to the preceding part.
    As upstream, the boundary must be followed by "--" (close delimiter),
    whitespace or the line end, so a boundary that is a prefix of a nested
    part's boundary does not match. Text after that on the line is ignored.

    Returns the (start, end) regions of the parts (headers included) and
    whether a close delimiter was found.
    """
    spans: list[tuple[int, int]] = []
    nlc = nl[0]
    needle = nl + delim  # Only candidates at the start of a line.
    dlen = len(delim)
    find = data.find
    cur = -1  # Start of the current part, -1 while in the preamble.
    # A delimiter at the very start of the body has no line ending before it.
    i = start if data.startswith(delim, start, end) else -1
    pos = start
    while True:
        if i < 0:
            j = find(needle, pos, end)
            if j < 0:
                break
            i = j + 1
        j = i + dlen
        closing = data.startswith(b"--", j, end)
        if not closing and j < end and data[j] not in b" \t\r\n":
            pos = i  # Not a delimiter (e.g. a longer boundary); find the next candidate.
            i = -1
            continue
        if cur >= 0:
            pend = i
            if i > start:
                pend = i - 1
                if nlc == 10 and pend > cur and data[pend - 1] == 13:
                    pend -= 1
            spans.append((cur, max(pend, cur)))
        if closing:
            return spans, True
        eol = find(nl, j, end)
        cur = end if eol < 0 else eol + 1
        # Next candidate: the line ending of this delimiter line may be the one
        # before the next delimiter (an empty part), so search from eol.
        pos = j if eol < 0 else eol
        i = -1
    if cur >= 0:
        spans.append((cur, end))
    return spans, False
