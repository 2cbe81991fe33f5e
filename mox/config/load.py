"""Loading and validating mox.conf and domains.conf, as upstream mox does.

``load_config`` parses both files, checks every field (domains, addresses,
regular expressions, key and certificate files, references between sections)
and returns a :class:`Config` with derived values filled in, or raises
:class:`ConfigErrors` holding every problem found, each naming file, line and
field.

Paths in mox.conf are relative to the directory of mox.conf; paths in
domains.conf (DKIM keys) relative to the directory of domains.conf, which is
always ``domains.conf`` beside mox.conf.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import ssl
import unicodedata
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mox import mlog
from mox.config import model, sconf
from mox.config.sconf import LineMap, SconfError
from mox.dns.domain import Domain, DomainError, parse_domain
from mox.smtp.address import AddressError, format_localpart, parse_address, parse_localpart

# The log level names documented for the config; upstream also accepts warn, fatal and print.
LOG_LEVELS = ("error", "info", "debug", "trace", "traceauth", "tracedata")

DEFAULT_DKIM_HEADERS = [
    "From", "To", "Cc", "Bcc", "Reply-To", "References", "In-Reply-To", "Subject", "Date", "Message-Id", "Content-Type",
]  # fmt: skip

TLS_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}

OUTGOING_WEBHOOK_EVENTS = ("delivered", "suppressed", "delayed", "failed", "relayed", "expanded", "canceled", "unrecognized")
WEB_INTERNAL_SERVICES = ("admin", "account", "webmail", "webapi")
SASL_MECHANISMS = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN")


class ConfigErrors(Exception):
    """One or more problems in the config files."""

    def __init__(self, errors: list[SconfError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass(frozen=True)
class AccountDestination:
    """What a configured address delivers to."""

    catchall: bool
    localpart: str  # as configured, before canonicalisation
    account: str
    destination: model.Destination


@dataclass
class Config:
    """Both config files, validated, with the lookups the servers need."""

    static_path: Path
    static: model.Static
    dynamic_path: Path
    dynamic: model.Dynamic
    static_lines: LineMap
    dynamic_lines: LineMap
    dynamic_mtime_ns: int = 0
    # Canonical address (localpart@unicodedomain, or @unicodedomain for catchalls) to destination.
    account_destinations: dict[str, AccountDestination] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.static_path.parent

    @property
    def data_dir(self) -> Path:
        return config_dir_path(self.static_path, self.static.DataDir)

    def data_dir_path(self, p: str) -> Path:
        return self.data_dir / p

    def lookup_address(self, localpart: str, domain: Domain) -> AccountDestination | None:
        """The destination for an address, following catchall separators and catchall addresses."""
        dc = self.dynamic.Domains.get(domain.name)
        if dc is None:
            return None
        lp = canonical_localpart(localpart, dc)
        hit = self.account_destinations.get(f"{format_localpart(lp)}@{domain.name}")
        if hit is None:
            hit = self.account_destinations.get("@" + domain.name)
        return hit


def config_dir_path(config_file: Path, p: str) -> Path:
    """A path from a config file, relative to that file's directory unless absolute."""
    return Path(p) if os.path.isabs(p) else config_file.parent / p


def canonical_localpart(lp: str, domain: model.Domain) -> str:
    """Strip the catchall part and lower-case unless the domain is case-sensitive."""
    for sep in domain.LocalpartCatchallSeparatorsEffective:
        i = lp.find(sep)
        if i >= 0:
            lp = lp[:i]
    if not domain.LocalpartCaseSensitive:
        lp = lp.lower()
    return lp


class _Checker:
    """Collects errors with file, line and field."""

    def __init__(self, lines: LineMap) -> None:
        self.lines = lines
        self.errors: list[SconfError] = []

    def add(self, path: tuple[str | int, ...], message: str, display: tuple[str | int, ...] | None = None) -> None:
        line = self.lines.line_of(path)
        shown = sconf.path_string(display if display is not None else path)
        self.errors.append(SconfError(self.lines.filename, line, shown, message))

    def domain(self, path: tuple[str | int, ...], s: str, what: str = "domain") -> Domain | None:
        try:
            return parse_domain(s)
        except DomainError as e:
            self.add(path, f"invalid {what} {s!r}: {e}")
            return None

    def mailbox(self, path: tuple[str | int, ...], name: str) -> None:
        if name != unicodedata.normalize("NFC", name):
            self.add(path, f"mailbox {name!r} is not in Unicode NFC form")

    def regexp(self, path: tuple[str | int, ...], expr: str) -> re.Pattern[str] | None:
        try:
            return re.compile(expr)
        except re.error as e:
            self.add(path, f"invalid regular expression {expr!r}: {e}")
            return None

    def port(self, path: tuple[str | int, ...], port: int) -> None:
        if not 0 <= port <= 65535:
            self.add(path, f"port {port} out of range 0-65535")


def load_private_key(path: Path) -> object:
    """Read a PEM private key (PKCS#8, PKCS#1 or SEC 1)."""
    data = path.read_bytes()
    if b"-----BEGIN" not in data:
        raise ValueError("no PEM block found")
    return serialization.load_pem_private_key(data, password=None)


