"""A resolver that never sends a query, for ``mox localserve`` on machines without DNS.

``localhost`` and names under it resolve to 127.0.0.1 and ::1, reverse lookups
of loopback addresses give ``localhost`` (RFC 6761 section 6.3), all of it
authentic; every other name does not exist. So mail from local scripts gets
SPF "none" and no DKIM key, and is never refused for want of DNS. With
``MOX_DNS`` set, localserve uses those servers instead (tests, and set-ups
that bring their own DNS).
"""

from __future__ import annotations

import ipaddress

from mox.dns.resolver import (
    MX,
    SRV,
    TLSA,
    IPAddress,
    Name,
    NotFound,
    Result,
    combine_ip_lookups,
    is_localhost,
    name_text,
    parse_ip,
    to_dns_name,
)

_V4 = ipaddress.IPv4Address("127.0.0.1")
_V6 = ipaddress.IPv6Address("::1")


class LocalOnlyResolver:
    """Implements mox.dns.Resolver with local answers only (see the module doc)."""

    def _missing(self, rdtype: str, name: Name) -> NotFound:
        qname = to_dns_name(name, rdtype)
        local = is_localhost(qname)
        # localhost exists (it has addresses): other types are NODATA; other names NXDOMAIN.
        return NotFound(rdtype, name_text(qname), nxdomain=not local, authentic=local)

    async def lookup_txt(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        raise self._missing("TXT", name)

    async def lookup_mx(self, name: Name, *, timeout: float | None = None) -> Result[MX]:
        raise self._missing("MX", name)

    async def lookup_a(self, name: Name, *, timeout: float | None = None) -> Result[ipaddress.IPv4Address]:
        if is_localhost(to_dns_name(name, "A")):
            return Result((_V4,), True)
        raise self._missing("A", name)

    async def lookup_aaaa(self, name: Name, *, timeout: float | None = None) -> Result[ipaddress.IPv6Address]:
        if is_localhost(to_dns_name(name, "AAAA")):
            return Result((_V6,), True)
        raise self._missing("AAAA", name)

    async def lookup_ip(self, name: Name, *, timeout: float | None = None) -> Result[IPAddress]:
        return await combine_ip_lookups(self.lookup_a(name), self.lookup_aaaa(name))

    async def lookup_cname(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        raise self._missing("CNAME", name)

    async def lookup_addr(self, ip: str | IPAddress, *, timeout: float | None = None) -> Result[str]:
        addr = parse_ip(ip)
        if addr.is_loopback:
            return Result(("localhost",), True)
        raise NotFound("PTR", str(addr), nxdomain=True, authentic=False)

    async def lookup_tlsa(self, name: Name, *, timeout: float | None = None) -> Result[TLSA]:
        raise self._missing("TLSA", name)

    async def lookup_ns(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        raise self._missing("NS", name)

    async def lookup_srv(self, name: Name, *, timeout: float | None = None) -> Result[SRV]:
        raise self._missing("SRV", name)
