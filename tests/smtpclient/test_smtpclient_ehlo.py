"""EHLO extension parsing (pure), with hypothesis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mox.smtpclient.ehlo import parse_ehlo, parse_limits


def test_typical() -> None:
    ext = parse_ehlo(
        [
            "mx.example.org Hello client.example",
            "PIPELINING",
            "8BITMIME",
            "SMTPUTF8",
            "SIZE 35882577",
            "CHUNKING",
            "BINARYMIME",
            "DSN",
            "REQUIRETLS",
            "ENHANCEDSTATUSCODES",
            "STARTTLS",
            "AUTH SCRAM-SHA-256-PLUS scram-sha-256 PLAIN",
            "AUTH=LOGIN",
            "LIMITS RCPTMAX=100 MAILMAX=1000 RCPTDOMAINMAX=10",
            "X-UNKNOWN foo bar",
        ]
    )
    assert ext.hostname == "mx.example.org"
    assert ext.pipelining and ext.eightbitmime and ext.smtputf8 and ext.chunking and ext.binarymime
    assert ext.dsn and ext.requiretls and ext.enhancedstatuscodes and ext.starttls
    assert ext.size and ext.size_limit == 35882577
    assert ext.auth == ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN")
    assert (ext.mail_max, ext.rcpt_max, ext.rcpt_domain_max) == (1000, 100, 10)
    assert ext.has("x-unknown") and ext.keywords["X-UNKNOWN"] == ("foo", "bar")


def test_minimal_and_odd() -> None:
    ext = parse_ehlo(["mx.example"])
    assert not ext.pipelining and ext.auth == () and not ext.size
    # Lower case keywords, SIZE without limit, SMTPUTF8 with a parameter (ignored, RFC 6531 section 3.3).
    ext = parse_ehlo(["mx", "pipelining", "size", "smtputf8 whatever", "  ", "bad_keyword!", "-dash"])
    assert ext.pipelining and ext.size and ext.size_limit == 0 and ext.smtputf8
    assert not ext.has("bad_keyword!")
    # A non-numeric SIZE: extension known, no limit.
    assert parse_ehlo(["mx", "SIZE lots"]).size_limit == 0
    assert parse_ehlo(["mx", "SIZE " + "9" * 21]).size_limit == 0


def test_limits() -> None:
    assert parse_limits(["RCPTMAX=20", "MAILMAX=5"]) == ({"RCPTMAX": "20", "MAILMAX": "5"}, 5, 20, 0)
    # Syntax error anywhere: whole extension ignored (RFC 9422 section 4).
    assert parse_limits(["RCPTMAX=20", "garbage"]) == ({}, 0, 0, 0)
    assert parse_limits(["RCPTMAX=20", "rcptmax=30"]) == ({}, 0, 0, 0)
    # A bad value for a known limit: only that one ignored.
    limits, mail_max, rcpt_max, _ = parse_limits(["RCPTMAX=1234567", "MAILMAX=0", "OTHER=x"])
    assert limits["OTHER"] == "x" and mail_max == 0 and rcpt_max == 0
    # Lower-case names count.
    assert parse_limits(["rcptmax=7"])[2] == 7


_word = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)


@given(st.lists(st.text(max_size=40), max_size=12))
def test_random_lines(lines: list[str]) -> None:
    ext = parse_ehlo(lines)
    for kw in ext.keywords:
        assert kw == kw.upper()
    assert ext.size_limit >= 0 and ext.rcpt_max >= 0 and ext.mail_max >= 0
    assert all(m == m.upper() for m in ext.auth)


@given(
    st.lists(
        st.sampled_from(["PIPELINING", "8BITMIME", "CHUNKING", "DSN", "SMTPUTF8", "REQUIRETLS"]), unique=True
    )
)
def test_known_keywords_found(kws: list[str]) -> None:
    ext = parse_ehlo(["mx", *[k.lower() for k in kws]])
    flags = {
        "PIPELINING": ext.pipelining,
        "8BITMIME": ext.eightbitmime,
        "CHUNKING": ext.chunking,
        "DSN": ext.dsn,
        "SMTPUTF8": ext.smtputf8,
        "REQUIRETLS": ext.requiretls,
    }
    assert {k for k, v in flags.items() if v} == set(kws)


@given(st.lists(st.tuples(_word, _word), max_size=6))
def test_limits_random(pairs: list[tuple[str, str]]) -> None:
    limits, mail_max, rcpt_max, rcpt_domain_max = parse_limits([f"{k}={v}" for k, v in pairs])
    for v in (mail_max, rcpt_max, rcpt_domain_max):
        assert 0 <= v <= 999999
    if limits:
        assert len(limits) == len(pairs)
