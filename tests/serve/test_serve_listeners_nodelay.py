"""Listening sockets from mox.serve.listeners: accepted connections have Nagle off (TCP_NODELAY).

Without it a small response written while an earlier one is unacknowledged (an
IDLE session's untagged EXISTS after its "+ idling") waits for the client's
delayed ACK, about 40 ms on Linux.
"""

from __future__ import annotations

import asyncio
import socket

from mox.serve.listeners import Endpoint, bind_endpoint


def test_bind_endpoint_is_tcp() -> None:
    sock = bind_endpoint(Endpoint("local", "IMAP", "127.0.0.1", 0, False))
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


async def test_accepted_connection_has_nodelay() -> None:
    sock = bind_endpoint(Endpoint("local", "SMTP", "127.0.0.1", 0, False))
    got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        s = w.get_extra_info("socket")
        got.set_result(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        w.close()

    server = await asyncio.start_server(handle, sock=sock)
    try:
        port = sock.getsockname()[1]
        _, w = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(got, 10) != 0
        w.close()
    finally:
        server.close()
        await server.wait_closed()
