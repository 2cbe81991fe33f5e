"""DNS block lists (RFC 5782): is an IP address listed in a DNSBL zone?

A listing is looked up as an A record at a name made of the address and the
zone (:func:`query_name`): the octets of an IPv4 address in reverse order
(RFC 5782 section 2.1), or the 32 nibbles of an IPv6 address in reverse order
(section 2.4), then the zone, e.g. ``2.0.0.127.sbl.example`` for 127.0.0.2.
"Not found" means not listed. An A record in 127.0.0.0/24 means listed (the
last octet may say why; section 2.3), and the TXT record at the same name
explains (section 2.1). Operators answer other addresses (e.g. 127.255.255.x)
for their own errors, such as queries through a public resolver they refuse:
those are no listing, but a failed lookup.

:func:`check_health` checks a zone as section 5 allows: the test entry
127.0.0.2 must be listed, and 127.0.0.1 must not be.

All lookups go through :mod:`mox.dns`, so ``MOX_DNS`` and test servers apply.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from mox import mlog
from mox.dns import DNSError, Domain, IPAddress, NotFound, Resolver

log = mlog.new("dnsbl")

# A records that mean "listed" (RFC 5782 section 2.3: values in 127.0.0.0/8 encode the listing, 127.0.0.2 by
# default); operators use 127.255.255.0/24 and the like for errors, so only this range counts.
LISTED_NET = ipaddress.IPv4Network("127.0.0.0/24")


class Status(StrEnum):
    """Outcome of a lookup, with upstream's names."""

    PASS = "pass"  # Not listed.
    FAIL = "fail"  # Listed.
    TEMPERROR = "temperror"  # The lookup failed or gave an answer that is not a listing.


@dataclass(frozen=True)
class Result:
    status: Status
    explanation: str = ""  # The TXT record(s) of a listing, joined with "; ".
    error: str = ""  # Why the status is TEMPERROR.


class HealthError(Exception):
    """The zone does not answer as RFC 5782 section 5 requires."""


def query_name(zone: Domain | str, ip: str | IPAddress) -> str:
    """The absolute name to look ip up at in zone (RFC 5782 sections 2.1 and 2.4); pure.

    Raises:
        ValueError: ip is not an IP address.
    """
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # An IPv4 client on an IPv6 socket is looked up as the IPv4 address it is.
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        labels = [str(b) for b in reversed(addr.packed)]
    else:
        labels = list(reversed(addr.exploded.replace(":", "")))
    z = zone.ascii if isinstance(zone, Domain) else zone.rstrip(".").lower()
    return ".".join(labels) + "." + z + "."


async def lookup(resolver: Resolver, zone: Domain | str, ip: str | IPAddress, *, timeout: float | None = None) -> Result:
    """Whether ip is listed in zone; DNS failures give TEMPERROR, never an exception."""
    name = query_name(zone, ip)
    try:
        r = await resolver.lookup_a(name, timeout=timeout)
    except NotFound:
        return Result(Status.PASS)
    except DNSError as e:
        return Result(Status.TEMPERROR, error=str(e))
    listed = [a for a in r.records if a in LISTED_NET]
    if not listed:
        return Result(
            Status.TEMPERROR,
            error=f"answer {', '.join(map(str, r.records))} is not a listing (error code of the block list?)",
        )
    try:
        txt = await resolver.lookup_txt(name, timeout=timeout)
        expl = "; ".join(txt.records)
    except DNSError as e:
        # The A record says listed; the reason is optional (RFC 5782 section 2.1).
        log.debug("no txt record for listing", name=name, err=str(e))
        expl = ""
    return Result(Status.FAIL, expl)


async def check_health(resolver: Resolver, zone: Domain | str, *, timeout: float | None = None) -> None:
    """Check that zone lists 127.0.0.2 and not 127.0.0.1 (RFC 5782 section 5).

    Raises:
        HealthError: with what is wrong.
    """
    absent = await lookup(resolver, zone, "127.0.0.1", timeout=timeout)
    present = await lookup(resolver, zone, "127.0.0.2", timeout=timeout)
    if absent.status == Status.PASS and present.status == Status.FAIL:
        return
    if absent.status == Status.FAIL:
        raise HealthError("block list lists the address 127.0.0.1, which it must not (RFC 5782 section 5)")
    if present.status == Status.PASS:
        raise HealthError("block list does not list the test address 127.0.0.2 (RFC 5782 section 5)")
    raise HealthError(f"checking the block list's test addresses: {absent.error or present.error}")