def check_tls_keycert(cert_file: Path, key_file: Path) -> None:
    """Raise a clear error when a certificate/key pair cannot be used by a TLS server."""
    if not cert_file.exists():
        raise ValueError(f"certificate file {str(cert_file)!r} does not exist")
    if not key_file.exists():
        raise ValueError(f"key file {str(key_file)!r} does not exist")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except ssl.SSLError as e:
        raise ValueError(f"loading certificate {str(cert_file)!r} with key {str(key_file)!r}: {e.reason or e}") from None
    except OSError as e:
        raise ValueError(f"reading certificate or key: {e}") from None


_T = TypeVar("_T")


def _parse_file(cls: type[_T], path: Path, text: str | None, missing: str) -> tuple[_T, LineMap]:
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigErrors([SconfError(str(path), 0, "", missing)]) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigErrors([SconfError(str(path), 0, "", f"reading config file: {e}")]) from None
    try:
        return sconf.parse(cls, text, path.name)
    except SconfError as e:
        raise ConfigErrors([e]) from None


def parse_static(path: Path) -> tuple[model.Static, LineMap]:
    """Parse mox.conf without validation."""
    return _parse_file(model.Static, path, None, "config file does not exist (use -config or set MOXCONF)")


def prepare_static(static: model.Static, lines: LineMap, path: Path, *, check_files: bool = True) -> list[SconfError]:
    """Validate mox.conf and fill in derived fields. Returns all errors found."""
    c = _Checker(lines)

    if static.LogLevel not in mlog.LEVELS:
        c.add(("LogLevel",), f"invalid log level {static.LogLevel!r}, expected one of {', '.join(LOG_LEVELS)}")
    for pkg, level in static.PackageLogLevels.items():
        if level not in mlog.LEVELS:
            c.add(("PackageLogLevels", pkg), f"invalid log level {level!r}, expected one of {', '.join(LOG_LEVELS)}")

    user = static.User or "mox"
    try:
        pw = pwd.getpwnam(user)
        static.UID, static.GID = pw.pw_uid, pw.pw_gid
    except KeyError:
        if re.fullmatch(r"[0-9]+", user):
            static.UID = static.GID = int(user)
        else:
            c.add(("User",), f"unknown user {user!r} and not a numeric uid (create the user, e.g. 'useradd -d $PWD mox', or set User)")

    d = c.domain(("Hostname",), static.Hostname, "hostname")
    if d is not None:
        static.HostnameDomain = d
        if d.name != static.Hostname:
            c.add(("Hostname",), f"hostname must be in Unicode form {d.name!r}, not {static.Hostname!r}")

    if static.HostTLSRPT.Localpart:
        try:
            lp = parse_localpart(static.HostTLSRPT.Localpart)
            if not lp.isascii():
                c.add(("HostTLSRPT", "Localpart"), "must be ASCII-only, for interoperability")
            static.HostTLSRPT.ParsedLocalpart = lp
        except AddressError as e:
            c.add(("HostTLSRPT", "Localpart"), str(e))

    if static.TLS.CA is not None and check_files:
        for i, f in enumerate(static.TLS.CA.CertFiles):
            p = config_dir_path(path, f)
            try:
                ctx = ssl.create_default_context(cafile=str(p))
                if not ctx.get_ca_certs():
                    c.add(("TLS", "CA", "CertFiles", i), f"no CA certificates found in {str(p)!r}")
            except (OSError, ssl.SSLError) as e:
                c.add(("TLS", "CA", "CertFiles", i), f"reading CA certificates from {str(p)!r}: {e}")

    for name, acme in static.ACME.items():
        ap: tuple[str | int, ...] = ("ACME", name)
        u = urllib.parse.urlparse(acme.DirectoryURL)
        if u.scheme not in ("https", "http") or not u.hostname:
            c.add((*ap, "DirectoryURL"), f"expected an http(s) URL, not {acme.DirectoryURL!r}")
        else:
            acme.DirectoryHost = u.hostname
            if acme.IssuerDomainName == "" and u.hostname == "acme-v02.api.letsencrypt.org":
                acme.IssuerDomainName = "letsencrypt.org"
        c.port((*ap, "Port"), acme.Port)
        if acme.ExternalAccountBinding is not None and check_files:
            kf = config_dir_path(path, acme.ExternalAccountBinding.KeyFile)
            if not kf.exists():
                c.add((*ap, "ExternalAccountBinding", "KeyFile"), f"file {str(kf)!r} does not exist")

    for name, lst in static.Listeners.items():
        _prepare_listener(c, static, name, lst, path, check_files)

    special = static.InitialMailboxes.SpecialUse
    has_initial = any((special.Sent, special.Archive, special.Trash, special.Draft, special.Junk)) or bool(static.InitialMailboxes.Regular)
    if static.DefaultMailboxes and has_initial:
        c.add(("DefaultMailboxes",), "cannot have both DefaultMailboxes and InitialMailboxes")
    for i, mb in enumerate(static.DefaultMailboxes):
        c.mailbox(("DefaultMailboxes", i), mb)
        if "/" in mb:
            c.add(("DefaultMailboxes", i), "a default mailbox cannot be a child mailbox")
    for role in ("Sent", "Archive", "Trash", "Draft", "Junk"):
        mb = getattr(special, role)
        if mb:
            c.mailbox(("InitialMailboxes", "SpecialUse", role), mb)
            if mb.lower() == "inbox":
                c.add(("InitialMailboxes", "SpecialUse", role), "cannot be Inbox (Inbox is always created)")
            if "/" in mb:
                c.add(("InitialMailboxes", "SpecialUse", role), "initial mailboxes cannot be child mailboxes")
    for i, mb in enumerate(static.InitialMailboxes.Regular):
        c.mailbox(("InitialMailboxes", "Regular", i), mb)
        if mb.lower() == "inbox":
            c.add(("InitialMailboxes", "Regular", i), "cannot be Inbox (Inbox is always created)")
        if "/" in mb:
            c.add(("InitialMailboxes", "Regular", i), "initial mailboxes cannot be child mailboxes")

    for name, t in static.Transports.items():
        tp: tuple[str | int, ...] = ("Transports", name)
        kinds = [k for k in ("Submissions", "Submission", "SMTP", "Socks", "Direct", "Fail") if getattr(t, k) is not None]
        if len(kinds) != 1:
            c.add(tp, f"exactly one transport method must be set, found {len(kinds)}: {', '.join(kinds) or 'none'}")
        for k in ("Submissions", "Submission", "SMTP"):
            ts = getattr(t, k)
            if ts is None:
                continue
            c.domain((*tp, k, "Host"), ts.Host, "host")
            c.port((*tp, k, "Port"), ts.Port)
            if ts.Auth is not None:
                for i, mech in enumerate(ts.Auth.Mechanisms):
                    if mech.upper() not in SASL_MECHANISMS:
                        c.add((*tp, k, "Auth", "Mechanisms", i), f"unknown mechanism {mech!r}, expected one of {', '.join(SASL_MECHANISMS)}")
        if t.Socks is not None:
            host, sep, port = t.Socks.Address.rpartition(":")
            if not sep or not port.isdigit() or not host:
                c.add((*tp, "Socks", "Address"), f"expected host:port, not {t.Socks.Address!r}")
            if not t.Socks.RemoteIPs:
                c.add((*tp, "Socks", "RemoteIPs"), "at least one IP required")
            for i, ip in enumerate(t.Socks.RemoteIPs):
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    c.add((*tp, "Socks", "RemoteIPs", i), f"invalid IP {ip!r}")
            c.domain((*tp, "Socks", "RemoteHostname"), t.Socks.RemoteHostname, "host name")
        if t.Direct is not None and t.Direct.DisableIPv4 and t.Direct.DisableIPv6:
            c.add((*tp, "Direct"), "cannot disable both IPv4 and IPv6")
        if t.Fail is not None and t.Fail.SMTPCode and not 400 <= t.Fail.SMTPCode <= 599:
            c.add((*tp, "Fail", "SMTPCode"), f"expected a 4xx or 5xx code, not {t.Fail.SMTPCode}")

    if static.QuotaMessageSize < 0:
        c.add(("QuotaMessageSize",), "cannot be negative")
    return c.errors


