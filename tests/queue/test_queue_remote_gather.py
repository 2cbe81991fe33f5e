"""Routing for direct delivery: MX/CNAME resolution, addresses and TLSA gathering."""

from __future__ import annotations

import ipaddress
import random

import pytest

from mox.dns.domain import parse_domain
from mox.dns.mock import MockResolver
from mox.dns.resolver import MX
from mox.queue.remote import HostPref, RouteError, gather_destinations, gather_ips

D = parse_domain


async def test_mx_sorted_by_preference() -> None:
    r = MockResolver(mx={"example.org": [MX(20, "b.example.org"), MX(10, "a.example.org"), MX(20, "c.example.org")]})
    d = await gather_destinations(r, D("example.org"), rng=random.Random(1))
    assert d.have_mx
    assert d.hosts[0].host == D("a.example.org")
    assert {h.host.ascii for h in d.hosts[1:] if h.host} == {"b.example.org", "c.example.org"}
    assert [h.pref for h in d.hosts] == [10, 20, 20]
    assert not d.orig_authentic


async def test_implicit_mx_when_no_mx_records() -> None:
    r = MockResolver(a={"example.org": ["198.51.100.5"]}, all_authentic=True)
    d = await gather_destinations(r, D("example.org"))
    assert not d.have_mx
    assert [h.host for h in d.hosts] == [D("example.org")]
    assert d.orig_authentic and d.expanded_authentic


async def test_nxdomain_is_permanent() -> None:
    r = MockResolver()
    with pytest.raises(RouteError) as ei:
        await gather_destinations(r, D("nonexistent.example"))
    assert ei.value.permanent


async def test_null_mx_is_permanent() -> None:
    r = MockResolver(mx={"example.org": [MX(0, ".")]})
    with pytest.raises(RouteError, match="null mx") as ei:
        await gather_destinations(r, D("example.org"))
    assert ei.value.permanent


async def test_servfail_is_temporary() -> None:
    r = MockResolver(mx={"example.org": [MX(10, "mx.example.org")]})
    r.fail["mx example.org"] = "temporary"
    with pytest.raises(RouteError) as ei:
        await gather_destinations(r, D("example.org"))
    assert not ei.value.permanent


async def test_cname_followed_and_loop_detected() -> None:
    r = MockResolver(
        cname={"example.org": "mail.example.net"},
        mx={"mail.example.net": [MX(10, "mx.example.net")]},
        authentic={"example.org"},
    )
    d = await gather_destinations(r, D("example.org"))
    assert d.expanded == D("mail.example.net")
    assert d.orig_authentic and not d.expanded_authentic

    loop = MockResolver(cname={"a.example": "b.example", "b.example": "a.example"})
    with pytest.raises(RouteError):
        await gather_destinations(loop, D("a.example"))


async def test_address_literal_destination() -> None:
    ip = ipaddress.ip_address("198.51.100.7")
    d = await gather_destinations(MockResolver(), ip)
    assert d.hosts == [HostPref(None, ip)]


async def test_gather_ips_other_family_first_after_attempt() -> None:
    r = MockResolver(a={"mx.example.org": ["198.51.100.1"]}, aaaa={"mx.example.org": ["2001:db8::1"]}, all_authentic=True)
    h = HostPref(D("mx.example.org"), None, 10)
    ips = await gather_ips(r, h)
    assert ips.dualstack and ips.authentic and ips.expanded_authentic
    again = await gather_ips(r, h, dialed=[ipaddress.ip_address("2001:db8::1")])
    assert again.ips[0] == ipaddress.ip_address("198.51.100.1")
    again = await gather_ips(r, h, dialed=[ipaddress.ip_address("198.51.100.1")])
    assert again.ips[0] == ipaddress.ip_address("2001:db8::1")


async def test_gather_ips_missing_host_is_error() -> None:
    with pytest.raises(RouteError):
        await gather_ips(MockResolver(), HostPref(D("nothing.example"), None, 10))


async def test_gather_ips_follows_cname() -> None:
    r = MockResolver(cname={"mx.example.org": "real.example.net"}, a={"real.example.net": ["198.51.100.2"]}, all_authentic=True)
    ips = await gather_ips(r, HostPref(D("mx.example.org"), None, 10))
    assert ips.expanded == D("real.example.net")
    assert ips.ips == [ipaddress.ip_address("198.51.100.2")]
