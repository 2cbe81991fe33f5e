"""Header section parsing (RFC 5322 section 2.2, 3.6; RFC 6532 for UTF-8).

A header section is a sequence of fields ``name ":" value CRLF``, where a value
may be folded over several lines by continuation lines starting with WSP
(RFC 5322 section 2.2.3). Parsing here is lenient, for mail as it is found:

- lines may end in CRLF, bare LF, or (in messages without any LF) bare CR;
- field names may have WSP before the colon (obsolete syntax, RFC 5322
  section 4.5) and 8-bit bytes;
- values may hold raw UTF-8 (RFC 6532 section 3.2); values that are not valid
  UTF-8 are decoded as ISO-8859-1, so decoding never fails.

:func:`parse_headers` returns raw field names and raw values (bytes, still
folded); :func:`header_values` and :func:`unfold` produce text.
"""

from __future__ import annotations

import re

_WSP = b" \t"


def line_ending(data: bytes) -> bytes:
    """Return the line terminator to split data on: LF, or CR for data without any LF.

    CRLF and bare-LF messages both split on LF (a CR before the LF is part of
    the line ending); old Mac-style messages end lines with a bare CR only.
    """
    if b"\n" not in data and b"\r" in data:
        return b"\r"
    return b"\n"


# A field line: name, optional WSP (obsolete syntax), colon. RFC 5322 section
# 3.6.8 allows printable US-ASCII except colon in names; we also allow 8-bit.
_FIELD_START = re.compile(rb"[^\x00-\x20\x7f:]+[ \t]*:")


def scan_header(
    data: bytes, start: int, end: int, nl: bytes = b"\n"
) -> tuple[int, int, list[tuple[bytes, int, int]]]:
    """Scan the header section at data[start:end].

    Returns (fields_end, body_start, fields). The header fields are
    data[start:fields_end]; the body starts at body_start, after the empty
    line that separates header and body (RFC 5322 section 2.1). Without an
    empty line, the header ends at the first line that is neither a field nor
    a continuation line (the body then starts at that line, as Python's email
    package does), or at end. fields holds (name, value_start, value_end) per
    field: name without trailing WSP, value from after the colon to the end of
    the field's last line, excluding that line's ending.
    """
    fields: list[tuple[bytes, int, int]] = []
    pos = start
    strip_cr = nl == b"\n"
    match = _FIELD_START.match
    find = data.find
    while pos < end:
        eol = find(nl, pos, end)
        if eol < 0:
            nxt = lend = end
        else:
            nxt = eol + 1
            lend = eol
        if strip_cr and lend > pos and data[lend - 1] == 13:
            lend -= 1
        if lend == pos:
            return pos, nxt, fields  # Empty line: end of header section.
        c = data[pos]
        if c == 32 or c == 9:
            if not fields:
                return pos, pos, fields  # Continuation line without a field.
            name, vs, _ = fields[-1]
            fields[-1] = (name, vs, lend)
        else:
            m = match(data, pos, lend)
            if m is None:
                return pos, pos, fields  # Not a header line: the body starts here.
            colon = m.end() - 1
            fields.append((data[pos:colon].rstrip(_WSP), colon + 1, lend))
        pos = nxt
    return end, end, fields


def parse_headers(data: bytes) -> list[tuple[str, bytes]]:
    """Parse a header section (or a whole message: parsing stops at its body).

    Returns a list of (name, value) in message order. The name is the field
    name as it appears (case preserved, trailing WSP removed, decoded as
    ISO-8859-1 so any byte survives); the value is the raw bytes after the
    colon up to, not including, the line ending of the field's last line:
    still folded (continuation line endings included) and with its leading
    whitespace. Use :func:`unfold` or :func:`header_values` for text.
    """
    _, _, fields = scan_header(data, 0, len(data), line_ending(data))
    return [(name.decode("latin-1"), data[vs:ve]) for name, vs, ve in fields]


def decode_text(value: bytes) -> str:
    """Decode header bytes: UTF-8 (RFC 6532 section 3.2), else ISO-8859-1."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def unfold(value: bytes | str) -> str:
    """Unfold a raw header value (RFC 5322 section 2.2.3) and strip surrounding whitespace.

    Line endings (CRLF, LF, CR) are removed and the WSP after them kept. Bytes
    are decoded with :func:`decode_text`.
    """
    s = decode_text(value) if isinstance(value, bytes) else value
    if "\n" in s or "\r" in s:
        s = s.replace("\r\n", "").replace("\n", "").replace("\r", "")
    return s.strip(" \t")


def header_values(headers: list[tuple[str, bytes]], name: str) -> list[str]:
    """Return the unfolded, stripped text values of all fields named name (case-insensitive)."""
    key = name.lower()
    return [unfold(v) for k, v in headers if k.lower() == key]


def header_value(headers: list[tuple[str, bytes]], name: str) -> str | None:
    """Return the unfolded value of the first field named name, or None if absent."""
    key = name.lower()
    for k, v in headers:
        if k.lower() == key:
            return unfold(v)
    return None
