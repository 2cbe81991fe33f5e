"""``mox quickstart``: configuration files, keys, passwords and DNS records for a new mail server.

Behaviour as upstream's quickstart, in the current directory: it writes
``config/mox.conf`` and ``config/domains.conf`` (upstream's layout and
settings: a "public" listener with SMTP, submissions and IMAPS, ACME for TLS
with host keys for DANE, an "internal" listener on loopback with the web
interfaces and metrics), DKIM keys (an RSA 2048 and an Ed25519 selector, both
signing, RFC 8463 section 4), the account with a generated password and the
admin password (printed once), ``HostTLSRPT``, ``mox.service`` for systemd,
and prints every DNS record to create. All output also goes to
``quickstart.log``.

Before that it checks, through :mod:`mox.dns` (so ``MOX_DNS`` applies), that
the resolver validates DNSSEC, what the host's IPs are and whether they
resolve back to its name, whether outgoing SMTP connections work, when the
domain was registered (RDAP, :mod:`mox.rdap`: a warning for a domain younger
than six weeks, as upstream; the bootstrap URL comes from ``MOX_RDAP_BOOTSTRAP``
if set) and whether the host's IPs are in the DNS block lists it suggests
(:mod:`mox.dnsbl`, after checking each list's test entries). With
``-skipdial`` none of that happens: no DNS query, no connection, no RDAP request.

``-acme URL`` (ours) takes another ACME directory than Let's Encrypt's, e.g.
pebble's in tests.
"""

from __future__ import annotations

import asyncio
import datetime
import fcntl
import ipaddress
import os
import secrets
import shutil
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mox.config import keys, model, sconf
from mox.config.edit import make_account_config
from mox.config.load import Config, ConfigErrors, parse_dynamic, parse_static, prepare_dynamic, prepare_static
from mox.dns import DNSError, Domain, Resolver, default_resolver, parse_domain
from mox.smtp.address import AddressError, format_localpart, parse_address

LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
# Lookups during quickstart must not hang it: upstream gives all of them 10 s together.
LOOKUP_TIMEOUT = 5.0
DIAL_TIMEOUT = 10.0
# Characters of generated passwords: letters and digits without look-alikes (0/O, 1/l/I).
PASSWORD_CHARS = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PASSWORD_LENGTH = 16
# Block lists suggested (commented out) for incoming mail and monitored for our IPs, as upstream.
DNSBL_ZONES = ["sbl.spamhaus.org", "bl.spamcop.net"]
# Upstream's guess at when a domain stops being "recently registered" for other mail servers.
RECENT_DOMAIN_AGE = datetime.timedelta(weeks=6)


class QuickstartError(Exception):
    """Quickstart cannot continue; files it wrote are removed again."""


@dataclass
class Options:
    address: str
    user: str = "mox"
    hostname: str = ""
    existing_webserver: bool = False
    skip_dial: bool = False
    acme_url: str = LETSENCRYPT_DIRECTORY
    # RDAP bootstrap file URL; empty: MOX_RDAP_BOOTSTRAP or IANA's (mox.rdap).
    rdap_bootstrap: str = ""


@dataclass
class Result:
    """What quickstart made, for callers and tests."""

    config_path: Path
    hostname: Domain
    admin_password: str
    account_password: str
    records: str
    warnings: list[str] = field(default_factory=list)


def generate_password() -> str:
    return "".join(secrets.choice(PASSWORD_CHARS) for _ in range(PASSWORD_LENGTH))


class _Out:
    """Writes to the terminal and to quickstart.log."""

    def __init__(self, out: TextIO, log: TextIO | None) -> None:
        self.out, self.log = out, log
        self.warnings: list[str] = []

    def write(self, s: str) -> None:
        self.out.write(s)
        self.out.flush()
        if self.log is not None:
            self.log.write(s)
            self.log.flush()

    def warn(self, s: str) -> None:
        self.warnings.append(s)
        self.write(f"\nWARNING: {s}\n\n")


