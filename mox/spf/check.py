"""The check_host() function of RFC 7208 section 4, and verify() for the SMTP server.

Design notes:

- Limits (section 4.6.4): at most 10 DNS-querying terms (include, a, mx, ptr,
  exists, redirect) per check, counted over includes and redirects when the
  term is reached; more than 2 void lookups (NXDOMAIN or no records) is a
  permerror; an "mx" with more than 10 MX records is a permerror; "ptr" and
  the "p" macro use only the first 10 PTR names.
- Every DNS error other than "not found" is a temperror (section 4.4, 5),
  except in "ptr" and the "p" macro, where it just fails to match
  (section 5.5). The whole check has a time limit (section 4.6.4 asks for at
  least 20 seconds); reaching it is a temperror.
- The explanation ("exp=", section 6.2) is only looked up for a "fail" and
  failures to get it leave it empty; its lookup does not count to the limits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from mox.dns.resolver import DNSError, IPAddress, NotFound, Resolver, Result
from mox.spf.macro import MacroValues, expand
from mox.spf.received import Received
from mox.spf.record import Directive, Record, RecordSyntaxError, is_spf_record, parse_record

# RFC 7208 section 4.6.4.
MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
MAX_PTR_NAMES = 10
# Section 4.6.4: "a time limit ... at least 20 seconds" for the whole check.
CHECK_TIMEOUT = 20.0


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


def parse_ip(ip: str | IPAddress) -> IPAddress:
    """The client IP; an IPv4-mapped IPv6 address is used as the IPv4 address (section 5)."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def valid_domain(name: str) -> bool:
    """Whether name is a well-formed multi-label domain name (RFC 7208 section 4.3).

    Labels are 1 to 63 octets, the name at most 253 (RFC 1035 section 2.3.4);
    one trailing dot is allowed.
    """
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        return False
    if any(c in name for c in "[]") or not name.isprintable():
        return False  # an address literal or control characters: not a domain name
    labels = name.split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels)


@dataclass
class _State:
    """What one check_host invocation shares across includes and redirects."""

    resolver: Resolver
    ip: IPAddress
    sender: str
    helo: str
    receiving_host: str
    now: Callable[[], float]
    dns_terms: int = 0
    void_lookups: int = 0
    authentic: bool = True

    def note(self, result: Result[object]) -> None:
        self.authentic = self.authentic and result.authentic

    def count_term(self) -> None:
        # Section 4.6.4: counted before the lookup; the 11th term is an error.
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise _PermError(f"more than {MAX_DNS_TERMS} dns-querying terms")

    def void(self) -> None:
        self.void_lookups += 1
        if self.void_lookups > MAX_VOID_LOOKUPS:
            raise _PermError(f"more than {MAX_VOID_LOOKUPS} void lookups")

    def values(self, domain: str, ptr: str = "unknown") -> MacroValues:
        return MacroValues(
            sender=self.sender,
            domain=domain,
            ip=self.ip,
            helo=self.helo,
            validated_ptr=ptr,
            receiving_host=self.receiving_host or "unknown",
            timestamp=int(self.now()),
        )


@dataclass(frozen=True, slots=True)
class RecordLookup:
    """The outcome of looking up a domain's SPF record, see :func:`lookup_record`.

    Attributes:
        result: "" when exactly one valid record was found, else "none",
            "temperror" or "permerror".
        record: the parsed record when result is "".
        text: the record's text (also when it did not parse).
        problem: why there is no record, for none, temperror and permerror.
        authentic: the TXT answer (or its denial) was DNSSEC-validated.
    """

    result: str
    record: Record | None = None
    text: str = ""
    problem: str = ""
    authentic: bool = False


