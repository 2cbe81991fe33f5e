"""HTTP system handlers: MTA-STS policy, autoconfig, autodiscover, ACME http-01, routing."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mox.config import model, sconf
from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.dns.domain import parse_domain
from mox.http.clientconfig import ClientConfigError, TLSMode, client_config_domain, client_configs_domain
from mox.http.web import HTTPEndpoint
from mox.serve.listeners import plan_endpoints


def _config(tmp_path: Path) -> Config:
    cfg = load_config(write_local_config(tmp_path))
    lst = cfg.static.Listeners["local"]
    lst.AutoconfigHTTPS = model.AutoconfigListener(Enabled=True, Port=8080, NonTLS=True)
    lst.MTASTSHTTPS = model.MTASTSListener(Enabled=True, Port=8080, NonTLS=True)
    cfg.dynamic.Domains["localhost"].MTASTS = model.MTASTS(
        PolicyID="20261124", Mode="enforce", MaxAge=sconf.Duration(7 * 24 * 3600 * 10**9), MX=["*.localhost", "mx.localhost"]
    )
    return cfg


class _ACME:
    def http01_response(self, token: str) -> str | None:
        return "tok.keyauth" if token == "tok" else None


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[str, Config]]:
    cfg = _config(tmp_path)
    # An endpoint on the plain port with the system services and the web services.
    ep = next(e for e in plan_endpoints(cfg) if e.port == 8080 and e.ip == "127.0.0.1")
    ep.services += ["WebmailHTTP /webmail/"]
    lst = cfg.static.Listeners["local"]
    assert lst.TLS is not None
    lst.TLS.ACME = "letsencrypt"
    server: Any = SimpleNamespace(cfg=cfg, autotls=_ACME())
    handler = HTTPEndpoint(server, ep)
    srv = web.Server(handler.handle)
    loop = asyncio.get_running_loop()
    s = await loop.create_server(srv, "127.0.0.1", 0)
    port = s.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", cfg
    finally:
        s.close()
        await srv.shutdown()


async def _get(url: str, host: str, method: str = "GET", data: bytes | None = None) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as s, s.request(method, url, headers={"Host": host}, data=data) as r:
        return r.status, await r.text(), r.headers


async def test_mtasts_policy(site: tuple[str, Config]) -> None:
    base, _ = site
    status, body, headers = await _get(base + "/.well-known/mta-sts.txt", "mta-sts.localhost")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert body == "version: STSv1\r\nmode: enforce\r\nmx: *.localhost\r\nmx: mx.localhost\r\nmax_age: 604800\r\n"
    # Unknown domain and wrong host prefix: not found.
    assert (await _get(base + "/.well-known/mta-sts.txt", "mta-sts.other.example"))[0] == 404
    assert (await _get(base + "/.well-known/mta-sts.txt", "localhost"))[0] == 404


async def test_autoconfig(site: tuple[str, Config]) -> None:
    base, _ = site
    status, body, _h = await _get(base + "/mail/config-v1.1.xml?emailaddress=mox%40localhost", "autoconfig.localhost")
    assert status == 200
    root = ET.fromstring(body)
    assert root.tag == "clientConfig"
    inc = root.find("emailProvider/incomingServer")
    assert inc is not None and inc.get("type") == "imap"
    assert inc.findtext("socketType") == "SSL" and inc.findtext("username") == "mox@localhost"
    out = root.find("emailProvider/outgoingServer")
    assert out is not None and out.findtext("socketType") == "SSL"
    status, body, _h = await _get(base + "/mail/config-v1.1.xml", "autoconfig.localhost")
    assert status == 200 and "%EMAILADDRESS%" in body
    assert (await _get(base + "/mail/config-v1.1.xml?emailaddress=bad", "autoconfig.localhost"))[0] == 400
    # Not our domain.
    assert (await _get(base + "/mail/config-v1.1.xml", "autoconfig.other.example"))[0] == 404


async def test_autodiscover(site: tuple[str, Config]) -> None:
    base, _ = site
    req = (
        b'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
        b"<Request><EMailAddress>mox@localhost</EMailAddress>"
        b"<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>"
        b"</Request></Autodiscover>"
    )
    status, body, _h = await _get(base + "/autodiscover/autodiscover.xml", "autoconfig.localhost", "POST", req)
    assert status == 200
    ns = {"o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    root = ET.fromstring(body)
    protos = root.findall("o:Response/o:Account/o:Protocol", ns)
    assert [p.findtext("o:Type", namespaces=ns) for p in protos] == ["IMAP", "SMTP"]
    assert protos[0].findtext("o:LoginName", namespaces=ns) == "mox@localhost"
    assert (await _get(base + "/autodiscover/autodiscover.xml", "autoconfig.localhost"))[0] == 405
    bad = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><Autodiscover/>'
    assert (await _get(base + "/autodiscover/autodiscover.xml", "autoconfig.localhost", "POST", bad))[0] == 400
    assert (await _get(base + "/autodiscover/autodiscover.xml", "autoconfig.localhost", "POST", b"<x"))[0] == 400


async def test_acme_http01_and_other_routes(site: tuple[str, Config]) -> None:
    base, _ = site
    status, body, _h = await _get(base + "/.well-known/acme-challenge/tok", "localhost")
    assert (status, body) == (200, "tok.keyauth")
    assert (await _get(base + "/.well-known/acme-challenge/other", "localhost"))[0] == 404
    status, body, headers = await _get(base + "/webmail/", "localhost")
    assert status == 503 and "Webmail" in body and headers["X-Content-Type-Options"] == "nosniff"
    assert (await _get(base + "/nothing", "localhost"))[0] == 404


def test_client_configs(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    d = parse_domain("localhost")
    cc = client_config_domain(cfg, d)
    assert cc.imap.tls_mode is TLSMode.IMMEDIATE and cc.submission.tls_mode is TLSMode.IMMEDIATE
    entries = client_configs_domain(cfg, d)
    assert {e.protocol for e in entries} == {"IMAP", "Submission (SMTP)"}
    assert any(e.note == "STARTTLS optional" for e in entries)
    with pytest.raises(ClientConfigError):
        client_config_domain(cfg, parse_domain("unknown.example"))


def test_clientconfig_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mox.cli.main import main

    conf = write_local_config(tmp_path)
    assert main(["-config", str(conf), "clientconfig", "localhost"]) == 0
    out = capsys.readouterr().out
    assert "IMAP                 localhost" in out and "STARTTLS optional" in out
    assert main(["-config", str(conf), "clientconfig", "unknown.example"]) == 1
    assert "unknown domain" in capsys.readouterr().err
