"""Incoming SMTP: the iprev and SPF checks start at the first accepted RCPT TO, so their DNS
lookups overlap the DATA transfer, and the DATA handling uses their results (no second lookup)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mox import iprev, spf
from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.dns import StubResolver
from mox.dns.testserver import DNSTestServer
from mox.serve.listeners import Endpoint
from mox.serve.services import ConnContext
from mox.smtpserver import server as smtpserver
from mox.store import close_all_accounts
from mox.store.deliver import open_config_account


@dataclass
class _ServerStub:
    cfg: Config
    shutting_down: bool = False
    localserve: bool = False


class _Client:
    def __init__(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.r, self.w = r, w

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.r.readline(), 10)).decode()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "".join(lines)

    async def cmd(self, line: str) -> str:
        self.w.write(line.encode() + b"\r\n")
        return await self.reply()


async def _until(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@pytest.fixture
async def smtp(tmp_path: Path, dns_server: DNSTestServer, dns_resolver: StubResolver, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Config, int]]:
    monkeypatch.setattr(smtpserver, "default_resolver", lambda: dns_resolver)
    cfg = load_config(write_local_config(tmp_path, ips=["127.0.0.1"]))
    ctx = ConnContext(_ServerStub(cfg), Endpoint("local", "SMTP", "127.0.0.1", 0, False), starttls=None)  # type: ignore[arg-type]

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await smtpserver.serve(ctx, r, w)
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield cfg, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        await smtpserver.close()
        await close_all_accounts()


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    orig = getattr(module, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await orig(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


async def test_checks_start_at_rcpt_and_are_used_at_data(
    smtp: tuple[Config, int], dns_server: DNSTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, port = smtp
    dns_server.add_ptr("127.0.0.1", "client.example.net")
    dns_server.add_a("client.example.net", "127.0.0.1")
    dns_server.add_txt("example.net", "v=spf1 ip4:127.0.0.0/8 -all")
    dns_server.add_txt("other.example", "v=spf1 -all")
    spf_calls = _counting(monkeypatch, spf, "verify")
    iprev_calls = _counting(monkeypatch, iprev, "lookup")

    c = _Client(*await asyncio.open_connection("127.0.0.1", port))
    assert (await c.reply()).startswith("220 ")
    assert (await c.cmd("EHLO client.example.net")).startswith("250")
    for sender, body in (("a@example.net", "one"), ("b@other.example", "two")):
        n = len(spf_calls)
        assert (await c.cmd(f"MAIL FROM:<{sender}>")).startswith("250")
        assert not spf_calls[n:]  # nothing yet: no recipient
        assert (await c.cmd("RCPT TO:<mox@localhost>")).startswith("250")
        # Started before DATA, while the client is still to send the message.
        await _until(lambda k=n + 1: len(spf_calls) == k)  # type: ignore[misc]
        assert spf_calls[-1][2:4] == (sender, "client.example.net")
        assert (await c.cmd("DATA")).startswith("354")
        msg = f"From: <{sender}>\r\nTo: <mox@localhost>\r\nSubject: {body}\r\n\r\n{body}\r\n."
        assert (await c.cmd(msg)).startswith("250")
        assert len(spf_calls) == n + 1  # the DATA handling used the early result
    # iprev once for the connection.
    assert len(iprev_calls) == 1
    # A transaction without an accepted recipient looks nothing up.
    assert (await c.cmd("MAIL FROM:<c@third.example>")).startswith("250")
    assert (await c.cmd("RCPT TO:<nobody@localhost>")).startswith("550")
    assert (await c.cmd("RSET")).startswith("250")
    assert (await c.cmd("QUIT")).startswith("221")
    c.w.close()
    assert len(spf_calls) == 2 and not dns_server.queries_for("third.example")

    acc = await open_config_account(cfg, "mox")
    try:
        msgs = [acc.read_message(m) for m in await acc.messages("Inbox")]
    finally:
        await acc.close()
    heads = [m.split(b"\r\n\r\n", 1)[0].decode() for m in msgs]
    assert len(heads) == 2
    assert "iprev=pass" in heads[0] and "spf=pass" in heads[0] and "smtp.mailfrom=example.net" in heads[0]
    assert "iprev=pass" in heads[1] and "spf=fail" in heads[1] and "smtp.mailfrom=other.example" in heads[1]


async def test_connection_closed_with_checks_pending(smtp: tuple[Config, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that leaves after RCPT TO: the started checks are dropped with the connection."""
    _, port = smtp
    started: list[smtpserver._Session] = []
    orig = smtpserver._prefetch_checks

    def record(sess: smtpserver._Session, conn: Any) -> None:
        orig(sess, conn)
        started.append(sess)

    monkeypatch.setattr(smtpserver, "_prefetch_checks", record)
    c = _Client(*await asyncio.open_connection("127.0.0.1", port))
    assert (await c.reply()).startswith("220 ")
    assert (await c.cmd("EHLO client.example.net")).startswith("250")
    assert (await c.cmd("MAIL FROM:<a@example.net>")).startswith("250")
    assert (await c.cmd("RCPT TO:<mox@localhost>")).startswith("250")
    assert started and started[0].spf_task is not None
    c.w.close()
    await _until(lambda: started[0].iprev_task is None and started[0].spf_task is None)
