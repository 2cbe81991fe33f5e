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

VERSION = 1

PLAIN_TEXT = 1
"""Flag: every TEXT part's body is its decoded text byte for byte as far as ASCII goes:
no transfer encoding, a charset in which ASCII bytes are ASCII characters and no other
byte sequence decodes to ASCII (UTF-8, windows-1252 and the labels mapped to it, or none),
and no embedded message with a transfer encoding."""

SINGLE_TEXT = 2
"""Flag: the message is one TEXT part (not multipart): its body is all the text there is."""

# Python codecs whose decoding keeps ASCII bytes as the same ASCII characters and turns every
# other byte sequence into non-ASCII characters (U+FFFD for invalid ones).
_ASCII_TRANSPARENT = frozenset({None, "utf-8", "cp1252"})

_HEAD = struct.Struct("<BBI6I")


class MessageCache:
    """One message's cached values; made by :func:`build` or read with :func:`decode`.

    The values are sliced from the stored record when asked for, so reading many records for
    SEARCH (which needs only flags and body_offset) costs little.
    """

    __slots__ = ("_data", "_offsets", "body_offset", "flags")

    def __init__(self, data: bytes, body_offset: int, flags: int) -> None:
        self._data = data
        self._offsets: list[int] | None = None
        self.body_offset = body_offset
        """Where the top-level header ends (the raw body starts)."""
        self.flags = flags
        """PLAIN_TEXT, SINGLE_TEXT."""

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
    plain = True
    for p in part.walk():
        if p.message_decoded:
            plain = False
            break
        if p.media_type == "TEXT" and not p.is_multipart:
            if p.content_transfer_encoding not in IDENTITY_ENCODINGS:
                plain = False
                break
            cs = p.params.get("charset")
            if (codec_for(cs) if cs else None) not in _ASCII_TRANSPARENT:
                plain = False
                break
    flags = PLAIN_TEXT if plain else 0
    if part.media_type == "TEXT" and not part.parts and part.message is None:
        flags |= SINGLE_TEXT
    return flags


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
    data = _HEAD.pack(VERSION, search_flags(part), part.body_offset, *(len(v) for v in vals)) + b"".join(vals)
    c = decode(data)
    assert c is not None
    return c


def encode_part(part: Part) -> bytes:
    """The stored form of build(part)."""
    return build(part).encoded()


def _offsets(data: bytes) -> list[int]:
    offsets = [_HEAD.size]
    for n in _HEAD.unpack_from(data)[3:]:
        offsets.append(offsets[-1] + n)
    return offsets


def decode(data: bytes) -> MessageCache | None:
    """A stored record; None if it is of another version or damaged."""
    if len(data) < _HEAD.size or data[0] != VERSION:
        return None
    _, flags, body_offset, a, b, c, d, e, f = _HEAD.unpack_from(data)
    if _HEAD.size + a + b + c + d + e + f != len(data):
        return None
    return MessageCache(data, body_offset, flags)
