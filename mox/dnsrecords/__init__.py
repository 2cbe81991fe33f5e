"""The DNS records a domain needs, and a check of live DNS against them.

:func:`domain_records` lists the records for a configured domain (what
``mox quickstart`` and ``mox config dnsrecords`` print): MX, the host's A/AAAA,
SPF for the domain and the host, DKIM per selector, DMARC with reporting
address, MTA-STS, TLS reporting for the domain and per host (for DANE), TLSA
for DANE from the host private keys, client settings, autoconfig and SRV
records (RFC 6186, RFC 8314), and CAA. :func:`zone_text` prints them as a zone
file with comments, loadable by DNS software (and by dnspython's zone parser).

:func:`check_domain` (``mox config dnscheck``) looks every expected record up
through :mod:`mox.dns` and reports, per section, what is missing or different.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mox.config.load import Config, config_dir_path, load_private_key
from mox.dane import MatchType, Selector, Usage, record_text
from mox.dane import make_record as make_tlsa
from mox.dkim.record import parse_record as parse_dkim_record
from mox.dkim.record import txt_record as dkim_txt_record
from mox.dmarc.record import URI, Policy
from mox.dmarc.record import Record as DMARCRecord
from mox.dmarc.record import parse_record as parse_dmarc_record
from mox.dns import DNSError, Domain, NotFound, Resolver
from mox.smtp.address import format_localpart
from mox.tlsrpt.record import Record as TLSRPTRecord
from mox.tlsrpt.record import RecordError as TLSRPTRecordError
from mox.tlsrpt.record import parse_record as parse_tlsrpt_record

# Suggested TTL while setting up: short, so mistakes are fixed quickly.
SETUP_TTL = 300
# Long TXT values are shown as strings of this many characters (a zone file
# allows up to 255 per string, RFC 1035 section 3.3.14; shorter is easier to copy).
TXT_CHUNK = 100
# Well-known ports for the SRV records, RFC 8314 section 5.1 and RFC 6186.
IMAPS_PORT = 993
SUBMISSIONS_PORT = 465
HTTPS_PORT = 443
LETSENCRYPT = "letsencrypt.org"


@dataclass(frozen=True)
class Record:
    """One DNS record: owner name (ASCII, no trailing dot), type and presentation value.

    TXT values are the text itself, unquoted. ``section`` names the check that
    covers it; ``commented`` records are shown commented out (e.g. TLSA while the
    domain has no DNSSEC); ``optional`` ones are not required by dnscheck.
    """

    name: str
    rtype: str
    value: str
    section: str
    commented: bool = False
    optional: bool = False


@dataclass
class Group:
    """Records that belong together, with the explanation printed above them."""

    comment: list[str]
    records: list[Record] = field(default_factory=list)


def host_private_keys(cfg: Config, listener: str = "public") -> list[Any]:
    """The listener's HostPrivateKeyFiles, ECDSA P-256 keys first, then RSA 2048 (as upstream lists them)."""
    lst = cfg.static.Listeners.get(listener)
    if lst is None or lst.TLS is None:
        return []
    keys = [load_private_key(config_dir_path(cfg.static_path, p)) for p in lst.TLS.HostPrivateKeyFiles]
    ecdsa = [k for k in keys if isinstance(k, ec.EllipticCurvePrivateKey)]
    rsas = [k for k in keys if isinstance(k, rsa.RSAPrivateKey)]
    return ecdsa + rsas


def host_ips(cfg: Config) -> list[str]:
    """Public IPs of listeners with SMTP: NATIPs when set, else IPs; without 0.0.0.0/:: (as upstream's DomainSPFIPs)."""
    out: list[str] = []
    for lst in cfg.static.Listeners.values():
        if not lst.SMTP.Enabled or lst.IPsNATed:
            continue
        for ip in lst.NATIPs or lst.IPs:
            a = ipaddress.ip_address(ip)
            if not a.is_unspecified and str(a) not in out:
                out.append(str(a))
    for t in cfg.static.Transports.values():
        if t.Socks is not None:
            out += [ip for ip in t.Socks.RemoteIPs if ip not in out]
    return out


def _mailto(localpart: str, domain: Domain) -> str:
    return f"mailto:{format_localpart(localpart)}@{domain.ascii}"


def spf_host_record() -> str:
    # RFC 7208 section 10.1.3: the HELO host name of the MTA gets its own record, for DSNs sent from it.
    return "v=spf1 a -all"


