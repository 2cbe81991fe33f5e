"""The HTTP(S) endpoints: system handlers (MTA-STS, autoconfig, ACME http-01) and web services.

One aiohttp low-level handler per endpoint (ip, port, tls). Requests are
routed first to the system handlers, matched on host name and path as
upstream does, then on WebserverHTTP(S) ports to upstream's web server redirects
(``WebDomainRedirects``) and ``WebHandlers`` (mox.http.webhandlers: static
files, redirects, reverse proxy; plain HTTP to HTTPS for requests a
``WebHandler`` matches), then to the web services configured on the port (account,
admin, webmail, webapi), which come with the web issue and answer 503 with
an explanation until then.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mox import mlog
from mox.dns.domain import Domain, DomainError, parse_domain
from mox.http import autoconf, webhandlers
from mox.http.clientconfig import ClientConfigError, client_config_domain
from mox.smtp.address import AddressError, parse_address

if TYPE_CHECKING:
    from mox.serve.listeners import Endpoint
    from mox.serve.server import Server

log = mlog.new("http")

ACME_CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
MTASTS_PATH = "/.well-known/mta-sts.txt"
AUTOCONFIG_PATH = "/mail/config-v1.1.xml"
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"

# Headers on every response of ours, as upstream's "safe headers".
SAFE_HEADERS = {
    "X-Frame-Options": "deny",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def request_host(request: web.BaseRequest) -> Domain | None:
    """The Host header's domain, without port; None for IP literals or garbage."""
    host = (request.host or "").strip().lower()
    if host.startswith("["):
        return None
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    host = host.rstrip(".")
    try:
        return parse_domain(host)
    except DomainError:
        return None


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text, headers={**SAFE_HEADERS, **headers})


def _request_target(request: web.BaseRequest) -> str:
    """Path and query as the client sent them (not re-encoded), also for an absolute-form request target."""
    target = request.raw_path
    if not target.startswith("/"):
        u = urllib.parse.urlsplit(target)
        target = (u.path or "/") + ("?" + u.query if u.query else "")
    return target if target.startswith("/") else "/"


def _redirect(location: str) -> web.Response:
    # 308 keeps the method and body, as upstream's http.StatusPermanentRedirect.
    return _text(308, f"308 - permanent redirect to {location}\n", Location=location)


def _xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/xml", charset="utf-8", headers=SAFE_HEADERS)


