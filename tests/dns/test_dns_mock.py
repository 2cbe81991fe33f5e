"""MockResolver: in-memory answers with the real resolver's semantics."""

import ipaddress

import pytest

from mox.dns import (
    MX,
    TLSA,
    LookupTimeout,
    MockResolver,
    NotFound,
    PermanentError,
    TemporaryError,
    parse_domain,
)


async def test_tables_answer_each_type() -> None:
    tlsa = TLSA(3, 1, 1, b"\x01" * 32)
    r = MockResolver(
        a={"mail.example.com": ["192.0.2.1"]},
        aaaa={"mail.example.com": ["2001:db8::1"]},
        txt={"example.com": ["v=spf1 mx -all"]},
        mx={"example.com": [MX(10, "mail.example.com")]},
        ptr={"192.0.2.1": ["mail.example.com."]},
        tlsa={"_25._tcp.mail.example.com": [tlsa]},
        ns={"example.com": ["ns.example.net"]},
    )
    assert (await r.lookup_txt("example.com")).records == ("v=spf1 mx -all",)
    assert (await r.lookup_mx("example.com.")).records == (MX(10, "mail.example.com"),)
    assert (await r.lookup_a("mail.example.com")).records == (ipaddress.IPv4Address("192.0.2.1"),)
    assert (await r.lookup_aaaa("mail.example.com")).records == (ipaddress.IPv6Address("2001:db8::1"),)
    assert (await r.lookup_ip(parse_domain("Mail.Example.com"))).records == (
        ipaddress.ip_address("192.0.2.1"),
        ipaddress.ip_address("2001:db8::1"),
    )
    assert (await r.lookup_addr("192.0.2.1")).records == ("mail.example.com",)
    assert (await r.lookup_addr("::ffff:192.0.2.1")).records == ("mail.example.com",)
    assert (await r.lookup_tlsa("_25._tcp.mail.example.com")).records == (tlsa,)
    assert (await r.lookup_ns("example.com")).records == ("ns.example.net",)


async def test_keys_are_case_insensitive_and_dot_tolerant() -> None:
    r = MockResolver(txt={"Example.COM.": ["x"]}, fail={"TXT Other.Example.": "temporary"})
    assert (await r.lookup_txt("example.com")).records == ("x",)
    with pytest.raises(TemporaryError):
        await r.lookup_txt("other.example")


async def test_cname_followed_except_for_cname_lookups() -> None:
    r = MockResolver(
        cname={"www.example.com": "web.example.net.", "web.example.net": "host.example.org"},
        a={"host.example.org": ["192.0.2.9"]},
    )
    assert (await r.lookup_a("www.example.com")).records == (ipaddress.IPv4Address("192.0.2.9"),)
    assert (await r.lookup_cname("www.example.com")).records == ("web.example.net",)
    with pytest.raises(NotFound) as exc:
        await r.lookup_cname("host.example.org")
    assert exc.value.nxdomain is False


async def test_cname_loop_is_temporary_error() -> None:
    r = MockResolver(cname={"a.example": "b.example", "b.example": "a.example"})
    with pytest.raises(TemporaryError, match="CNAME chain"):
        await r.lookup_txt("a.example")


async def test_nxdomain_versus_nodata() -> None:
    r = MockResolver(a={"example.com": ["192.0.2.1"]}, txt={"_25._tcp.deep.example.com": ["x"]})
    with pytest.raises(NotFound) as exc:
        await r.lookup_txt("absent.example.com")
    assert exc.value.nxdomain is True
    with pytest.raises(NotFound) as exc:
        await r.lookup_txt("example.com")
    assert exc.value.nxdomain is False
    with pytest.raises(NotFound) as exc:
        await r.lookup_txt("deep.example.com")  # Empty non-terminal.
    assert exc.value.nxdomain is False
    with pytest.raises(NotFound) as exc:
        await r.lookup_addr("192.0.2.1")
    assert exc.value.nxdomain is True


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("temporary", TemporaryError),
        ("permanent", PermanentError),
        ("timeout", LookupTimeout),
        ("nxdomain", NotFound),
    ],
)
async def test_forced_failures(failure: str, error: type[Exception]) -> None:
    r = MockResolver(txt={"example.com": ["x"]}, a={"example.com": ["192.0.2.1"]})
    r.fail["example.com"] = failure  # type: ignore[assignment]
    with pytest.raises(error, match=r"example\.com"):
        await r.lookup_txt("example.com")
    with pytest.raises(error):
        await r.lookup_a("example.com")