def _is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """RFC 1918 and RFC 4193 addresses, as Go's IP.IsPrivate (not documentation or other special ranges)."""
    nets = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16") if ip.version == 4 else ("fc00::/7",)
    return any(ip in ipaddress.ip_network(n) for n in nets)


def interface_ips() -> tuple[list[str], list[str], list[str]]:
    """Loopback, private and public IPs of the machine's interfaces that are up.

    An interface with any loopback or private address counts as wholly
    private, as upstream decides it. Link-local and multicast addresses are left out.
    """
    by_iface: dict[str, list[ipaddress.IPv4Address | ipaddress.IPv6Address]] = {}
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    ip6 = ipaddress.IPv6Address(int(parts[0], 16))
                    by_iface.setdefault(parts[5], []).append(ip6)
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                # SIOCGIFADDR: the interface's IPv4 address.
                res = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
                by_iface.setdefault(name, []).append(ipaddress.IPv4Address(res[20:24]))
            except OSError:
                continue
    loopback: list[str] = []
    private: list[str] = []
    public: list[str] = []
    for addrs in by_iface.values():
        usable = [a for a in addrs if not (a.is_link_local or a.is_multicast)]
        nonpublic = any(a.is_loopback or _is_private(a) for a in usable)
        for a in usable:
            if not nonpublic:
                public.append(str(a))
            elif a.is_loopback:
                loopback.append(str(a))
            else:
                private.append(str(a))
    return loopback, private, public


