"""An in-memory Resolver for unit tests of SPF, DKIM, DMARC, DANE and the like.

:class:`MockResolver` answers from dicts, like upstream mox's dns.MockResolver,
and behaves as the real :class:`~mox.dns.resolver.StubResolver` does where it
matters to callers:

- CNAMEs are followed for every type but CNAME (RFC 1034 section 3.6.2).
- "Not found" distinguishes NXDOMAIN from NODATA (RFC 2308): a name exists when
  it has records of any type, is a CNAME, or has names below it (an empty
  non-terminal, RFC 8020).
- ``localhost`` and loopback reverse lookups are answered locally (RFC 6761
  section 6.3), whatever the tables say.
- Authenticity is per answer: a CNAME chain is authentic only if every name in
  it is (RFC 4035 section 3.2.3).

Keys in the tables and in the ``fail``/``authentic``/``inauthentic`` settings are
names without trailing dot (a trailing dot is tolerated), in any case. Settings
keys are either a name, applying to every record type, or ``"type name"`` such
as ``"txt example.com"`` for one type, as upstream's. PTR keys are IP addresses.

It never waits: a forced "timeout" raises LookupTimeout at once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

import dns.name

from mox.dns.resolver import (
    MX,
    SRV,
    TLSA,
    IPAddress,
    LookupTimeout,
    Name,
    NotFound,
    PermanentError,
    Resolver,
    Result,
    TemporaryError,
    combine_ip_lookups,
    is_localhost,
    name_text,
    parse_ip,
    to_dns_name,
)

MockFailure = Literal["temporary", "permanent", "timeout", "nxdomain"]
"""A failure MockResolver.fail can force: SERVFAIL-like, REFUSED-like, no answer, NXDOMAIN."""

# Longest CNAME chain followed, as dnspython's resolver (dns.message.MAX_CHAIN).
MAX_CNAME_CHAIN = 16

T = TypeVar("T")


def _key(name: dns.name.Name) -> str:
    return name_text(name).lower()


@dataclass
class MockResolver:
    """A Resolver answering from in-memory tables; see the module doc.

    Example::

        r = MockResolver(txt={"example.com": ["v=spf1 -all"]}, all_authentic=True)
        r.fail["_dmarc.example.com"] = "temporary"
    """

    a: dict[str, list[str]] = field(default_factory=dict)
    aaaa: dict[str, list[str]] = field(default_factory=dict)
    txt: dict[str, list[str]] = field(default_factory=dict)
    mx: dict[str, list[MX]] = field(default_factory=dict)
    cname: dict[str, str] = field(default_factory=dict)
    ptr: dict[str, list[str]] = field(default_factory=dict)
    tlsa: dict[str, list[TLSA]] = field(default_factory=dict)
    ns: dict[str, list[str]] = field(default_factory=dict)
    srv: dict[str, list[SRV]] = field(default_factory=dict)
    fail: dict[str, MockFailure] = field(default_factory=dict)
    all_authentic: bool = False
    authentic: set[str] = field(default_factory=set)
    inauthentic: set[str] = field(default_factory=set)
    # Every lookup as ("TYPE", name) in order, including localhost ones that
    # StubResolver would not send; tests check what was asked.
    queries: list[tuple[str, str]] = field(default_factory=list)

    # Settings and table lookups, case-insensitive and trailing-dot tolerant.

    @staticmethod
    def _normalize(key: str) -> str:
        typ, sep, name = key.partition(" ")
        if sep:
            return f"{typ.lower()} {name.rstrip('.').lower()}"
        return key.rstrip(".").lower()

    def _setting(self, keys: dict[str, MockFailure] | set[str], rdtype: str, name: str) -> str | None:
        """The key in a settings collection that applies to this type and name, if any."""
        specific = f"{rdtype.lower()} {name}"
        for k in keys:
            if self._normalize(k) == specific:
                return k
        for k in keys:
            if self._normalize(k) == name:
                return k
        return None

    def _table_get(self, table: dict[str, list[T]], name: str) -> list[T] | None:
        for k, v in table.items():
            if self._normalize(k) == name:
                return v
        return None

    def _cname_target(self, name: str) -> str | None:
        for k, v in self.cname.items():
            if self._normalize(k) == name:
                return v
        return None

    def _is_authentic(self, rdtype: str, name: str) -> bool:
        if self._setting(self.inauthentic, rdtype, name) is not None:
            return False
        if self._setting(self.authentic, rdtype, name) is not None:
            return True
        return self.all_authentic

    def _exists(self, name: str) -> bool:
        tables: list[dict[str, list[str]] | dict[str, list[MX]] | dict[str, list[TLSA]] | dict[str, list[SRV]] | dict[str, str]] = [
            self.a,
            self.aaaa,
            self.txt,
            self.mx,
            self.tlsa,
            self.ns,
            self.srv,
            self.cname,
        ]
        for table in tables:
            for k in table:
                n = self._normalize(k)
                if n == name or n.endswith("." + name):
                    return True
        return False

    def _check_fail(self, rdtype: str, qname: str, name: str) -> None:
        key = self._setting(self.fail, rdtype, name)
        if key is None:
            return
        failure = self.fail[key]
        if failure == "temporary":
            raise TemporaryError(rdtype, qname, "mock temporary failure (SERVFAIL)", server="mock")
        if failure == "permanent":
            raise PermanentError(rdtype, qname, "mock permanent failure (REFUSED)", server="mock")
        if failure == "timeout":
            raise LookupTimeout(rdtype, qname, "mock timeout", server="mock")
        raise NotFound(
            rdtype, qname, nxdomain=True, authentic=self._is_authentic(rdtype, name), server="mock"
        )

    def _resolve(self, rdtype: str, qname: str, get: Callable[[str], list[T] | None]) -> Result[T]:
        """Follow CNAMEs from qname and return what get finds at the end of the chain."""
        name = qname
        authentic = True
        for _ in range(MAX_CNAME_CHAIN):
            self._check_fail(rdtype, qname, name)
            authentic = authentic and self._is_authentic(rdtype, name)
            records = get(name)
            if records:
                return Result(tuple(records), authentic)
            target = self._cname_target(name) if rdtype != "CNAME" else None
            if target is None:
                raise NotFound(
                    rdtype, qname, nxdomain=not self._exists(name), authentic=authentic, server="mock"
                )
            name = self._normalize(target)
        raise TemporaryError(rdtype, qname, f"CNAME chain longer than {MAX_CNAME_CHAIN}", server="mock")

    def _start(self, rdtype: str, name: Name) -> tuple[dns.name.Name, str]:
        qname = to_dns_name(name, rdtype)
        self.queries.append((rdtype, name_text(qname)))
        return qname, _key(qname)

    # The Resolver interface.

    async def lookup_txt(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        qname, key = self._start("TXT", name)
        if is_localhost(qname):
            raise NotFound("TXT", key, nxdomain=False, authentic=True)
        return self._resolve("TXT", key, lambda n: self._table_get(self.txt, n))

    async def lookup_mx(self, name: Name, *, timeout: float | None = None) -> Result[MX]:
        qname, key = self._start("MX", name)
        if is_localhost(qname):
            raise NotFound("MX", key, nxdomain=False, authentic=True)
        return self._resolve("MX", key, lambda n: self._table_get(self.mx, n))

    async def lookup_a(self, name: Name, *, timeout: float | None = None) -> Result[ipaddress.IPv4Address]:
        qname, key = self._start("A", name)
        if is_localhost(qname):
            return Result((ipaddress.IPv4Address("127.0.0.1"),), True)

        def get(n: str) -> list[ipaddress.IPv4Address] | None:
            values = self._table_get(self.a, n)
            return None if values is None else [ipaddress.IPv4Address(v) for v in values]

        return self._resolve("A", key, get)

    async def lookup_aaaa(self, name: Name, *, timeout: float | None = None) -> Result[ipaddress.IPv6Address]:
        qname, key = self._start("AAAA", name)
        if is_localhost(qname):
            return Result((ipaddress.IPv6Address("::1"),), True)

        def get(n: str) -> list[ipaddress.IPv6Address] | None:
            values = self._table_get(self.aaaa, n)
            return None if values is None else [ipaddress.IPv6Address(v) for v in values]

        return self._resolve("AAAA", key, get)

    async def lookup_ip(self, name: Name, *, timeout: float | None = None) -> Result[IPAddress]:
        return await combine_ip_lookups(self.lookup_a(name), self.lookup_aaaa(name))

    async def lookup_cname(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        qname, key = self._start("CNAME", name)
        if is_localhost(qname):
            raise NotFound("CNAME", key, nxdomain=False, authentic=True)

        def get(n: str) -> list[str] | None:
            target = self._cname_target(n)
            return None if target is None else [target.rstrip(".")]

        return self._resolve("CNAME", key, get)

    async def lookup_addr(self, ip: str | IPAddress, *, timeout: float | None = None) -> Result[str]:
        addr = parse_ip(ip)
        self.queries.append(("PTR", str(addr)))
        if addr.is_loopback:
            return Result(("localhost",), True)
        key = str(addr)

        def get(n: str) -> list[str] | None:
            for k, v in self.ptr.items():
                if parse_ip(k) == addr:
                    return [h.rstrip(".") for h in v]
            return None

        return self._resolve("PTR", key, get)

    async def lookup_tlsa(self, name: Name, *, timeout: float | None = None) -> Result[TLSA]:
        qname, key = self._start("TLSA", name)
        if is_localhost(qname):
            raise NotFound("TLSA", key, nxdomain=False, authentic=True)
        return self._resolve("TLSA", key, lambda n: self._table_get(self.tlsa, n))

    async def lookup_ns(self, name: Name, *, timeout: float | None = None) -> Result[str]:
        qname, key = self._start("NS", name)
        if is_localhost(qname):
            raise NotFound("NS", key, nxdomain=False, authentic=True)
        return self._resolve("NS", key, lambda n: self._table_get(self.ns, n))

    async def lookup_srv(self, name: Name, *, timeout: float | None = None) -> Result[SRV]:
        qname, key = self._start("SRV", name)
        if is_localhost(qname):
            raise NotFound("SRV", key, nxdomain=False, authentic=True)
        return self._resolve("SRV", key, lambda n: self._table_get(self.srv, n))


if TYPE_CHECKING:
    # MockResolver implements the Resolver protocol.
    _check: Resolver = MockResolver()
