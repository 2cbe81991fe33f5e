"""Per-message IMAP values computed once, when a message is stored, and kept next to it.

Messages never change once stored, so the ENVELOPE, BODY and BODYSTRUCTURE
values of FETCH responses (RFC 9051 section 7.5.2) can be serialised once and
served as bytes; computing them from the parsed tree for every FETCH of a
large mailbox costs far more than the rest of the response. Both forms are
kept where they differ: for sessions without UTF-8 (non-ASCII text as RFC 2047
encoded-words or literals) and with UTF-8 (IMAP4rev2, UTF8=ACCEPT).

The record also holds what SEARCH BODY/TEXT needs to decide from the raw
message bytes alone in the common case (see :class:`MessageCache`).

The encoding is private to this module: :func:`encode` makes the bytes the
store keeps, :func:`decode` reads them back (None for a record of another
version, which callers recompute from the parsed tree).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class MessageCache:
    envelope: bytes
    body: bytes
    bodystructure: bytes
    envelope8: bytes
    """For UTF-8 sessions; the same object as envelope when both are equal."""
    body8: bytes
    bodystructure8: bytes
    body_offset: int
    """Where the top-level header ends (the raw body starts)."""
    flags: int

    def fetch_envelope(self, utf8: bool) -> bytes:
        return self.envelope8 if utf8 else self.envelope

    def fetch_body(self, utf8: bool) -> bytes:
        return self.body8 if utf8 else self.body

    def fetch_bodystructure(self, utf8: bool) -> bytes:
        return self.bodystructure8 if utf8 else self.bodystructure


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
    """The cached values of a message from its parsed tree (pure; the same as FETCH computes)."""
    env = part.envelope or Envelope()
    values = []
    for utf8 in (False, True):
        values.append(w.envelope(env, utf8))
        values.append(w.body_structure(part, False, utf8))
        values.append(w.body_structure(part, True, utf8))
    e, b, bs, e8, b8, bs8 = values
    # Share equal values, the common case (ASCII-only headers and parameters).
    e8 = e if e8 == e else e8
    b8 = b if b8 == b else b8
    bs8 = bs if bs8 == bs else bs8
    return MessageCache(e, b, bs, e8, b8, bs8, part.body_offset, search_flags(part))


def encode(c: MessageCache) -> bytes:
    """The stored form of a cache record; UTF-8 forms equal to the others are stored empty."""
    e8 = b"" if c.envelope8 is c.envelope or c.envelope8 == c.envelope else c.envelope8
    b8 = b"" if c.body8 is c.body or c.body8 == c.body else c.body8
    bs8 = b"" if c.bodystructure8 is c.bodystructure or c.bodystructure8 == c.bodystructure else c.bodystructure8
    vals = (c.envelope, c.body, c.bodystructure, e8, b8, bs8)
    return _HEAD.pack(VERSION, c.flags, c.body_offset, *(len(v) for v in vals)) + b"".join(vals)


def encode_part(part: Part) -> bytes:
    """encode(build(part))."""
    return encode(build(part))


def decode(data: bytes) -> MessageCache | None:
    """A record made by :func:`encode`; None if it is of another version or damaged."""
    if len(data) < _HEAD.size or data[0] != VERSION:
        return None
    _, flags, body_offset, *lens = _HEAD.unpack_from(data)
    if _HEAD.size + sum(lens) != len(data):
        return None
    vals: list[bytes] = []
    o = _HEAD.size
    for n in lens:
        vals.append(data[o : o + n])
        o += n
    e, b, bs, e8, b8, bs8 = vals
    # An empty UTF-8 form means "same as the other": ENVELOPE and BODY values are never empty.
    return MessageCache(e, b, bs, e8 or e, b8 or b, bs8 or bs, body_offset, flags)
