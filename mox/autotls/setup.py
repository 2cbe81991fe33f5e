"""Automatic TLS for a running server: one Manager per ACME provider, the hosts each serves.

As upstream, a listener with ``TLS.ACME`` gets certificates for the mail host
name (the listener's ``Hostname`` or the global one), and, for every enabled
domain, ``mta-sts.<domain>`` when the domain has an MTA-STS policy served over
TLS, ``autoconfig.<domain>`` when autoconfig is served over TLS, and the
domain's ``ClientSettingsDomain``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from mox import mlog
from mox.autotls import certs
from mox.autotls.manager import Manager
from mox.config.load import TLS_VERSIONS, Config, config_dir_path, write_file_atomic

log = mlog.new("autotls")

DEFAULT_ACME_PORT = 443


def ca_bundle(cfg: Config) -> str | None:
    """A CA file for HTTPS requests to the ACME provider, honouring ``TLS.CA``; None means
    the system's roots (the default of the HTTP client)."""
    ca = cfg.static.TLS.CA if cfg.static.TLS else None
    if ca is None or not ca.CertFiles:
        return None
    parts: list[bytes] = []
    if ca.AdditionalToSystem:
        paths = ssl.get_default_verify_paths()
        for p in (paths.cafile, paths.openssl_cafile):
            if p and Path(p).exists():
                parts.append(Path(p).read_bytes())
                break
    for f in ca.CertFiles:
        parts.append(config_dir_path(cfg.static_path, f).read_bytes())
    out = cfg.data_dir / "acme" / "ca-bundle.pem"
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_file_atomic(out, b"\n".join(parts), 0o644)
    return str(out)


def listeners_using(cfg: Config, acme_name: str) -> list[str]:
    return sorted(n for n, lst in cfg.static.Listeners.items() if lst.TLS is not None and lst.TLS.ACME == acme_name)


def allowed_hosts(cfg: Config, acme_name: str) -> set[str]:
    """Host names certificates are requested for from this provider."""
    hosts: set[str] = set()
    listeners = [cfg.static.Listeners[n] for n in listeners_using(cfg, acme_name)]
    if not listeners:
        return hosts
    if cfg.static.HostnameDomain is not None:
        hosts.add(cfg.static.HostnameDomain.ascii)
    mtasts_tls = autoconfig_tls = False
    for lst in listeners:
        if lst.Hostname and lst.HostnameDomain is not None:
            hosts.add(lst.HostnameDomain.ascii)
        mtasts_tls |= lst.MTASTSHTTPS.Enabled and not lst.MTASTSHTTPS.NonTLS
        autoconfig_tls |= lst.AutoconfigHTTPS.Enabled and not lst.AutoconfigHTTPS.NonTLS
    for dc in cfg.dynamic.Domains.values():
        if dc.Disabled or dc.DNSDomain is None:
            continue
        if mtasts_tls and dc.MTASTS is not None:
            hosts.add("mta-sts." + dc.DNSDomain.ascii)
        if autoconfig_tls:
            hosts.add("autoconfig." + dc.DNSDomain.ascii)
        if dc.ClientSettingsDNSDomain is not None:
            hosts.add(dc.ClientSettingsDNSDomain.ascii)
    return hosts


def _host_keys(cfg: Config, acme_name: str) -> list[certs.PrivateKey]:
    keys: list[certs.PrivateKey] = []
    for n in listeners_using(cfg, acme_name):
        tls = cfg.static.Listeners[n].TLS
        assert tls is not None
        for f in tls.HostPrivateKeyFiles:
            p = config_dir_path(cfg.static_path, f)
            keys.append(certs.load_key(p.read_bytes(), f"host private key {p}"))
    return keys


class AutoTLS:
    """Every ACME provider's Manager, for the servers and the HTTP listener."""

    def __init__(self, cfg: Config) -> None:
        self.managers: dict[str, Manager] = {}
        bundle = ca_bundle(cfg) if cfg.static.ACME else None
        for name, conf in cfg.static.ACME.items():
            users = listeners_using(cfg, name)
            minimum = ssl.TLSVersion.TLSv1_2
            for n in users:
                tls = cfg.static.Listeners[n].TLS
                if tls is not None and tls.MinVersion:
                    minimum = max(minimum, TLS_VERSIONS.get(tls.MinVersion, minimum))
            eab = conf.ExternalAccountBinding
            self.managers[name] = Manager(
                name,
                conf,
                cfg.data_dir / "acme",
                host_keys=_host_keys(cfg, name),
                ca_bundle=bundle,
                eab_key_file=config_dir_path(cfg.static_path, eab.KeyFile) if eab else None,
                minimum_version=minimum,
            )
        self.update_hosts(cfg)

    def update_hosts(self, cfg: Config) -> None:
        """Recompute host names, e.g. after domains.conf changed."""
        fallback = cfg.static.HostnameDomain.ascii if cfg.static.HostnameDomain is not None else ""
        for name, m in self.managers.items():
            m.set_hosts(allowed_hosts(cfg, name), fallback)

    def server_context(self, acme_name: str) -> ssl.SSLContext:
        return self.managers[acme_name].server_context()

    def http01_response(self, token: str) -> str | None:
        for m in self.managers.values():
            v = m.http01_response(token)
            if v is not None:
                return v
        return None

    def start(self) -> None:
        for m in self.managers.values():
            if m.hosts:
                m.start()

    async def close(self) -> None:
        for m in self.managers.values():
            await m.close()