def domain_records(
    cfg: Config, domain: Domain, *, has_dnssec: bool, cert_issuer: str = "", acme_account_uri: str = ""
) -> list[Group]:
    """The records to create for a configured domain (see the module doc).

    Raises:
        KeyError: the domain is not configured.
        ValueError, OSError: a host private key file cannot be read.
    """
    dom = cfg.dynamic.Domains[domain.name]
    d = domain.ascii
    hd: Domain = cfg.static.HostnameDomain
    h = hd.ascii
    csd = h
    if (
        dom.ClientSettingsDomain
        and dom.ClientSettingsDNSDomain is not None
        and dom.ClientSettingsDNSDomain != hd
    ):
        csd = dom.ClientSettingsDNSDomain.ascii
    groups: list[Group] = []

    keys = host_private_keys(cfg)
    if keys:
        g = Group(
            [
                "DANE: mail servers delivering to this host over SMTP (port 25) must verify its TLS",
                "certificate with DANE-EE (3): only the public key (SPKI, 1) is checked, by its",
                "SHA-256 hash (1); not the CA signature, expiry or name (RFC 7672 section 3.1.1).",
                "Create these once: they are for the machine and apply to all its domains.",
            ]
        )
        if not has_dnssec:
            g.comment += [
                "WARNING: the domain does not appear to be DNSSEC-signed. DANE needs DNSSEC: sign the",
                "zone first, then add these TLSA records (commented out below).",
            ]
        for k in keys:
            g.records.append(
                # DANE-EE (3), SPKI (1), SHA-256 (1): RFC 7672 section 3.1.1, RFC 7671 section 5.1.
                Record(
                    f"_25._tcp.{h}",
                    "TLSA",
                    record_text(make_tlsa(Usage.DANE_EE, Selector.SPKI, MatchType.SHA256, k)),
                    "DANE",
                    commented=not has_dnssec,
                )
            )
        groups.append(g)

    ips = host_ips(cfg)
    g = Group(
        [
            "The mail host's addresses (for the machine, once). Also give each IP reverse DNS (PTR) pointing at the host name."
        ]
    )
    for ip in ips:
        typ = "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
        g.records.append(Record(h, typ, ip, "IPs"))
    if not ips:
        g.comment.append(
            "The listeners use 0.0.0.0/:: (all addresses): add A and AAAA records for the public IPs yourself."
        )
    groups.append(g)

    if d != h:
        groups.append(
            Group(
                [
                    "For the machine, once, for the first domain: the host may send for itself (its DSNs then pass DMARC, relaxed)."
                ],
                [Record(h, "TXT", spf_host_record(), "SPF")],
            )
        )
        if cfg.static.HostTLSRPT.ParsedLocalpart:
            rec = TLSRPTRecord(ruas=[[_mailto(cfg.static.HostTLSRPT.ParsedLocalpart, hd)]])
            groups.append(
                Group(
                    [
                        "For the machine, once: ask for reports about TLS connections to this (MX) host, for DANE (RFC 8460)."
                    ],
                    [Record(f"_smtp._tls.{h}", "TXT", str(rec), "Host TLSRPT")],
                )
            )

    groups.append(Group(["Deliver email for the domain to this host."], [Record(d, "MX", f"10 {h}.", "MX")]))

    g = Group(
        [
            "DKIM public keys of the domain's selectors; outgoing messages are signed with: "
            + ", ".join(dom.DKIM.Sign)
            + "."
        ]
    )
    for name in sorted(dom.DKIM.Selectors):
        sel = dom.DKIM.Selectors[name]
        if sel.Key is None:
            continue
        g.records.append(
            Record(
                f"{sel.Domain.ascii if sel.Domain else name}._domainkey.{d}",
                "TXT",
                dkim_txt_record(sel.Key, ["sha256"]),
                "DKIM",
            )
        )
    groups.append(g)

    spf_terms = (
        ["v=spf1"]
        + [("ip4:" if ipaddress.ip_address(ip).version == 4 else "ip6:") + ip for ip in ips]
        + ["mx", "~all"]
    )
    groups.append(
        Group(
            [
                "The MX host may send for the domain. ~all (softfail) for the rest rather than -all: old",
                "mail servers would otherwise reject before looking at DKIM and DMARC (RFC 7208).",
            ],
            [Record(d, "TXT", " ".join(spf_terms), "SPF")],
        )
    )

    dmarc = DMARCRecord(policy=Policy.REJECT)
    if dom.DMARC is not None and dom.DMARC.DNSDomain is not None:
        dmarc.aggregate_report_addresses = [
            URI(_mailto(dom.DMARC.ParsedLocalpart, dom.DMARC.DNSDomain), 10, "m")
        ]
    groups.append(
        Group(
            [
                "Reject messages failing DMARC (no aligned DKIM or SPF pass), and ask for aggregate reports.",
                "If your mail passes through mailing lists that break DKIM signatures, consider p=none.",
            ],
            [Record(f"_dmarc.{d}", "TXT", dmarc.text(), "DMARC")],
        )
    )

    if dom.MTASTS is not None:
        groups.append(
            Group(
                [
                    "MTA-STS (RFC 8461): senders verify this host's TLS certificate with the WebPKI when delivering."
                ],
                [
                    Record(f"mta-sts.{d}", "CNAME", f"{h}.", "MTASTS"),
                    Record(f"_mta-sts.{d}", "TXT", f"v=STSv1; id={dom.MTASTS.PolicyID}", "MTASTS"),
                ],
            )
        )
    else:
        groups.append(
            Group(["No MTA-STS: not configured for the domain, or no listener serves MTA-STS policies."])
        )

    if dom.TLSRPT is not None and dom.TLSRPT.DNSDomain is not None:
        rec = TLSRPTRecord(ruas=[[_mailto(dom.TLSRPT.ParsedLocalpart, dom.TLSRPT.DNSDomain)]])
        groups.append(
            Group(
                ["Ask for reports about TLS failures delivering to the domain (RFC 8460)."],
                [Record(f"_smtp._tls.{d}", "TXT", str(rec), "Domain TLSRPT")],
            )
        )

    if csd != h:
        groups.append(
            Group(
                [
                    "Mail clients are given this name, so moving the mail host later needs no change in the clients."
                ],
                [Record(csd, "CNAME", f"{h}.", "Client settings")],
            )
        )

    groups.append(
        Group(
            ["Autoconfig (Thunderbird) and autodiscover (Microsoft)."],
            [
                Record(f"autoconfig.{d}", "CNAME", f"{h}.", "Autoconf"),
                Record(f"_autodiscover._tcp.{d}", "SRV", f"0 1 {HTTPS_PORT} {h}.", "Autodiscover"),
            ],
        )
    )
    groups.append(
        Group(
            ["IMAP and submission with TLS at the mail host, for clients that look (RFC 6186, RFC 8314)."],
            [
                Record(f"_imaps._tcp.{d}", "SRV", f"0 1 {IMAPS_PORT} {csd}.", "SRV conf"),
                Record(f"_submissions._tcp.{d}", "SRV", f"0 1 {SUBMISSIONS_PORT} {csd}.", "SRV conf"),
            ],
        )
    )
    groups.append(
        Group(
            [
                'Optional: plain-text IMAP/submission and POP3 are not offered (target ".", RFC 6186 section 3.4).'
            ],
            [
                Record(f"_{svc}._tcp.{d}", "SRV", "0 0 0 .", "SRV conf", optional=True)
                for svc in ("imap", "submission", "pop3", "pop3s")
            ],
        )
    )

    if cert_issuer:
        g = Group(
            [f"Optional: only {cert_issuer} may issue TLS certificates for the domain (CAA, RFC 8659)."],
            [Record(d, "CAA", f'0 issue "{cert_issuer}"', "CAA", optional=True)],
        )
        if acme_account_uri:
            value = f'0 issue "{cert_issuer}; accounturi={acme_account_uri}; validationmethods=tls-alpn-01,http-01"'
            g.comment.append(
                "Or limit issuance to mox's ACME account and validation methods (RFC 8657), below commented out."
            )
            for name in (d, f"autoconfig.{d}", f"mta-sts.{d}"):
                g.records.append(Record(name, "CAA", value, "CAA", commented=True, optional=True))
        groups.append(g)
    return groups


