"""Per-message IMAP values computed once, when a message is stored, and kept next to it.

Messages never change once stored, so the ENVELOPE, BODY and BODYSTRUCTURE
values of FETCH responses (RFC 9051 section 7.5.2) can be serialised once and
served as bytes; computing them from the parsed tree for every FETCH of a
large mailbox costs far more than the rest of the response. Both forms are
kept where they differ: for sessions without UTF-8 (non-ASCII text as RFC 2047
encoded-words or literals) and with UTF-8 (IMAP4rev2, UTF8=ACCEPT).

The record also holds what SEARCH BODY/TEXT needs to decide from the raw
message bytes alone in the common case (see :class:`MessageCache`).

Records carry a VERSION: bump it when the parser or the ENVELOPE/BODYSTRUCTURE
output changes, and records of the old version are recomputed on use.

The encoding is private to this module: :func:`encode` makes the bytes the
store keeps, :func:`decode` reads them back (None for a record of another
version, which callers recompute from the parsed tree).
"""

from __future__ import annotations

import struct

from mox.message.charset import codec_for
from mox.message.envelope import Envelope
from mox.message.part import Part
from mox.message.transfer import IDENTITY_ENCODINGS

from . import write as w

VERSION = 2

PLAIN_TEXT = 1
"""Flag: every TEXT part's body is its decoded text byte for byte as far as ASCII goes:
no transfer encoding, a charset in which ASCII bytes are ASCII characters and no other
byte sequence decodes to ASCII (UTF-8, windows-1252 and the labels mapped to it, or none),
and no embedded message with a transfer encoding. The record then lists where the bodies
of the TEXT parts are (:attr:`MessageCache.text_ranges`)."""

SINGLE_TEXT = 2
"""Flag: the message is one TEXT part (not multipart): its body is all the text there is."""

MAX_TEXT_RANGES = 100
"""Messages with more TEXT parts are not PLAIN_TEXT (their records stay small)."""

# Python codecs whose decoding keeps ASCII bytes as the same ASCII characters and turns every
# other byte sequence into non-ASCII characters (U+FFFD for invalid ones).
_ASCII_TRANSPARENT = frozenset({None, "utf-8", "cp1252"})

_HEAD = struct.Struct("<BBI6IH")


class MessageCache:
    """One message's cached values; made by :func:`build` or read with :func:`decode`.

    The values are sliced from the stored record when asked for, so reading many records for
    SEARCH (which needs only flags and text ranges) costs little.
    """

    __slots__ = ("_data", "_nranges", "_offsets", "body_offset", "flags")

    def __init__(self, data: bytes, body_offset: int, flags: int, nranges: int) -> None:
        self._data = data
        self._offsets: list[int] | None = None
        self.body_offset = body_offset
        """Where the top-level header ends (the raw body starts)."""
        self.flags = flags
        """PLAIN_TEXT, SINGLE_TEXT."""
        self._nranges = nranges

    @property
    def text_ranges(self) -> list[tuple[int, int]]:
        """With PLAIN_TEXT: (start, end) in the raw message of the body of each TEXT part."""
        n = self._nranges
        if not n:
            return []
        v = struct.unpack_from(f"<{2 * n}I", self._data, len(self._data) - 8 * n)
        return [(v[i], v[i + 1]) for i in range(0, 2 * n, 2)]

    def _value(self, i: int, utf8: bool) -> bytes:
        o = self._offsets
        if o is None:
            o = self._offsets = _offsets(self._data)
        if utf8 and o[i + 4] > o[i + 3]:
            return self._data[o[i + 3] : o[i + 4]]
        return self._data[o[i] : o[i + 1]]

    def fetch_envelope(self, utf8: bool) -> bytes:
        """The ENVELOPE value (RFC 9051 section 7.5.2)."""
        return self._value(0, utf8)

    def fetch_body(self, utf8: bool) -> bytes:
        """The BODY value (non-extensible BODYSTRUCTURE)."""
        return self._value(1, utf8)

    def fetch_bodystructure(self, utf8: bool) -> bytes:
        """The BODYSTRUCTURE value."""
        return self._value(2, utf8)

    def encoded(self) -> bytes:
        """The stored form."""
        return self._data


def search_flags(part: Part) -> int:
    """PLAIN_TEXT and SINGLE_TEXT as they apply to a parsed message."""
    return _search_info(part)[0]


def _search_info(part: Part) -> tuple[int, list[tuple[int, int]]]:
    plain = True
    ranges: list[tuple[int, int]] = []
    for p in part.walk():
        if p.message_decoded:
            plain = False
            break
        if p.media_type == "TEXT" and not p.is_multipart:
            if p.content_transfer_encoding not in IDENTITY_ENCODINGS or len(ranges) >= MAX_TEXT_RANGES:
                plain = False
                break
            cs = p.params.get("charset")
            if (codec_for(cs) if cs else None) not in _ASCII_TRANSPARENT:
                plain = False
                break
            ranges.append((p.body_offset, max(p.body_offset, p.end_offset)))
    flags = PLAIN_TEXT if plain else 0
    if part.media_type == "TEXT" and not part.parts and part.message is None:
        flags |= SINGLE_TEXT
    return flags, ranges if plain else []


def build(part: Part) -> MessageCache:
    """The cached values of a message from its parsed tree (pure; what FETCH would compute)."""
    env = part.envelope or Envelope()
    e8, b8, bs8 = w.envelope(env, True), w.body_structure(part, False, True), w.body_structure(part, True, True)
    if e8.isascii() and b8.isascii() and bs8.isascii():
        # All text was ASCII: the forms for other sessions are the same (the common case).
        vals = (e8, b8, bs8, b"", b"", b"")
    else:
        e, b, bs = w.envelope(env, False), w.body_structure(part, False, False), w.body_structure(part, True, False)
        # UTF-8 forms equal to the others are stored empty.
        vals = (e, b, bs, b"" if e8 == e else e8, b"" if b8 == b else b8, b"" if bs8 == bs else bs8)
    flags, ranges = _search_info(part)
    data = (
        _HEAD.pack(VERSION, flags, part.body_offset, *(len(v) for v in vals), len(ranges))
        + b"".join(vals)
        + struct.pack(f"<{2 * len(ranges)}I", *(x for r in ranges for x in r))
    )
    c = decode(data)
    assert c is not None
    return c


def encode_part(part: Part) -> bytes:
    """The stored form of build(part); b"" if the values cannot be made (storing a message never
    fails for its cache: FETCH then computes the values itself and reports the problem)."""
    try:
        return build(part).encoded()
    except (UnicodeError, ValueError, struct.error):
        return b""


def _offsets(data: bytes) -> list[int]:
    offsets = [_HEAD.size]
    for n in _HEAD.unpack_from(data)[3:9]:
        offsets.append(offsets[-1] + n)
    return offsets


def decode(data: bytes) -> MessageCache | None:
    """A stored record; None if it is of another version or damaged."""
    if len(data) < _HEAD.size or data[0] != VERSION:
        return None
    _, flags, body_offset, a, b, c, d, e, f, nranges = _HEAD.unpack_from(data)
    if _HEAD.size + a + b + c + d + e + f + 8 * nranges != len(data):
        return None
    return MessageCache(data, body_offset, flags, nranges)
