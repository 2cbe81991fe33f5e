"""An in-process IMAP server on a loopback port, with account mox@localhost (password moxmoxmox)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from imaphelpers import PASSWORD, Client, ServerStub, connect

from mox.config import edit
from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.imapserver import server as imapserver
from mox.serve.listeners import Endpoint
from mox.serve.services import ConnContext
from mox.store.deliver import open_config_account
from mox.store.password import make_secrets


@pytest.fixture
async def cfg(tmp_path: Path) -> Config:
    c = load_config(write_local_config(tmp_path, ips=["127.0.0.1"]))
    acc = await open_config_account(c, "mox")
    try:
        await acc.set_password_secrets(make_secrets(PASSWORD, bcrypt_cost=4).to_json())
    finally:
        await acc.close()
    return edit.address_add(c, "other@localhost", "mox")


@pytest.fixture
async def port(cfg: Config) -> AsyncIterator[int]:
    ctx = ConnContext(ServerStub(cfg), Endpoint("local", "IMAP", "127.0.0.1", 0, False), starttls=None)  # type: ignore[arg-type]

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await imapserver.serve(ctx, r, w)
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def client(port: int) -> AsyncIterator[Client]:
    c = await connect(port)
    yield c
    c.writer.close()
