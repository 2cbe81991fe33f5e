"""Mail client settings for a domain, derived from the listeners (pure).

Used by the autoconfig/autodiscover documents (``mox.http.autoconf``) and by
``mox clientconfig DOMAIN``. As upstream: the listener named ``public`` is
looked at first, then the others in name order; implicit TLS is preferred
over STARTTLS; the host is the domain's ``ClientSettingsDomain`` when set,
else the listener's or the global host name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mox.config import model
from mox.config.load import Config
from mox.dns.domain import Domain


class ClientConfigError(Exception):
    """The domain is unknown or no listener serves IMAP and submission."""


class TLSMode(enum.Enum):
    IMMEDIATE = "immediate"
    STARTTLS = "starttls"
    NONE = "none"


@dataclass(frozen=True)
class ProtocolConfig:
    host: Domain
    port: int
    tls_mode: TLSMode
    enabled_on_https: bool = False


@dataclass(frozen=True)
class ClientConfig:
    imap: ProtocolConfig
    submission: ProtocolConfig


@dataclass(frozen=True)
class ClientConfigEntry:
    protocol: str
    host: Domain
    port: int
    listener: str
    note: str


def _port(p: int, default: int) -> int:
    return p or default


def _domain_conf(cfg: Config, domain: Domain) -> model.Domain:
    dc = cfg.dynamic.Domains.get(domain.name)
    if dc is None:
        raise ClientConfigError(f"unknown domain {domain.name}")
    return dc


def _host(cfg: Config, lst: model.Listener, dc: model.Domain) -> Domain:
    if dc.ClientSettingsDNSDomain:
        d: Domain = dc.ClientSettingsDNSDomain
        return d
    if lst.Hostname and lst.HostnameDomain:
        d = lst.HostnameDomain
        return d
    d = cfg.static.HostnameDomain
    return d


def _listener_order(cfg: Config) -> list[str]:
    names = sorted(cfg.static.Listeners)
    if "public" in names:
        names.remove("public")
        names.insert(0, "public")
    return names


def client_config_domain(cfg: Config, domain: Domain) -> ClientConfig:
    """One IMAP and one submission configuration for the domain's users."""
    dc = _domain_conf(cfg, domain)
    imap: ProtocolConfig | None = None
    sub: ProtocolConfig | None = None
    for name in _listener_order(cfg):
        lst = cfg.static.Listeners[name]
        host = _host(cfg, lst, dc)
        if imap is None and lst.IMAPS.Enabled:
            imap = ProtocolConfig(host, _port(lst.IMAPS.Port, 993), TLSMode.IMMEDIATE, lst.IMAPS.EnabledOnHTTPS)
        if imap is None and lst.IMAP.Enabled:
            imap = ProtocolConfig(host, _port(lst.IMAP.Port, 143), TLSMode.STARTTLS if lst.TLS else TLSMode.NONE)
        if sub is None and lst.Submissions.Enabled:
            sub = ProtocolConfig(
                host, _port(lst.Submissions.Port, 465), TLSMode.IMMEDIATE, lst.Submissions.EnabledOnHTTPS
            )
        if sub is None and lst.Submission.Enabled:
            sub = ProtocolConfig(host, _port(lst.Submission.Port, 587), TLSMode.STARTTLS if lst.TLS else TLSMode.NONE)
        if imap and sub:
            return ClientConfig(imap, sub)
    raise ClientConfigError(f"no listeners found for imap and/or submission for domain {domain.name}")


def client_configs_domain(cfg: Config, domain: Domain) -> list[ClientConfigEntry]:
    """Every IMAP and submission endpoint users of the domain can use, with a note on TLS."""
    dc = _domain_conf(cfg, domain)

    def note(tls: bool, require: bool) -> str:
        if not tls:
            return "plain text, no STARTTLS configured"
        return "STARTTLS required" if require else "STARTTLS optional"

    out: list[ClientConfigEntry] = []
    for name in sorted(cfg.static.Listeners):
        lst = cfg.static.Listeners[name]
        host = _host(cfg, lst, dc)
        if lst.Submissions.Enabled:
            n = "with TLS"
            if lst.Submissions.EnabledOnHTTPS:
                n += '; also served on port 443 with TLS ALPN "smtp"'
            out.append(ClientConfigEntry("Submission (SMTP)", host, _port(lst.Submissions.Port, 465), name, n))
        if lst.IMAPS.Enabled:
            n = "with TLS"
            if lst.IMAPS.EnabledOnHTTPS:
                n += '; also served on port 443 with TLS ALPN "imap"'
            out.append(ClientConfigEntry("IMAP", host, _port(lst.IMAPS.Port, 993), name, n))
        if lst.Submission.Enabled:
            out.append(
                ClientConfigEntry(
                    "Submission (SMTP)", host, _port(lst.Submission.Port, 587), name,
                    note(lst.TLS is not None, not lst.Submission.NoRequireSTARTTLS),
                )
            )  # fmt: skip
        if lst.IMAP.Enabled:
            out.append(
                ClientConfigEntry(
                    "IMAP", host, _port(lst.IMAP.Port, 143), name, note(lst.TLS is not None, not lst.IMAP.NoRequireSTARTTLS)
                )
            )
    return out
