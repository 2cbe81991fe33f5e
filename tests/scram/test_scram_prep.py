"""SASLprep (RFC 4013) and PRECIS OpaqueString (RFC 8265) string preparation."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.scram.prep import PrepError, opaque_string, saslprep


# RFC 4013 section 3, the examples table.
@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("I\u00adX", "IX"),  # SOFT HYPHEN mapped to nothing.
        ("user", "user"),
        ("USER", "USER"),  # Case preserved.
        ("\u00aa", "a"),  # NFKC.
        ("\u2168", "IX"),  # NFKC, matches the first example.
    ],
)
def test_saslprep_rfc4013_examples(given_: str, expected: str) -> None:
    assert saslprep(given_) == expected


@pytest.mark.parametrize(
    "given_",
    [
        "\u0007",  # RFC 4013 section 3: prohibited character.
        "\u0627\u0031",  # RFC 4013 section 3: bidirectional check.
        "",
        "\u00ad",  # Empty after mapping.
        "a\ue000",  # Private use, table C.3.
        "\u0627b\u0627",  # RandALCat with LCat.
    ],
)
def test_saslprep_refuses(given_: str) -> None:
    with pytest.raises(PrepError):
        saslprep(given_)


def test_saslprep_maps_non_ascii_space_and_allows_rtl_strings() -> None:
    assert saslprep("a\u00a0b") == "a b"
    assert saslprep("\u0627\u0031\u0628") == "\u0627\u0031\u0628"


def test_saslprep_unassigned_allowed_only_in_queries() -> None:
    # U+0221 was unassigned in Unicode 3.2, stringprep's version (RFC 3454 table A.1).
    assert saslprep("a\u0221", allow_unassigned=True) == "a\u0221"
    with pytest.raises(PrepError, match="unassigned"):
        saslprep("a\u0221")


# RFC 8265 section 4.3, the password examples.
@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("correct horse battery staple", "correct horse battery staple"),
        ("Correct Horse Battery Staple", "Correct Horse Battery Staple"),
        ("\u03c0\u00df\u00e5", "\u03c0\u00df\u00e5"),  # Non-ASCII letters.
        ("Jack of \u2666s", "Jack of \u2666s"),  # Symbols.
        ("foo\u1680bar", "foo bar"),  # OGHAM SPACE MARK mapped to ASCII space.
    ],
)
def test_opaque_string_rfc8265_valid_examples(given_: str, expected: str) -> None:
    assert opaque_string(given_) == expected


@pytest.mark.parametrize(
    "given_",
    [
        "",  # Zero-length.
        "my cat is a \u0009by",  # Control character.
        "soft\u00adhyphen",  # Default ignorable (Cf).
        "private\ue000use",
        "unassigned\u0378",
        "zw\u200djoiner",  # ZWJ not after a virama.
        "a\u00b7b",  # MIDDLE DOT not between two "l".
        "line\u2028separator",
        "\ufdd0noncharacter",
        "\u1100old hangul jamo",
    ],
)
def test_opaque_string_refuses(given_: str) -> None:
    with pytest.raises(PrepError):
        opaque_string(given_)


def test_opaque_string_normalizes_nfc_and_keeps_compatibility_characters() -> None:
    assert opaque_string("cafe\u0301") == "caf\u00e9"
    assert opaque_string("\u2168") == "\u2168"  # Where it differs from SASLprep.
    assert opaque_string("\uff21") == "\uff21"  # Fullwidth is not width-mapped.


def test_opaque_string_contextual_rules() -> None:
    assert opaque_string("l\u00b7l") == "l\u00b7l"
    assert opaque_string("\u0915\u094d\u200d\u0937") == "\u0915\u094d\u200d\u0937"  # ZWJ after virama.
    assert opaque_string("\u0375\u03b1") == "\u0375\u03b1"  # Keraia before Greek.
    assert opaque_string("\u05d0\u05f3") == "\u05d0\u05f3"  # Geresh after Hebrew.
    assert opaque_string("\u30a2\u30fb\u30a4") == "\u30a2\u30fb\u30a4"  # Katakana middle dot with katakana.
    with pytest.raises(PrepError):
        opaque_string("a\u30fbb")
    with pytest.raises(PrepError):
        opaque_string("\u0660\u06f0")  # Mixed Arabic-Indic digit sets.


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_preparation_raises_only_prep_error_and_is_idempotent(s: str) -> None:
    with contextlib.suppress(PrepError):
        prepared = opaque_string(s)
        assert opaque_string(prepared) == prepared
    with contextlib.suppress(PrepError):
        saslprep(s, allow_unassigned=True)
