"""Direct delivery to the recipient domain's mail servers: routing, MTA-STS, DANE, TLS results.

This module finds where a message goes and how securely it must get there:

1. :func:`gather_destinations` resolves the recipient domain (following CNAMEs)
   and its MX records into hosts to try in preference order (RFC 5321 section
   5.1), with the null MX of RFC 7505 as a permanent failure and the implicit
   MX (the domain itself) when there are no MX records.
2. :func:`gather_ips` resolves one host to addresses, remembering whether every
   answer on the way was DNSSEC-authentic: only then may DANE apply (RFC 7672
   section 2.2.1).
3. :func:`gather_tlsa` looks up the TLSA records for an MX host at the
   CNAME-expanded name first, then at the original name (RFC 7672 section
   2.2.2), and says whether DANE is required for the connection.

The delivery attempt itself (:class:`RemoteDeliverer`) ties these to MTA-STS
(``mox.mtastsdb``), the SMTP client (``mox.smtpclient``) and TLS result
recording (``mox.tlsrptdb``).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field

from mox import mlog
from mox.dns.domain import Domain, DomainError, parse_domain
from mox.dns.resolver import TLSA, DNSError, IPAddress, NotFound, Resolver, tlsa_name

log = mlog.new("queue")

# RFC 1034 does not limit CNAME chains; resolvers stop at a few (dnspython: 16).
MAX_CNAME_CHAIN = 16
DNS_TIMEOUT = 30.0


class RouteError(Exception):
    """Routing failed. ``permanent`` says whether retrying later can help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class HostPref:
    """A host to try, with its MX preference (-1 when not from an MX record)."""

    host: Domain | None
    ip: IPAddress | None = None
    pref: int = -1

    def name(self) -> str:
        return str(self.ip) if self.ip is not None else (self.host.ascii if self.host else "")


@dataclass(slots=True)
class Destinations:
    """Where mail for a domain goes, per RFC 5321 section 5.1.

    ``orig_authentic``: the lookups for the recipient domain itself were DNSSEC-authentic.
    ``expanded_authentic``: every lookup along the CNAME chain was authentic.
    ``have_mx``: the hosts come from MX records (not the implicit MX).
    """

    have_mx: bool
    orig_authentic: bool
    expanded_authentic: bool
    expanded: Domain
    hosts: list[HostPref] = field(default_factory=list)


def _sort_mx(hosts: list[HostPref], rng: random.Random) -> list[HostPref]:
    # RFC 5321 section 5.1: lowest preference first; equal preferences in random order.
    shuffled = list(hosts)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda h: h.pref)


async def gather_destinations(
    resolver: Resolver, domain: Domain | IPAddress, *, rng: random.Random | None = None
) -> Destinations:
    """The hosts to try for a recipient domain (or an address literal).

    Raises RouteError: permanent for a null MX (RFC 7505 section 3) or an MX
    naming something that is not a host name; temporary for DNS trouble, CNAME
    loops and chains that are too long.
    """
    rng = rng or random.Random()
    if not isinstance(domain, Domain):
        return Destinations(False, False, False, Domain(""), [HostPref(None, domain)])

    orig_authentic = True
    expanded_authentic = True
    expanded = domain
    seen: set[str] = set()
    for i in range(MAX_CNAME_CHAIN + 1):
        if expanded.ascii in seen:
            raise RouteError(f"cname loop for recipient domain {domain}: already saw {expanded}")
        seen.add(expanded.ascii)
        if i == MAX_CNAME_CHAIN:
            raise RouteError(f"too many cname records for recipient domain {domain}, last {expanded}")

        try:
            cname = await resolver.lookup_cname(expanded.ascii, timeout=DNS_TIMEOUT)
        except NotFound as e:
            authentic = e.authentic
            target = None
        except DNSError as e:
            raise RouteError(f"cname lookup for {expanded}: {e}") from e
        else:
            authentic = cname.authentic
            target = cname.records[0].rstrip(".").lower()
        if i == 0:
            orig_authentic = orig_authentic and authentic
        expanded_authentic = expanded_authentic and authentic
        if target and target != expanded.ascii:
            try:
                expanded = parse_domain(target)
            except DomainError as e:
                raise RouteError(f"cname target for {expanded} is not a domain: {e}") from e
            continue

        try:
            mx = await resolver.lookup_mx(expanded.ascii, timeout=DNS_TIMEOUT)
        except NotFound as e:
            if i == 0:
                orig_authentic = orig_authentic and e.authentic
            expanded_authentic = expanded_authentic and e.authentic
            if e.nxdomain:
                # The domain does not exist at all: mail can never be delivered.
                raise RouteError(f"recipient domain {expanded} does not exist", permanent=True) from e
            # RFC 5321 section 5.1: no MX records, the domain itself is the implicit MX.
            return Destinations(False, orig_authentic, expanded_authentic, expanded, [HostPref(expanded)])
        except DNSError as e:
            raise RouteError(f"mx lookup for {expanded}: {e}") from e
        if i == 0:
            orig_authentic = orig_authentic and mx.authentic
        expanded_authentic = expanded_authentic and mx.authentic

        # RFC 7505 section 3: a single MX with host "." says the domain accepts no mail.
        if len(mx.records) == 1 and mx.records[0].host in (".", ""):
            raise RouteError(f"recipient domain {expanded} does not accept email (null mx record)", permanent=True)
        hosts: list[HostPref] = []
        for r in mx.records:
            if r.host in (".", ""):
                continue  # A null MX among real ones is ignored (RFC 7505 section 3).
            try:
                hosts.append(HostPref(parse_domain(r.host.rstrip("."), lax=True), None, r.preference))
            except DomainError as e:
                raise RouteError(f"invalid host name in mx record {r.host!r}: {e}", permanent=True) from e
        return Destinations(True, orig_authentic, expanded_authentic, expanded, _sort_mx(hosts, rng))
    raise AssertionError("unreachable")


