"""RFC 2047 encoded-words in header text: ``=?charset?B?...?=`` and ``=?charset?Q?...?=``.

Decoding is lenient, as mail readers are:

- encoded-words are decoded wherever they appear, also inside quoted strings
  and adjacent to other text (RFC 2047 section 5 is stricter);
- whitespace between two adjacent encoded-words is dropped (RFC 2047 section
  6.2), and the octets of adjacent words in the same charset are joined
  before decoding, so a multi-byte character split over two words (a common
  encoder bug) decodes correctly;
- the charset may carry an RFC 2231 section 5 language suffix (``*en``);
- unknown charsets decode with fallbacks (see :mod:`mox.message.charset`);
- base64 with missing padding decodes; a word whose encoded text cannot be
  decoded at all is left as it is.
"""

from __future__ import annotations

import binascii
import re

from .charset import decode_charset
from .headers import decode_text

# RFC 2047 section 2: encoded-word = "=?" charset "?" encoding "?" encoded-text "?="
# charset is a token; encoded-text has no "?" and no whitespace.
_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_WSP_ONLY = re.compile(r"[ \t\r\n]*\Z")
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _decode_b(text: str) -> bytes | None:
    # RFC 2047 section 4.1, base64 per RFC 2045 section 6.8; padding optional here.
    raw = _B64_JUNK.sub(b"", text.encode("ascii", "ignore"))
    if not raw and text.strip("="):
        return None  # Only junk: not base64.
    n = len(raw) % 4
    if n == 1:
        raw = raw[:-1]
    elif n:
        raw += b"=" * (4 - n)
    try:
        return binascii.a2b_base64(raw)
    except (binascii.Error, ValueError):
        return None


def _decode_q(text: str) -> bytes:
    # RFC 2047 section 4.2: "_" is space, "=XX" an octet; invalid "=" kept as is.
    raw = text.encode("utf-8").replace(b"_", b" ")
    if b"=" not in raw:
        return raw
    return _Q_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _charset_name(charset: str) -> str:
    # RFC 2231 section 5: charset may be followed by "*" language.
    return charset.split("*", 1)[0]


def decode_words(value: str | bytes) -> str:
    """Decode RFC 2047 encoded-words in a header value; never raises.

    Bytes are first decoded as UTF-8 (RFC 6532) or ISO-8859-1. Text that is not
    an encoded-word is returned unchanged, including line endings of folded
    values (unfold first if needed).
    """
    s = decode_text(value) if isinstance(value, bytes) else value
    if "=?" not in s:
        return s
    out: list[str] = []
    pos = 0
    # Pending octets of adjacent encoded-words in one charset, decoded together.
    pend_charset: str | None = None
    pend: list[bytes] = []
    prev_end = -1  # End of the previous successfully decoded word, for adjacency.

    def flush() -> None:
        nonlocal pend_charset
        if pend_charset is not None:
            out.append(decode_charset(b"".join(pend), pend_charset))
            pend.clear()
            pend_charset = None

    for m in _WORD.finditer(s):
        charset, enc, text = m.group(1), m.group(2), m.group(3)
        octets = _decode_b(text) if enc in "bB" else _decode_q(text)
        if octets is None:
            continue  # Malformed: the word stays in the text, as is.
        between = s[pos : m.start()]
        adjacent = prev_end == pos and _WSP_ONLY.match(between) is not None
        cs = _charset_name(charset).lower()
        if not adjacent:
            flush()
            out.append(between)
        elif cs != pend_charset:
            flush()
        pend_charset = cs
        pend.append(octets)
        pos = prev_end = m.end()
    flush()
    out.append(s[pos:])
    return "".join(out)