def _pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class _Files:
    """Files written by quickstart, removed again (newest first) when it fails."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[Path] = []

    def write(self, rel: str, data: bytes, mode: int) -> Path:
        p = self.root / rel
        for parent in reversed(p.relative_to(self.root).parents):
            d = self.root / parent
            if not d.exists():
                d.mkdir(mode=0o770)
                self.created.append(d)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise QuickstartError(
                f"{p} already exists: quickstart does not overwrite files (remove them or use another directory)"
            ) from None
        self.created.append(p)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return p

    def mkdir(self, rel: str) -> None:
        p = self.root / rel
        if not p.exists():
            p.mkdir(mode=0o770, parents=True)
            self.created.append(p)

    def cleanup(self) -> None:
        for p in reversed(self.created):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        self.created.clear()


async def _dnssec_check(out: _Out, resolver: Resolver) -> None:
    out.write("Checking if DNS resolvers are DNSSEC-verifying...")
    # The root zone's answers are not always marked authentic by validators; com is, as upstream checks.
    try:
        r = await resolver.lookup_ns("com.", timeout=LOOKUP_TIMEOUT)
    except DNSError as e:
        out.write("\n")
        raise QuickstartError(f"checking dnssec support in resolver: {e}") from None
    if r.authentic:
        out.write(" OK\n")
        return
    out.warn(
        "The DNS resolvers of this system do not seem to verify DNSSEC, or are not trusted\n"
        '(not on a loopback IP, and no "options trust-ad" in /etc/resolv.conf). Without\n'
        "DNSSEC, outgoing delivery uses unprotected MX records, and cannot verify TLS\n"
        "certificates with DANE; it falls back to MTA-STS or unverified TLS.\n"
        "Recommended: run a local DNSSEC-validating resolver such as unbound (with its\n"
        "root trust anchor, see unbound-anchor), point /etc/resolv.conf at 127.0.0.1, and\n"
        'check with "mox dns lookup ns com.", which should say "with dnssec".'
    )


async def _find_hostname(
    out: _Out, opts: Options, domain: Domain, resolver: Resolver | None, public_ips: list[str]
) -> Domain:
    if opts.hostname:
        try:
            return parse_domain(opts.hostname)
        except ValueError as e:
            raise QuickstartError(f"parsing hostname: {e}") from None
    name = socket.gethostname()
    if "." in name:
        try:
            return parse_domain(name)
        except ValueError as e:
            raise QuickstartError(f"parsing hostname {name!r}: {e}") from None
    names: set[str] = set()
    if resolver is not None and public_ips:
        out.write(f"Trying to find the hostname by reverse lookup of public IPs {', '.join(public_ips)}...")
        for ip in public_ips:
            try:
                r = await resolver.lookup_addr(ip, timeout=LOOKUP_TIMEOUT)
                names.update(n for n in r.records if "." in n)
            except DNSError as e:
                out.warn(f"looking up reverse names for {ip}: {e}")
        out.write("\n")
    if names:
        found = sorted(names)
        if len(found) > 1:
            out.warn(f"several host names found for the public IPs, using the first of: {', '.join(found)}")
        return parse_domain(found[0])
    guess = parse_domain(f"{name}.{domain.name}")
    out.warn(
        f"Cannot determine the host name: the system name is not a full domain name and\n"
        f"no public IP resolves to one. Quickstart guessed:\n\n\t{guess.name}\n\n"
        "If that is wrong, remove the generated files and run quickstart again with -hostname."
    )
    return guess


async def _host_ips(out: _Out, resolver: Resolver, host: Domain) -> tuple[list[str], bool]:
    """The host name's IPs (loopback left out) and whether the answer was DNSSEC-authentic."""
    out.write(f"Looking up IPs for hostname {host.name}...")
    try:
        r = await resolver.lookup_ip(host.ascii, timeout=LOOKUP_TIMEOUT)
    except DNSError as e:
        out.warn(
            f"Quickstart assumes the host name of this machine is {host.name}, but could not find it in DNS:\n\n\t{e}\n\n"
            "Either the machine has no DNS records yet (add them before continuing), or the name is wrong:\n"
            "then fix it in the suggested records and config/mox.conf, or run quickstart again with -hostname."
        )
        return [], False
    ips: list[str] = []
    for ip in r.records:
        if ip.is_loopback:
            out.warn(
                f"The host name resolves to the loopback IP {ip}, which breaks delivery to local accounts.\n"
                f'/etc/hosts probably has a line "{ip} {host.ascii}": replace the IP with the real one, or remove the line.'
            )
            continue
        ips.append(str(ip))
    out.write(" OK\n")
    if not r.authentic:
        out.write(
            "\nNOTE: the DNS records of the domain do not appear to be DNSSEC-signed. Mail servers cannot\n"
            "verify your MX/SPF/DKIM/DMARC/MTA-STS records, and DANE (TLSA records) needs DNSSEC: the TLSA\n"
            "records below are commented out. Consider enabling DNSSEC at your DNS operator later.\n\n"
        )
    return ips, r.authentic


async def _reverse_check(out: _Out, resolver: Resolver, host: Domain, ips: list[str]) -> None:
    if not ips:
        return
    out.write(f"Looking up reverse names for IP(s) {', '.join(ips)}...")
    ok = True
    for ip in ips:
        try:
            r = await resolver.lookup_addr(ip, timeout=LOOKUP_TIMEOUT)
        except DNSError as e:
            out.warn(f"looking up the reverse name of {ip}: {e}")
            ok = False
            continue
        if len(r.records) != 1:
            out.warn(f"expected exactly 1 name for {ip}, got {len(r.records)} ({', '.join(r.records)})")
            ok = False
        if not any(n.rstrip(".").lower() == host.ascii for n in r.records):
            out.warn(
                f"the reverse name(s) {', '.join(r.records)} of {ip} do not match the host name {host.name}: "
                "other mail servers will reject messages from this IP"
            )
            ok = False
    if ok:
        out.write(" OK\n")