@dataclass(slots=True)
class HostIPs:
    """Addresses for one host. DANE may only be used when ``authentic`` holds
    for the whole chain (``expanded_authentic``), RFC 7672 section 2.2.1."""

    authentic: bool
    expanded_authentic: bool
    expanded: Domain
    ips: list[IPAddress]
    dualstack: bool


async def gather_ips(resolver: Resolver, host: HostPref, dialed: list[IPAddress] | None = None) -> HostIPs:
    """Resolve a host to addresses, following CNAMEs to learn the expanded name.

    When earlier attempts dialed addresses of this host, the other address
    family is tried first next time, so a block listing of one of our addresses
    does not stop delivery (as upstream does).
    """
    if host.ip is not None:
        return HostIPs(False, False, Domain(""), [host.ip], False)
    assert host.host is not None
    authentic = True
    expanded_authentic = True
    name = host.host.ascii
    for i in range(MAX_CNAME_CHAIN + 1):
        if i == MAX_CNAME_CHAIN:
            raise RouteError(f"too many cname records for host {host.host}")
        try:
            cname = await resolver.lookup_cname(name, timeout=DNS_TIMEOUT)
        except NotFound as e:
            if i == 0:
                authentic = e.authentic
            expanded_authentic = expanded_authentic and e.authentic
            break
        except DNSError as e:
            raise RouteError(f"cname lookup for {name}: {e}") from e
        if i == 0:
            authentic = cname.authentic
        expanded_authentic = expanded_authentic and cname.authentic
        target = cname.records[0].rstrip(".").lower()
        if target == name:
            break
        name = target
    try:
        expanded = host.host if name == host.host.ascii else parse_domain(name)
    except DomainError as e:
        raise RouteError(f"cname target {name!r} for host {host.host} is not a domain: {e}") from e
    try:
        res = await resolver.lookup_ip(name, timeout=DNS_TIMEOUT)
    except NotFound as e:
        raise RouteError(f"no addresses for host {name}", permanent=False) from e
    except DNSError as e:
        raise RouteError(f"looking up addresses for {name}: {e}") from e
    authentic = authentic and res.authentic
    expanded_authentic = expanded_authentic and res.authentic
    ips = list(res.records)
    have4 = any(isinstance(ip, ipaddress.IPv4Address) for ip in ips)
    have6 = any(isinstance(ip, ipaddress.IPv6Address) for ip in ips)
    if dialed:
        prev = dialed[-1]
        prev4 = isinstance(prev, ipaddress.IPv4Address)
        same_family = sum(1 for ip in dialed if isinstance(ip, ipaddress.IPv4Address) == prev4)
        prefer_prev = same_family == 1
        # Other family first; within a family, the previous address first only
        # when it was the one address of its family tried so far.
        ips.sort(key=lambda ip: (isinstance(ip, ipaddress.IPv4Address) == prev4, not (prefer_prev and ip == prev)))
    return HostIPs(authentic, expanded_authentic, expanded, ips, have4 and have6)


