"""Organizational domains, after the Public Suffix List's test cases (tests/test_psl.txt).

The PSL's checkPublicSuffix(name, registrable) cases are used with our
semantics: where the list says "no registrable domain" (the name is a public
suffix), the organizational domain is the name itself, as upstream mox.
"""

from pathlib import Path

import pytest

from mox.dns import Domain, parse_domain
from mox.publicsuffix import List, default_list, lookup

CASES = [
    # Unlisted TLD: the default rule "*".
    ("example", "example"),
    ("example.example", "example.example"),
    ("b.example.example", "example.example"),
    ("a.b.example.example", "example.example"),
    # TLD with one rule.
    ("biz", "biz"),
    ("domain.biz", "domain.biz"),
    ("b.domain.biz", "domain.biz"),
    ("a.b.domain.biz", "domain.biz"),
    # TLD with some two-level rules.
    ("com", "com"),
    ("example.com", "example.com"),
    ("b.example.com", "example.com"),
    ("a.b.example.com", "example.com"),
    ("uk.com", "uk.com"),  # uk.com is in the private section, not used (RFC 7489 erratum 6729).
    ("example.uk.com", "uk.com"),
    ("co.uk", "co.uk"),
    ("example.co.uk", "example.co.uk"),
    ("mail.example.co.uk", "example.co.uk"),
    # TLD with only one (wildcard) rule.
    ("er", "er"),
    ("c.er", "c.er"),
    ("b.c.er", "b.c.er"),
    ("a.b.c.er", "b.c.er"),
    # More complex TLD.
    ("jp", "jp"),
    ("test.jp", "test.jp"),
    ("www.test.jp", "test.jp"),
    ("ac.jp", "ac.jp"),
    ("test.ac.jp", "test.ac.jp"),
    ("www.test.ac.jp", "test.ac.jp"),
    ("kyoto.jp", "kyoto.jp"),
    ("test.kyoto.jp", "test.kyoto.jp"),
    ("ide.kyoto.jp", "ide.kyoto.jp"),
    ("b.ide.kyoto.jp", "b.ide.kyoto.jp"),
    ("a.b.ide.kyoto.jp", "b.ide.kyoto.jp"),
    ("c.kobe.jp", "c.kobe.jp"),
    ("b.c.kobe.jp", "b.c.kobe.jp"),
    ("a.b.c.kobe.jp", "b.c.kobe.jp"),
    # Exception rules.
    ("city.kobe.jp", "city.kobe.jp"),
    ("www.city.kobe.jp", "city.kobe.jp"),
    ("ck", "ck"),
    ("test.ck", "test.ck"),
    ("b.test.ck", "b.test.ck"),
    ("a.b.test.ck", "b.test.ck"),
    ("www.ck", "www.ck"),
    ("www.www.ck", "www.ck"),
    # US K12.
    ("us", "us"),
    ("test.us", "test.us"),
    ("www.test.us", "test.us"),
    ("ak.us", "ak.us"),
    ("test.ak.us", "test.ak.us"),
    ("www.test.ak.us", "test.ak.us"),
    ("k12.ak.us", "k12.ak.us"),
    ("test.k12.ak.us", "test.k12.ak.us"),
    ("www.test.k12.ak.us", "test.k12.ak.us"),
    # Case does not matter.
    ("WWW.Example.COM", "example.com"),
]


@pytest.mark.parametrize(("name", "org"), CASES)
def test_org_domain_matches_psl_test_cases(name: str, org: str) -> None:
    assert lookup(parse_domain(name)) == parse_domain(org)


@pytest.mark.parametrize(
    ("name", "org"),
    [
        # IDN: rules are matched on the Unicode form, both forms come back.
        ("食狮.com.cn", "食狮.com.cn"),
        ("www.食狮.公司.cn", "食狮.公司.cn"),
        ("shishi.公司.cn", "shishi.公司.cn"),
        ("公司.cn", "公司.cn"),
        ("www.食狮.中国", "食狮.中国"),
        ("中国", "中国"),
        ("www.xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"),
        ("xn--55qx5d.cn", "xn--55qx5d.cn"),
    ],
)
def test_idna_names_match_in_either_form(name: str, org: str) -> None:
    got = lookup(parse_domain(name))
    want = parse_domain(org)
    assert got == want
    assert got.ascii.isascii()


def test_own_list_with_wildcard_and_exception() -> None:
    text = "\n".join(
        [
            "// header",
            "// ===BEGIN ICANN DOMAINS===",
            "test",
            "*.wild.test",
            "!keep.wild.test",
            "// ===END ICANN DOMAINS===",
            "// ===BEGIN PRIVATE DOMAINS===",
            "private.test",
            "// ===END PRIVATE DOMAINS===",
        ]
    )
    lst = List.parse(text)
    assert lst.lookup(parse_domain("a.b.test")) == Domain("b.test")
    assert lst.lookup(parse_domain("a.b.wild.test")) == Domain("a.b.wild.test")
    assert lst.lookup(parse_domain("x.a.b.wild.test")) == Domain("a.b.wild.test")
    assert lst.lookup(parse_domain("x.keep.wild.test")) == Domain("keep.wild.test")
    # The private section is ignored.
    assert lst.lookup(parse_domain("x.y.private.test")) == Domain("private.test")


def test_bundled_list_keeps_licence_header() -> None:
    from mox.publicsuffix import LIST_PATH

    head = LIST_PATH.read_text(encoding="utf-8")[:300]
    assert "Mozilla Public" in head
    assert len(default_list().rules) > 5000


def test_operator_list_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mox.publicsuffix as ps

    path = tmp_path / "list.dat"
    path.write_text("// ===BEGIN ICANN DOMAINS===\nexample\n*.test\n// ===END ICANN DOMAINS===\n")
    monkeypatch.setenv(ps.LIST_ENV, str(path))
    ps.set_default_list(None)
    try:
        assert lookup(parse_domain("a.b.c.test")) == Domain("b.c.test")
    finally:
        ps.set_default_list(None)
    monkeypatch.delenv(ps.LIST_ENV)
    assert lookup(parse_domain("a.b.c.test")) == Domain("c.test")