def _prepare_listener(c: _Checker, static: model.Static, name: str, lst: model.Listener, path: Path, check_files: bool) -> None:
    lp: tuple[str | int, ...] = ("Listeners", name)
    if lst.Hostname:
        lst.HostnameDomain = c.domain((*lp, "Hostname"), lst.Hostname, "hostname")
    for i, ip in enumerate(lst.IPs):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            c.add((*lp, "IPs", i), f"invalid IP {ip!r}")
    if lst.IPsNATed and lst.NATIPs:
        c.add((*lp, "NATIPs"), "both IPsNATed and NATIPs set; remove the deprecated IPsNATed")
    for i, ip in enumerate(lst.NATIPs):
        try:
            a = ipaddress.ip_address(ip)
            if a.is_unspecified or a.is_loopback:
                c.add((*lp, "NATIPs", i), f"NAT IP {ip} cannot be the unspecified or loopback address")
        except ValueError:
            c.add((*lp, "NATIPs", i), f"invalid IP {ip!r}")
    tls = lst.TLS
    if tls is not None:
        tp = (*lp, "TLS")
        if tls.ACME and tls.KeyCerts:
            c.add(tp, "cannot have both ACME and KeyCerts")
        elif tls.ACME:
            if tls.ACME not in static.ACME:
                c.add((*tp, "ACME"), f"unknown ACME provider {tls.ACME!r}")
        elif not tls.KeyCerts:
            c.add(tp, "TLS config needs either ACME or KeyCerts")
        if check_files:
            for i, kc in enumerate(tls.KeyCerts):
                try:
                    check_tls_keycert(config_dir_path(path, kc.CertFile), config_dir_path(path, kc.KeyFile))
                except ValueError as e:
                    c.add((*tp, "KeyCerts", i), str(e))
            for i, kf in enumerate(tls.HostPrivateKeyFiles):
                try:
                    key = load_private_key(config_dir_path(path, kf))
                    ok = (isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048) or (
                        isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
                    )
                    if not ok:
                        c.add((*tp, "HostPrivateKeyFiles", i), "only RSA 2048-bit and ECDSA P-256 host keys are used")
                except (OSError, ValueError, TypeError) as e:
                    c.add((*tp, "HostPrivateKeyFiles", i), f"reading private key: {e}")
        if tls.MinVersion and tls.MinVersion not in TLS_VERSIONS:
            c.add((*tp, "MinVersion"), f"unknown TLS version {tls.MinVersion!r}, expected one of {', '.join(TLS_VERSIONS)}")
    else:
        needs = []
        if lst.IMAPS.Enabled:
            needs.append("IMAPS")
        if lst.SMTP.Enabled and not lst.SMTP.NoSTARTTLS:
            needs.append("SMTP")
        if lst.Submissions.Enabled:
            needs.append("Submissions")
        if lst.Submission.Enabled and not lst.Submission.NoRequireSTARTTLS:
            needs.append("Submission")
        for svc in ("AccountHTTPS", "AdminHTTPS", "WebmailHTTPS", "WebAPIHTTPS", "WebserverHTTPS"):
            if getattr(lst, svc).Enabled:
                needs.append(svc)
        if lst.AutoconfigHTTPS.Enabled and not lst.AutoconfigHTTPS.NonTLS:
            needs.append("AutoconfigHTTPS")
        if lst.MTASTSHTTPS.Enabled and not lst.MTASTSHTTPS.NonTLS:
            needs.append("MTASTSHTTPS")
        if needs:
            c.add(lp, f"no TLS config, but TLS is needed for {', '.join(needs)}")
    auto, sts = lst.AutoconfigHTTPS, lst.MTASTSHTTPS
    if auto.Enabled and sts.Enabled and auto.Port == sts.Port and auto.NonTLS != sts.NonTLS:
        c.add(lp, "AutoconfigHTTPS and MTASTSHTTPS on the same port, but one with TLS and one without")
    for i, zone in enumerate(lst.SMTP.DNSBLs):
        c.domain((*lp, "SMTP", "DNSBLs", i), zone, "DNSBL zone")
    for svc in ("SMTP", "Submission", "Submissions", "IMAP", "IMAPS", "MetricsHTTP", "PprofHTTP", "AutoconfigHTTPS", "MTASTSHTTPS",
                "WebserverHTTP", "WebserverHTTPS"):  # fmt: skip
        c.port((*lp, svc, "Port"), getattr(lst, svc).Port)
    for svc in ("AccountHTTP", "AccountHTTPS", "AdminHTTP", "AdminHTTPS", "WebmailHTTP", "WebmailHTTPS", "WebAPIHTTP", "WebAPIHTTPS"):
        ws: model.WebService = getattr(lst, svc)
        c.port((*lp, svc, "Port"), ws.Port)
        if ws.Enabled and ws.Path:
            if not ws.Path.startswith("/"):
                c.add((*lp, svc, "Path"), f"path {ws.Path!r} must start with a slash")
            elif not ws.Path.endswith("/"):
                ws.Path += "/"
    if lst.SMTPMaxMessageSize < 0:
        c.add((*lp, "SMTPMaxMessageSize"), "cannot be negative")