@dataclass(slots=True)
class TLSAResult:
    """Outcome of the TLSA lookup for one MX host.

    ``required``: TLSA records exist (or the lookup failed in a way that means
    they may exist), so the connection must be DANE-verified (RFC 7672 section
    2.2). ``records`` holds only the usable ones (DANE-TA and DANE-EE, RFC 7672
    section 3.1.3); when required but empty, TLS is still required but cannot
    be verified ("starttls unverified").
    """

    required: bool
    records: list[TLSA]
    base_domain: Domain
    error: str = ""


def usable_tlsa(records: list[TLSA]) -> list[TLSA]:
    """DANE-TA(2) and DANE-EE(3) records with known selectors and matching types.

    RFC 7672 section 3.1.3: PKIX-TA(0) and PKIX-EE(1) are not used for SMTP.
    RFC 6698 section 2.1: selectors 0/1 and matching types 0/1/2 are defined;
    SHA-2 digests must have the right length to ever match.
    """
    lengths = {1: 32, 2: 64}
    out = []
    for r in records:
        if r.usage not in (2, 3) or r.selector not in (0, 1) or r.matching_type not in (0, 1, 2):
            continue
        if r.matching_type in lengths and len(r.data) != lengths[r.matching_type]:
            continue
        out.append(r)
    return out


async def _lookup_tlsa_name(resolver: Resolver, host: Domain, port: int) -> list[TLSA] | None:
    """TLSA records at ``_port._tcp.host``, following an authentic CNAME chain.

    Returns None when the answer (or the denial) was not authentic: then DANE
    does not apply to this name. Raises RouteError on lookup failures, which
    make DANE required (RFC 7672 section 2.2: a failed lookup must not lead to
    an unauthenticated downgrade).
    """
    name = tlsa_name(port, "tcp", host.ascii)
    try:
        res = await resolver.lookup_tlsa(name, timeout=DNS_TIMEOUT)
    except NotFound as e:
        return [] if e.authentic else None
    except DNSError as e:
        raise RouteError(f"looking up tlsa records for {host}: {e}") from e
    if not res.authentic:
        return None
    return list(res.records)


async def gather_tlsa(resolver: Resolver, host: Domain, ips: HostIPs, port: int = 25) -> TLSAResult:
    """TLSA records for an MX host whose addresses were resolved with ``ips``.

    RFC 7672 section 2.2.2: with an authentic CNAME chain, TLSA records are
    looked up at the expanded name first and at the original name when there
    are none.
    """
    base = host
    try:
        if ips.expanded == host or ips.expanded.is_zero() or not ips.expanded_authentic:
            records = await _lookup_tlsa_name(resolver, host, port)
        else:
            base = ips.expanded
            records = await _lookup_tlsa_name(resolver, ips.expanded, port)
            if not records:
                base = host
                records = await _lookup_tlsa_name(resolver, host, port)
    except RouteError as e:
        return TLSAResult(True, [], base, str(e))
    if not records:
        return TLSAResult(False, [], base)
    return TLSAResult(True, usable_tlsa(records), base)


def tlsa_names(
    have_mx: bool,
    expanded_next_hop_authentic: bool,
    expanded_host_authentic: bool,
    orig_next_hop: Domain,
    expanded_next_hop: Domain,
    orig_host: Domain,
    tlsa_base: Domain,
) -> list[Domain]:
    """Names a certificate may carry under DANE-TA (RFC 7672 section 3.2.2).

    With MX records, the TLSA base domain (the MX host, or its secure CNAME
    expansion) is the reference identifier, and the original MX host name and
    the next-hop domain (original and expanded) are accepted too. Without MX
    records the host is the domain itself, perhaps reached through a secure CNAME.
    """
    if not have_mx:
        if not expanded_host_authentic or orig_host == tlsa_base:
            return [orig_host]
        return [tlsa_base, orig_host]
    if not expanded_next_hop_authentic:
        # DANE is not attempted after an insecure MX lookup; this is what
        # section 3.2.2 would allow if it were.
        return [orig_next_hop]
    names: list[Domain] = []
    for d in ([tlsa_base] if expanded_host_authentic else []) + [orig_host, orig_next_hop, expanded_next_hop]:
        if d not in names:
            names.append(d)
    return names
