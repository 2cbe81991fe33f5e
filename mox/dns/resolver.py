"""Asynchronous DNS lookups that report whether the answer was DNSSEC-validated.

Every lookup in moxmail (SPF, DKIM, DMARC, MTA-STS, DANE, MX routing, iprev,
DNSBL) goes through the :class:`Resolver` interface defined here.
:class:`StubResolver` is the real implementation: a stub resolver (RFC 1034
section 5.3.1) over dnspython's ``dns.asyncresolver`` that sends queries to
recursive name servers and returns the records together with an ``authentic``
flag.

Authentic data (RFC 4035 section 3.2.3, RFC 6840 section 5.7): a validating
resolver sets the AD bit in a response when all of its data was verified with
DNSSEC. Resolvers only set it when the query asks for it, so every query here
sets the AD bit (and uses EDNS0, RFC 6891). The AD bit can only be believed
when the path to the resolver is trusted (RFC 6698 appendix A.3, RFC 4035
section 4.9.3): like upstream mox and glibc, that is when every configured
server is on a loopback address or ``/etc/resolv.conf`` has ``options
trust-ad``. Servers named explicitly in ``MOX_DNS`` are trusted: the operator
chose them (the conformance network's validating resolver is not on loopback).

Name servers: ``/etc/resolv.conf`` by default; the environment variable
``MOX_DNS=host:port[,host:port]`` (IPv6 as ``[::1]:53``) replaces them, for
tests, benchmarks and isolated set-ups. Names are always absolute: a trailing
dot is optional and resolv.conf ``search`` domains are never applied.

Special-use names (RFC 6761 section 6.3): ``localhost`` and names under
``.localhost`` resolve to 127.0.0.1 and ::1, other record types for them are
"no data", and reverse lookups of loopback addresses answer ``localhost``. These
answers are made here, without sending a query, and are authentic.

Errors (:class:`DNSError` and subclasses) name the record type and the name
queried. "Not found" covers both NXDOMAIN and NODATA (RFC 2308), distinguished
by :attr:`NotFound.nxdomain`; :attr:`NotFound.authentic` tells whether the
denial of existence was validated, which DANE (RFC 7672 section 2.2) needs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TLSA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.resolver
import dns.reversename

from mox.dns.domain import Domain, DomainError, parse_domain

log = logging.getLogger("mox.dns")

# Per attempt to one server: the resolv.conf(5) default "timeout:5", also Go's.
ATTEMPT_TIMEOUT = 5.0
# Whole lookup, all servers and retries: two rounds of attempts, like the
# resolv.conf(5) default "attempts:2".
LOOKUP_TIMEOUT = 10.0
# EDNS0 UDP payload size, as agreed for DNS flag day 2020 (dnsflagday.net);
# larger answers come over TCP (RFC 7766).
EDNS_PAYLOAD = 1232

MOX_DNS_ENV = "MOX_DNS"
RESOLV_CONF = "/etc/resolv.conf"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Name = str | Domain
"""A name to look up: a Domain, or text with or without the trailing dot."""

T_co = TypeVar("T_co", covariant=True)


# Errors.


class DNSError(Exception):
    """A lookup failed. ``name`` and ``rdtype`` say what was asked."""

    def __init__(self, rdtype: str, name: str, reason: str, *, server: str = "") -> None:
        self.rdtype = rdtype
        self.name = name
        self.reason = reason
        self.server = server
        where = f" (server {server})" if server else ""
        super().__init__(f"lookup {rdtype} {name}: {reason}{where}")


class NotFound(DNSError):
    """The name does not exist (NXDOMAIN) or has no records of the type (NODATA).

    Attributes:
        nxdomain: True when the name itself does not exist.
        authentic: True when the denial of existence was DNSSEC-validated.
    """

    def __init__(self, rdtype: str, name: str, *, nxdomain: bool, authentic: bool, server: str = "") -> None:
        self.nxdomain = nxdomain
        self.authentic = authentic
        reason = "no such domain (NXDOMAIN)" if nxdomain else "no records of this type (NODATA)"
        super().__init__(rdtype, name, reason, server=server)


class TemporaryError(DNSError):
    """The lookup may succeed later: SERVFAIL, timeout, network trouble."""


class LookupTimeout(TemporaryError):
    """No answer from any server within the lookup's time limit."""


