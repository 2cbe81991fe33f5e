"""Parsing and formatting of SPF records, RFC 7208 section 4.5, 4.6, 6 and 12."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mox.spf import Directive, Modifier, Record, RecordSyntaxError, is_spf_record, parse_record


@pytest.mark.parametrize(
    ("txt", "formatted"),
    [
        ("v=spf1", "v=spf1"),
        ("V=SPF1 -ALL", "v=spf1 -all"),
        ("v=spf1  a   -all ", "v=spf1 a -all"),
        ("v=spf1 +a ~mx ?ptr -all", "v=spf1 +a ~mx ?ptr -all"),
        ("v=spf1 a:example.com/24//64 mx/30 mx//120", "v=spf1 a:example.com/24//64 mx/30 mx//120"),
        ("v=spf1 a:example.com. mx:%{d}", "v=spf1 a:example.com. mx:%{d}"),
        (
            "v=spf1 ip4:192.0.2.1 ip4:192.0.2.1/24 ip4:0.0.0.0/0",
            "v=spf1 ip4:192.0.2.1 ip4:192.0.2.1/24 ip4:0.0.0.0/0",
        ),
        (
            "v=spf1 ip6:2001:db8::1 ip6:2001:DB8::/32 ip6:::1/128",
            "v=spf1 ip6:2001:db8::1 ip6:2001:DB8::/32 ip6:::1/128",
        ),
        ("v=spf1 ip6:::ffff:1.2.3.4", "v=spf1 ip6:::ffff:1.2.3.4"),
        ("v=spf1 include:_spf.example.com exists:%{ir}.%{l1r+-}._spf.%{d}", None),
        ("v=spf1 ptr ptr:example.com", None),
        ("v=spf1 redirect=_spf.example.com", None),
        ("v=spf1 -all exp=explain._spf.%{d}", None),
        (
            "v=spf1 exp=e.example.com redirect=r.example.com",
            "v=spf1 redirect=r.example.com exp=e.example.com",
        ),
        ("v=spf1 moo.cow-far_out=man:dog/cat ~all", "v=spf1 ~all moo.cow-far_out=man:dog/cat"),
        ("v=spf1 a:foo-bar.com a:example.xn--zckzah", None),
        ("v=spf1 exists:%{l}%%%_%-.example.com", None),
        ("v=spf1 default=deny", None),
    ],
)
def test_spf_parse_good_records(txt: str, formatted: str | None) -> None:
    record = parse_record(txt)
    assert str(record) == (formatted or txt)
    # What we format parses to the same record.
    assert parse_record(str(record)) == record


def test_spf_parse_structure() -> None:
    r = parse_record("v=spf1 -a:example.com/24//64 ip4:192.0.2.10/24 ?include:x.example redirect=y.example")
    assert r.directives == (
        Directive("-", "a", "example.com", ip4_cidr=24, ip6_cidr=64),
        Directive(
            "", "ip4", network=ipaddress.IPv4Network("192.0.2.0/24"), ip4_cidr=24, address="192.0.2.10"
        ),
        Directive("?", "include", "x.example"),
    )
    assert r.directives[0].result == "fail"
    assert r.directives[1].result == "pass"
    assert r.directives[2].result == "neutral"
    assert r.redirect == "y.example"
    assert r.explanation == ""
    assert parse_record("v=spf1 x-foo=bar").other == (Modifier("x-foo", "bar"),)
    assert Record() == parse_record("v=spf1")


@pytest.mark.parametrize(
    "txt",
    [
        "v=spf1 foo",  # unknown mechanism
        "v=spf1 -foo:bar",
        "v=spf1 all:x",
        "v=spf1 allx",
        "v=spf1 include",  # include needs a domain-spec
        "v=spf1 include:",
        "v=spf1 exists",
        "v=spf1 a:",
        "v=spf1 ptr:",
        "v=spf1 a/33",  # cidr out of range
        "v=spf1 a//129",
        "v=spf1 a/024",  # no leading zeros
        "v=spf1 a//",
        "v=spf1 mx:example.com/",
        "v=spf1 ip4",
        "v=spf1 ip4:",
        "v=spf1 ip4:1.2.3",
        "v=spf1 ip4:1.2.3.4/33",
        "v=spf1 ip4:01.2.3.4",
        "v=spf1 ip4:1.2.3.256",
        "v=spf1 ip4:1.2.3.4/",
        "v=spf1 ip4:::1",
        "v=spf1 ip6:1.2.3.4",
        "v=spf1 ip6:::1/129",
        "v=spf1 ip6:fe80::1%eth0",
        "v=spf1 a:example.123",  # toplabel must not be numeric
        "v=spf1 a:museum",  # domain-end needs "." toplabel
        "v=spf1 a:example.com-",
        "v=spf1 redirect=",
        "v=spf1 redirect=a.example redirect=b.example",  # at most once (section 6)
        "v=spf1 exp=a.example exp=b.example",
        "v=spf1 exp=",
        "v=spf1 a:%{x}.example.com",  # unknown macro letter
        "v=spf1 a:%{c}.example.com",  # c, r, t only in exp text
        "v=spf1 a:%{d0}.example.com",  # zero digit transformer
        "v=spf1 a:%{d",
        "v=spf1 a:%(d).example.com",
        "v=spf1 a:%.example.com",
        "v=spf1 a:foo%",
        "v=spf1 x=%{z}",  # unknown modifier must still be a macro-string
        "v=spf1 a:\u00e9xample.com",  # non-ascii
        "v=spf1 a:example.com\tmx",  # only SP separates terms
        "v=spf1 ip4:192.0.2.5\n",
        "v=spf10",
        "spf1 -all",
        "",
    ],
)
def test_spf_parse_bad_records(txt: str) -> None:
    with pytest.raises(RecordSyntaxError):
        parse_record(txt)


def test_spf_is_spf_record_version_tag() -> None:
    # RFC 7208 section 4.5: case-insensitive, followed by SP or the end.
    assert is_spf_record("v=spf1")
    assert is_spf_record("V=SpF1 -all")
    assert not is_spf_record("v=spf10")
    assert not is_spf_record("v=spf1-all")
    assert not is_spf_record(" v=spf1")
    assert not is_spf_record("v=DMARC1; p=none")


@given(st.text(max_size=60))
def test_spf_parse_arbitrary_text_raises_only_syntax_error(s: str) -> None:
    for txt in (s, "v=spf1 " + s):
        try:
            record = parse_record(txt)
        except RecordSyntaxError:
            continue
        assert parse_record(str(record)) == record


@given(
    st.lists(
        st.sampled_from(
            [
                "a",
                "mx/24",
                "ptr",
                "all",
                "ip4:1.2.3.4/8",
                "ip6:::1",
                "include:%{d}",
                "exists:x.%{i}.y.com",
                "%",
                "/",
                ":",
                "=",
                "-",
                "~",
                "x",
            ]
        ),
        max_size=8,
    )
)
def test_spf_parse_term_soup_raises_only_syntax_error(parts: list[str]) -> None:
    try:
        parse_record("v=spf1 " + "".join(parts))
    except RecordSyntaxError as e:
        assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.
