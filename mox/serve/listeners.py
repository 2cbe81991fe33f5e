"""Listening sockets from the config: which service listens on which IP and port, with which TLS.

:func:`plan_endpoints` turns the ``Listeners`` section into endpoints (pure);
:func:`bind_endpoint` opens one socket; :func:`tls_context` builds the TLS
server context of a listener from its ``KeyCerts``. Web services that share a
port (e.g. account, admin and webmail on 80) become one HTTP endpoint, as
upstream serves them.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field

from cryptography import x509

from mox.config import model
from mox.config.load import TLS_VERSIONS, Config, config_dir_path

# Default ports, as upstream (RFC 5321, RFC 6409, RFC 8314, RFC 9051).
DEFAULT_PORTS = {
    "SMTP": 25,
    "Submission": 587,
    "Submissions": 465,
    "IMAP": 143,
    "IMAPS": 993,
    "MetricsHTTP": 8010,
    "PprofHTTP": 8011,
    "AutoconfigHTTPS": 443,
    "MTASTSHTTPS": 443,
}
MAIL_SERVICES = ("SMTP", "Submission", "Submissions", "IMAP", "IMAPS")
IMPLICIT_TLS = {"Submissions", "IMAPS"}
WEB_SERVICES = ("AccountHTTP", "AccountHTTPS", "AdminHTTP", "AdminHTTPS", "WebmailHTTP", "WebmailHTTPS", "WebAPIHTTP", "WebAPIHTTPS")
WEB_DEFAULT_PATHS = {"Account": "/", "Admin": "/admin/", "Webmail": "/webmail/", "WebAPI": "/webapi/"}

# Backlog for listening sockets; the kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024


class ListenError(Exception):
    """A socket could not be opened; the message names listener, service and address."""


@dataclass
class Endpoint:
    """One listening socket: a mail service, or an HTTP server with its services."""

    listener: str
    kind: str  # "SMTP", "Submission", "Submissions", "IMAP", "IMAPS" or "HTTP"
    ip: str
    port: int
    tls: bool  # implicit TLS on accept
    services: list[str] = field(default_factory=list)  # for HTTP: e.g. ["AccountHTTP /", "AdminHTTP /admin/"]

    def address(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    def describe(self) -> str:
        what = self.kind if self.kind != "HTTP" else ("HTTPS" if self.tls else "HTTP") + " (" + ", ".join(self.services) + ")"
        return f"listener {self.listener}: {what} on {self.address()}"


def listener_ips(lst: model.Listener) -> list[str]:
    """IPs to bind; none configured means all (0.0.0.0 and ::)."""
    return list(lst.IPs) or ["0.0.0.0", "::"]


def plan_endpoints(cfg: Config) -> list[Endpoint]:
    """Every socket the config asks for, in a stable order."""
    out: list[Endpoint] = []
    for name in sorted(cfg.static.Listeners):
        lst = cfg.static.Listeners[name]
        ips = listener_ips(lst)
        for svc in MAIL_SERVICES:
            s = getattr(lst, svc)
            if s.Enabled:
                port = s.Port or DEFAULT_PORTS[svc]
                for ip in ips:
                    out.append(Endpoint(name, svc, ip, port, svc in IMPLICIT_TLS))
        # Web services grouped by (port, tls).
        http: dict[tuple[int, bool], list[str]] = {}
        for svc in WEB_SERVICES:
            ws: model.WebService = getattr(lst, svc)
            if ws.Enabled:
                tls = svc.endswith("HTTPS")
                port = ws.Port or (443 if tls else 80)
                path = ws.Path or WEB_DEFAULT_PATHS[svc.removesuffix("HTTPS").removesuffix("HTTP")]
                http.setdefault((port, tls), []).append(f"{svc} {path}")
        for svc in ("MetricsHTTP", "PprofHTTP"):
            if getattr(lst, svc).Enabled:
                http.setdefault((getattr(lst, svc).Port or DEFAULT_PORTS[svc], False), []).append(svc)
        for svc in ("AutoconfigHTTPS", "MTASTSHTTPS"):
            s = getattr(lst, svc)
            if s.Enabled:
                http.setdefault((s.Port or DEFAULT_PORTS[svc], not s.NonTLS), []).append(svc)
        if lst.WebserverHTTP.Enabled:
            http.setdefault((lst.WebserverHTTP.Port or 80, False), []).append("WebserverHTTP")
        if lst.WebserverHTTPS.Enabled:
            http.setdefault((lst.WebserverHTTPS.Port or 443, True), []).append("WebserverHTTPS")
        # As upstream: a listener getting certificates through ACME with TLS mail services also
        # answers tls-alpn-01 validations (RFC 8737) on the ACME port, 443 by default.
        if lst.TLS is not None and lst.TLS.ACME and lst.TLS.ACME in cfg.static.ACME:
            mail_tls = (lst.SMTP.Enabled and not lst.SMTP.NoSTARTTLS) or lst.Submissions.Enabled or lst.IMAPS.Enabled
            acme_port = cfg.static.ACME[lst.TLS.ACME].Port or 443
            if mail_tls and (acme_port, True) not in http:
                http[(acme_port, True)] = ["acme-tls-alpn-01"]
        for (port, tls), services in sorted(http.items()):
            for ip in ips:
                out.append(Endpoint(name, "HTTP", ip, port, tls, services))
    return out


def bind_endpoint(ep: Endpoint) -> socket.socket:
    """Open and bind a listening TCP socket for an endpoint.

    Raises:
        ListenError: with a one-line explanation (address in use, permission, bad address).
    """
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(ep.ip).version == 6 else socket.AF_INET
    except ValueError:
        raise ListenError(f"{ep.describe()}: invalid IP address") from None
    # IPPROTO_TCP explicitly: asyncio disables Nagle (TCP_NODELAY) only on accepted sockets whose
    # protocol is IPPROTO_TCP, and accepted sockets inherit the listener's (0 when left to the
    # default). With Nagle, a small response (an IDLE EXISTS after a "+ idling") waits for the
    # client's delayed ACK, about 40 ms on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # "::" should not also take the IPv4 port: 0.0.0.0 is bound separately.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((ep.ip, ep.port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        reason = e.strerror or str(e)
        if e.errno == errno.EADDRINUSE:
            reason = "address already in use (is another mail server or mox running?)"
        elif e.errno == errno.EACCES and ep.port < 1024:
            reason = "permission denied (ports below 1024 need root)"
        elif e.errno == errno.EADDRNOTAVAIL:
            reason = "address not available on this machine"
        raise ListenError(f"{ep.describe()}: {reason}") from None
    return sock


def _cert_names(cert_file: str) -> list[str]:
    with open(cert_file, "rb") as f:
        data = f.read()
    cert = x509.load_pem_x509_certificate(data)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    return names


def _name_matches(pattern: str, name: str) -> bool:
    if pattern == name:
        return True
    # RFC 6125 section 6.4.3: a wildcard only as the complete left-most label.
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:]
    return False


def tls_context(cfg: Config, listener: str) -> ssl.SSLContext | None:
    """The server TLS context of a listener from its KeyCerts, or None without static certificates.

    With several certificates, SNI selects the one whose names match the
    requested host; the first is used otherwise.

    Raises:
        ListenError: a certificate or key cannot be loaded.
    """
    lst = cfg.static.Listeners[listener]
    if lst.TLS is None or not lst.TLS.KeyCerts:
        return None
    minimum = TLS_VERSIONS.get(lst.TLS.MinVersion or "TLSv1.2", ssl.TLSVersion.TLSv1_2)
    contexts: list[tuple[list[str], ssl.SSLContext]] = []
    for kc in lst.TLS.KeyCerts:
        cert = str(config_dir_path(cfg.static_path, kc.CertFile))
        key = str(config_dir_path(cfg.static_path, kc.KeyFile))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = minimum
        try:
            ctx.load_cert_chain(cert, key)
            names = _cert_names(cert)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ListenError(f"listener {listener}: loading TLS certificate {cert} and key {key}: {e}") from None
        contexts.append((names, ctx))
    main = contexts[0][1]
    if len(contexts) > 1:

        def select(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
            if server_name is None:
                return
            host = server_name.lower().rstrip(".")
            for names, c in contexts:
                if any(_name_matches(n, host) for n in names):
                    sslobj.context = c
                    return

        main.sni_callback = select
    return main
