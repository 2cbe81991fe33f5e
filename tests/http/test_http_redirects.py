"""HTTP -> HTTPS redirects as upstream's web server does them: WebDomainRedirects, and plain-HTTP requests
matched by a WebHandler; the system handlers (ACME http-01, MTA-STS, autoconfig) keep answering over plain HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web

from mox.config import model, sconf
from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.http.web import HTTPEndpoint
from mox.serve.listeners import Endpoint


class _ACME:
    def http01_response(self, token: str) -> str | None:
        return "tok.keyauth" if token == "tok" else None


def _config(tmp_path: Path) -> Config:
    cfg = load_config(write_local_config(tmp_path))
    lst = cfg.static.Listeners["local"]
    assert lst.TLS is not None
    lst.TLS.ACME = "letsencrypt"
    cfg.dynamic.Domains["localhost"].MTASTS = model.MTASTS(
        PolicyID="1", Mode="testing", MaxAge=sconf.Duration(24 * 3600 * 10**9), MX=["localhost"]
    )
    d = cfg.dynamic
    d.WebDomainRedirects = {"old.example": "new.example"}
    d.WebHandlers = [
        model.WebHandler(LogName="site", Domain="www.example", PathRegexp="^/site/", WebRedirect=model.WebRedirect(BaseURL="https://x.example")),
        model.WebHandler(Domain="plain.example", PathRegexp="^/", DontRedirectPlainHTTP=True, WebRedirect=model.WebRedirect(BaseURL="https://x.example")),
    ]  # fmt: skip
    return cfg


Serve = Callable[[list[str], bool], Any]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    """Start an endpoint with the given services, plain HTTP or "TLS" (the endpoint's flag; served without TLS)."""
    cfg = _config(tmp_path)
    servers: list[tuple[asyncio.AbstractServer, web.Server]] = []

    async def start(services: list[str], tls: bool) -> str:
        ep = Endpoint("local", "HTTP", "127.0.0.1", 0, tls, services)
        handler = HTTPEndpoint(SimpleNamespace(cfg=cfg, autotls=_ACME()), ep)  # type: ignore[arg-type]
        srv = web.Server(handler.handle)
        s = await asyncio.get_running_loop().create_server(srv, "127.0.0.1", 0)
        servers.append((s, srv))
        return f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}"

    yield start
    for s, srv in servers:
        s.close()
        await srv.shutdown()


async def _get(url: str, host: str, method: str = "GET") -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        # encoded=True: the URL goes out as written, not re-quoted by yarl.
        s.request(method, yarl.URL(url, encoded=True), headers={"Host": host}, allow_redirects=False) as r,
    ):
        return r.status, await r.text(), r.headers


PLAIN = ["WebserverHTTP", "MTASTSHTTPS", "AutoconfigHTTPS", "AccountHTTP /"]


async def test_domain_redirect_keeps_path_and_query(serve: Serve) -> None:
    for tls in (False, True):
        base = await serve(["WebserverHTTPS" if tls else "WebserverHTTP"], tls)
        status, _, headers = await _get(base + "/a/b%20c?x=1&y=%2F", "old.example")
        assert status == 308
        assert headers["Location"] == "https://new.example/a/b%20c?x=1&y=%2F"
        # With a port in the Host header and a different case, still the same domain.
        status, _, headers = await _get(base + "/", "OLD.example:8080")
        assert (status, headers["Location"]) == (308, "https://new.example/")


async def test_plain_http_to_https_for_webhandlers(serve: Serve) -> None:
    base = await serve(PLAIN, False)
    status, _, headers = await _get(base + "/site/page?q=1", "www.example", "POST")
    assert (status, headers["Location"]) == (308, "https://www.example/site/page?q=1")
    # A path the handler does not match: not redirected, on to the web services (here AccountHTTP at /).
    status, _, _ = await _get(base + "/other", "www.example")
    assert status == 503
    # DontRedirectPlainHTTP: no redirect to HTTPS; the handler (a WebRedirect) answers itself.
    status, _, headers = await _get(base + "/x", "plain.example")
    assert (status, headers["Location"]) == (308, "https://x.example/x")
    # Over HTTPS the handler itself answers, no redirect to HTTPS.
    tls = await serve(["WebserverHTTPS"], True)
    status, _, headers = await _get(tls + "/site/x", "www.example")
    assert (status, headers["Location"]) == (308, "https://x.example/site/x")


async def test_system_handlers_stay_on_plain_http(serve: Serve) -> None:
    base = await serve(PLAIN, False)
    # ACME http-01 must be answered on plain HTTP (RFC 8555 section 8.3), also for a redirected domain.
    status, body, _ = await _get(base + "/.well-known/acme-challenge/tok", "old.example")
    assert (status, body) == (200, "tok.keyauth")
    status, body, _ = await _get(base + "/.well-known/mta-sts.txt", "mta-sts.localhost")
    assert status == 200 and body.startswith("version: STSv1")
    status, _, headers = await _get(base + "/mail/config-v1.1.xml?emailaddress=mox@localhost", "autoconfig.localhost")
    assert status == 200 and headers["Content-Type"].startswith("application/xml")


async def test_no_webserver_no_redirects(serve: Serve) -> None:
    # Ports without WebserverHTTP(S) ignore WebDomainRedirects and WebHandlers, as upstream.
    base = await serve(["AccountHTTP /"], False)
    status, _, headers = await _get(base + "/", "old.example")
    assert status == 503 and "Location" not in headers
    status, _, headers = await _get(base + "/site/", "www.example")
    assert status == 503 and "Location" not in headers
