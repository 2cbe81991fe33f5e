"""Reverse DNS check of a connecting IP, "iprev" (RFC 8601 section 3).

The IP's PTR names are looked up, then each name's A/AAAA records; the check
passes when one of those names resolves back to the IP. Results as RFC 8601
section 2.7.3: pass, fail (names exist but none points back), temperror (DNS
trouble), permerror (no PTR record).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

from mox.dns import DNSError, IPAddress, NotFound, Resolver, default_resolver
from mox.dns.resolver import parse_ip

log = logging.getLogger("mox.iprev")

# RFC 8601 section 3 leaves the number of names open; like SPF's PTR mechanism
# (RFC 7208 section 5.5) only the first 10 are tried, so a hostile PTR set
# cannot make us do unbounded lookups. (Upstream tries all.)
MAX_NAMES = 10


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True)
class Result:
    """An iprev check.

    Attributes:
        status: the result for Authentication-Results.
        name: the first PTR name that resolves back to the IP ("" unless pass).
        names: every PTR name found (without trailing dot).
        authentic: whether all DNS answers used were DNSSEC-validated.
        error: what went wrong, for logging ("" when nothing).
    """

    status: Status
    name: str = ""
    names: tuple[str, ...] = field(default_factory=tuple)
    authentic: bool = False
    error: str = ""


async def lookup(ip: str | IPAddress, resolver: Resolver | None = None) -> Result:
    """Check that ip has a PTR name that resolves back to ip (RFC 8601 section 3)."""
    r = resolver or default_resolver()
    addr = parse_ip(ip)
    try:
        rev = await r.lookup_addr(addr)
    except NotFound as e:
        return Result(Status.PERMERROR, authentic=e.authentic, error=f"no reverse dns record: {e}")
    except DNSError as e:
        return Result(Status.TEMPERROR, error=f"dns lookup: {e}")
    names = tuple(n.rstrip(".") for n in rev.records)
    authentic = rev.authentic
    last_error = ""
    for name in names[:MAX_NAMES]:
        try:
            fwd = await r.lookup_ip(name)
        except NotFound as e:
            authentic = authentic and e.authentic
            continue
        except DNSError as e:
            authentic = False
            last_error = str(e)
            continue
        authentic = authentic and fwd.authentic
        if addr in fwd.records:
            return Result(Status.PASS, name, names, authentic)
    if last_error:
        return Result(Status.TEMPERROR, "", names, authentic, f"dns lookup: {last_error}")
    return Result(Status.FAIL, "", names, authentic, "no reverse name resolves back to the ip")


__all__ = ["MAX_NAMES", "Result", "Status", "lookup"]