async def _smtp_dial_check(out: _Out, resolver: Resolver) -> None:
    out.write("Checking if outgoing smtp connections can be made by connecting to gmail.com mx on port 25...")
    ok = False
    try:
        mx = await resolver.lookup_mx("gmail.com.", timeout=LOOKUP_TIMEOUT)
        host = sorted(mx.records, key=lambda m: m.preference)[0].host
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, 25), DIAL_TIMEOUT)
            writer.close()
            ok = True
            out.write(" OK\n")
        except (OSError, TimeoutError) as e:
            out.write(f"\n\nERROR: connecting to {host}:25: {e}\n")
    except (DNSError, IndexError) as e:
        out.write(f"\n\nERROR: looking up the gmail.com mx record: {e}\n")
    if not ok:
        out.warn(
            "Could not verify that outgoing smtp connections can be made: outgoing delivery may\n"
            "not work. Many providers block port 25 by default until asked. To send through a\n"
            'smarthost, configure a "Transport" in mox.conf and use it in "Routes" in domains.conf.'
        )


def _age_text(age: datetime.timedelta) -> str:
    """Like upstream: "2 years, 5 days", "1 year, 1 day", "12 days"."""
    years, days = divmod(max(age.days, 0), 365)
    text = "" if years == 0 else ("1 year, " if years == 1 else f"{years} years, ")
    return text + ("1 day" if days == 1 else f"{days} days")


async def _rdap_check(out: _Out, resolver: Resolver, domain: Domain, bootstrap: str) -> None:
    """Warn when the (organizational) domain was registered recently: mail from it is more often junk."""
    from mox import publicsuffix, rdap

    org = publicsuffix.lookup(domain)
    out.write(f"\nChecking if domain {org.name} was registered recently...")
    try:
        registered = await rdap.lookup_last_registration(resolver, org, bootstrap=bootstrap or None)
    except rdap.RDAPError as e:
        out.write(f" error: {e} (continuing)\n\n")
        return
    age = datetime.datetime.now(datetime.UTC) - registered
    out.write(f" {_age_text(age)}")
    if age >= RECENT_DOMAIN_AGE:
        out.write(" OK\n\n")
        return
    out.write(" (recent!)\n")
    out.warn(
        f"The domain {org.name} was registered on {registered.date().isoformat()}. Mail servers may treat\n"
        "messages from recently registered domains (weeks to months) with suspicion: more of them end up as junk."
    )


async def _dnsbl_check(out: _Out, resolver: Resolver, ips: list[str]) -> None:
    """Warn about host IPs listed in the block lists that the config suggests (after checking each list works)."""
    from mox import dnsbl

    if not ips:
        return
    out.write("Checking whether host name IPs are listed in popular DNS block lists...")
    listed: list[str] = []
    notes: list[str] = []
    for zone in DNSBL_ZONES:
        try:
            await dnsbl.check_health(resolver, zone, timeout=LOOKUP_TIMEOUT)
        except dnsbl.HealthError as e:
            # E.g. a list that refuses queries through public resolvers: its answers would mean nothing.
            notes.append(f"cannot use block list {zone}: {e}")
            continue
        for ip in ips:
            r = await dnsbl.lookup(resolver, zone, ip, timeout=LOOKUP_TIMEOUT)
            if r.status == dnsbl.Status.FAIL:
                listed.append(f"IP {ip} is listed in DNS block list {zone}" + (f": {r.explanation}" if r.explanation else ""))
            elif r.status == dnsbl.Status.TEMPERROR:
                notes.append(f"checking IP {ip} in block list {zone}: {r.error}")
    if not listed and not notes:
        out.write(" OK\n")
        return
    out.write("\n")
    for n in notes:
        out.write(f"NOTE: {n}\n")
    if listed:
        pages = "".join(f"\n- https://multirbl.valli.org/lookup/{ip}.html" for ip in ips)
        out.warn(
            "\n".join(listed) + "\n\nOther mail servers are likely to reject mail from IPs in block lists; if all\n"
            "your IPs are listed, delivering mail will be a problem. Listings can be temporary. More block lists:"
            + pages
        )


