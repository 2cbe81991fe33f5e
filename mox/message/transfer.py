"""Content-Transfer-Encoding decoding (RFC 2045 section 6), lenient.

Base64 (RFC 2045 section 6.8): characters outside the alphabet are ignored,
as the RFC asks, missing padding is tolerated, and data that continues after
a padded quantum (concatenated base64 blobs) is decoded too.

Quoted-printable (RFC 2045 section 6.7): soft line breaks ("=" at the end of
a line, with CRLF, LF, or in CR-only text a bare CR), "=XX" octets (hex in
either case), and an "=" not followed by two hex digits kept as is.

Any other encoding (7bit, 8bit, binary, or unknown ones) is returned as is.
"""

from __future__ import annotations

import binascii
import re

# Bytes that are not in the base64 alphabet (RFC 2045 section 6.8, table 1), or "=".
_B64_DELETE = bytes(c for c in range(256) if not (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/=")))
_B64_PAD_RUN = re.compile(rb"=+")


def decode_base64(data: bytes) -> bytes:
    """Decode base64 leniently; never raises."""
    clean = data.translate(None, _B64_DELETE)
    if b"=" not in clean[:-2]:
        # Common case: one blob, padding (if any) only at the end.
        return _b64_chunk(clean.rstrip(b"="))
    return b"".join(_b64_chunk(seg) for seg in _B64_PAD_RUN.split(clean) if seg)


def _b64_chunk(seg: bytes) -> bytes:
    n = len(seg) % 4
    if n == 1:
        seg = seg[:-1]  # A lone sextet carries no complete octet.
    elif n:
        seg += b"=" * (4 - n)
    try:
        return binascii.a2b_base64(seg)
    except (binascii.Error, ValueError):  # Not expected after cleaning; be safe.
        return b""


def decode_quoted_printable(data: bytes) -> bytes:
    """Decode quoted-printable leniently; never raises."""
    if b"=" not in data:
        return data
    if b"\n" not in data and b"=\r" in data:
        # CR-only line endings: make soft line breaks recognisable.
        data = data.replace(b"=\r", b"=\r\n")
    return binascii.a2b_qp(data)


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Decode data with the named Content-Transfer-Encoding (case-insensitive)."""
    enc = encoding.upper()
    if enc == "BASE64":
        return decode_base64(data)
    if enc == "QUOTED-PRINTABLE":
        return decode_quoted_printable(data)
    return data


IDENTITY_ENCODINGS = frozenset({"7BIT", "8BIT", "BINARY"})
"""Encodings that leave the octets as they are (RFC 2045 section 6.2)."""