def parse_dynamic(path: Path, text: str | None = None) -> tuple[model.Dynamic, LineMap]:
    """Parse domains.conf (or text given for it) without validation."""
    return _parse_file(model.Dynamic, path, text, "domains config file does not exist")


def prepare_dynamic(
    dyn: model.Dynamic, lines: LineMap, path: Path, static: model.Static, *, check_files: bool = True
) -> tuple[dict[str, AccountDestination], list[SconfError]]:
    """Validate domains.conf against mox.conf; returns the address lookup table and all errors."""
    c = _Checker(lines)
    dests: dict[str, AccountDestination] = {}

    if static.Postmaster.Account not in dyn.Accounts:
        c.add(("Accounts",), f"postmaster account {static.Postmaster.Account!r} (from mox.conf) does not exist")
    c.mailbox(("Accounts",), static.Postmaster.Mailbox)
    if static.HostTLSRPT.Account:
        if static.HostTLSRPT.Account not in dyn.Accounts:
            c.add(("Accounts",), f"host TLSRPT account {static.HostTLSRPT.Account!r} (from mox.conf) does not exist")
        if static.HostnameDomain is not None and static.HostTLSRPT.ParsedLocalpart:
            addr = f"{format_localpart(static.HostTLSRPT.ParsedLocalpart)}@{static.HostnameDomain.name}"
            dests[addr] = AccountDestination(
                False, static.HostTLSRPT.ParsedLocalpart, static.HostTLSRPT.Account, model.Destination(Mailbox=static.HostTLSRPT.Mailbox)
            )

    have_sts = any(lst.MTASTSHTTPS.Enabled for lst in static.Listeners.values())
    have_web = any(lst.WebserverHTTP.Enabled or lst.WebserverHTTPS.Enabled for lst in static.Listeners.values())

    def check_routes(base: tuple[str | int, ...], routes: list[model.Route]) -> None:
        for i, r in enumerate(routes):
            for key in ("FromDomain", "ToDomain"):
                for j, d in enumerate(getattr(r, key)):
                    if d != ".":
                        c.domain((*base, i, key, j), d.removeprefix("."))
            if r.Transport not in static.Transports:
                c.add((*base, i, "Transport"), f"route references undefined transport {r.Transport!r}")

    check_routes(("Routes",), dyn.Routes)

    for dname, dom in dyn.Domains.items():
        dp: tuple[str | int, ...] = ("Domains", dname)
        d = c.domain(dp, dname)
        if d is not None:
            dom.DNSDomain = d
            if d.name != dname:
                c.add(dp, f"domain must be written in Unicode form {d.name!r}")
        if dom.ClientSettingsDomain:
            dom.ClientSettingsDNSDomain = c.domain((*dp, "ClientSettingsDomain"), dom.ClientSettingsDomain)
        if dom.LocalpartCatchallSeparator and dom.LocalpartCatchallSeparators:
            c.add((*dp, "LocalpartCatchallSeparators"), "cannot have both LocalpartCatchallSeparator and LocalpartCatchallSeparators")
        seps = list(dom.LocalpartCatchallSeparators)
        if dom.LocalpartCatchallSeparator:
            seps.append(dom.LocalpartCatchallSeparator)
        if len(set(seps)) != len(seps):
            c.add((*dp, "LocalpartCatchallSeparators"), "duplicate catchall separator")
        if "" in seps:
            c.add((*dp, "LocalpartCatchallSeparators"), "empty catchall separator")
        dom.LocalpartCatchallSeparatorsEffective = [s for s in seps if s]

        for i, sel_name in enumerate(dom.DKIM.Sign):
            if sel_name not in dom.DKIM.Selectors:
                c.add((*dp, "DKIM", "Sign", i), f"unknown selector {sel_name!r} for signing")
        for sel_name, sel in dom.DKIM.Selectors.items():
            _prepare_selector(c, (*dp, "DKIM", "Selectors", sel_name), sel_name, sel, path, check_files)

        if dom.MTASTS is not None:
            mp = (*dp, "MTASTS")
            if not have_sts:
                c.add(mp, "MTA-STS configured, but no listener has MTASTSHTTPS enabled")
            if not dom.MTASTS.PolicyID:
                c.add((*mp, "PolicyID"), "PolicyID cannot be empty")
            elif not re.fullmatch(r"[a-zA-Z0-9]{1,32}", dom.MTASTS.PolicyID):
                # RFC 8461 section 3.1: sts-id = 1*32(ALPHA / DIGIT)
                c.add((*mp, "PolicyID"), "PolicyID must be 1 to 32 letters and digits (RFC 8461 section 3.1)")
            if dom.MTASTS.Mode not in ("enforce", "testing", "none"):
                c.add((*mp, "Mode"), f"invalid mode {dom.MTASTS.Mode!r}, expected enforce, testing or none")
            if dom.MTASTS.MaxAge <= 0:
                c.add((*mp, "MaxAge"), "MaxAge must be positive")
            for i, mx in enumerate(dom.MTASTS.MX):
                c.domain((*mp, "MX", i), mx.removeprefix("*."), "MX host")
        check_routes((*dp, "Routes"), dom.Routes)

    for acc_name, acc in dyn.Accounts.items():
        _prepare_account(c, dyn, acc_name, acc, dests, check_routes)

    # Reporting addresses and aliases after accounts, so collisions are found.
    for dname, dom in dyn.Domains.items():
        dp = ("Domains", dname)
        for key, rep in (("DMARC", dom.DMARC), ("TLSRPT", dom.TLSRPT)):
            if rep is None:
                continue
            rp = (*dp, key)
            rep_domain = dom.DNSDomain
            if rep.Domain:
                rep_domain = c.domain((*rp, "Domain"), rep.Domain)
                if rep_domain is not None and rep_domain.name not in dyn.Domains:
                    c.add((*rp, "Domain"), f"reporting domain {rep.Domain!r} is not a configured domain")
            rep.DNSDomain = rep_domain
            try:
                lp = parse_localpart(rep.Localpart)
                if key == "DMARC" and not lp.isascii():
                    c.add((*rp, "Localpart"), "DMARC reporting local part must be ASCII-only")
                rep.ParsedLocalpart = lp
            except AddressError as e:
                c.add((*rp, "Localpart"), str(e))
                continue
            if rep.Account not in dyn.Accounts:
                c.add((*rp, "Account"), f"account {rep.Account!r} does not exist")
            c.mailbox((*rp, "Mailbox"), rep.Mailbox)
            if rep_domain is None or rep_domain.name not in dyn.Domains:
                continue
            rdom = dyn.Domains[rep_domain.name]
            addr = f"{format_localpart(canonical_localpart(lp, rdom))}@{rep_domain.name}"
            if addr in dests:
                c.add((*rp, "Localpart"), f"reporting address {addr} is already configured as a destination")
            dests[addr] = AccountDestination(False, lp, rep.Account, model.Destination(Mailbox=rep.Mailbox))

        for alias_lp, alias in dom.Aliases.items():
            ap = (*dp, "Aliases", alias_lp)
            try:
                lp = parse_localpart(alias_lp)
            except AddressError as e:
                c.add(ap, str(e))
                continue
            addr = f"{format_localpart(canonical_localpart(lp, dom))}@{dname}"
            if addr in dests:
                c.add(ap, f"alias address {addr} is also an account address")
            if not alias.Addresses:
                c.add((*ap, "Addresses"), "an alias needs at least one address")
            seen: set[str] = set()
            for i, member in enumerate(alias.Addresses):
                try:
                    ma = parse_address(member)
                except AddressError as e:
                    c.add((*ap, "Addresses", i), str(e))
                    continue
                mdom = dyn.Domains.get(ma.domain.name)
                key_addr = f"{format_localpart(canonical_localpart(ma.localpart, mdom))}@{ma.domain.name}" if mdom else ""
                if mdom is None or key_addr not in dests or dests[key_addr].catchall:
                    c.add((*ap, "Addresses", i), f"member {member!r} is not an address of a local account")
                if key_addr in seen:
                    c.add((*ap, "Addresses", i), f"duplicate member {member!r}")
                seen.add(key_addr)

    for src, dst in dyn.WebDomainRedirects.items():
        c.domain(("WebDomainRedirects", src), src)
        c.domain(("WebDomainRedirects", src), dst)
    if (dyn.WebDomainRedirects or dyn.WebHandlers) and not have_web:
        c.add(("WebHandlers",), "WebDomainRedirects or WebHandlers configured, but no listener has WebserverHTTP or WebserverHTTPS enabled")
    for i, wh in enumerate(dyn.WebHandlers):
        _prepare_webhandler(c, ("WebHandlers", i), wh)
    for i, zone in enumerate(dyn.MonitorDNSBLs):
        c.domain(("MonitorDNSBLs", i), zone, "DNSBL zone")
    return dests, c.errors


