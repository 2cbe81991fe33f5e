"""Bad input of issue 6: each gets a clear BAD/NO (or BYE) and the session goes on or ends politely."""

from __future__ import annotations

import asyncio

import pytest
from imaphelpers import SIMPLE_MSG, Client, append, connect

from mox.imapserver import server as imapserver
from mox.imapserver import session as imapsession


async def test_unbalanced_parentheses(client: Client) -> None:
    await append(client, SIMPLE_MSG)
    await client.cmd("SELECT INBOX")
    for bad in ("FETCH 1 (FLAGS", "FETCH 1 FLAGS)", "SEARCH (OR SEEN DELETED", "SEARCH SEEN)", "STORE 1 +FLAGS (\\Seen"):
        r = await client.cmd(bad)
        assert len(r) == 1 and b" BAD " in r[0], bad
    r = await client.cmd("SEARCH " + "(" * 200 + "ALL" + ")" * 200)
    assert b" BAD " in r[-1] and b"nested" in r[-1]
    r = await client.cmd("NOOP")
    assert b" OK " in r[-1]


async def test_huge_literals(port: int) -> None:
    c = await connect(port)
    # Synchronising: refused before the data; the session continues.
    r = await c.cmd("APPEND INBOX {4294967296}")
    assert r == [b"t2 BAD [TOOBIG] literal too big\r\n"]
    r = await c.cmd("LOGIN {200000}")
    assert b"BAD [TOOBIG]" in r[-1]
    r = await c.cmd("NOOP")
    assert b" OK " in r[-1]
    # Non-synchronising: the data would follow at once; we cannot skip 4 GB, so BYE.
    c.send(b"x APPEND INBOX {4294967296+}\r\n")
    assert (await c.line()).startswith(b"* BYE ")
    assert await asyncio.wait_for(c.reader.read(), 5) == b""


async def test_star_and_empty_mailbox(client: Client) -> None:
    await client.cmd("SELECT INBOX")
    r = await client.cmd("FETCH 1:* FLAGS")
    assert b" BAD " in r[-1]
    r = await client.cmd("FETCH * FLAGS")
    assert b" BAD " in r[-1]
    r = await client.cmd("UID FETCH 1:* FLAGS")
    assert r == [b"t5 OK fetch done\r\n"]
    r = await client.cmd("SEARCH 1:*")
    assert r[0] == b"* SEARCH\r\n"
    await append(client, SIMPLE_MSG)
    r = await append(client, SIMPLE_MSG)
    assert b"* 2 EXISTS\r\n" in r
    r = await client.cmd("FETCH *:1 UID")
    assert r[:-1] == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 2)\r\n"]
    # RFC 9051 section 6.4.9: n:* includes the highest UID even when n is larger.
    r = await client.cmd("UID FETCH 10:* UID")
    assert r[:-1] == [b"* 2 FETCH (UID 2)\r\n"]
    r = await client.cmd("FETCH 0 UID")
    assert b" BAD " in r[-1]
    r = await client.cmd("FETCH 3 UID")
    assert b" BAD " in r[-1]


async def test_command_while_literal_pending(client: Client) -> None:
    # Bytes after the continuation are the literal's data, even if they look like a command.
    data = b"b NOOP\r\n\r\nbody"
    client.send(b"a APPEND INBOX {%d}\r\n" % len(data))
    assert (await client.line()).startswith(b"+ ")
    client.send(data + b"\r\n")
    line = await client.line()
    assert line.startswith(b"a OK [APPENDUID "), line
    r = await client.cmd("SELECT INBOX")
    assert b"* 1 EXISTS\r\n" in r


async def test_pipelined_commands(client: Client) -> None:
    n = 10_000
    client.send(b"".join(b"p%d NOOP\r\n" % i for i in range(n)))
    for i in range(n):
        assert await client.line() == b"p%d OK noop done\r\n" % i
    r = await client.cmd("NOOP")
    assert b" OK " in r[-1]


async def test_very_long_line(client: Client) -> None:
    # Under the limit: a clear BAD for the bad command, the session continues.
    r = await client.cmd("FOO " + "x" * 60_000)
    assert b" BAD " in r[-1]
    client.send(b"a NOOP " + b"x" * 70_000)
    assert (await client.line()).startswith(b"* BYE ")
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


async def test_idle_timeout_during_idle(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imapserver, "IDLE_TIMEOUT", 0.3)
    c = await connect(port)
    await c.cmd("SELECT INBOX")
    c.send(b"i IDLE\r\n")
    assert (await c.line()).startswith(b"+ ")
    assert (await c.line()).startswith(b"* BYE ")
    assert await asyncio.wait_for(c.reader.read(), 5) == b""


async def test_client_not_reading_large_fetch(port: int, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    big = SIMPLE_MSG + b"x" * (2 * 1024 * 1024) + b"\r\n"
    for _ in range(6):
        await append(client, big)
    monkeypatch.setattr(imapsession, "WRITE_TIMEOUT", 0.5)
    buffered: list[int] = []
    orig = imapsession.Session.sendlines

    def sendlines(self: imapsession.Session, chunks: list[bytes | memoryview]) -> None:
        buffered.append(self.writer.transport.get_write_buffer_size())
        orig(self, chunks)

    monkeypatch.setattr(imapsession.Session, "sendlines", sendlines)
    c = await connect(port)
    await c.cmd("SELECT INBOX")
    c.send(b"f FETCH 1:* BODY.PEEK[]\r\n")
    # We read nothing; the server gives up after WRITE_TIMEOUT and closes.
    await asyncio.sleep(1.5)
    got = 0
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        while True:
            data = await asyncio.wait_for(c.reader.read(1 << 20), 5)
            if not data:
                raise asyncio.IncompleteReadError(b"", None)
            got += len(data)
    assert got < 6 * len(big)
    # Memory stays bounded: never more than one message waits in our write buffer.
    assert buffered and max(buffered) < 128 * 1024
