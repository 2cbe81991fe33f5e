"""Decoding bytes in a named MIME charset to text, leniently.

MIME names the character set of text with a ``charset`` parameter (RFC 2045
section 5.1, RFC 2046 section 4.1.2) and of encoded-words with their charset
field (RFC 2047 section 2). The names come from the IANA registry; Python's
codecs know most of them. Mail in the wild uses names Python does not know,
labels text with the wrong charset, or contains bytes invalid in the labelled
one. :func:`decode_charset` never raises: it maps common aliases the way web
browsers do (the WHATWG Encoding standard, e.g. iso-8859-1 is decoded as
windows-1252), falls back to UTF-8 and then windows-1252 for unknown names, and
replaces undecodable bytes with U+FFFD.
"""

from __future__ import annotations

import codecs
import functools

# Charset labels mapped to the Python codec to use instead. Mostly supersets
# that browsers substitute (WHATWG Encoding standard, section 4.2 "Names and
# labels"), plus labels Python lacks.
_ALIASES: dict[str, str] = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "x-sjis": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "x-mac-roman": "mac-roman",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}

# Labels that say nothing about the actual charset. Such text is most often
# UTF-8, else a single-byte Western charset.
_UNKNOWN = frozenset({"", "unknown", "unknown-8bit", "x-unknown", "default", "x-user-defined", "charset"})

# Codecs that are not text encodings for mail (they transform, or always fail).
_NOT_TEXT = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "mbcs", "oem", "rot-13"}
)


@functools.lru_cache(maxsize=256)
def codec_for(charset: str) -> str | None:
    """Return the Python codec name for a MIME charset label, or None if unknown.

    The label is compared case-insensitively, without surrounding whitespace or
    quotes. US-ASCII (the MIME default, RFC 2046 section 4.1.2) maps to
    windows-1252, so stray 8-bit bytes in "ascii" text still decode to
    something readable rather than U+FFFD.
    """
    name = charset.strip().strip("\"'").strip().lower()
    if name in _UNKNOWN:
        return None
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _NOT_TEXT or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def decode_charset(data: bytes, charset: str | None) -> str:
    """Decode data labelled with charset, never raising.

    Unknown or missing charsets: UTF-8 if the bytes are valid UTF-8, else
    windows-1252. Bytes invalid in a known charset become U+FFFD, except that
    text labelled with a single-byte Western charset (or ASCII) which is
    valid UTF-8 and contains non-ASCII is decoded as UTF-8: that mislabelling
    is common and decoding as windows-1252 would produce mojibake.
    """
    if not data:
        return ""
    codec = codec_for(charset) if charset else None
    if codec is None or codec == "cp1252":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
    if codec == "utf-8":
        return data.decode("utf-8", errors="replace")
    try:
        return data.decode(codec, errors="replace")
    except Exception:  # Some codecs raise despite errors="replace" (e.g. on internal state errors).
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
