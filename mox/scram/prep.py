"""String preparation for usernames and passwords: SASLprep (RFC 4013) and PRECIS OpaqueString (RFC 8265).

Two profiles, each used where upstream mox and the RFCs put it:

- :func:`saslprep` (RFC 4013, a profile of stringprep, RFC 3454) prepares the
  SCRAM username and authzid the server receives (RFC 5802 section 5.1, "n").
  Python's :mod:`stringprep` holds the RFC 3454 tables (Unicode 3.2), so this
  is the profile exactly.
- :func:`opaque_string` (RFC 8265 section 4.2, the PRECIS successor of
  SASLprep for passwords) prepares passwords before they are hashed or salted.
  Upstream mox does the same (``precis.OpaqueString``), for bcrypt, CRAM-MD5
  and SCRAM alike. RFC 5802 section 2.2 asks for SASLprep of the password; the
  two agree on every ASCII password and differ only on compatibility
  characters (e.g. U+2168 ROMAN NUMERAL NINE: SASLprep maps it to "IX",
  OpaqueString keeps it), where we side with upstream.

Python has no PRECIS tables. :func:`opaque_string` derives the FreeformClass
property of each code point (RFC 8264 section 8) from :mod:`unicodedata`'s
general categories and a few listed ranges, which is the derivation the RFC
gives; the contextual rules (RFC 5892 appendix A) are checked in their simple
form (ZWJ/ZWNJ only after a virama; middle dot between two "l"; Greek keraia
before Greek; Hebrew geresh after Hebrew; katakana middle dot with kana/han;
no mixing of Arabic-Indic digit sets), a ZWNJ's joining-type exception is not
(rejected instead: no password needs it).
"""

from __future__ import annotations

import stringprep
import unicodedata

__all__ = ["PrepError", "opaque_string", "saslprep"]


class PrepError(ValueError):
    """The string is not allowed by the profile (prohibited character, bidi rule, empty)."""


# ---------------------------------------------------------------------------
# SASLprep, RFC 4013.


def saslprep(s: str, *, allow_unassigned: bool = False) -> str:
    """Prepare a string with the SASLprep profile of stringprep.

    Args:
        s: the string to prepare.
        allow_unassigned: True for a "query" (RFC 3454 section 7: unassigned
            code points pass), False for a "stored string". RFC 5802 section
            5.1 prepares received usernames as queries.

    Returns:
        The prepared string.

    Raises:
        PrepError: a prohibited or (for stored strings) unassigned code point,
            a bidi violation, or an empty result.
    """
    # RFC 4013 section 2.1: non-ASCII space (C.1.2) to SPACE, "commonly mapped
    # to nothing" (B.1) removed.
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in s if not stringprep.in_table_b1(c))
    # RFC 4013 section 2.2: Unicode normalization form KC, of Unicode 3.2 as
    # stringprep is defined on (RFC 3454 section 4).
    normalized = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for c in normalized:
        # RFC 4013 section 2.3, prohibited output.
        if (
            stringprep.in_table_c12(c)
            or stringprep.in_table_c21_c22(c)
            or stringprep.in_table_c3(c)
            or stringprep.in_table_c4(c)
            or stringprep.in_table_c5(c)
            or stringprep.in_table_c6(c)
            or stringprep.in_table_c7(c)
            or stringprep.in_table_c8(c)
            or stringprep.in_table_c9(c)
        ):
            raise PrepError(f"prohibited character U+{ord(c):04X}")
        # RFC 4013 section 2.5 and RFC 3454 section 7.
        if not allow_unassigned and stringprep.in_table_a1(c):
            raise PrepError(f"unassigned character U+{ord(c):04X}")
    # RFC 4013 section 2.4, RFC 3454 section 6: a string with right-to-left
    # characters has no left-to-right ones, and starts and ends with one.
    if any(stringprep.in_table_d1(c) for c in normalized):
        if any(stringprep.in_table_d2(c) for c in normalized):
            raise PrepError("mixed left-to-right and right-to-left characters")
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            raise PrepError("right-to-left string must start and end with a right-to-left character")
    if not normalized:
        # RFC 5802 section 5.1: an empty prepared username fails.
        raise PrepError("empty string")
    return normalized


# ---------------------------------------------------------------------------
# PRECIS OpaqueString, RFC 8265 section 4.2, over the FreeformClass of RFC 8264.

_ZWNJ = 0x200C
_ZWJ = 0x200D
_MIDDLE_DOT = 0x00B7
_KERAIA = 0x0375
_GERESH = (0x05F3, 0x05F4)
_KATAKANA_MIDDLE_DOT = 0x30FB
_ARABIC_INDIC_DIGITS = range(0x0660, 0x066A)
_EXTENDED_ARABIC_INDIC_DIGITS = range(0x06F0, 0x06FA)

# RFC 5892 section 2.6, the Exceptions (F) category.
_EXCEPTION_PVALID = frozenset({0x00DF, 0x03C2, 0x06FD, 0x06FE, 0x0F0B, 0x3007})
_EXCEPTION_CONTEXTO = frozenset(
    {
        _MIDDLE_DOT,
        _KERAIA,
        *_GERESH,
        _KATAKANA_MIDDLE_DOT,
        *_ARABIC_INDIC_DIGITS,
        *_EXTENDED_ARABIC_INDIC_DIGITS,
    }
)
_EXCEPTION_DISALLOWED = frozenset(
    {0x0640, 0x07FA, 0x302E, 0x302F, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303B}
)

