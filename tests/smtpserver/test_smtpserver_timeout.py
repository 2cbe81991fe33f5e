"""The SMTP server driver in-process: an idle client is told so and disconnected (RFC 5321 section 4.5.3.2)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.serve.listeners import Endpoint
from mox.serve.services import ConnContext
from mox.smtpserver import server as smtpserver


@dataclass
class _ServerStub:
    cfg: Config
    shutting_down: bool = False


async def test_idle_client_gets_421_and_is_disconnected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smtpserver, "COMMAND_TIMEOUT", 0.3)
    cfg = load_config(write_local_config(tmp_path, ips=["127.0.0.1"]))
    ctx = ConnContext(_ServerStub(cfg), Endpoint("local", "SMTP", "127.0.0.1", 0, False), starttls=None)  # type: ignore[arg-type]
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await smtpserver.serve(ctx, r, w)
        finally:
            w.close()  # as mox.serve's connection tracking does

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220 ")
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b"421 ") and b"timeout" in line
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
