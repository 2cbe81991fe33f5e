"""parse_domain on arbitrary text: only DomainError, and stable round trips."""

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mox.dns import Domain, DomainError, parse_domain

# Labels made of what real names use, plus some Unicode letters and the
# troublemakers (underscore, hyphens at the ends, xn-- prefixes).
_label_chars = string.ascii_letters + string.digits + "-_" + "äöüßéñøçžłσпж中文ー" + "\u200d"
_labels = st.one_of(
    st.text(alphabet=_label_chars, min_size=0, max_size=70),
    st.builds(
        lambda s: "xn--" + s, st.text(alphabet=string.ascii_lowercase + string.digits + "-", max_size=20)
    ),
)
_names = st.lists(_labels, min_size=1, max_size=5).map(".".join)


def _parse(s: str, lax: bool) -> Domain | None:
    try:
        d = parse_domain(s, lax=lax)
    except DomainError:
        return None
    assert isinstance(d, Domain)
    return d


@given(st.text(), st.booleans())
@example("", False)
@example(".", False)
@example("xn--", False)
@example("xn--a.example", False)
@example("a_b.example", True)
@example("192.0.2.1", False)
@example("\udc80", False)
def test_parse_arbitrary_text_only_raises_domain_error(s: str, lax: bool) -> None:
    _parse(s, lax)


@given(_names, st.booleans())
@example("Example.COM", False)
@example("münchen.example", False)
@example("xn--mnchen-3ya.example", False)
@example("_dmarc.example.com", True)
def test_ascii_form_round_trips(s: str, lax: bool) -> None:
    d = _parse(s, lax)
    if d is None:
        return
    assert d.ascii == d.ascii.lower() and d.ascii.isascii()
    assert not d.ascii.endswith(".")
    again = parse_domain(d.ascii, lax=lax)
    assert again == d
    if d.unicode:
        assert parse_domain(d.unicode, lax=lax) == d


@pytest.mark.parametrize(
    ("text", "ascii", "unicode"),
    [
        ("Example.COM", "example.com", ""),
        ("münchen.example", "xn--mnchen-3ya.example", "münchen.example"),
        ("xn--mnchen-3ya.example", "xn--mnchen-3ya.example", "münchen.example"),
    ],
)
def test_known_names(text: str, ascii: str, unicode: str) -> None:
    assert parse_domain(text) == Domain(ascii, unicode)