def _txt_strings(text: str) -> str:
    chunks = [text[i : i + TXT_CHUNK] for i in range(0, len(text), TXT_CHUNK)] or [""]
    quoted = ['"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks]
    if len(quoted) == 1:
        return quoted[0]
    return "(\n" + "".join(f"\t\t{q}\n" for q in quoted) + "\t)"


def record_line(r: Record, width: int = 40) -> str:
    value = _txt_strings(r.value) if r.rtype == "TXT" else r.value
    line = f"{r.name + '.':<{width}} {r.rtype:<5} {value}"
    if r.commented:
        line = ";; " + line.replace("\n", "\n;; ")
    return line


def zone_text(groups: list[Group]) -> str:
    """The records as a zone file with explanations in comments, TTL 5 minutes."""
    lines = [
        "; Time to live of 5 minutes while setting up; raise it once everything works.",
        f"$TTL {SETUP_TTL}",
        "",
    ]
    width = max((len(r.name) + 1 for g in groups for r in g.records), default=30)
    for g in groups:
        lines += ["; " + c for c in g.comment]
        lines += [record_line(r, width) for r in g.records]
        lines.append("")
    return "\n".join(lines)


# Checking live DNS.


@dataclass
class SectionResult:
    section: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


SECTIONS = ("DNSSEC", "IPs", "MX", "DANE", "SPF", "DKIM", "DMARC", "Host TLSRPT", "Domain TLSRPT", "MTASTS", "Client settings",
            "SRV conf", "Autoconf", "Autodiscover")  # fmt: skip


def _norm(s: str) -> str:
    return re.sub(r"\s*;\s*", ";", s.strip()).rstrip(";")


def _txt_kind(value: str) -> str:
    """The record kind by its version tag, e.g. "v=spf1", "v=dkim1"."""
    return re.split(r"[\s;]", value.strip(), maxsplit=1)[0].lower()


async def _lookup(results: dict[str, SectionResult], r: Record, fn: Callable[[], Awaitable[Any]]) -> Any:
    """The lookup's Result, or None with an error noted when it fails."""
    try:
        return await fn()
    except NotFound:
        if not r.optional:
            results[r.section].errors.append(f"missing {r.rtype} record {r.name}: expected {r.value!r}")
        return None
    except DNSError as e:
        results[r.section].errors.append(f"looking up {r.rtype} {r.name}: {e.reason}")
        return None


def _compare_txt(r: Record, found: str, res: SectionResult) -> None:
    if _norm(found) == _norm(r.value):
        return
    kind = _txt_kind(r.value)
    if kind == "v=dkim1":
        try:
            got, _ = parse_dkim_record(found)
            want, _ = parse_dkim_record(r.value)
        except ValueError as e:
            res.errors.append(f"DKIM record {r.name} does not parse: {e}")
            return
        if got.public_key != want.public_key:
            res.errors.append(
                f"DKIM record {r.name} has a different public key than the configured private key"
            )
        return
    if kind == "v=dmarc1":
        try:
            got_d, _ = parse_dmarc_record(found)
        except ValueError as e:
            res.errors.append(f"DMARC record {r.name} does not parse: {e}")
            return
        want_d, _ = parse_dmarc_record(r.value)
        assert got_d is not None and want_d is not None
        if got_d.policy != want_d.policy:
            res.warnings.append(
                f"DMARC record {r.name} has policy p={got_d.policy}, suggested p={want_d.policy}"
            )
        want_rua = {u.address.lower() for u in want_d.aggregate_report_addresses}
        got_rua = {u.address.lower() for u in got_d.aggregate_report_addresses}
        if not want_rua <= got_rua:
            res.errors.append(
                f"DMARC record {r.name} does not send aggregate reports to {', '.join(sorted(want_rua - got_rua))}"
            )
        return
    if kind == "v=tlsrptv1":
        try:
            got_t, _ = parse_tlsrpt_record(found)
        except TLSRPTRecordError as e:
            res.errors.append(f"TLSRPT record {r.name} does not parse: {e}")
            return
        want_t, _ = parse_tlsrpt_record(r.value)
        assert got_t is not None and want_t is not None
        missing = {a.lower() for a in want_t.addresses()} - {a.lower() for a in got_t.addresses()}
        if missing:
            res.errors.append(f"TLSRPT record {r.name} does not send reports to {', '.join(sorted(missing))}")
        return
    if kind == "v=spf1":
        want_terms = set(r.value.lower().split()[1:-1])
        got_terms = set(found.lower().split()[1:])
        if want_terms <= got_terms:
            res.warnings.append(f"SPF record {r.name} is {found!r}, suggested {r.value!r}")
        else:
            res.errors.append(
                f"SPF record {r.name} is {found!r}, lacking {', '.join(sorted(want_terms - got_terms))} (suggested {r.value!r})"
            )
        return
    res.errors.append(f"{r.rtype} record {r.name} is {found!r}, expected {r.value!r}")


async def _check_record(resolver: Resolver, r: Record, results: dict[str, SectionResult]) -> None:
    res = results[r.section]
    if r.rtype == "TXT":
        found = await _lookup(results, r, lambda: resolver.lookup_txt(r.name))
        if found is None:
            return
        kind = _txt_kind(r.value)
        same = [t for t in found.records if _txt_kind(t) == kind]
        if not same:
            res.errors.append(f"missing TXT record {r.name}: expected {r.value!r}")
        elif len(same) > 1:
            res.errors.append(
                f"{len(same)} TXT records {r.name} starting with {kind}, there must be only one"
            )
        else:
            _compare_txt(r, same[0], res)
    elif r.rtype == "MX":
        found = await _lookup(results, r, lambda: resolver.lookup_mx(r.name))
        if found is None:
            return
        want = r.value.split()[1].rstrip(".").lower()
        hosts = [mx.host.lower() for mx in found.records]
        if want not in hosts:
            res.errors.append(f"MX records of {r.name} are {', '.join(hosts)}, expected {want}")
    elif r.rtype == "CNAME":
        found = await _lookup(results, r, lambda: resolver.lookup_cname(r.name))
        if found is None:
            return
        want = r.value.rstrip(".").lower()
        got = found.records[0].lower() if found.records else ""
        if got != want:
            res.errors.append(f"CNAME {r.name} points to {got}, expected {want}")
    elif r.rtype == "SRV":
        found = await _lookup(results, r, lambda: resolver.lookup_srv(r.name))
        if found is None:
            return
        prio, weight, port, target = r.value.split()
        t = target.rstrip(".").lower() or "."
        got = {(s.priority, s.weight, s.port, s.target.lower()) for s in found.records}
        if (int(prio), int(weight), int(port), t) not in got:
            shown = ", ".join(f"{p} {w} {po} {tg}" for p, w, po, tg in sorted(got))
            (res.warnings if r.optional else res.errors).append(
                f"SRV {r.name} is {shown}, expected {r.value}"
            )
    elif r.rtype == "TLSA":
        found = await _lookup(results, r, lambda: resolver.lookup_tlsa(r.name))
        if found is None:
            return
        if not found.authentic:
            res.errors.append(f"TLSA records {r.name} are not DNSSEC-signed: DANE needs DNSSEC")
        u, s, m, data = r.value.split()
        got = {(t.usage, t.selector, t.matching_type, t.data.hex()) for t in found.records}
        if (int(u), int(s), int(m), data.lower()) not in got:
            res.errors.append(f"missing TLSA record {r.name} {r.value} for a configured host key")
    elif r.rtype in ("A", "AAAA"):
        lookup = resolver.lookup_a if r.rtype == "A" else resolver.lookup_aaaa
        found = await _lookup(results, r, lambda: lookup(r.name))
        if found is None:
            return
        if ipaddress.ip_address(r.value) not in found.records:
            res.errors.append(
                f"{r.rtype} records of {r.name} are {', '.join(map(str, found.records))}, expected {r.value} among them"
            )
    # CAA cannot be looked up through mox.dns and is optional: not checked.


async def check_domain(cfg: Config, domain: Domain, resolver: Resolver) -> list[SectionResult]:
    """Compare live DNS with the records :func:`domain_records` suggests; one result per section."""
    results = {s: SectionResult(s) for s in SECTIONS}
    try:
        r = await resolver.lookup_txt(domain.ascii)
        authentic = r.authentic
    except NotFound as e:
        authentic = e.authentic
    except DNSError as e:
        results["DNSSEC"].errors.append(f"looking up the domain: {e.reason}")
        authentic = False
    if not authentic:
        results["DNSSEC"].warnings.append(
            f"the records of {domain.ascii} are not DNSSEC-signed (or the resolver does not validate): "
            "senders cannot verify them, and DANE cannot be used"
        )
    groups = domain_records(cfg, domain, has_dnssec=True)
    for g in groups:
        for rec in g.records:
            if rec.commented or rec.section not in results:
                continue
            await _check_record(resolver, rec, results)
    return [results[s] for s in SECTIONS]


async def domain_dnssec(resolver: Resolver, domain: Domain) -> bool:
    """Whether the domain's answers are DNSSEC-authentic, by a TXT lookup at its apex (as upstream).

    Raises:
        DNSError: other than not found.
    """
    try:
        return (await resolver.lookup_txt(domain.ascii)).authentic
    except NotFound as e:
        return e.authentic
