"""Routing for direct delivery: MX/CNAME resolution, addresses and TLSA gathering."""

from __future__ import annotations

import ipaddress
import random

import pytest

from mox.dns.domain import parse_domain
from mox.dns.mock import MockResolver
from mox.dns.resolver import MX, TLSA
from mox.queue.remote import (
    HostPref,
    RouteError,
    gather_destinations,
    gather_ips,
    gather_tlsa,
    usable_tlsa,
)

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


def _tlsa(usage: int = 3, sel: int = 1, mt: int = 1, n: int = 32) -> TLSA:
    return TLSA(usage, sel, mt, b"\x01" * n)


def test_usable_tlsa_filters_pkix_and_bad_lengths() -> None:
    good = [_tlsa(3, 1, 1), _tlsa(2, 0, 2, 64), _tlsa(3, 0, 0, 100)]
    bad = [_tlsa(0, 1, 1), _tlsa(1, 1, 1), _tlsa(3, 2, 1), _tlsa(3, 1, 1, 31), _tlsa(3, 1, 5)]
    assert usable_tlsa(good + bad) == good


async def test_gather_tlsa_authentic_records_make_dane_required() -> None:
    r = MockResolver(
        a={"mx.example.org": ["198.51.100.1"]}, tlsa={"_25._tcp.mx.example.org": [_tlsa()]}, all_authentic=True
    )
    h = HostPref(D("mx.example.org"), None, 10)
    ips = await gather_ips(r, h)
    t = await gather_tlsa(r, D("mx.example.org"), ips)
    assert t.required and t.records == [_tlsa()]
    assert t.base_domain == D("mx.example.org")


async def test_gather_tlsa_insecure_or_absent_means_no_dane() -> None:
    r = MockResolver(a={"mx.example.org": ["198.51.100.1"]}, tlsa={"_25._tcp.mx.example.org": [_tlsa()]})
    ips = await gather_ips(r, HostPref(D("mx.example.org"), None, 10))
    assert not (await gather_tlsa(r, D("mx.example.org"), ips)).required

    r2 = MockResolver(a={"mx.example.org": ["198.51.100.1"]}, all_authentic=True)
    ips2 = await gather_ips(r2, HostPref(D("mx.example.org"), None, 10))
    t = await gather_tlsa(r2, D("mx.example.org"), ips2)
    assert not t.required and t.records == []


async def test_gather_tlsa_lookup_failure_requires_dane() -> None:
    r = MockResolver(a={"mx.example.org": ["198.51.100.1"]}, all_authentic=True)
    r.fail["tlsa _25._tcp.mx.example.org"] = "temporary"
    ips = await gather_ips(r, HostPref(D("mx.example.org"), None, 10))
    t = await gather_tlsa(r, D("mx.example.org"), ips)
    assert t.required and t.records == [] and t.error


async def test_gather_tlsa_only_unusable_records() -> None:
    r = MockResolver(
        a={"mx.example.org": ["198.51.100.1"]}, tlsa={"_25._tcp.mx.example.org": [_tlsa(1)]}, all_authentic=True
    )
    ips = await gather_ips(r, HostPref(D("mx.example.org"), None, 10))
    t = await gather_tlsa(r, D("mx.example.org"), ips)
    assert t.required and t.records == [] and not t.error


async def test_gather_tlsa_expanded_name_first() -> None:
    r = MockResolver(
        cname={"mx.example.org": "real.example.net"},
        a={"real.example.net": ["198.51.100.2"]},
        tlsa={"_25._tcp.real.example.net": [_tlsa(2, 1, 1)], "_25._tcp.mx.example.org": [_tlsa()]},
        all_authentic=True,
    )
    ips = await gather_ips(r, HostPref(D("mx.example.org"), None, 10))
    t = await gather_tlsa(r, D("mx.example.org"), ips)
    assert t.base_domain == D("real.example.net") and t.records == [_tlsa(2, 1, 1)]


def test_tlsa_names() -> None:
    from mox.queue.remote import tlsa_names

    mx, exp = D("mx.example.org"), D("real.example.net")
    dom = D("example.org")
    assert tlsa_names(True, True, True, dom, dom, mx, exp) == [exp, mx, dom]
    assert tlsa_names(True, True, False, dom, dom, mx, mx) == [mx, dom]
    assert tlsa_names(True, False, True, dom, dom, mx, mx) == [dom]
    assert tlsa_names(False, True, True, dom, dom, dom, dom) == [dom]
    assert tlsa_names(False, True, True, dom, dom, dom, exp) == [exp, dom]
