"""DNS lookups from the command line, with the resolver the server uses (``MOX_DNS`` honoured)."""

from __future__ import annotations

import asyncio

from mox.cli.main import CommandError, Invocation, UsageError, command
from mox.dns import DNSError, NotFound, default_resolver, dnssec_status, parse_domain
from mox.dns.domain import DomainError

_USAGE_TYPES = ("ptr", "mx", "cname", "ips", "a", "aaaa", "ns", "txt", "srv", "tlsa")


def _name(s: str) -> str:
    # Like upstream: names that are not valid host names (e.g. with underscores,
    # as in <selector>._domainkey.<domain>) are looked up as given.
    try:
        return parse_domain(s.removesuffix(".")).ascii
    except DomainError:
        return s.removesuffix(".")


async def _lookup(kind: str, arg: str) -> list[str]:
    r = default_resolver()
    out: list[str] = []
    if kind == "ptr":
        res = await r.lookup_addr(arg)
        out.append(f"names ({len(res.records)}, {dnssec_status(res.authentic)}):")
        out += [f"- {n}" for n in res.records]
    elif kind == "mx":
        mx = await r.lookup_mx(_name(arg))
        out.append(f"mx records ({len(mx.records)}, {dnssec_status(mx.authentic)}):")
        out += [f"- {m.host}, preference {m.preference}" for m in mx.records]
    elif kind == "cname":
        cn = await r.lookup_cname(_name(arg))
        out.append(f"{cn.records[0]} ({dnssec_status(cn.authentic)})")
    elif kind in ("ips", "a", "aaaa"):
        name = _name(arg)
        fn = {"ips": r.lookup_ip, "a": r.lookup_a, "aaaa": r.lookup_aaaa}[kind]
        ips = await fn(name)
        out.append(f"records ({len(ips.records)}, {dnssec_status(ips.authentic)}):")
        out += [f"- {ip}" for ip in ips.records]
    elif kind == "ns":
        ns = await r.lookup_ns(_name(arg))
        out.append(f"ns records ({len(ns.records)}, {dnssec_status(ns.authentic)}):")
        out += [f"- {n}" for n in ns.records]
    elif kind == "txt":
        txt = await r.lookup_txt(_name(arg))
        out.append(f"txt records ({len(txt.records)}, {dnssec_status(txt.authentic)}):")
        out += [f"- {t}" for t in txt.records]
    elif kind == "srv":
        srv = await r.lookup_srv(_name(arg))
        out.append(f"srv records ({len(srv.records)}, {dnssec_status(srv.authentic)}):")
        out += [f"- host {s.target}, port {s.port}, priority {s.priority}, weight {s.weight}" for s in srv.records]
    elif kind == "tlsa":
        tl = await r.lookup_tlsa(_name(arg))
        out.append(f"tlsa records ({len(tl.records)}, {dnssec_status(tl.authentic)}):")
        out += [
            f"- usage {t.usage}, selector {t.selector}, matchtype {t.matching_type}, certificate association data {t.data.hex()}"
            for t in tl.records
        ]
    return out


@command(
    "dns lookup",
    params="[ptr | mx | cname | ips | a | aaaa | ns | txt | srv | tlsa] $name",
    nargs=(2, 2),
    help="""Lookup DNS name of given type.

Lookup always prints whether the response was DNSSEC-protected. The system
resolver is used, or the servers in MOX_DNS when set.

Examples:

mox dns lookup ptr 192.0.2.1
mox dns lookup mx example.org
mox dns lookup txt _dmarc.example.org.
mox dns lookup tlsa _25._tcp.mail.example.org""",
)
def cmd_dns_lookup(inv: Invocation) -> None:
    kind, arg = inv.args
    if kind not in _USAGE_TYPES:
        raise UsageError(f"unknown record type {kind!r}")
    try:
        lines = asyncio.run(_lookup(kind, arg))
    except NotFound as e:
        raise CommandError(f"dns lookup: {e} ({dnssec_status(e.authentic)})") from None
    except (DNSError, ValueError) as e:
        raise CommandError(f"dns lookup: {e}") from None
    for line in lines:
        print(line)
