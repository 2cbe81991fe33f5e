"""check_host and verify, RFC 7208 section 4, 5, 6 and the limits of section 4.6.4."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.dns import MX, MockResolver, Name, Result
from mox.spf import MAX_DNS_TERMS, check_host, lookup_record, verify


async def check(r: MockResolver, ip: str, domain: str = "example.com", sender: str = "") -> str:
    rcv = await check_host(r, ip, domain, sender or f"user@{domain}", "mail.example.org")
    return rcv.result


async def test_spf_check_results_by_qualifier() -> None:
    r = MockResolver(
        txt={
            "pass.example": ["v=spf1 ip4:192.0.2.0/24 -all"],
            "fail.example": ["v=spf1 -all"],
            "soft.example": ["v=spf1 ~all"],
            "neutral.example": ["v=spf1 ?all"],
            "default.example": ["v=spf1 ip4:198.51.100.1"],
            "nospf.example": ["some other record"],
        }
    )
    assert await check(r, "192.0.2.7", "pass.example") == "pass"
    assert await check(r, "192.0.2.7", "fail.example") == "fail"
    assert await check(r, "192.0.2.7", "soft.example") == "softfail"
    assert await check(r, "192.0.2.7", "neutral.example") == "neutral"
    assert await check(r, "192.0.2.7", "default.example") == "neutral"
    assert await check(r, "192.0.2.7", "nospf.example") == "none"
    assert await check(r, "192.0.2.7", "nxdomain.example") == "none"
    rcv = await check_host(r, "192.0.2.7", "pass.example", "a@pass.example", "h.example")
    assert (rcv.mechanism, rcv.domain, rcv.dns_terms, rcv.void_lookups) == (
        "ip4:192.0.2.0/24",
        "pass.example",
        0,
        0,
    )
    rcv = await check_host(r, "192.0.2.7", "default.example", "a@default.example", "h.example")
    assert rcv.mechanism == "default"


async def test_spf_check_record_discovery() -> None:
    # Section 4.5: exactly one "v=spf1" record, version case-insensitive.
    r = MockResolver(
        txt={
            "two.example": ["v=spf1 -all", "v=spf1 +all"],
            "case.example": ["V=SPF1 -all", "v=spf10 +all", "google-site-verification=x"],
            "bad.example": ["v=spf1 -alll"],
        }
    )
    assert await check(r, "192.0.2.1", "two.example") == "permerror"
    assert await check(r, "192.0.2.1", "case.example") == "fail"
    assert await check(r, "192.0.2.1", "bad.example") == "permerror"
    # Malformed or single-label domains give none without a lookup (section 4.3).
    assert await check(r, "192.0.2.1", "localhost") == "none"
    assert await check(r, "192.0.2.1", "a..example") == "none"
    assert await check(r, "192.0.2.1", "x" * 64 + ".example") == "none"
    found = await lookup_record(r, "case.example")
    assert (found.result, str(found.record), found.text) == ("", "v=spf1 -all", "V=SPF1 -all")
    found = await lookup_record(r, "bad.example")
    assert (found.result, found.record, found.text) == ("permerror", None, "v=spf1 -alll")
    assert (await lookup_record(r, "two.example")).result == "permerror"
    assert (await lookup_record(r, "nxdomain.example")).result == "none"


async def test_spf_check_dns_errors_are_temperror() -> None:
    r = MockResolver(txt={"example.com": ["v=spf1 a:a.example.com mx:m.example.com -all"]})
    r.fail["txt timeout.example"] = "timeout"
    r.fail["txt servfail.example"] = "temporary"
    r.fail["a a.example.com"] = "temporary"
    assert await check(r, "192.0.2.1", "timeout.example") == "temperror"
    assert await check(r, "192.0.2.1", "servfail.example") == "temperror"
    rcv = await check_host(r, "192.0.2.1", "example.com", "u@example.com", "h.example")
    assert rcv.result == "temperror"
    assert rcv.mechanism == "a:a.example.com"
    assert "a.example.com" in rcv.problem


async def test_spf_check_a_mx_ptr_exists_include() -> None:
    r = MockResolver(
        txt={
            "example.com": ["v=spf1 a mx/24 ptr exists:%{i}.bl.example.com include:inc.example.com -all"],
            "inc.example.com": ["v=spf1 ip6:2001:db8::/32 -all"],
        },
        a={
            "example.com": ["192.0.2.1"],
            "mx1.example.com": ["198.51.100.1"],
            "host.example.com": ["203.0.113.9"],
            "203.0.113.77.bl.example.com": ["127.0.0.2"],
        },
        aaaa={"host.example.com": ["2001:db8:1::9"]},
        mx={"example.com": [MX(10, "mx1.example.com")]},
        ptr={
            "203.0.113.9": ["host.example.com"],
            "2001:db8:1::9": ["host.example.com"],
            "2001:db8:ffff::1": ["elsewhere.example"],
        },
    )
    for ip, mech in [
        ("192.0.2.1", "a"),
        ("198.51.100.200", "mx/24"),
        ("203.0.113.9", "ptr"),
        ("203.0.113.77", "exists:%{i}.bl.example.com"),
        ("2001:db8:1::9", "ptr"),
        ("2001:db8:ffff::1", "include:inc.example.com"),
    ]:
        rcv = await check_host(r, ip, "example.com", "u@example.com", "h.example")
        assert (rcv.result, rcv.mechanism) == ("pass", mech), ip
    rcv = await check_host(r, "192.0.2.99", "example.com", "u@example.com", "h.example")
    assert (rcv.result, rcv.mechanism, rcv.dns_terms) == ("fail", "-all", 5)
    # IPv4-mapped IPv6 client addresses are checked as IPv4 (section 5).
    assert await check(r, "::ffff:192.0.2.1") == "pass"


async def test_spf_check_dns_term_limit() -> None:
    # Section 4.6.4: 10 DNS-querying terms are fine, the 11th is a permerror.
    a = {"example.com": ["192.0.2.1"]}
    ten = " ".join(["a:example.com"] * (MAX_DNS_TERMS - 1))
    r = MockResolver(
        a=a,
        txt={
            "ten.example": [f"v=spf1 {ten} ip4:192.0.2.8 redirect=end.example"],
            "end.example": ["v=spf1 ip4:192.0.2.9 -all"],
            "eleven.example": [f"v=spf1 {ten} a:example.com a:example.com ip4:192.0.2.9 -all"],
            "loop.example": ["v=spf1 include:loop.example -all"],
        },
    )
    rcv = await check_host(r, "192.0.2.9", "ten.example", "u@ten.example", "h")
    assert (rcv.result, rcv.dns_terms) == ("pass", 10)
    rcv = await check_host(r, "192.0.2.9", "eleven.example", "u@eleven.example", "h")
    assert (rcv.result, rcv.dns_terms) == ("permerror", 11)
    assert "dns-querying terms" in rcv.problem
    assert await check(r, "192.0.2.9", "loop.example") == "permerror"


async def test_spf_check_void_lookup_limit() -> None:
    # Section 4.6.4: more than two lookups without records is a permerror.
    r = MockResolver(
        txt={
            "two.example": ["v=spf1 a:n1.example.com mx:n2.example.com ?all"],
            "three.example": ["v=spf1 a:n1.example.com mx:n2.example.com exists:n3.example.com ?all"],
        },
    )
    rcv = await check_host(r, "192.0.2.1", "two.example", "u@two.example", "h")
    assert (rcv.result, rcv.void_lookups) == ("neutral", 2)
    rcv = await check_host(r, "192.0.2.1", "three.example", "u@three.example", "h")
    assert (rcv.result, rcv.void_lookups) == ("permerror", 3)


async def test_spf_check_mx_and_ptr_name_limits() -> None:
    mxs = [MX(i, f"mx{i}.example.com") for i in range(11)]
    r = MockResolver(
        txt={
            "ten.example": ["v=spf1 mx -all"],
            "eleven.example": ["v=spf1 mx -all"],
            "ptr.example": ["v=spf1 ptr -all"],
        },
        mx={"ten.example": mxs[:10], "eleven.example": mxs},
        a={f"mx{i}.example.com": [f"192.0.2.{i + 1}"] for i in range(11)}
        | {f"h{i}.ptr.example": ["198.51.100.1"] for i in range(11)},
        ptr={"198.51.100.1": [f"h{i}.other.example" for i in range(10)] + ["h10.ptr.example"]},
    )
    # Section 4.6.4: more than 10 MX names is a permerror, even if one would match.
    assert await check(r, "192.0.2.10", "ten.example") == "pass"
    assert await check(r, "192.0.2.10", "eleven.example") == "permerror"
    # Only the first 10 PTR names are used: the matching 11th is ignored.
    assert await check(r, "198.51.100.1", "ptr.example") == "fail"


async def test_spf_check_explanation() -> None:
    r = MockResolver(
        txt={
            "example.com": ["v=spf1 include:inc.example.com -all exp=why.example.com"],
            "why.example.com": ["%{i} is not one of %{d}'s designated mail servers (%{l}, %{c}, %{r}, %{t})"],
            "inc.example.com": ["v=spf1 -all exp=other.example.com"],
            "other.example.com": ["included"],
            "redir.example": ["v=spf1 exp=lost.example.com redirect=example.com"],
            "broken.example": ["v=spf1 -all exp=bad.example.com"],
            "bad.example.com": ["%{x}"],
        }
    )
    rcv = await check_host(
        r, "192.0.2.1", "example.com", "@example.com", "h", receiving_host="mx.us", now=lambda: 42
    )
    assert rcv.result == "fail"
    assert (
        rcv.explanation
        == "192.0.2.1 is not one of example.com's designated mail servers (postmaster, 192.0.2.1, mx.us, 42)"
    )
    # Section 6.2: after a redirect the target's exp= is used, not the original's.
    rcv = await check_host(
        r, "192.0.2.1", "redir.example", "u@redir.example", "h", receiving_host="mx.us", now=lambda: 42
    )
    assert rcv.result == "fail" and rcv.domain == "example.com"
    assert rcv.explanation.startswith("192.0.2.1 is not one of example.com's")
    # A syntax error in the explanation text means no explanation.
    rcv = await check_host(r, "192.0.2.1", "broken.example", "u@broken.example", "h")
    assert (rcv.result, rcv.explanation) == ("fail", "")


async def test_spf_check_redirect_and_include_without_record() -> None:
    r = MockResolver(
        txt={
            "redir.example": ["v=spf1 redirect=none.example"],
            "inc.example": ["v=spf1 include:none.example -all"],
            "ignored.example": ["v=spf1 all redirect=none.example"],
        }
    )
    assert await check(r, "192.0.2.1", "redir.example") == "permerror"
    assert await check(r, "192.0.2.1", "inc.example") == "permerror"
    assert await check(r, "192.0.2.1", "ignored.example") == "pass"


class SlowResolver(MockResolver):
    async def lookup_txt(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        await asyncio.sleep(10)
        raise AssertionError("not reached")


async def test_spf_check_overall_timeout_is_temperror() -> None:
    rcv = await check_host(SlowResolver(), "192.0.2.1", "example.com", "u@example.com", "h", timeout=0.01)
    assert rcv.result == "temperror"


async def test_spf_check_authentic_only_when_every_answer_was() -> None:
    r = MockResolver(
        txt={"example.com": ["v=spf1 a -all"]}, a={"example.com": ["192.0.2.1"]}, all_authentic=True
    )
    assert (await check_host(r, "192.0.2.1", "example.com", "u@example.com", "h")).authentic
    r.inauthentic.add("a example.com")
    assert not (await check_host(r, "192.0.2.1", "example.com", "u@example.com", "h")).authentic


async def test_spf_verify_identities() -> None:
    r = MockResolver(
        txt={
            "example.com": ["v=spf1 ip4:192.0.2.1 -all"],
            "helo.example.org": ["v=spf1 ip4:192.0.2.1 -all"],
        }
    )
    rcv = await verify(r, "192.0.2.1", "user@example.com", "helo.example.org", receiving_host="mx.local")
    assert (rcv.result, rcv.identity, rcv.envelope_from, rcv.domain) == (
        "pass",
        "mailfrom",
        "user@example.com",
        "example.com",
    )
    # Null reverse-path: postmaster at the HELO name (RFC 7208 section 2.4).
    rcv = await verify(r, "192.0.2.2", "", "helo.example.org", receiving_host="mx.local")
    assert (rcv.result, rcv.identity, rcv.envelope_from) == ("fail", "helo", "postmaster@helo.example.org")
    assert rcv.comment == "domain helo.example.org, from ehlo because mailfrom is empty"
    # HELO as an address literal and no MAIL FROM: nothing to check.
    rcv = await verify(r, "192.0.2.2", "", "[192.0.2.2]", receiving_host="mx.local")
    assert (rcv.result, rcv.identity, rcv.helo) == ("none", "", "192.0.2.2")
    assert r.queries == [("TXT", "example.com"), ("TXT", "helo.example.org")]


def test_spf_received_header() -> None:
    from mox.spf import Received

    rcv = Received(
        result="pass",
        comment="domain example.com",
        client_ip=ipaddress.ip_address("192.0.2.1"),
        envelope_from="myname@example.com",
        helo="foo.example.com",
        receiver="mybox.example.org",
        identity="mailfrom",
        mechanism="ip4:192.0.2.0/24",
    )
    assert rcv.header_value() == (
        # RFC 7208 section 9.1's example; "@" and ":" are not atext, so quoted.
        'pass (domain example.com) client-ip=192.0.2.1; envelope-from="myname@example.com";'
        ' helo=foo.example.com; mechanism="ip4:192.0.2.0/24"; receiver=mybox.example.org; identity=mailfrom'
    )
    h = rcv.header()
    assert h.startswith("Received-SPF: pass (domain example.com) client-ip=192.0.2.1;")
    assert h.endswith("identity=mailfrom\r\n")
    assert all(len(line) <= 78 for line in h.split("\r\n"))
    assert h.replace("\r\n\t", " ") == "Received-SPF: " + rcv.header_value() + "\r\n"
    # Values that are not a dot-atom are quoted; comments are escaped.
    rcv = Received(
        result="permerror",
        comment="a (b)",
        envelope_from='"a b"@example.com',
        helo="",
        problem='bad "record"',
        client_ip=ipaddress.ip_address("2001:db8::1"),
        receiver="mx",
        identity="helo",
    )
    assert rcv.header_value() == (
        'permerror (a \\(b\\)) client-ip="2001:db8::1"; envelope-from="\\"a b\\"@example.com"; helo="";'
        ' problem="bad \\"record\\""; receiver=mx; identity=helo'
    )


@pytest.mark.parametrize("ip", ["192.0.2.1", "2001:db8::1"])
async def test_spf_check_accepts_address_objects(ip: str) -> None:
    r = MockResolver(txt={"example.com": ["v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 -all"]})
    rcv = await check_host(r, ipaddress.ip_address(ip), "example.com", "u@example.com", "h")
    assert rcv.result == "pass"


_TERMS = [
    "a",
    "a/24",
    "a//64",
    "mx",
    "mx:mx.example.com/16",
    "ptr",
    "ptr:example.com",
    "exists:%{i}.bl.example.com",
    "include:inc.example.com",
    "include:%{l}.example.com",
    "ip4:192.0.2.0/24",
    "ip6:2001:db8::/32",
    "-all",
    "~all",
    "?all",
    "redirect=inc.example.com",
    "redirect=%{d2}",
    "exp=why.example.com",
    "x-foo=%{h}",
    "a:%{p}.example.com",
    "bogus",
]
_RESULTS = {"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"}


@settings(max_examples=150, deadline=None)
@given(
    terms=st.lists(st.sampled_from(_TERMS), max_size=8),
    ip=st.sampled_from(["192.0.2.1", "203.0.113.5", "2001:db8::1", "::ffff:198.51.100.1"]),
    local=st.sampled_from(["user", "", "a.b-c", "inc", "x y"]),
)
def test_spf_check_any_record_gives_a_result(terms: list[str], ip: str, local: str) -> None:
    r = MockResolver(
        txt={
            "example.com": ["v=spf1 " + " ".join(terms)],
            "inc.example.com": ["v=spf1 a -all"],
            "why.example.com": ["%{c} %{r} %{t} %{p}"],
        },
        a={"example.com": ["192.0.2.1"], "inc.example.com": ["203.0.113.5"], "mx.example.com": ["192.0.2.9"]},
        aaaa={"example.com": ["2001:db8::1"]},
        mx={"example.com": [MX(10, "mx.example.com")]},
        ptr={"192.0.2.1": ["example.com"]},
    )
    rcv = asyncio.run(check_host(r, ip, "example.com", f"{local}@example.com", "helo.example"))
    assert rcv.result in _RESULTS
    assert rcv.dns_terms <= MAX_DNS_TERMS + 1
    assert (rcv.problem != "") == (rcv.result in ("temperror", "permerror"))
