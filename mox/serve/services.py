"""Protocol handlers per endpoint kind, the point where the protocol servers plug in.

Each mail handler gets the connection and a :class:`ConnContext`; the HTTP
handler is an aiohttp request handler. Until a protocol server is built (the
SMTP, IMAP and web issues), its endpoint answers with the protocol's own
"temporarily unavailable" reply, so peers retry later and lose nothing:
SMTP ``421`` (RFC 5321 section 3.8), IMAP ``BYE [UNAVAILABLE]`` (RFC 9051
section 7.1), HTTP ``503``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mox import mlog
from mox.serve.listeners import Endpoint

if TYPE_CHECKING:
    from aiohttp import web

    from mox.serve.server import Server

log = mlog.new("serve")


@dataclass
class ConnContext:
    """What a protocol handler knows about its endpoint."""

    server: Server
    endpoint: Endpoint
    starttls: ssl.SSLContext | None  # for STARTTLS on plain endpoints


ConnectionHandler = Callable[[ConnContext, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _hostname(ctx: ConnContext) -> str:
    d = ctx.server.cfg.static.HostnameDomain
    return d.ascii if d is not None else ctx.server.cfg.static.Hostname


async def smtp_unavailable(ctx: ConnContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """RFC 5321 section 3.8: a server that cannot serve replies 421 on connect and closes."""
    peer = writer.get_extra_info("peername")
    log.info("smtp connection refused: SMTP server not implemented yet", endpoint=ctx.endpoint.describe(), remote=str(peer))
    writer.write(f"421 4.3.2 {_hostname(ctx)} moxmail: {ctx.endpoint.kind} service not available yet, try again later\r\n".encode())
    await writer.drain()


async def imap_unavailable(ctx: ConnContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """RFC 9051 section 7.1.5: BYE as greeting when the server will not serve the client."""
    peer = writer.get_extra_info("peername")
    log.info("imap connection refused: IMAP server not implemented yet", endpoint=ctx.endpoint.describe(), remote=str(peer))
    writer.write(b"* BYE [UNAVAILABLE] moxmail: IMAP service not available yet\r\n")
    await writer.drain()


HANDLERS: dict[str, ConnectionHandler] = {
    "SMTP": smtp_unavailable,
    "Submission": smtp_unavailable,
    "Submissions": smtp_unavailable,
    "IMAP": imap_unavailable,
    "IMAPS": imap_unavailable,
}


def http_handler(server: Server, ep: Endpoint) -> Callable[[web.BaseRequest], Awaitable[Any]]:
    """The request handler for an HTTP endpoint (mox.http.web)."""
    from mox.http.web import http_handler as handler

    return handler(server, ep)