def _domain_config(
    files: _Files, domain: Domain, hostname: Domain, account: str, now: datetime.datetime
) -> model.Domain:
    """The domain with DKIM keys: an RSA 2048 selector and an Ed25519 selector, both signing."""
    year = now.strftime("%Y")
    stamp = now.strftime("%Y%m%dT%H%M%S")
    selectors: dict[str, model.Selector] = {}
    for sel, kind, make in (
        (year + "a", "rsa2048", keys.make_dkim_rsa_key),
        (year + "b", "ed25519", keys.make_dkim_ed25519_key),
    ):
        rel = f"dkim/{sel}._domainkey.{domain.ascii}.{stamp}.{kind}.privatekey.pkcs8.pem"
        files.write(f"config/{rel}", make(), 0o660)
        # RFC 6376 section 3.5 example: a few days between signing and expiration.
        selectors[sel] = model.Selector(Expiration="72h", PrivateKeyFile=rel)
    return model.Domain(
        ClientSettingsDomain="mail." + domain.name,
        LocalpartCatchallSeparator="+",
        DKIM=model.DKIM(Selectors=selectors, Sign=list(selectors)),
        DMARC=model.DMARC(Localpart="dmarcreports", Account=account, Mailbox="DMARC"),
        TLSRPT=model.TLSRPT(Localpart="tlsreports", Account=account, Mailbox="TLSRPT"),
        MTASTS=model.MTASTS(
            PolicyID=datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S"),
            Mode="enforce",
            # A day to start; weeks once everything works.
            MaxAge=sconf.Duration(24 * 3600 * 10**9),
            MX=[hostname.ascii],
        ),
    )


def _comment_out(text: str) -> str:
    """Comment out CheckUpdates and the DNSBLs, as upstream: suggested, not enabled."""
    text = text.replace(
        "\nCheckUpdates: true\n",
        "\n#\n# RECOMMENDED: enable to be told about new versions\n#\n#CheckUpdates: true\n",
    )
    text = text.replace("DNSBLs:\n", "#DNSBLs:\n")
    for zone in DNSBL_ZONES:
        text = text.replace(f"- {zone}\n", f"#- {zone}\n")
    return text


def _load_new_config(root: Path, existing_webserver: bool) -> Config:
    """Load what was written; with -existing-webserver the certificate files do not exist yet."""
    sp = root / "config" / "mox.conf"
    try:
        static, slines = parse_static(sp)
        errors = prepare_static(static, slines, sp, check_files=not existing_webserver)
        dp = sp.parent / "domains.conf"
        dyn, dlines = parse_dynamic(dp)
        dests, derrs = prepare_dynamic(dyn, dlines, dp, static)
    except ConfigErrors as e:
        raise QuickstartError("checking the generated config:\n" + "\n".join(map(str, e.errors))) from None
    if errors or derrs:
        raise QuickstartError("checking the generated config:\n" + "\n".join(map(str, errors + derrs)))
    return Config(sp, static, dp, dyn, slines, dlines, 0, dests)


async def _set_password(cfg: Config, account: str, password: str) -> None:
    from mox.store import close_all_accounts
    from mox.store.deliver import open_config_account
    from mox.store.password import make_secrets

    secrets_ = await asyncio.to_thread(make_secrets, password)
    acc = await open_config_account(cfg, account)
    try:
        await acc.set_password_secrets(secrets_.to_json())
    finally:
        await acc.close()
        await close_all_accounts()


def _client_settings(hostname: Domain, address: str) -> str:
    return (
        f"\nIMAP (TLS):        host {hostname.name}, port 993, username {address}\n"
        f"Submission (TLS):  host {hostname.name}, port 465, username {address}\n"
        "Authentication with the password above; SCRAM-SHA-256 is preferred where the client offers it.\n"
    )