def _prepare_selector(c: _Checker, sp: tuple[str | int, ...], name: str, sel: model.Selector, path: Path, check_files: bool) -> None:
    sd = c.domain(sp, name, "selector")
    sel.Domain = sd
    if sd is not None and sd.name != name:
        c.add(sp, f"selector must be written in Unicode form {sd.name!r}")
    if sel.Expiration:
        try:
            sel.ExpirationSeconds = int(sconf.parse_duration(sel.Expiration).seconds)
        except ValueError as e:
            c.add((*sp, "Expiration"), str(e))
    sel.HashEffective = sel.Hash or "sha256"
    if sel.HashEffective not in ("sha256", "sha1"):
        c.add((*sp, "Hash"), f"unsupported hash {sel.Hash!r}, expected sha256 or sha1")
    if sel.Headers:
        if not any(h.lower() == "from" for h in sel.Headers):
            c.add((*sp, "Headers"), "the From header must always be signed")
        sel.HeadersEffective = list(sel.Headers)
    else:
        sel.HeadersEffective = list(DEFAULT_DKIM_HEADERS)
    if not check_files:
        return
    kp = config_dir_path(path, sel.PrivateKeyFile)
    try:
        data = kp.read_bytes()
        if b"-----BEGIN PRIVATE KEY-----" not in data:
            raise ValueError("expected a PKCS#8 PEM block (BEGIN PRIVATE KEY)")
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as e:
        c.add((*sp, "PrivateKeyFile"), f"reading DKIM private key {str(kp)!r}: {e}")
        return
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            c.add((*sp, "PrivateKeyFile"), f"RSA keys must have at least 1024 bits, this one has {key.key_size}")
        sel.Algorithm = f"rsa-{key.key_size}"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        if sel.HashEffective != "sha256":
            c.add((*sp, "Hash"), "ed25519 keys only work with sha256")
        sel.Algorithm = "ed25519"
    else:
        c.add((*sp, "PrivateKeyFile"), f"unsupported key type {type(key).__name__}, expected RSA or Ed25519")
        return
    sel.Key = key


