"""The resolver of localserve answers localhost and loopback itself and never sends a query."""

from __future__ import annotations

import ipaddress

import pytest

from mox.dns import NotFound, Resolver
from mox.dns.testserver import DNSTestServer
from mox.localserve.resolver import LocalOnlyResolver


async def test_localhost_and_loopback(dns_server: DNSTestServer) -> None:
    r: Resolver = LocalOnlyResolver()
    a = await r.lookup_a("localhost")
    assert a.records == (ipaddress.IPv4Address("127.0.0.1"),) and a.authentic
    ips = await r.lookup_ip("mail.localhost.")
    assert set(map(str, ips.records)) == {"127.0.0.1", "::1"} and ips.authentic
    for ip in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"):
        ptr = await r.lookup_addr(ip)
        assert ptr.records == ("localhost",) and ptr.authentic
    with pytest.raises(NotFound) as e:
        await r.lookup_txt("localhost")
    assert not e.value.nxdomain and e.value.authentic
    # Nothing went to any server, not even the test one.
    assert dns_server.queries == []


async def test_other_names_do_not_exist(dns_server: DNSTestServer) -> None:
    dns_server.add_txt("example.org", "v=spf1 -all")
    r = LocalOnlyResolver()
    for call in (
        r.lookup_txt,
        r.lookup_mx,
        r.lookup_a,
        r.lookup_aaaa,
        r.lookup_ip,
        r.lookup_cname,
        r.lookup_tlsa,
        r.lookup_ns,
        r.lookup_srv,
    ):
        with pytest.raises(NotFound) as e:
            await call("example.org")
        assert e.value.nxdomain
    with pytest.raises(NotFound):
        await r.lookup_addr("192.0.2.1")
    assert dns_server.queries == []