async def run(opts: Options, root: Path, out: TextIO, resolver: Resolver | None = None) -> Result:
    """Quickstart in directory root; see the module doc. Raises QuickstartError with files cleaned up."""
    logf = open(root / "quickstart.log", "w")
    o = _Out(out, logf)
    files = _Files(root)
    try:
        o.write("(output is also written to quickstart.log)\n\n")
        result = await _run(opts, root, o, files, resolver)
        o.write("\n(output is also written to quickstart.log)\n")
        result.warnings = o.warnings
        return result
    except BaseException:
        files.cleanup()
        raise
    finally:
        logf.close()


async def _run(opts: Options, root: Path, o: _Out, files: _Files, resolver: Resolver | None) -> Result:
    try:
        addr = parse_address(opts.address)
    except AddressError as e:
        raise QuickstartError(f"parsing email address: {e}") from None
    account = addr.localpart
    domain = addr.domain
    if not account.isascii():
        o.write(
            f"NOTE: the username {account!r} is not ASCII-only. Also configure an ASCII-only alias, for mail from\n"
            "other systems and for logging in with IMAP.\n\n"
        )
    if not opts.skip_dial and resolver is None:
        resolver = default_resolver()
    dns = None if opts.skip_dial else resolver

    if dns is not None:
        await _dnssec_check(o, dns)

    loopback_ips, private_ips, public_ips = interface_ips()
    hostname = await _find_hostname(o, opts, domain, dns, public_ips)
    host_ips: list[str] = []
    has_dnssec = False
    if dns is not None:
        host_ips, has_dnssec = await _host_ips(o, dns, hostname)
        await _reverse_check(o, dns, hostname, host_ips)
        await _smtp_dial_check(o, dns)
        await _rdap_check(o, dns, domain, opts.rdap_bootstrap)
        # Without IPs for the host name, the machine's public IPs are checked, as upstream.
        await _dnsbl_check(o, dns, host_ips or public_ips)

    # Listener IPs, as upstream: the host name's IPs when known, with NATIPs when the machine only has private IPs.
    private_listener = ["127.0.0.1", "::1"]
    public_listener = ["0.0.0.0", "::"]
    nat_ips: list[str] = []
    default_public = True
    host_private = bool(host_ips) and all(_is_private(ipaddress.ip_address(ip)) for ip in host_ips)
    if not host_private and not public_ips and private_ips and host_ips:
        public_listener, nat_ips, default_public = private_ips, host_ips, False
        if loopback_ips:
            private_listener = loopback_ips
    else:
        if host_ips:
            public_listener, default_public = host_ips, False
            private_ips = sorted(ip for ip in private_ips if ip not in host_ips)
        elif public_ips:
            public_listener, default_public = public_ips, False
        if private_ips:
            private_listener = private_ips + loopback_ips
        elif loopback_ips:
            private_listener = loopback_ips
    if default_public:
        o.warn(
            'Could not find the public IP address(es). The "public" listener listens on 0.0.0.0 and ::\n'
            '(all addresses); change that to the actual public IPs, or "address in use" errors follow, as\n'
            'the "internal" listener binds specific IPs on the same ports. Behind NAT, set the public IPs\n'
            'in the listener\'s "NATIPs" instead.'
        )
    if nat_ips:
        o.write(
            "\nNOTE: only private IPs were found on this machine: it seems to be behind NAT, so the host name's IPs\n"
            "were put in NATIPs of the public listener. A NAT that hides the remote IPs of connections breaks\n"
            "IP-based checks (SPF, reputation, rate limits).\n\n"
        )

    files.mkdir("data")
    admin_password = generate_password()
    files.write("config/adminpasswd", keys.hash_admin_password(admin_password) + b"\n", 0o660)
    o.write(f"\nAdmin password: {admin_password}\n")

    acme_name = "letsencrypt" if opts.acme_url == LETSENCRYPT_DIRECTORY else "acme"
    contact = addr.pack(False) if account.isascii() else f"postmaster@{domain.ascii}"
    static = model.Static(
        DataDir="../data",
        User=opts.user,
        LogLevel="debug",  # For new installations; back to info once everything works.
        Hostname=hostname.name,
        AdminPasswordFile="adminpasswd",
        CheckUpdates=True,  # Commented out in the file.
    )
    if not opts.existing_webserver:
        static.ACME = {
            acme_name: model.ACME(
                DirectoryURL=opts.acme_url,
                ContactEmail=contact,
                IssuerDomainName="letsencrypt.org" if acme_name == "letsencrypt" else "",
            )
        }
    public = model.Listener(IPs=public_listener, NATIPs=nat_ips)
    public.SMTP.Enabled = True
    public.Submissions.Enabled = True
    public.IMAPS.Enabled = True
    public.SMTP.DNSBLs = list(DNSBL_ZONES)
    internal = model.Listener(IPs=private_listener, Hostname="localhost")
    for svc in ("AccountHTTP", "AdminHTTP", "WebmailHTTP", "WebAPIHTTP"):
        getattr(internal, svc).Enabled = True
    internal.MetricsHTTP.Enabled = True
    if opts.existing_webserver:
        base = {
            n: f"path/to/{n}"
            for n in (
                hostname.name,
                f"mta-sts.{domain.name}",
                f"autoconfig.{domain.name}",
                f"mail.{domain.name}",
            )
        }
        public.TLS = model.ListenerTLS(
            KeyCerts=[
                model.KeyCert(CertFile=f"{b}-chain.crt.pem", KeyFile=f"{b}.key.pem")
                for b in dict.fromkeys(base.values())
            ]
        )
        for svc in ("AccountHTTP", "AdminHTTP", "WebmailHTTP", "WebAPIHTTP"):
            ws = getattr(internal, svc)
            ws.Port, ws.Forwarded = 1080, True
        for svc in ("AutoconfigHTTPS", "MTASTSHTTPS"):
            lst = getattr(internal, svc)
            lst.Enabled, lst.Port, lst.NonTLS, lst.Forwarded = True, 81, True, True
        internal.WebserverHTTP.Enabled, internal.WebserverHTTP.Port = True, 81
        o.write(
            "\nPlaceholder paths to TLS certificates from the existing webserver are in config/mox.conf: edit them.\n"
            "No host keys for DANE were generated; to use DANE (which needs DNSSEC), list an RSA 2048 and an ECDSA\n"
            'P-256 key in HostPrivateKeyFiles of the public listener, then see "mox config dnsrecords".\n'
        )
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
        host_keys = []
        for kind, key in (
            ("rsa2048", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            ("ecdsap256", ec.generate_private_key(ec.SECP256R1())),
        ):
            rel = f"hostkeys/{hostname.name}.{stamp}.{kind}.privatekey.pkcs8.pem"
            files.write(f"config/{rel}", _pkcs8(key), 0o600)
            host_keys.append(rel)
        public.TLS = model.ListenerTLS(ACME=acme_name, HostPrivateKeyFiles=host_keys)
        public.AutoconfigHTTPS.Enabled = True
        public.MTASTSHTTPS.Enabled = True
        public.WebserverHTTP.Enabled = True
        public.WebserverHTTPS.Enabled = True
    static.Listeners = {"public": public, "internal": internal}
    static.Postmaster = model.Postmaster(Account=account, Mailbox="Postmaster")
    static.HostTLSRPT = model.HostTLSRPT(Account=account, Mailbox="TLSRPT", Localpart="tlsreports")

    now = datetime.datetime.now()
    dom = _domain_config(files, domain, hostname, account, now)
    dynamic = model.Dynamic(
        Domains={domain.name: dom},
        Accounts={account: make_account_config(f"{format_localpart(account)}@{domain.name}", domain.name)},
        MonitorDNSBLs=list(DNSBL_ZONES),
    )
    files.write(
        "config/mox.conf", _comment_out(sconf.write(static, header=model.STATIC_HEADER)).encode(), 0o660
    )
    files.write("config/domains.conf", sconf.write(dynamic, header=model.DYNAMIC_HEADER).encode(), 0o660)

    cfg = _load_new_config(root, opts.existing_webserver)
    account_password = generate_password()
    try:
        await _set_password(cfg, account, account_password)
    except Exception as e:
        raise QuickstartError(f"setting the account password: {e}") from None
    o.write(f"IMAP, SMTP submission and HTTP account password for {addr.pack(True)}: {account_password}\n\n")
    o.write(
        "Configure mail clients with the email address as username. If autoconfig/autodiscover does not work:\n"
    )
    o.write(_client_settings(hostname, addr.pack(True)))

    from mox.dnsrecords import domain_records, zone_text

    issuer = "letsencrypt.org" if not opts.existing_webserver and acme_name == "letsencrypt" else ""
    records = zone_text(domain_records(cfg, domain, has_dnssec=has_dnssec, cert_issuer=issuer))
    if opts.existing_webserver:
        o.write(
            f"\nConfiguration files have been written to config/mox.conf and config/domains.conf.\n\n"
            f"Configure the existing webserver to forward requests for https://mta-sts.{domain.ascii}/ and\n"
            f"https://autoconfig.{domain.ascii}/ to mox at http://127.0.0.1:81, and set the TLS certificate paths\n"
            'in mox.conf (relative to config/). Check the result with "mox config test".\n\n'
            "The DNS records to add:\n"
        )
    else:
        o.write(
            "\nConfiguration files have been written to config/mox.conf and config/domains.conf: review them.\n"
            "Then create the DNS records below, in your zone file or at your DNS operator. Check them later\n"
            'with "mox config dnscheck ' + domain.name + '". The DNS records to add:\n'
        )
    o.write("\n\n" + records + "\n\n")
    o.write(
        "WARNING: the configuration and DNS records above assume the domain has no email set up yet. If it has,\n"
        "or other machines or services send email for the domain, understand the consequences of the records\n"
        "above before continuing.\n\n"
    )
    o.write(
        'Start mox with "mox serve", as root: it binds its ports, then continues as user ' + opts.user + ".\n"
    )
    o.write("File ownership and permissions are fixed by mox at start.\n")
    if sys.platform.startswith("linux") and not os.environ.get("MOX_DOCKER"):
        from mox.privileges import service_unit

        files.write("mox.service", service_unit(str(root), mox_command()).encode(), 0o644)
        o.write(
            "\nSee mox.service for a systemd service file. To enable and start:\n\n"
            "\tsudo chmod 644 mox.service\n"
            "\tsudo systemctl enable $PWD/mox.service\n"
            "\tsudo systemctl start mox.service\n"
            "\tsudo journalctl -f -u mox.service # See logs\n"
        )
    o.write(
        "\nAfter starting mox, the web interfaces are served on the internal listener:\n\n"
        "http://localhost/         - account (email address as username)\n"
        "http://localhost/webmail/ - webmail (email address as username)\n"
        "http://localhost/admin/   - admin (empty username)\n\n"
        'From elsewhere, tunnel: "ssh -L 8080:localhost:80 you@yourmachine", then open http://localhost:8080/.\n'
    )
    if not opts.existing_webserver:
        o.write(
            '\nTo run mox next to an existing webserver on ports 80 and 443, see "mox help quickstart" (-existing-webserver).\n'
        )
    files.created.clear()
    return Result(root / "config" / "mox.conf", hostname, admin_password, account_password, records)


def mox_command() -> str:
    """The absolute path of the mox program that runs now, for the service file."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if argv0 and os.path.basename(argv0) == "mox":
        return os.path.abspath(argv0)
    found = shutil.which("mox")
    if found:
        return found
    return os.path.join(os.path.dirname(sys.executable), "mox")


def main(opts: Options, root: Path | None = None) -> int:
    """Entry point of ``mox quickstart``: returns the exit status."""
    try:
        asyncio.run(run(opts, root or Path.cwd(), sys.stdout))
    except QuickstartError as e:
        sys.stderr.write(f"mox: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