class HTTPEndpoint:
    """Request routing for one endpoint; see the module doc."""

    def __init__(self, server: Server, ep: Endpoint) -> None:
        self.server = server
        self.ep = ep
        self.services = set(s.split(" ", 1)[0] for s in ep.services)
        self.web_services = [s for s in ep.services if " " in s]
        lst = server.cfg.static.Listeners[ep.listener]
        # ACME http-01 is answered on plain HTTP ports of a listener with ACME, as upstream.
        self.acme_http01 = not ep.tls and lst.TLS is not None and bool(lst.TLS.ACME)
        # WebDomainRedirects and WebHandlers apply on the ports of WebserverHTTP(S), as upstream.
        self.webserver = bool(self.services & {"WebserverHTTP", "WebserverHTTPS"})

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._route(request)
        except Exception as e:
            log.errorx("http request", e, path=request.path, endpoint=self.ep.describe())
            return _text(500, "500 - internal server error\n")

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        host = request_host(request)
        if self.acme_http01 and path.startswith(ACME_CHALLENGE_PREFIX):
            return self._acme_challenge(path[len(ACME_CHALLENGE_PREFIX) :])
        if "MTASTSHTTPS" in self.services and path == MTASTS_PATH and host and host.ascii.startswith("mta-sts."):
            return self._mtasts(host)
        if "AutoconfigHTTPS" in self.services and path in (AUTOCONFIG_PATH, AUTODISCOVER_PATH):
            dom = self._autoconfig_domain(host)
            if dom is not None:
                if path == AUTOCONFIG_PATH:
                    return self._autoconfig(request, dom)
                return await self._autodiscover(request)
        if self.webserver:
            resp = await self._webserver(request, host)
            if resp is not None:
                return resp
        for svc in self.web_services:
            name, prefix = svc.split(" ", 1)
            if path == prefix.rstrip("/") or path.startswith(prefix):
                return _text(
                    503, f"moxmail: {name} is not available yet in this version\n", **{"Retry-After": "3600"}
                )
        return _text(404, "404 - not found\n")

    async def _webserver(self, request: web.BaseRequest, host: Domain | None) -> web.StreamResponse | None:
        """Upstream's web server, after the system handlers and before the web services.

        - A host in WebDomainRedirects: a permanent redirect (308, RFC 9110
          section 15.4.9) to https on the target host, with the same path and
          query, for plain HTTP and HTTPS alike.
        - The WebHandlers matching host and (cleaned) path, in order: over plain
          HTTP a permanent redirect to the same URL over https, unless the
          handler has DontRedirectPlainHTTP; otherwise what the handler serves
          (mox.http.webhandlers), or the next match when it declines.

        None when nothing applies.
        """
        if host is None:
            return None
        dyn = self.server.cfg.dynamic
        for src, dst in dyn.WebDomainRedirects.items():
            try:
                if parse_domain(src) != host:
                    continue
                target = parse_domain(dst)
            except DomainError:
                continue
            return _redirect(f"https://{target.ascii}{_request_target(request)}")
        path = webhandlers.clean_path(request.path)
        for m in webhandlers.matches(dyn.WebHandlers, host, path):
            if not self.ep.tls and not m.handler.DontRedirectPlainHTTP:
                return _redirect(f"https://{host.ascii}{_request_target(request)}")
            resp = await webhandlers.serve(webhandlers.Request(request, path, self.ep.tls), m)
            if resp is not None:
                return resp
        return None

    def _acme_challenge(self, token: str) -> web.Response:
        autotls = getattr(self.server, "autotls", None)
        keyauth = autotls.http01_response(token) if autotls is not None else None
        if keyauth is None:
            return _text(404, "404 - not found\n")
        return web.Response(text=keyauth, content_type="text/plain")

    def _mtasts(self, host: Domain) -> web.Response:
        name = host.ascii.removeprefix("mta-sts.")
        try:
            domain = parse_domain(name)
        except DomainError:
            return _text(404, "404 - not found\n")
        dc = self.server.cfg.dynamic.Domains.get(domain.name)
        if dc is None or dc.MTASTS is None:
            return _text(404, "404 - not found\n")
        hostname = self.server.cfg.static.HostnameDomain
        try:
            text = autoconf.mtasts_policy_text(dc.MTASTS, hostname)
        except DomainError as e:
            log.error("bad mx pattern in mta-sts config", domain=domain.name, err=str(e))
            return _text(500, "500 - internal server error - invalid domain in configuration\n")
        # RFC 8461 section 3.3: text/plain; senders cache by max_age, not HTTP caching.
        return web.Response(
            text=text, content_type="text/plain", headers={**SAFE_HEADERS, "Cache-Control": "no-cache, max-age=0"}
        )

    def _autoconfig_domain(self, host: Domain | None) -> Domain | None:
        """The mail domain an autoconfig request is for, when it is ours (as upstream: the
        "autoconfig." prefix is optional, and the host names themselves are accepted)."""
        if host is None:
            return None
        name = host.ascii.removeprefix("autoconfig.")
        try:
            d = parse_domain(name)
        except DomainError:
            return None
        cfg = self.server.cfg
        if d == cfg.static.HostnameDomain:
            return d
        lst = cfg.static.Listeners.get("public")
        if lst is not None and lst.HostnameDomain is not None and d == lst.HostnameDomain:
            return d
        return d if d.name in cfg.dynamic.Domains else None

    def _autoconfig(self, request: web.BaseRequest, host_domain: Domain) -> web.Response:
        email = request.query.get("emailaddress", "")
        if email:
            try:
                addr = parse_address(email)
            except AddressError:
                return _text(400, "400 - bad request - invalid parameter emailaddress\n")
            domain = addr.domain
        else:
            email, domain = "%EMAILADDRESS%", host_domain
        try:
            cc = client_config_domain(self.server.cfg, domain)
        except ClientConfigError as e:
            return _text(400, f"400 - bad request - {e}\n")
        return _xml(autoconf.autoconfig_xml(domain, email, cc))

    async def _autodiscover(self, request: web.BaseRequest) -> web.Response:
        if request.method != "POST":
            return _text(405, "405 - method not allowed - post required\n", Allow="POST")
        if request.content_length is not None and request.content_length > autoconf.MAX_AUTODISCOVER_REQUEST:
            return _text(413, "413 - request too large\n")
        body = await request.content.read(autoconf.MAX_AUTODISCOVER_REQUEST + 1)
        try:
            email = autoconf.autodiscover_request_email(body)
            addr = parse_address(email)
        except (autoconf.AutodiscoverError, AddressError) as e:
            return _text(400, f"400 - bad request - {e}\n")
        try:
            cc = client_config_domain(self.server.cfg, addr.domain)
        except ClientConfigError as e:
            return _text(400, f"400 - bad request - {e}\n")
        return _xml(autoconf.autodiscover_xml(email, cc))


def http_handler(server: Server, ep: Endpoint) -> Callable[[web.BaseRequest], Awaitable[Any]]:
    """The aiohttp request handler for an endpoint."""
    return HTTPEndpoint(server, ep).handle