# RFC 8264 section 9.9, OldHangulJamo (I): Hangul_Syllable_Type L, V or T.
_OLD_HANGUL_JAMO = ((0x1100, 0x11FF), (0xA960, 0xA97C), (0xD7B0, 0xD7C6), (0xD7CB, 0xD7FB))

# RFC 8264 section 9.13, PrecisIgnorableProperties (M): Default_Ignorable_Code_Point
# (those not already caught as Cf, Cn or Cc below) and noncharacters.
_DEFAULT_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

# RFC 8264 section 9: general categories of LetterDigits (A), OtherLetterDigits
# (R), Spaces (N), Symbols (O) and Punctuation (P). All but A are FREE_PVAL,
# which the FreeformClass allows just like PVALID.
_FREEFORM_CATEGORIES = frozenset(
    {
        "Ll", "Lu", "Lo", "Nd", "Lm", "Mn", "Mc",  # LetterDigits
        "Lt", "Nl", "No", "Me",  # OtherLetterDigits
        "Zs",  # Spaces
        "Sm", "Sc", "Sk", "So",  # Symbols
        "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po",  # Punctuation
    }
)  # fmt: skip

_VALID, _CONTEXTJ, _CONTEXTO, _DISALLOWED = "valid", "contextj", "contexto", "disallowed"


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_noncharacter(cp: int) -> bool:
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


def _freeform_property(c: str) -> str:
    """The FreeformClass property of one code point, in the order of RFC 8264 section 8."""
    cp = ord(c)
    if cp in _EXCEPTION_PVALID:
        return _VALID
    if cp in _EXCEPTION_CONTEXTO:
        return _CONTEXTO
    if cp in _EXCEPTION_DISALLOWED:
        return _DISALLOWED
    category = unicodedata.category(c)
    if category == "Cn" and not _is_noncharacter(cp):
        return _DISALLOWED  # Unassigned (J): not allowed in any PRECIS class.
    if 0x21 <= cp <= 0x7E:
        return _VALID  # ASCII7 (K).
    if cp in (_ZWNJ, _ZWJ):
        return _CONTEXTJ  # JoinControl (H).
    if _in_ranges(cp, _OLD_HANGUL_JAMO):
        return _DISALLOWED
    if _in_ranges(cp, _DEFAULT_IGNORABLE) or _is_noncharacter(cp) or category == "Cf":
        return _DISALLOWED  # PrecisIgnorableProperties (M).
    if category == "Cc":
        return _DISALLOWED  # Controls (L).
    if unicodedata.normalize("NFKC", c) != c:
        return _VALID  # HasCompat (Q): FREE_PVAL.
    if category in _FREEFORM_CATEGORIES:
        return _VALID
    return _DISALLOWED  # Zl, Zp, Co, Cs: "other".


def _script_name(c: str, *prefixes: str) -> bool:
    # Python has no Script property; the character name starts with its script
    # for every script the contextual rules ask about.
    return unicodedata.name(c, "").startswith(prefixes)


def _context_ok(s: str, i: int) -> bool:
    """The contextual rule of RFC 5892 appendix A for s[i]."""
    cp = ord(s[i])
    before = s[i - 1] if i > 0 else ""
    after = s[i + 1] if i + 1 < len(s) else ""
    if cp in (_ZWNJ, _ZWJ):
        # Appendix A.1 and A.2: after a virama (canonical combining class 9).
        return before != "" and unicodedata.combining(before) == 9
    if cp == _MIDDLE_DOT:
        return before == "l" and after == "l"  # Appendix A.3.
    if cp == _KERAIA:
        return after != "" and _script_name(after, "GREEK")  # Appendix A.4.
    if cp in _GERESH:
        return before != "" and _script_name(before, "HEBREW")  # Appendix A.5, A.6.
    if cp == _KATAKANA_MIDDLE_DOT:
        # Appendix A.7: some Hiragana, Katakana or Han character in the string.
        return any(
            _script_name(c, "HIRAGANA", "KATAKANA", "CJK UNIFIED IDEOGRAPH")
            for c in s
            if ord(c) != _KATAKANA_MIDDLE_DOT
        )
    if cp in _ARABIC_INDIC_DIGITS:
        return not any(ord(c) in _EXTENDED_ARABIC_INDIC_DIGITS for c in s)  # Appendix A.8.
    if cp in _EXTENDED_ARABIC_INDIC_DIGITS:
        return not any(ord(c) in _ARABIC_INDIC_DIGITS for c in s)  # Appendix A.9.
    return False


def opaque_string(s: str) -> str:
    """Enforce the PRECIS OpaqueString profile (RFC 8265 section 4.2) on a password.

    Returns:
        The prepared password: non-ASCII spaces mapped to U+0020, NFC normalized.

    Raises:
        PrepError: a code point the FreeformClass disallows (controls,
            unassigned, default ignorables, ...) or an empty result.
    """
    # RFC 8265 section 4.2.1 and 4.2.2: width mapping none, additional mapping
    # of non-ASCII space (Zs) to ASCII space, no case mapping, NFC, no
    # directionality rule. Then the FreeformClass check (RFC 8264 section 7).
    mapped = "".join(" " if c != " " and unicodedata.category(c) == "Zs" else c for c in s)
    normalized = unicodedata.normalize("NFC", mapped)
    for i, c in enumerate(normalized):
        prop = _freeform_property(c)
        if prop == _VALID:
            continue
        if prop in (_CONTEXTJ, _CONTEXTO) and _context_ok(normalized, i):
            continue
        raise PrepError(f"character U+{ord(c):04X} not allowed in a password")
    if not normalized:
        raise PrepError("empty password")  # RFC 8265 section 4.2.2, "zero-length".
    return normalized
