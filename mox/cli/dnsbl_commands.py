"""``mox dnsbl check`` and ``mox dnsbl checkhealth``: DNS block list lookups (mox.dnsbl), as upstream."""

from __future__ import annotations

import asyncio
import ipaddress

from mox.cli.main import CommandError, Invocation, UsageError, command
from mox.dns import Domain, DomainError, default_resolver, parse_domain


def _zone(s: str) -> Domain:
    try:
        return parse_domain(s.removesuffix("."))
    except DomainError as e:
        raise UsageError(f"invalid zone {s!r}: {e}") from None


@command(
    "dnsbl check",
    params="$zone $ip",
    nargs=(2, 2),
    help="""Test if IP is in the DNS block list of the zone, e.g. bl.spamcop.net.

Prints the status: pass (not listed), fail (listed, with the explanation from
the TXT record, typically a URL with more information) or temperror (the
lookup failed). The system resolver is used, or the servers in MOX_DNS.""",
)
def cmd_dnsbl_check(inv: Invocation) -> None:
    from mox import dnsbl

    zone = _zone(inv.args[0])
    try:
        ip = ipaddress.ip_address(inv.args[1])
    except ValueError:
        raise UsageError(f"invalid ip {inv.args[1]!r}") from None
    r = asyncio.run(dnsbl.lookup(default_resolver(), zone, ip))
    print(f"status: {r.status}")
    if r.status == dnsbl.Status.FAIL:
        print(f"explanation: {r.explanation!r}")
    if r.error:
        print(f"error: {r.error}")


@command(
    "dnsbl checkhealth",
    params="$zone",
    nargs=(1, 1),
    help="""Check the health of the DNS block list of the zone, e.g. bl.spamcop.net.

RFC 5782 section 5: the list must contain the test address 127.0.0.2 and must
not contain 127.0.0.1. Prints "healthy", or fails with what is wrong.""",
)
def cmd_dnsbl_checkhealth(inv: Invocation) -> None:
    from mox import dnsbl

    zone = _zone(inv.args[0])
    try:
        asyncio.run(dnsbl.check_health(default_resolver(), zone))
    except dnsbl.HealthError as e:
        raise CommandError(f"unhealthy: {e}") from None
    print("healthy")