def _prepare_account(
    c: _Checker,
    dyn: model.Dynamic,
    acc_name: str,
    acc: model.Account,
    dests: dict[str, AccountDestination],
    check_routes: object,
) -> None:
    ap: tuple[str | int, ...] = ("Accounts", acc_name)
    if acc.Domain:
        acc.DNSDomain = c.domain((*ap, "Domain"), acc.Domain)
    if acc.RejectsMailbox.lower() == "inbox":
        c.add((*ap, "RejectsMailbox"), "cannot be Inbox: messages in the rejects mailbox are removed automatically")
    c.mailbox((*ap, "RejectsMailbox"), acc.RejectsMailbox)
    if acc.Introbox:
        c.mailbox((*ap, "Introbox"), acc.Introbox)
        if acc.Introbox.lower() == "inbox":
            c.add((*ap, "Introbox"), "cannot be Inbox")
        if acc.Introbox == acc.RejectsMailbox:
            c.add((*ap, "Introbox"), "Introbox and RejectsMailbox cannot be the same mailbox")
    if len(acc.LoginDisabled) > 256:
        c.add((*ap, "LoginDisabled"), "message must be shorter than 256 characters")
    if any(not (" " <= ch < "\x7f") for ch in acc.LoginDisabled):
        c.add((*ap, "LoginDisabled"), "message must be ASCII without control characters")
    for key in ("JunkMailboxRegexp", "NeutralMailboxRegexp", "NotJunkMailboxRegexp"):
        expr = getattr(acc.AutomaticJunkFlags, key)
        if expr:
            c.regexp((*ap, "AutomaticJunkFlags", key), expr)
    if acc.JunkFilter is not None:
        jp = (*ap, "JunkFilter")
        p = acc.JunkFilter.Params
        if not 0 <= acc.JunkFilter.Threshold <= 1:
            c.add((*jp, "Threshold"), "must be between 0 and 1")
        if not 0 <= p.MaxPower <= 0.5:
            c.add((*jp, "Params", "MaxPower"), "must be between 0 and 0.5")
        if p.TopWords < 0:
            c.add((*jp, "Params", "TopWords"), "cannot be negative")
        if not 0 <= p.IgnoreWords <= 0.5:
            c.add((*jp, "Params", "IgnoreWords"), "must be between 0 and 0.5")
        if p.RareWords < 0:
            c.add((*jp, "Params", "RareWords"), "cannot be negative")
    for key, hook in (("OutgoingWebhook", acc.OutgoingWebhook), ("IncomingWebhook", acc.IncomingWebhook)):
        if hook is None:
            continue
        u = urllib.parse.urlparse(hook.URL)
        if u.scheme not in ("http", "https") or not u.netloc:
            c.add((*ap, key, "URL"), f"expected an http or https URL, not {hook.URL!r}")
    if acc.OutgoingWebhook is not None:
        for i, ev in enumerate(acc.OutgoingWebhook.Events):
            if ev not in OUTGOING_WEBHOOK_EVENTS:
                c.add((*ap, "OutgoingWebhook", "Events", i), f"unknown event {ev!r}, expected one of {', '.join(OUTGOING_WEBHOOK_EVENTS)}")
    for i, mb in enumerate(acc.IMAPCapabilitiesDisabled):
        if mb != mb.upper():
            c.add((*ap, "IMAPCapabilitiesDisabled", i), "capabilities must be upper case")

    for addr_name, dest in list(acc.Destinations.items()):
        dp = (*ap, "Destinations", addr_name)
        shown = (*ap, "Destinations")
        _check_destination(c, dp, dest)
        if addr_name.startswith("@"):
            try:
                d = parse_domain(addr_name[1:])
            except DomainError as e:
                c.add(dp, f"invalid catchall domain {addr_name[1:]!r}: {e}", display=shown)
                continue
            if d.name not in dyn.Domains:
                c.add(dp, f'unknown domain "{d.name}"', display=shown)
                continue
            key = "@" + d.name
            if key in dests:
                c.add(dp, f"duplicate catchall address {key}", display=shown)
            dests[key] = AccountDestination(True, "", acc_name, dest)
            continue
        if "@" in addr_name:
            try:
                addr = parse_address(addr_name)
            except AddressError as e:
                c.add(dp, f"invalid address: {e}", display=shown)
                continue
            lp, d = addr.localpart, addr.domain
        else:
            # Deprecated: a bare local part combined with the account's Domain.
            try:
                lp = parse_localpart(addr_name)
            except AddressError as e:
                c.add(dp, str(e), display=shown)
                continue
            if acc.DNSDomain is None:
                c.add(dp, f"address {addr_name!r} has no domain and the account has no Domain", display=shown)
                continue
            d = acc.DNSDomain
        dom = dyn.Domains.get(d.name)
        if dom is None:
            c.add(dp, f'unknown domain "{d.name}"', display=shown)
            continue
        has_sep = False
        for sep in dom.LocalpartCatchallSeparatorsEffective:
            if sep in lp:
                has_sep = True
                c.add(dp, f"local part of {addr_name!r} contains the domain's catchall separator {sep!r}", display=shown)
        canon = lp if has_sep else canonical_localpart(lp, dom)
        key = f"{format_localpart(canon)}@{d.name}"
        if key in dests:
            c.add(dp, f"duplicate address {key} (after canonicalisation)", display=shown)
        dests[key] = AccountDestination(False, lp, acc_name, dest)

    for i, s in enumerate(acc.FromIDLoginAddresses):
        fp = (*ap, "FromIDLoginAddresses", i)
        try:
            a = parse_address(s)
        except AddressError as e:
            c.add(fp, str(e))
            continue
        dom = dyn.Domains.get(a.domain.name)
        if dom is None:
            c.add(fp, f"unknown domain in {s!r}")
        elif not dom.LocalpartCatchallSeparatorsEffective:
            c.add(fp, f"the domain of {s!r} has no catchall separator configured")
        elif "@" + a.domain.name not in dests:
            key = f"{format_localpart(canonical_localpart(a.localpart, dom))}@{a.domain.name}"
            if dests.get(key, None) is None or dests[key].account != acc_name:
                c.add(fp, f"{s!r} is not one of the account's addresses")
    assert callable(check_routes)
    check_routes((*ap, "Routes"), acc.Routes)


