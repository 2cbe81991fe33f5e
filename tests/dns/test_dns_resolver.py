"""StubResolver against the loopback test DNS server, over real UDP and TCP."""

import ipaddress
import time
from pathlib import Path

import pytest

from mox.dns import (
    MX,
    TLSA,
    Domain,
    LookupTimeout,
    NotFound,
    PermanentError,
    StubResolver,
    TemporaryError,
    default_resolver,
    parse_domain,
    set_default_resolver,
    tlsa_name,
)
from mox.dns.testserver import DNSTestServer


async def test_txt_strings_of_one_record_are_joined(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add("example.com", "TXT", '"v=spf1 " "-all"')
    res = await resolver.lookup_txt("example.com")
    assert res.records == ("v=spf1 -all",)
    assert res.authentic is False


async def test_txt_invalid_utf8_becomes_replacement_character(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add_txt("example.com", b"v=DKIM1; p=\xff")
    res = await resolver.lookup_txt("example.com")
    assert res.records == ("v=DKIM1; p=\ufffd",)


async def test_trailing_dot_and_domain_are_the_same_name(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add_txt("example.com", "hello")
    for name in ("example.com", "example.com.", "EXAMPLE.com", parse_domain("example.com")):
        assert (await resolver.lookup_txt(name)).records == ("hello",)


async def test_unicode_name_is_queried_as_a_labels(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_txt("_dmarc.xn--mnchen-3ya.example", "v=DMARC1; p=none")
    res = await resolver.lookup_txt("_dmarc.münchen.example")
    assert res.records == ("v=DMARC1; p=none",)
    assert dns_server.queries[-1].name == "_dmarc.xn--mnchen-3ya.example"


async def test_mx_hosts_without_trailing_dot_and_null_mx(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add_mx("example.com", 10, "mx1.example.com")
    dns_server.add_mx("example.com", 20, "mx2.example.com.")
    dns_server.add("null.example", "MX", "0 .")
    res = await resolver.lookup_mx("example.com")
    assert sorted(res.records, key=lambda mx: mx.preference) == [
        MX(10, "mx1.example.com"),
        MX(20, "mx2.example.com"),
    ]
    assert (await resolver.lookup_mx("null.example")).records == (MX(0, "."),)


async def test_addresses_a_aaaa_and_combined(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_ip("mail.example.com", "192.0.2.1", "2001:db8::1")
    a = await resolver.lookup_a("mail.example.com")
    assert a.records == (ipaddress.IPv4Address("192.0.2.1"),)
    aaaa = await resolver.lookup_aaaa("mail.example.com")
    assert aaaa.records == (ipaddress.IPv6Address("2001:db8::1"),)
    ip = await resolver.lookup_ip("mail.example.com")
    assert ip.records == (ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("2001:db8::1"))


async def test_ip_lookup_with_only_ipv4_succeeds(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_a("v4.example.com", "192.0.2.1")
    res = await resolver.lookup_ip("v4.example.com")
    assert res.records == (ipaddress.ip_address("192.0.2.1"),)


async def test_ip_lookup_fails_when_either_type_fails_temporarily(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    # A partial address list would silently change delivery: strict, like upstream.
    dns_server.add_ip("mail.example.com", "192.0.2.1", "2001:db8::1")
    dns_server.fail("mail.example.com", "servfail", rdtype="AAAA")
    with pytest.raises(TemporaryError, match=r"mail\.example\.com"):
        await resolver.lookup_ip("mail.example.com")


async def test_ip_lookup_without_addresses_is_not_found(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add_txt("example.com", "no addresses here")
    with pytest.raises(NotFound) as exc:
        await resolver.lookup_ip("example.com")
    assert exc.value.nxdomain is False
    with pytest.raises(NotFound) as exc:
        await resolver.lookup_ip("absent.example.com")
    assert exc.value.nxdomain is True


async def test_cname_followed_for_addresses(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_cname("www.example.com", "web.example.net")
    dns_server.add_cname("web.example.net", "host.example.org")
    dns_server.add_a("host.example.org", "192.0.2.7")
    res = await resolver.lookup_a("www.example.com")
    assert res.records == (ipaddress.IPv4Address("192.0.2.7"),)
    cname = await resolver.lookup_cname("www.example.com")
    assert cname.records == ("web.example.net",)


async def test_cname_lookup_of_name_without_cname_is_nodata(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add_a("host.example.org", "192.0.2.7")
    with pytest.raises(NotFound) as exc:
        await resolver.lookup_cname("host.example.org")
    assert exc.value.nxdomain is False


async def test_cname_to_missing_name_is_nxdomain(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_cname("www.example.com", "gone.example.net")
    with pytest.raises(NotFound) as exc:
        await resolver.lookup_a("www.example.com")
    assert exc.value.nxdomain is True


async def test_ptr_for_ipv4_and_ipv6(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_ptr("192.0.2.1", "mail.example.com")
    dns_server.add_ptr("2001:db8::25", "mx.example.com", "mx.example.net")
    assert (await resolver.lookup_addr("192.0.2.1")).records == ("mail.example.com",)
    res = await resolver.lookup_addr(ipaddress.ip_address("2001:db8::25"))
    assert sorted(res.records) == ["mx.example.com", "mx.example.net"]
    with pytest.raises(NotFound):
        await resolver.lookup_addr("192.0.2.2")
    with pytest.raises(PermanentError, match="not an IP address"):
        await resolver.lookup_addr("mail.example.com")


async def test_tlsa_records_parsed(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    digest = bytes(range(32))
    name = tlsa_name(25, "tcp", "mx.example.com")
    assert name == "_25._tcp.mx.example.com"
    dns_server.add_tlsa(name, 3, 1, 1, digest)
    dns_server.set_authentic("example.com")
    res = await resolver.lookup_tlsa(name)
    assert res.records == (TLSA(usage=3, selector=1, matching_type=1, data=digest),)
    assert res.authentic is True


async def test_ns_lookup(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_ns("example.com", "ns1.example.com", "ns2.example.net")
    res = await resolver.lookup_ns(Domain("example.com"))
    assert sorted(res.records) == ["ns1.example.com", "ns2.example.net"]


async def test_nxdomain_versus_nodata(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_a("example.com", "192.0.2.1")
    dns_server.add_txt("_25._tcp.deep.example.com", "x")
    with pytest.raises(NotFound, match=r"lookup TXT absent\.example\.com: no such domain") as exc:
        await resolver.lookup_txt("absent.example.com")
    assert exc.value.nxdomain is True
    assert exc.value.name == "absent.example.com"
    with pytest.raises(NotFound, match=r"lookup TXT example\.com: no records") as exc:
        await resolver.lookup_txt("example.com")
    assert exc.value.nxdomain is False
    # An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
    with pytest.raises(NotFound) as exc:
        await resolver.lookup_tlsa("_tcp.deep.example.com")
    assert exc.value.nxdomain is False


async def test_ad_bit_is_requested_and_reported_as_authentic(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add_txt("secure.example", "signed")
    dns_server.add_txt("insecure.example", "unsigned")
    dns_server.set_authentic("secure.example")
    assert (await resolver.lookup_txt("secure.example")).authentic is True
    assert (await resolver.lookup_txt("insecure.example")).authentic is False
    assert all(q.ad for q in dns_server.queries)


async def test_authenticated_denial_of_existence(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    # DANE (RFC 7672 section 2.2) needs to know a missing TLSA record was validated.
    dns_server.add_a("mx.secure.example", "192.0.2.1")
    dns_server.set_authentic("secure.example")
    with pytest.raises(NotFound) as exc:
        await resolver.lookup_tlsa("_25._tcp.mx.secure.example")
    assert (exc.value.nxdomain, exc.value.authentic) == (True, True)
    with pytest.raises(NotFound) as exc:
        await resolver.lookup_tlsa("mx.secure.example")
    assert (exc.value.nxdomain, exc.value.authentic) == (False, True)
    with pytest.raises(NotFound) as exc:
        await resolver.lookup_tlsa("_25._tcp.mx.insecure.example")
    assert exc.value.authentic is False


async def test_cname_chain_authentic_only_if_all_links_are(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add_cname("www.secure.example", "host.insecure.example")
    dns_server.add_a("host.insecure.example", "192.0.2.1")
    dns_server.set_authentic("secure.example")
    assert (await resolver.lookup_a("www.secure.example")).authentic is False
    dns_server.set_authentic("insecure.example")
    assert (await resolver.lookup_a("www.secure.example")).authentic is True


async def test_ad_bit_ignored_when_resolver_not_trusted(dns_server: DNSTestServer) -> None:
    dns_server.add_txt("secure.example", "signed")
    dns_server.set_authentic("secure.example")
    untrusted = StubResolver([(dns_server.host, dns_server.port)], trust_ad=False, timeout=2)
    assert (await untrusted.lookup_txt("secure.example")).authentic is False


async def test_ip_authentic_only_if_both_answers_are(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    dns_server.add_a("mail.secure.example", "192.0.2.1")
    dns_server.set_authentic("secure.example")
    assert (await resolver.lookup_ip("mail.secure.example")).authentic is True
    dns_server.set_authentic("mail.secure.example", False)
    assert (await resolver.lookup_ip("mail.secure.example")).authentic is False


async def test_servfail_is_temporary(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.fail("broken.example", "servfail")
    with pytest.raises(TemporaryError, match=r"lookup MX broken\.example: .*SERVFAIL") as exc:
        await resolver.lookup_mx("broken.example")
    assert not isinstance(exc.value, LookupTimeout)


async def test_refused_is_permanent(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.fail("refused.example", "refused")
    with pytest.raises(PermanentError, match=r"lookup TXT refused\.example: .*REFUSED"):
        await resolver.lookup_txt("refused.example")


async def test_failure_for_one_type_only(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_txt("example.com", "ok")
    dns_server.fail("example.com", "servfail", rdtype="MX")
    assert (await resolver.lookup_txt("example.com")).records == ("ok",)
    with pytest.raises(TemporaryError):
        await resolver.lookup_mx("example.com")


async def test_no_answer_is_timeout_within_limit(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.fail("slow.example", "drop")
    start = time.monotonic()
    with pytest.raises(LookupTimeout, match=r"lookup A slow\.example: no answer within 0\.3s"):
        await resolver.lookup_a("slow.example", timeout=0.3)
    assert time.monotonic() - start < 1.0


async def test_closed_port_is_temporary() -> None:
    # Find a port nobody listens on by starting and stopping a server.
    with DNSTestServer() as srv:
        port = srv.port
    r = StubResolver([("127.0.0.1", port)], timeout=0.3, attempt_timeout=0.1)
    with pytest.raises(TemporaryError):
        await r.lookup_txt("example.com")


async def test_second_server_used_when_first_fails(dns_server: DNSTestServer) -> None:
    with DNSTestServer() as good:
        good.add_txt("example.com", "from second")
        dns_server.fail("example.com", "servfail")
        r = StubResolver([(dns_server.host, dns_server.port), (good.host, good.port)], timeout=2)
        assert (await r.lookup_txt("example.com")).records == ("from second",)
        dns_server.fail("example.com", "drop")
        r = StubResolver(
            [(dns_server.host, dns_server.port), (good.host, good.port)], timeout=2, attempt_timeout=0.2
        )
        assert (await r.lookup_txt("example.com")).records == ("from second",)


async def test_large_answer_retried_over_tcp(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    # Larger than the EDNS payload size we announce (1232): truncated over UDP.
    long_texts = [f"{i:02d}" + "x" * 400 for i in range(5)]
    dns_server.add_txt("big.example", *long_texts)
    res = await resolver.lookup_txt("big.example")
    assert sorted(res.records) == long_texts
    assert [q.transport for q in dns_server.queries_for("big.example")] == ["udp", "tcp"]


async def test_forced_truncation_retried_over_tcp(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    dns_server.add_txt("small.example", "tiny")
    dns_server.truncate("small.example")
    assert (await resolver.lookup_txt("small.example")).records == ("tiny",)
    assert [q.transport for q in dns_server.queries_for("small.example")] == ["udp", "tcp"]


async def test_single_txt_longer_than_255_is_split_and_joined(
    dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    key = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server.add_txt("sel._domainkey.example.com", key)
    assert (await resolver.lookup_txt("sel._domainkey.example.com")).records == (key,)


async def test_localhost_answered_without_query(dns_server: DNSTestServer, resolver: StubResolver) -> None:
    # RFC 6761 section 6.3: never sent to the configured servers.
    loop4, loop6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    for name in ("localhost", "localhost.", "LocalHost", "mail.localhost"):
        a = await resolver.lookup_a(name)
        assert (a.records, a.authentic) == ((loop4,), True)
        aaaa = await resolver.lookup_aaaa(name)
        assert (aaaa.records, aaaa.authentic) == ((loop6,), True)
        assert (await resolver.lookup_ip(name)).records == (loop4, loop6)
        with pytest.raises(NotFound) as exc:
            await resolver.lookup_mx(name)
        assert (exc.value.nxdomain, exc.value.authentic) == (False, True)
        for lookup in (resolver.lookup_txt, resolver.lookup_tlsa, resolver.lookup_cname, resolver.lookup_ns):
            with pytest.raises(NotFound):
                await lookup(name)
    for ip in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"):
        res = await resolver.lookup_addr(ip)
        assert (res.records, res.authentic) == (("localhost",), True)
    assert dns_server.queries == []
    # The server does count queries: a name merely ending in "localhost" is sent.
    with pytest.raises(NotFound):
        await resolver.lookup_a("notlocalhost")
    assert [q.name for q in dns_server.queries] == ["notlocalhost"]


@pytest.mark.parametrize("name", ["", "a..b", "x" * 64 + ".example", "bad label.ä..example"])
async def test_invalid_name_is_permanent_error_without_query(
    name: str, dns_server: DNSTestServer, resolver: StubResolver
) -> None:
    with pytest.raises(PermanentError):
        await resolver.lookup_txt(name)
    assert dns_server.queries == []


async def test_cache_answers_repeated_lookups(dns_server: DNSTestServer) -> None:
    dns_server.add_txt("example.com", "cached")
    r = dns_server.resolver(cache_size=10)
    for _ in range(3):
        assert (await r.lookup_txt("example.com")).records == ("cached",)
        with pytest.raises(NotFound):
            await r.lookup_txt("absent.example.com")
    assert len(dns_server.queries) == 2


async def test_default_resolver_uses_mox_dns(
    dns_server: DNSTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns_server.add_txt("example.com", "via MOX_DNS")
    monkeypatch.setenv("MOX_DNS", dns_server.address)
    set_default_resolver(None)
    r = default_resolver()
    assert isinstance(r, StubResolver)
    assert r.nameservers == ((dns_server.host, dns_server.port),)
    assert r.trust_ad is True
    assert default_resolver() is r
    assert (await r.lookup_txt("example.com")).records == ("via MOX_DNS",)


def test_default_resolver_rejects_bad_mox_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOX_DNS", "localhost:53")
    set_default_resolver(None)
    with pytest.raises(ValueError, match="MOX_DNS"):
        default_resolver()


def test_set_default_resolver_injects() -> None:
    r = StubResolver([("127.0.0.1", 53)])
    set_default_resolver(r)
    assert default_resolver() is r


@pytest.mark.parametrize(
    ("conf", "servers", "trust"),
    [
        ("nameserver 127.0.0.53\noptions edns0\n", (("127.0.0.53", 53),), True),
        ("nameserver ::1\nnameserver 127.0.0.1\n", (("::1", 53), ("127.0.0.1", 53)), True),
        ("nameserver 192.0.2.53\nnameserver 127.0.0.1\n", (("192.0.2.53", 53), ("127.0.0.1", 53)), False),
        ("nameserver 192.0.2.53\noptions trust-ad rotate\n", (("192.0.2.53", 53),), True),
        ("# nothing\n", (("127.0.0.1", 53), ("::1", 53)), True),
    ],
)
def test_system_configuration_and_ad_trust(
    tmp_path: Path, conf: str, servers: tuple[tuple[str, int], ...], trust: bool
) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(conf)
    r = StubResolver(resolv_conf=str(path))
    assert r.nameservers == servers
    assert r.trust_ad is trust


def test_missing_system_configuration_uses_local_resolver(tmp_path: Path) -> None:
    r = StubResolver(resolv_conf=str(tmp_path / "absent"))
    assert r.nameservers == (("127.0.0.1", 53), ("::1", 53))
    assert r.trust_ad is True