async def lookup_record(resolver: Resolver, domain: str) -> RecordLookup:
    """Find and parse the SPF record of domain (RFC 7208 section 4.4 and 4.5).

    "none" when the domain has no SPF record (NXDOMAIN, no TXT records, none
    starting with "v=spf1"); "temperror" for DNS failures (section 4.4);
    "permerror" for more than one SPF record (section 4.5) or a syntax error
    (section 4.6).
    """
    try:
        res = await resolver.lookup_txt(domain)
    except NotFound as e:
        return RecordLookup("none", problem=f"no spf record for {domain}: {e.reason}", authentic=e.authentic)
    except DNSError as e:
        return RecordLookup("temperror", problem=str(e))
    texts = [t for t in res.records if is_spf_record(t)]
    if not texts:
        return RecordLookup("none", problem=f"no spf record for {domain}", authentic=res.authentic)
    if len(texts) > 1:
        return RecordLookup(
            "permerror", problem=f"multiple spf records for {domain}", authentic=res.authentic
        )
    try:
        record = parse_record(texts[0])
    except RecordSyntaxError as e:
        return RecordLookup("permerror", text=texts[0], problem=f"{domain}: {e}", authentic=res.authentic)
    return RecordLookup("", record, texts[0], authentic=res.authentic)


async def _addresses(st: _State, name: str) -> list[IPAddress]:
    """A or AAAA records of name, following the client IP's version (section 5.3)."""
    try:
        if st.ip.version == 4:
            r4 = await st.resolver.lookup_a(name)
            st.note(r4)
            return list(r4.records)
        r6 = await st.resolver.lookup_aaaa(name)
        st.note(r6)
        return list(r6.records)
    except NotFound:
        raise
    except DNSError as e:
        raise _TempError(str(e)) from None


def _in_network(ip: IPAddress, addr: IPAddress, d: Directive) -> bool:
    # Section 5.3 / 5.4: compare with the cidr-length for the address family.
    if ip.version != addr.version:
        return False
    bits = d.ip4_cidr if ip.version == 4 else d.ip6_cidr
    if bits is None:
        return ip == addr
    net = ipaddress.ip_network((addr, bits), strict=False)
    return ip in net


async def _validated_names(st: _State, target: str | None) -> list[str]:
    """Validated PTR names of the client IP (section 5.5), up to MAX_PTR_NAMES.

    With target, stop at the first validated name equal to or under it.
    DNS errors make names unusable rather than failing the check (section 5.5).
    """
    try:
        ptr = await st.resolver.lookup_addr(st.ip)
    except NotFound:
        if target is not None:
            st.void()
        return []
    except DNSError:
        return []
    st.note(ptr)
    names: list[str] = []
    for name in ptr.records[:MAX_PTR_NAMES]:
        name = name.rstrip(".")
        if target is not None:
            n, t = name.lower(), target.lower().rstrip(".")
            if not (n == t or n.endswith("." + t)):
                continue
        try:
            addrs = await _addresses(st, name)
        except (NotFound, _TempError):
            continue
        if st.ip in addrs:
            names.append(name)
            if target is not None:
                break
    return names


async def _macro_values(st: _State, spec: str, domain: str) -> MacroValues:
    """Macro values for expanding spec; the "p" value only when spec uses it (section 7.3)."""
    ptr = "unknown"
    if "%{p" in spec.lower():
        names = await _validated_names(st, None)
        # Section 7.3: prefer a name equal to or under <domain>.
        d = domain.lower().rstrip(".")
        under = [n for n in names if n.lower() == d or n.lower().endswith("." + d)]
        if under or names:
            ptr = (under or names)[0]
    return st.values(domain, ptr)


async def _expand_domain(st: _State, spec: str, domain: str) -> str:
    if not spec:
        return domain
    try:
        return expand(spec, await _macro_values(st, spec, domain))
    except RecordSyntaxError as e:
        raise _PermError(str(e)) from None