def _check_destination(c: _Checker, dp: tuple[str | int, ...], dest: model.Destination) -> None:
    c.mailbox((*dp, "Mailbox"), dest.Mailbox)
    for key in ("SMTPError", "MessageAuthRequiredSMTPError"):
        v = getattr(dest, key)
        if len(v) > 256:
            c.add((*dp, key), "must be shorter than 256 bytes")
        if any(not (" " <= ch < "\x7f") for ch in v):
            c.add((*dp, key), "must be ASCII without control characters")
    if dest.SMTPError:
        if dest.Mailbox:
            c.add((*dp, "SMTPError"), "cannot have both SMTPError and Mailbox")
        if dest.Rulesets:
            c.add((*dp, "SMTPError"), "cannot have both SMTPError and Rulesets")
        if dest.SMTPError.split(" ", 1)[0] not in ("421", "550"):
            c.add((*dp, "SMTPError"), f"must start with 421 or 550, not {dest.SMTPError!r}")
    for i, rs in enumerate(dest.Rulesets):
        rp = (*dp, "Rulesets", i)
        c.mailbox((*rp, "Mailbox"), rs.Mailbox)
        n = 0
        if rs.SMTPMailFromRegexp:
            n += 1
            c.regexp((*rp, "SMTPMailFromRegexp"), rs.SMTPMailFromRegexp)
        if rs.MsgFromRegexp:
            n += 1
            c.regexp((*rp, "MsgFromRegexp"), rs.MsgFromRegexp)
        if rs.VerifiedDomain:
            n += 1
            c.domain((*rp, "VerifiedDomain"), rs.VerifiedDomain)
        for k, v in rs.HeadersRegexp.items():
            n += 1
            if k.lower() != k or v.lower() != v:
                c.add((*rp, "HeadersRegexp", k), "header field and value expressions must be lower case")
            c.regexp((*rp, "HeadersRegexp", k), k)
            c.regexp((*rp, "HeadersRegexp", k), v)
        if n == 0:
            c.add(rp, "a ruleset needs at least one rule")
        if rs.IsForward and rs.ListAllowDomain:
            c.add(rp, "cannot have both IsForward and ListAllowDomain")
        if rs.IsForward and (not rs.SMTPMailFromRegexp or not rs.VerifiedDomain):
            c.add(rp, "IsForward needs SMTPMailFromRegexp and VerifiedDomain")
        if rs.ListAllowDomain:
            c.domain((*rp, "ListAllowDomain"), rs.ListAllowDomain)
        c.mailbox((*rp, "AcceptRejectsToMailbox"), rs.AcceptRejectsToMailbox)
        if rs.AcceptRejectsToMailbox.lower() == "inbox":
            c.add((*rp, "AcceptRejectsToMailbox"), "cannot be Inbox")


