"""A loopback RDAP server for tests: the bootstrap file and one registry, on 127.0.0.1 (aiohttp)."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class RDAPServer:
    """Requests seen (paths), and the domains the registry knows with their registration dates."""

    base: str = ""
    requests: list[str] = field(default_factory=list)
    registered: dict[str, datetime.datetime] = field(default_factory=dict)
    tlds: list[str] = field(default_factory=lambda: ["org", "net"])

    @property
    def bootstrap_url(self) -> str:
        return self.base + "/dns.json"


def _date(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@asynccontextmanager
async def rdap_server() -> AsyncIterator[RDAPServer]:
    srv = RDAPServer()

    async def bootstrap(request: web.Request) -> web.Response:
        srv.requests.append(request.path)
        doc = {
            "version": "1.0",
            "publication": "2024-01-01T00:00:00Z",
            "services": [[["com"], ["https://rdap.invalid/"]], [srv.tlds, [srv.base + "/rdap/"]]],
        }
        return web.json_response(doc)

    async def domain(request: web.Request) -> web.Response:
        srv.requests.append(request.path)
        name = request.match_info["name"]
        if name not in srv.registered:
            return web.json_response({"errorCode": 404, "title": "not found"}, status=404)
        reg = srv.registered[name]
        doc = {
            "objectClassName": "domain",
            "ldhName": name,
            "events": [
                {"eventAction": "expiration", "eventDate": _date(reg + datetime.timedelta(days=365))},
                {"eventAction": "registration", "eventDate": _date(reg)},
                {"eventAction": "last changed", "eventDate": _date(reg)},
            ],
        }
        return web.Response(text=json.dumps(doc), content_type="application/rdap+json")

    app = web.Application()
    app.router.add_get("/dns.json", bootstrap)
    app.router.add_get("/rdap/domain/{name}", domain)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    srv.base = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        await runner.cleanup()