async def _matches(st: _State, d: Directive, domain: str) -> bool:
    """Whether a mechanism matches (section 5); raises for temperror/permerror."""
    mech = d.mechanism
    if mech == "all":
        return True
    if mech in ("ip4", "ip6"):
        assert d.network is not None
        return st.ip.version == d.network.version and st.ip in d.network
    st.count_term()
    target = await _expand_domain(st, d.domain_spec, domain)
    if mech == "include":
        # Section 5.2: the included check's result decides whether it matches.
        sub = await _check(st, target, nested=True)
        if sub.result == "pass":
            return True
        if sub.result in ("fail", "softfail", "neutral"):
            return False
        if sub.result == "temperror":
            raise _TempError(sub.problem)
        raise _PermError(sub.problem or f"include:{target} has no spf record")
    if not valid_domain(target):
        # A name that cannot be looked up is treated like one that does not exist.
        st.void()
        return False
    if mech == "a":
        try:
            addrs = await _addresses(st, target)
        except NotFound:
            st.void()
            return False
        return any(_in_network(st.ip, a, d) for a in addrs)
    if mech == "exists":
        # Section 5.7: always an A lookup, whatever the client IP's version.
        try:
            ra = await st.resolver.lookup_a(target)
        except NotFound:
            st.void()
            return False
        except DNSError as e:
            raise _TempError(str(e)) from None
        st.note(ra)
        return True
    if mech == "mx":
        try:
            rmx = await st.resolver.lookup_mx(target)
        except NotFound:
            st.void()
            return False
        except DNSError as e:
            raise _TempError(str(e)) from None
        st.note(rmx)
        hosts = [mx.host for mx in sorted(rmx.records, key=lambda m: m.preference) if mx.host != "."]
        if len(hosts) > MAX_MX_NAMES:
            raise _PermError(f"mx:{target} has more than {MAX_MX_NAMES} mx records")
        for host in hosts:
            try:
                addrs = await _addresses(st, host)
            except NotFound:
                continue
            if any(_in_network(st.ip, a, d) for a in addrs):
                return True
        return False
    if mech == "ptr":
        return bool(await _validated_names(st, target))
    raise AssertionError(mech)


async def _explanation(st: _State, record: Record, domain: str) -> str:
    """The expanded explanation text of a record, "" when there is none (section 6.2)."""
    if not record.explanation:
        return ""
    try:
        name = expand(record.explanation, await _macro_values(st, record.explanation, domain))
        if not valid_domain(name):
            return ""
        res = await st.resolver.lookup_txt(name)
    except (DNSError, RecordSyntaxError):
        return ""
    if len(res.records) != 1:
        return ""
    try:
        text = expand(res.records[0], await _macro_values(st, res.records[0], domain), exp=True)
    except RecordSyntaxError:
        return ""
    return text if text.isascii() else ""


async def _check(st: _State, domain: str, *, nested: bool = False) -> Received:
    """check_host for one domain, sharing the counters in st (includes, redirects)."""
    rcv = Received(result="none", domain=domain)
    if not valid_domain(domain):
        # Section 4.3: "none" for a malformed initial domain; section 6.1
        # makes it a permerror for a redirect target (and include, section 5.2).
        rcv.result = "permerror" if nested else "none"
        rcv.problem = f"invalid domain {domain!r}"
        return rcv
    try:
        found = await lookup_record(st.resolver, domain)
        st.authentic = st.authentic and found.authentic
        record = found.record
        if record is None:
            rcv.result = found.result
            rcv.problem = found.problem
            return rcv
        for d in record.directives:
            # On an error below, the header names the mechanism that caused it.
            rcv.mechanism = str(d)
            if await _matches(st, d, domain):
                rcv.result = d.result
                rcv.mechanism = str(d)
                if rcv.result == "fail":
                    rcv.explanation = await _explanation(st, record, domain)
                return rcv
        if record.redirect:
            # Section 6.1: used when no mechanism matched; counts as a DNS term.
            rcv.mechanism = "redirect=" + record.redirect
            st.count_term()
            target = await _expand_domain(st, record.redirect, domain)
            sub = await _check(st, target, nested=True)
            if sub.result == "none":
                sub.result = "permerror"
                sub.problem = f"redirect to {target} without spf record"
            return sub
        # Section 4.7: no match, no redirect: neutral.
        rcv.result = "neutral"
        rcv.mechanism = "default"
        return rcv
    except _TempError as e:
        rcv.result = "temperror"
        rcv.problem = str(e)
    except _PermError as e:
        rcv.result = "permerror"
        rcv.problem = str(e)
    return rcv