def _prepare_webhandler(c: _Checker, wp: tuple[str | int, ...], wh: model.WebHandler) -> None:
    if wh.Domain != "*":
        c.domain((*wp, "Domain"), wh.Domain)
    if not wh.PathRegexp.startswith("^"):
        c.add((*wp, "PathRegexp"), "must start with ^")
    c.regexp((*wp, "PathRegexp"), wh.PathRegexp)
    kinds = [k for k in ("WebStatic", "WebRedirect", "WebForward", "WebInternal") if getattr(wh, k) is not None]
    if len(kinds) != 1:
        c.add(wp, f"exactly one of WebStatic, WebRedirect, WebForward, WebInternal must be set, found {len(kinds)}")
    if wh.WebRedirect is not None:
        r = wh.WebRedirect
        if not r.BaseURL and not (r.OrigPathRegexp and r.ReplacePath):
            c.add((*wp, "WebRedirect"), "needs BaseURL, or both OrigPathRegexp and ReplacePath")
        if r.OrigPathRegexp:
            c.regexp((*wp, "WebRedirect", "OrigPathRegexp"), r.OrigPathRegexp)
        if r.StatusCode and not 300 <= r.StatusCode <= 399:
            c.add((*wp, "WebRedirect", "StatusCode"), f"expected a 3xx status code, not {r.StatusCode}")
    if wh.WebForward is not None:
        u = urllib.parse.urlparse(wh.WebForward.URL)
        if u.scheme not in ("http", "https", "ws", "wss") or not u.netloc:
            c.add((*wp, "WebForward", "URL"), f"expected an http(s) URL, not {wh.WebForward.URL!r}")
    if wh.WebInternal is not None:
        if wh.WebInternal.Service not in WEB_INTERNAL_SERVICES:
            c.add((*wp, "WebInternal", "Service"), f"unknown service {wh.WebInternal.Service!r}, expected one of {', '.join(WEB_INTERNAL_SERVICES)}")
        if not wh.WebInternal.BasePath.startswith("/"):
            c.add((*wp, "WebInternal", "BasePath"), "must start with a slash")


def load_data_dir(static_path: str | os.PathLike[str]) -> Path:
    """The data directory from mox.conf, without validating anything else.

    For commands that only talk to the running server through its ctl socket:
    they must work even while domains.conf has a bad edit in it.
    """
    sp = Path(static_path).absolute()
    static, _ = parse_static(sp)
    return config_dir_path(sp, static.DataDir)


def load_config(static_path: str | os.PathLike[str], *, check_files: bool = True) -> Config:
    """Load, validate and prepare mox.conf and the domains.conf beside it.

    Raises:
        ConfigErrors: with every problem found.
    """
    sp = Path(static_path).absolute()
    static, slines = parse_static(sp)
    errors = prepare_static(static, slines, sp, check_files=check_files)
    dp = sp.parent / "domains.conf"
    try:
        mtime = dp.stat().st_mtime_ns
    except OSError:
        mtime = 0
    try:
        dyn, dlines = parse_dynamic(dp)
    except ConfigErrors as e:
        raise ConfigErrors(errors + e.errors) from None
    dests, derrs = prepare_dynamic(dyn, dlines, dp, static, check_files=check_files)
    errors += derrs
    if errors:
        raise ConfigErrors(errors)
    return Config(sp, static, dp, dyn, slines, dlines, mtime, dests)


def reload_dynamic(cfg: Config, text: str | None = None) -> Config:
    """A new Config with domains.conf parsed again (or from text), sharing the static part.

    Raises:
        ConfigErrors: the new domains.conf is invalid; the caller keeps the old config.
    """
    try:
        mtime = cfg.dynamic_path.stat().st_mtime_ns
    except OSError:
        mtime = 0
    dyn, dlines = parse_dynamic(cfg.dynamic_path, text)
    dests, errs = prepare_dynamic(dyn, dlines, cfg.dynamic_path, cfg.static)
    if errs:
        raise ConfigErrors(errs)
    return Config(cfg.static_path, cfg.static, cfg.dynamic_path, dyn, cfg.static_lines, dlines, mtime, dests)


def write_file_atomic(path: Path, data: bytes, mode: int = 0o660) -> None:
    """Write a file via a temporary file, fsync, rename and directory fsync (DESIGN.md section 3)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            st = path.stat()
            os.chmod(tmp, st.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(tmp, st.st_uid, st.st_gid)
        except FileNotFoundError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def dynamic_text(dyn: model.Dynamic) -> str:
    return sconf.write(dyn, header=model.DYNAMIC_HEADER)


def describe_errors(errors: Iterable[SconfError]) -> str:
    return "\n".join(str(e) for e in errors)