class PermanentError(DNSError):
    """The lookup cannot succeed as asked: REFUSED, malformed name or response."""


# Results.


@dataclass(frozen=True, slots=True)
class Result(Generic[T_co]):
    """Records from one lookup, and whether the answer was DNSSEC-validated."""

    records: tuple[T_co, ...]
    authentic: bool


@dataclass(frozen=True, slots=True)
class MX:
    """An MX record (RFC 1035 section 3.3.9).

    ``host`` has no trailing dot; the null MX (RFC 7505) has host ``"."``.
    """

    preference: int
    host: str


@dataclass(frozen=True, slots=True)
class TLSA:
    """A TLSA record (RFC 6698 section 2.1), as used by DANE (RFC 7672)."""

    usage: int
    selector: int
    matching_type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SRV:
    """An SRV record (RFC 2782): target host without trailing dot."""

    priority: int
    weight: int
    port: int
    target: str


class Resolver(Protocol):
    """What every DNS user in moxmail calls; implemented by StubResolver and MockResolver.

    Each method takes an optional ``timeout`` in seconds for the whole lookup,
    returns a :class:`Result` with at least one record, and raises
    :class:`NotFound`, :class:`TemporaryError` or :class:`PermanentError`.
    """

    async def lookup_txt(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        """TXT records, each record's strings concatenated (RFC 7208 section 3.3)."""
        ...

    async def lookup_mx(self, name: Name, *, timeout: float | None = None) -> Result[MX]:
        """MX records, in the order the server gave them (callers sort by preference)."""
        ...

    async def lookup_a(self, name: Name, *, timeout: float | None = None) -> Result[ipaddress.IPv4Address]:
        """A records, following CNAMEs."""
        ...

    async def lookup_aaaa(self, name: Name, *, timeout: float | None = None) -> Result[ipaddress.IPv6Address]:
        """AAAA records, following CNAMEs."""
        ...

    async def lookup_ip(self, name: Name, *, timeout: float | None = None) -> Result[IPAddress]:
        """A and AAAA records together; authentic only if both answers were.

        A temporary or permanent error for either type fails the whole lookup
        (like Go's StrictErrors, which upstream mox sets): a partial address
        list would silently change which hosts are tried.
        """
        ...

    async def lookup_cname(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        """The CNAME target of name (one record); NotFound if name has no CNAME."""
        ...

    async def lookup_addr(self, ip: str | IPAddress, *, timeout: float | None = None) -> Result[str]:
        """Reverse lookup: PTR host names for an IP address, without trailing dot."""
        ...

    async def lookup_tlsa(self, name: Name, *, timeout: float | None = None) -> Result[TLSA]:
        """TLSA records at name, e.g. ``tlsa_name(25, "tcp", host)``."""
        ...

    async def lookup_ns(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        """NS host names of name, without trailing dot."""
        ...

    async def lookup_srv(self, name: Name, *, timeout: float | None = None) -> Result[SRV]:
        """SRV records at name, e.g. ``_imaps._tcp.example.org`` (RFC 6186)."""
        ...


# Names.


def to_dns_name(name: Name, rdtype: str = "") -> dns.name.Name:
    """An absolute dnspython name for text or a Domain.

    Raises:
        PermanentError: the text is not a valid DNS name.
    """
    text = name.ascii if isinstance(name, Domain) else name
    if text == ".":
        return dns.name.root
    if text.endswith("."):
        text = text[:-1]
    if text == "":
        raise PermanentError(rdtype or "?", repr(name), "empty name")
    if not text.isascii():
        # Unicode labels to A-labels; ASCII labels (also _dmarc and the like)
        # stay as they are.
        try:
            text = ".".join(
                label if label.isascii() else parse_domain(label).ascii for label in text.split(".")
            )
        except DomainError as e:
            raise PermanentError(rdtype or "?", repr(name), f"invalid name: {e}") from None
    try:
        return dns.name.from_text(text + ".")
    except dns.exception.DNSException as e:
        raise PermanentError(rdtype or "?", repr(name), f"invalid name: {e}") from None


def name_text(name: dns.name.Name) -> str:
    """Text form of a name without trailing dot; the root is "."."""
    if name == dns.name.root:
        return "."
    return name.to_text(omit_final_dot=True)


def tlsa_name(port: int, protocol: str, host: Name) -> str:
    """The owner name of TLSA records for a service, RFC 6698 section 3."""
    h = host.ascii if isinstance(host, Domain) else host.rstrip(".")
    return f"_{port}._{protocol}.{h}"


_LOCALHOST = dns.name.from_text("localhost.")
_LOOPBACK_V4 = ipaddress.IPv4Address("127.0.0.1")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")


def is_localhost(name: dns.name.Name) -> bool:
    """Whether name is localhost or under .localhost (RFC 6761 section 6.3)."""
    return name.is_subdomain(_LOCALHOST)


def parse_ip(ip: str | IPAddress, rdtype: str = "PTR") -> IPAddress:
    """An IP address object; IPv4-mapped IPv6 addresses become IPv4.

    Raises:
        PermanentError: not an IP address.
    """
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip)
        except ValueError:
            raise PermanentError(rdtype, repr(ip), "not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# MOX_DNS.


def parse_nameservers(value: str) -> list[tuple[str, int]]:
    """Parse a ``MOX_DNS`` value: ``host:port[,host:port]``, IPv6 as ``[::1]:53``.

    Hosts must be IP addresses (a name would need DNS to find the DNS server).

    Raises:
        ValueError: with a message saying which element is wrong and what is expected.
    """
    servers: list[tuple[str, int]] = []
    if value.strip() == "":
        raise ValueError(f"{MOX_DNS_ENV}: empty, expected host:port[,host:port]")
    for elem in value.split(","):
        item = elem.strip()
        if item == "":
            raise ValueError(f"{MOX_DNS_ENV}: empty element in {value!r}, expected host:port[,host:port]")
        if item.startswith("["):
            end = item.find("]")
            if end < 0:
                raise ValueError(f"{MOX_DNS_ENV}: {item!r}: missing ']' after IPv6 address")
            host, rest = item[1:end], item[end + 1 :]
            if not rest.startswith(":"):
                raise ValueError(f"{MOX_DNS_ENV}: {item!r}: expected :port after ']'")
            portstr = rest[1:]
        else:
            host, sep, portstr = item.rpartition(":")
            if not sep:
                raise ValueError(f"{MOX_DNS_ENV}: {item!r}: missing :port, expected host:port")
            if ":" in host:
                raise ValueError(f"{MOX_DNS_ENV}: {item!r}: IPv6 address must be in brackets, e.g. [::1]:53")
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{MOX_DNS_ENV}: {item!r}: host {host!r} is not an IP address") from None
        if not (portstr.isascii() and portstr.isdigit()) or not 1 <= int(portstr) <= 65535:
            raise ValueError(f"{MOX_DNS_ENV}: {item!r}: port {portstr!r} is not a number 1-65535")
        servers.append((str(addr), int(portstr)))
    return servers


def _system_nameservers(path: str) -> tuple[list[tuple[str, int]], bool]:
    """Name servers from resolv.conf, and whether AD bits from them can be trusted."""
    trust_option = False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split()
                if words and words[0] == "options" and "trust-ad" in words[1:]:
                    trust_option = True
        conf = dns.resolver.Resolver(filename=path, configure=True)
        servers = [
            (ns, 53) if isinstance(ns, str) else (ns.answer_nameserver(), ns.answer_port())
            for ns in conf.nameservers
        ]
    except (OSError, dns.exception.DNSException) as e:
        # Like the C library: without a configuration, use a resolver on this host.
        log.warning("no usable resolver configuration in %s (%s), using 127.0.0.1 and ::1", path, e)
        servers = [("127.0.0.1", 53), ("::1", 53)]
    if not servers:
        servers = [("127.0.0.1", 53), ("::1", 53)]
    trust = trust_option or all(ipaddress.ip_address(host).is_loopback for host, _ in servers)
    return servers, trust


# The real resolver.


class StubResolver:
    """Resolver sending queries to recursive name servers (see the module doc).

    Args:
        nameservers: (IP address, port) pairs; None reads /etc/resolv.conf.
        timeout: default time limit for a whole lookup, seconds.
        attempt_timeout: time limit for one query to one server, seconds.
        trust_ad: whether to believe the AD bit; None: yes for explicit
            nameservers, for system ones only if all are loopback or resolv.conf
            has ``options trust-ad``.
        cache_size: entries in a TTL-honouring answer cache (positive and
            negative); 0, the default, disables it. A local validating resolver
            caches already, and a second cache would hide DNS changes that an
            admin just made and is checking.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        *,
        timeout: float = LOOKUP_TIMEOUT,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        trust_ad: bool | None = None,
        cache_size: int = 0,
        resolv_conf: str = RESOLV_CONF,
    ) -> None:
        if nameservers is None:
            servers, system_trust = _system_nameservers(resolv_conf)
            self.trust_ad = system_trust if trust_ad is None else trust_ad
        else:
            servers = list(nameservers)
            if not servers:
                raise ValueError("no nameservers")
            self.trust_ad = True if trust_ad is None else trust_ad
        self.nameservers: tuple[tuple[str, int], ...] = tuple(servers)
        self.timeout = timeout
        r = dns.asyncresolver.Resolver(configure=False)
        r.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
        r.timeout = attempt_timeout
        r.lifetime = timeout
        r.rotate = False
        # RFC 6840 section 5.7: AD in a query asks a validating resolver to say
        # whether the answer was validated. DO is not set: we do not validate
        # ourselves, and it would add RRSIGs to every answer.
        r.flags = dns.flags.RD | dns.flags.AD
        r.use_edns(0, 0, EDNS_PAYLOAD)
        if cache_size > 0:
            r.cache = dns.resolver.LRUCache(cache_size)
        self._resolver = r

    def __repr__(self) -> str:
        servers = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nameservers)
        return f"StubResolver({servers})"

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, cache_size: int = 0) -> StubResolver:
        """The resolver configured by ``MOX_DNS``, or the system's when unset.

        Raises:
            ValueError: MOX_DNS is set but malformed.
        """
        value = (os.environ if env is None else env).get(MOX_DNS_ENV)
        if value is None:
            return cls(cache_size=cache_size)
        return cls(parse_nameservers(value), cache_size=cache_size)

    def _authentic(self, response: dns.message.Message | None) -> bool:
        # The AD bit only means something for NOERROR and NXDOMAIN answers.
        if response is None or not self.trust_ad:
            return False
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return False
        return bool(response.flags & dns.flags.AD)

    async def _query(
        self, name: dns.name.Name, rdtype: str, timeout: float | None
    ) -> tuple[list[dns.rdata.Rdata], bool]:
        """Send the query and map the outcome to records or one of our errors."""
        qtext = name_text(name)
        lifetime = self.timeout if timeout is None else timeout
        try:
            # dnspython's lifetime can overshoot by its back-off sleep between
            # rounds; the asyncio deadline makes the limit exact.
            async with asyncio.timeout(lifetime):
                answer = await self._resolver.resolve(
                    name,
                    dns.rdatatype.from_text(rdtype),
                    raise_on_no_answer=False,
                    lifetime=lifetime,
                    search=False,
                )
        except dns.resolver.NXDOMAIN as e:
            responses = e.responses()
            response = responses.get(name) if responses else None
            raise NotFound(rdtype, qtext, nxdomain=True, authentic=self._authentic(response)) from None
        except (dns.exception.Timeout, TimeoutError):
            raise LookupTimeout(rdtype, qtext, f"no answer within {lifetime:g}s") from None
        except dns.resolver.NoNameservers as e:
            raise _server_errors(rdtype, qtext, e.kwargs.get("errors") or []) from None
        except dns.resolver.YXDOMAIN:
            raise PermanentError(rdtype, qtext, "name too long after DNAME substitution (YXDOMAIN)") from None
        except dns.exception.DNSException as e:
            raise TemporaryError(rdtype, qtext, str(e)) from None
        except OSError as e:
            raise TemporaryError(rdtype, qtext, str(e)) from None
        authentic = self._authentic(answer.response)
        if answer.rrset is None:
            raise NotFound(rdtype, qtext, nxdomain=False, authentic=authentic)
        records = list(answer.rrset)
        log.debug(
            "dns lookup type=%s name=%s records=%d authentic=%s", rdtype, qtext, len(records), authentic
        )
        return records, authentic

    async def lookup_txt(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        qname = to_dns_name(name, "TXT")
        if is_localhost(qname):
            raise NotFound("TXT", name_text(qname), nxdomain=False, authentic=True)
        rdatas, authentic = await self._query(qname, "TXT", timeout)
        # Non-UTF-8 bytes become U+FFFD: the mail protocols' TXT records are
        # ASCII, so such a record then fails to parse instead of crashing.
        texts = tuple(
            b"".join(rd.strings).decode("utf-8", errors="replace")
            for rd in rdatas
            if isinstance(rd, dns.rdtypes.ANY.TXT.TXT)
        )
        return Result(texts, authentic)

    async def lookup_mx(self, name: Name, *, timeout: float | None = None) -> Result[MX]:
        qname = to_dns_name(name, "MX")
        if is_localhost(qname):
            raise NotFound("MX", name_text(qname), nxdomain=False, authentic=True)
        rdatas, authentic = await self._query(qname, "MX", timeout)
        mxs = tuple(
            MX(rd.preference, name_text(rd.exchange))
            for rd in rdatas
            if isinstance(rd, dns.rdtypes.ANY.MX.MX)
        )
        return Result(mxs, authentic)

    async def lookup_a(self, name: Name, *, timeout: float | None = None) -> Result[ipaddress.IPv4Address]:
        qname = to_dns_name(name, "A")
        if is_localhost(qname):
            return Result((_LOOPBACK_V4,), True)
        rdatas, authentic = await self._query(qname, "A", timeout)
        ips = tuple(ipaddress.IPv4Address(rd.address) for rd in rdatas if isinstance(rd, dns.rdtypes.IN.A.A))
        return Result(ips, authentic)

    async def lookup_aaaa(self, name: Name, *, timeout: float | None = None) -> Result[ipaddress.IPv6Address]:
        qname = to_dns_name(name, "AAAA")
        if is_localhost(qname):
            return Result((_LOOPBACK_V6,), True)
        rdatas, authentic = await self._query(qname, "AAAA", timeout)
        ips = tuple(
            ipaddress.IPv6Address(rd.address) for rd in rdatas if isinstance(rd, dns.rdtypes.IN.AAAA.AAAA)
        )
        return Result(ips, authentic)

    async def lookup_ip(self, name: Name, *, timeout: float | None = None) -> Result[IPAddress]:
        return await combine_ip_lookups(
            self.lookup_a(name, timeout=timeout), self.lookup_aaaa(name, timeout=timeout)
        )

    async def lookup_cname(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        qname = to_dns_name(name, "CNAME")
        if is_localhost(qname):
            raise NotFound("CNAME", name_text(qname), nxdomain=False, authentic=True)
        rdatas, authentic = await self._query(qname, "CNAME", timeout)
        targets = tuple(name_text(rd.target) for rd in rdatas if isinstance(rd, dns.rdtypes.ANY.CNAME.CNAME))
        return Result(targets[:1], authentic)

    async def lookup_addr(self, ip: str | IPAddress, *, timeout: float | None = None) -> Result[str]:
        addr = parse_ip(ip)
        if addr.is_loopback:
            # RFC 6761 section 6.3 item 3: answered locally.
            return Result(("localhost",), True)
        rdatas, authentic = await self._query(dns.reversename.from_address(str(addr)), "PTR", timeout)
        hosts = tuple(name_text(rd.target) for rd in rdatas if isinstance(rd, dns.rdtypes.ANY.PTR.PTR))
        return Result(hosts, authentic)

    async def lookup_tlsa(self, name: Name, *, timeout: float | None = None) -> Result[TLSA]:
        qname = to_dns_name(name, "TLSA")
        if is_localhost(qname):
            raise NotFound("TLSA", name_text(qname), nxdomain=False, authentic=True)
        rdatas, authentic = await self._query(qname, "TLSA", timeout)
        records = tuple(
            TLSA(rd.usage, rd.selector, rd.mtype, bytes(rd.cert))
            for rd in rdatas
            if isinstance(rd, dns.rdtypes.ANY.TLSA.TLSA)
        )
        return Result(records, authentic)

    async def lookup_ns(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        qname = to_dns_name(name, "NS")
        if is_localhost(qname):
            raise NotFound("NS", name_text(qname), nxdomain=False, authentic=True)
        rdatas, authentic = await self._query(qname, "NS", timeout)
        hosts = tuple(name_text(rd.target) for rd in rdatas if isinstance(rd, dns.rdtypes.ANY.NS.NS))
        return Result(hosts, authentic)

    async def lookup_srv(self, name: Name, *, timeout: float | None = None) -> Result[SRV]:
        qname = to_dns_name(name, "SRV")
        if is_localhost(qname):
            raise NotFound("SRV", name_text(qname), nxdomain=False, authentic=True)
        rdatas, authentic = await self._query(qname, "SRV", timeout)
        records = tuple(
            SRV(rd.priority, rd.weight, rd.port, name_text(rd.target))
            for rd in rdatas
            if isinstance(rd, dns.rdtypes.IN.SRV.SRV)
        )
        return Result(records, authentic)


# Response codes after which another attempt cannot help (RFC 1035 section
# 4.1.1). SERVFAIL and network errors are temporary.
_PERMANENT_RCODES = frozenset({"REFUSED", "NOTIMP", "FORMERR"})


def _server_errors(rdtype: str, name: str, errors: Sequence[tuple[object, ...]]) -> DNSError:
    """Map dnspython's per-server failures to one error: permanent only if all were."""
    reasons: list[str] = []
    permanent = bool(errors)
    for err in errors:
        # dnspython names servers like "Do53:127.0.0.1@53".
        server = str(err[0]).removeprefix("Do53:").replace("@", " port ") if err else "?"
        what = err[3] if len(err) > 3 else "?"
        if isinstance(what, str):
            reasons.append(f"{server}: {what}")
            permanent = permanent and what in _PERMANENT_RCODES
        else:
            reasons.append(f"{server}: {type(what).__name__}: {what}")
            permanent = permanent and isinstance(what, dns.exception.FormError)
    reason = "; ".join(reasons) or "no name servers"
    if permanent:
        return PermanentError(rdtype, name, reason)
    return TemporaryError(rdtype, name, reason)


async def combine_ip_lookups(
    a: Awaitable[Result[ipaddress.IPv4Address]],
    aaaa: Awaitable[Result[ipaddress.IPv6Address]],
) -> Result[IPAddress]:
    """Run an A and an AAAA lookup together and merge them as lookup_ip describes."""
    ra, raaaa = await asyncio.gather(a, aaaa, return_exceptions=True)
    ips: list[IPAddress] = []
    authentic = True
    notfound: list[NotFound] = []
    failures: list[BaseException] = []
    for r in (ra, raaaa):
        if isinstance(r, NotFound):
            notfound.append(r)
            authentic = authentic and r.authentic
        elif isinstance(r, BaseException):
            failures.append(r)
        else:
            ips.extend(r.records)
            authentic = authentic and r.authentic
    if failures:
        # A temporary failure wins: retrying later may then succeed.
        raise next((e for e in failures if isinstance(e, TemporaryError)), failures[0])
    if not ips:
        first = notfound[0]
        raise NotFound(
            "A/AAAA",
            first.name,
            nxdomain=all(e.nxdomain for e in notfound),
            authentic=authentic,
            server=first.server,
        )
    return Result(tuple(ips), authentic)


# The default resolver.

_default: Resolver | None = None


def dnssec_status(authentic: bool) -> str:
    """How tools and headers say whether an answer was DNSSEC-validated, as upstream words it."""
    return "with dnssec" if authentic else "without dnssec"


def default_resolver() -> Resolver:
    """The process-wide resolver: set_default_resolver's, else from MOX_DNS or the system.

    Raises:
        ValueError: MOX_DNS is set but malformed.
    """
    global _default
    if _default is None:
        _default = StubResolver.from_environment()
    return _default


def set_default_resolver(resolver: Resolver | None) -> None:
    """Replace the process-wide resolver; None makes the next use read MOX_DNS again."""
    global _default
    _default = resolver


if TYPE_CHECKING:
    # StubResolver implements the Resolver protocol.
    _check: Resolver = StubResolver([("127.0.0.1", 53)])