async def check_host(
    resolver: Resolver,
    ip: str | IPAddress,
    domain: str,
    sender: str,
    helo: str,
    *,
    receiving_host: str = "",
    now: Callable[[], float] = time.time,
    timeout: float = CHECK_TIMEOUT,
) -> Received:
    """Evaluate the SPF policy of domain for a client IP, RFC 7208 section 4.

    Args:
        resolver: DNS lookups go here.
        ip: the SMTP client's address.
        domain: the domain whose policy is checked (MAIL FROM or HELO domain).
        sender: <sender>, "local-part@domain"; an empty local-part is taken as
            "postmaster" (section 4.3).
        helo: the HELO/EHLO name, for the "h" macro.
        receiving_host: our host name, for the "r" macro in explanations.
        now: the clock, for the "t" macro.
        timeout: seconds for the whole check; exceeding it is a temperror.

    Returns:
        A Received with result, mechanism, explanation, domain, problem and the
        counters filled in (not the header's identity fields, see verify).
    """
    local, at, sender_domain = sender.rpartition("@")
    if not at:
        local, sender_domain = "", sender
    st = _State(
        resolver=resolver,
        ip=parse_ip(ip),
        sender=f"{local or 'postmaster'}@{sender_domain}",
        helo=helo,
        receiving_host=receiving_host,
        now=now,
    )
    try:
        async with asyncio.timeout(timeout):
            rcv = await _check(st, domain)
    except TimeoutError:
        rcv = Received(result="temperror", domain=domain, problem="spf check timed out")
    rcv.dns_terms = st.dns_terms
    rcv.void_lookups = st.void_lookups
    rcv.authentic = st.authentic
    return rcv


async def verify(
    resolver: Resolver,
    ip: str | IPAddress,
    mail_from: str,
    helo: str,
    *,
    receiving_host: str = "",
    now: Callable[[], float] = time.time,
    timeout: float = CHECK_TIMEOUT,
) -> Received:
    """Check the SPF identity of an SMTP transaction, as upstream's Verify.

    The MAIL FROM domain is checked when the reverse-path is not empty;
    otherwise "postmaster@" the HELO name (RFC 7208 section 2.4), unless the
    HELO is an address literal, which leaves nothing to check ("none"). Like
    upstream, only one identity is checked: MAIL FROM is preferred because it
    is where a DSN would go.

    Args:
        mail_from: the reverse-path "local-part@domain", or "" for "<>".
        helo: the EHLO/HELO argument, a domain or an address literal "[...]".

    Returns:
        The check_host result with the Received-SPF header fields (identity,
        client-ip, envelope-from, helo, receiver and a comment) filled in.
    """
    client = parse_ip(ip)
    helo_is_ip = helo.startswith("[") and helo.endswith("]")
    if mail_from:
        local, _, domain = mail_from.rpartition("@")
        identity = "mailfrom"
        sender = f"{local or 'postmaster'}@{domain}"
    else:
        domain = helo
        identity = "helo"
        sender = f"postmaster@{helo}"
    if not mail_from and helo_is_ip:
        rcv = Received(result="none", comment="no domain, ehlo is an ip literal and mailfrom is empty")
    else:
        rcv = await check_host(
            resolver, client, domain, sender, helo, receiving_host=receiving_host, now=now, timeout=timeout
        )
        rcv.identity = identity
        rcv.comment = f"domain {domain}" + (
            ", from ehlo because mailfrom is empty" if identity == "helo" else ""
        )
    rcv.client_ip = client
    rcv.envelope_from = sender
    rcv.helo = helo[1:-1] if helo_is_ip else helo
    rcv.receiver = receiving_host
    return rcv