async def test_forced_failure_for_one_type() -> None:
    r = MockResolver(
        txt={"example.com": ["x"]}, mx={"example.com": [MX(0, ".")]}, fail={"mx example.com": "temporary"}
    )
    assert (await r.lookup_txt("example.com")).records == ("x",)
    with pytest.raises(TemporaryError):
        await r.lookup_mx("example.com")


async def test_failure_on_cname_target_applies() -> None:
    r = MockResolver(cname={"www.example.com": "host.example.net"}, fail={"host.example.net": "temporary"})
    with pytest.raises(TemporaryError, match=r"www\.example\.com"):
        await r.lookup_a("www.example.com")


async def test_ptr_failure_by_ip() -> None:
    r = MockResolver(ptr={"192.0.2.1": ["a.example"]}, fail={"ptr 192.0.2.1": "temporary"})
    with pytest.raises(TemporaryError):
        await r.lookup_addr("192.0.2.1")


async def test_authentic_globally_and_per_name() -> None:
    r = MockResolver(
        txt={"secure.example": ["s"], "insecure.example": ["i"], "example.org": ["o"]},
        all_authentic=True,
        inauthentic={"insecure.example"},
    )
    assert (await r.lookup_txt("secure.example")).authentic is True
    assert (await r.lookup_txt("insecure.example")).authentic is False
    r.all_authentic = False
    r.authentic.add("txt example.org")
    assert (await r.lookup_txt("secure.example")).authentic is False
    assert (await r.lookup_txt("example.org")).authentic is True


async def test_authentic_denial_and_cname_chain() -> None:
    r = MockResolver(
        cname={"www.secure.example": "host.other.example"},
        a={"host.other.example": ["192.0.2.1"]},
        authentic={"www.secure.example", "_25._tcp.mx.secure.example"},
    )
    # The chain leaves the signed names: not authentic.
    assert (await r.lookup_a("www.secure.example")).authentic is False
    r.authentic.add("host.other.example")
    assert (await r.lookup_a("www.secure.example")).authentic is True
    with pytest.raises(NotFound) as exc:
        await r.lookup_tlsa("_25._tcp.mx.secure.example")
    assert (exc.value.nxdomain, exc.value.authentic) == (True, True)


async def test_ip_lookup_combines_like_the_real_resolver() -> None:
    r = MockResolver(a={"mail.example": ["192.0.2.1"]}, all_authentic=True, inauthentic={"aaaa mail.example"})
    res = await r.lookup_ip("mail.example")
    assert res.records == (ipaddress.ip_address("192.0.2.1"),)
    assert res.authentic is False  # The AAAA denial was not authentic.
    r.fail["aaaa mail.example"] = "temporary"
    with pytest.raises(TemporaryError):
        await r.lookup_ip("mail.example")


async def test_localhost_answered_locally_and_logged() -> None:
    r = MockResolver(a={"localhost": ["192.0.2.66"]})
    assert (await r.lookup_a("localhost")).records == (ipaddress.IPv4Address("127.0.0.1"),)
    assert (await r.lookup_addr("::1")).records == ("localhost",)
    with pytest.raises(NotFound) as exc:
        await r.lookup_txt("x.localhost")
    assert exc.value.authentic is True
    assert r.queries == [("A", "localhost"), ("PTR", "::1"), ("TXT", "x.localhost")]


async def test_invalid_name_is_permanent_error() -> None:
    with pytest.raises(PermanentError):
        await MockResolver().lookup_txt("a..b")
