"""MTA-STS TXT record and policy parsing (RFC 8461 sections 3.1, 3.2, 4.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mox.dns import parse_domain
from mox.mtasts import MX, Mode, ParseError, Policy, Record, parse_policy, parse_record
from mox.mtasts.parse import MAX_AGE_LIMIT, PolicyParseError, RecordParseError


def test_parse_record() -> None:
    assert parse_record("v=STSv1; id=20160831085700Z") == Record("20160831085700Z")
    assert parse_record("v=STSv1;id=1;") == Record("1")
    assert parse_record("v=STSv1 ;\tid=abc ; ext=val;other=x") == Record(
        "abc", extensions=(("ext", "val"), ("other", "x"))
    )
    # Only the first id counts.
    assert parse_record("v=STSv1; id=a; id=b").id == "a"
    assert Record("a", extensions=(("x", "y"),)).text() == "v=STSv1; id=a; x=y"


@pytest.mark.parametrize(
    ("txt", "message"),
    [
        ("v=STSv1", "missing id"),
        ("v=STSv1;", "missing id"),
        ("v=STSv1; ext=1", "missing id"),
        ("v=STSv1x; id=1", "expected ';'"),
        ("v=STSv1; id=", "1 to 32"),
        ("v=STSv1; id=" + "a" * 33, "1 to 32"),
        ("v=STSv1; id=a-b", "1 to 32"),
        ("v=STSv1; id=1; =x", "field name"),
        ("v=STSv1; id=1; ext", "'='"),
        ("v=STSv1; id=1; ext=", "invalid value"),
        ("v=STSv1; id=1 junk", "expected ';'"),
        ("v=STSv2; id=1", "must start with"),
        ("V=STSv1; id=1", "must start with"),
    ],
)
def test_parse_record_errors(txt: str, message: str) -> None:
    with pytest.raises(RecordParseError, match=message):
        parse_record(txt)


POLICY = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n"


def test_parse_policy() -> None:
    p = parse_policy(POLICY)
    assert p.mode == Mode.ENFORCE and p.max_age == 604800 and len(p.mx) == 3
    assert p.mx[1] == MX(parse_domain("example.net"), wildcard=True)
    # CRLF, no final line end, whitespace after the colon and at the end, extensions.
    p2 = parse_policy("version: STSv1\r\nmode:testing\r\nmax_age:\t86400  \r\nmx: MX.Example.com\r\nx-ext: a b c")
    assert p2.mode == Mode.TESTING and p2.mx[0].domain.ascii == "mx.example.com"
    assert p2.extensions == (("x-ext", "a b c"),)
    # mode none needs no mx.
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 1\n").mx == ()
    # First of repeated fields counts, except mx.
    p3 = parse_policy("version: STSv1\nmode: testing\nmode: enforce\nmax_age: 5\nmax_age: 6\nmx: a.example\n")
    assert (p3.mode, p3.max_age) == (Mode.TESTING, 5)
    # max_age above a year is capped for caching.
    p4 = parse_policy("version: STSv1\nmode: none\nmax_age: 9999999999\n")
    assert p4.max_age == 9999999999 and p4.cache_seconds == MAX_AGE_LIMIT
    assert parse_policy(p.text()) == p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("mode: enforce\nmax_age: 1\nmx: a.example\n", "missing field version"),
        ("version: STSv1\nmax_age: 1\nmx: a.example\n", "missing field mode"),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", "missing field max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "missing field mx"),
        ("version: STSv2\nmode: enforce\nmax_age: 1\n", "version must be STSv1"),
        ("version: STSv1\nmode: Enforce\nmax_age: 1\n", "mode must be"),
        ("version: STSv1\nmode: none\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: none\nmax_age: 12345678901\n", "max_age"),
        ("version: STSv1\nmode: none\nmax_age: 1\n\n", "line 4"),
        ("version: STSv1\nmode: none\nmax_age: 1\nbad line\n", "line 4"),
        ("version: STSv1\nmode: none\nmax_age: 1\nmx: ex_ample.com\n", "invalid domain label"),
        ("version: STSv1\nmode: none\nmax_age: 1\nmx: *.*.example.com\n", "invalid domain label"),
        ("version: STSv1\nmode: none\nmax_age: 1\nmx: bücher.example\n", "A-labels"),
        ("version: STSv1\nmode: none\nmax_age: 1\nmx: -a.example\n", "invalid domain label"),
        ("version: STSv1\nmode: none\nmax_age: 1\next:\n", "invalid value"),
        ("version: STSv1\rmode: none\nmax_age: 1\n", "carriage return"),
    ],
)
def test_parse_policy_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyParseError, match=message):
        parse_policy(text)


def test_policy_matches() -> None:
    p = parse_policy(POLICY)
    assert p.matches("mail.example.com")
    assert p.matches("MAIL.Example.COM.")
    assert p.matches(parse_domain("mail.example.com"))
    assert p.matches("a.example.net")
    assert not p.matches("example.net")  # wildcard needs one label
    assert not p.matches("a.b.example.net")  # and only one
    assert not p.matches("xmail.example.com")
    assert not p.matches("other.example.org")
    idn = Policy(Mode.ENFORCE, 1, (MX(parse_domain("xn--bcher-kva.example")),))
    assert idn.matches("bücher.example")


# Hypothesis: valid documents round-trip, arbitrary input gives a ParseError or a value.

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_domain = st.lists(_label, min_size=2, max_size=4).map(".".join).filter(lambda d: not d.split(".")[-1].isdigit())


@given(
    rid=st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True),
    exts=st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True).filter(lambda k: k != "id"),
            st.from_regex(r"[\x21-\x3a\x3c\x3e-\x7e]{1,20}", fullmatch=True),
        ),
        max_size=3,
    ),
)
def test_record_roundtrip(rid: str, exts: list[tuple[str, str]]) -> None:
    r = Record(rid, extensions=tuple(exts))
    assert parse_record(r.text()) == r


@given(
    mode=st.sampled_from(list(Mode)),
    max_age=st.integers(0, 9999999999),
    mx=st.lists(st.tuples(_domain, st.booleans()), min_size=1, max_size=4),
)
def test_policy_roundtrip(mode: Mode, max_age: int, mx: list[tuple[str, bool]]) -> None:
    try:
        mxs = tuple(MX(parse_domain(d), w) for d, w in mx)
    except ValueError:
        return  # not a valid domain (e.g. label rules of the domain parser)
    p = Policy(mode, max_age, mxs)
    assert parse_policy(p.text()) == p
    for m in mxs:
        assert p.matches(("x." if m.wildcard else "") + m.domain.ascii)


@given(st.text(max_size=200))
def test_record_parser_total(txt: str) -> None:
    try:
        r = parse_record(txt)
    except ParseError:
        return
    assert r.id and txt.startswith("v=STSv1")


@given(st.text(alphabet=st.sampled_from("versionmodeaxg_:STv1 \r\n*.exampletingnforce0123456789"), max_size=200))
def test_policy_parser_total(text: str) -> None:
    try:
        p = parse_policy(text)
    except ParseError:
        return
    assert p.mode in Mode and (p.mx or p.mode == Mode.NONE)
