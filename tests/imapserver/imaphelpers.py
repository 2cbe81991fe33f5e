"""Helpers of the in-process IMAP server tests: a minimal client."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from mox.config.load import Config

PASSWORD = "moxmoxmox"


@dataclass
class ServerStub:
    cfg: Config
    shutting_down: bool = False


class Client:
    """A minimal IMAP client: send a command, get its response lines (literals inline)."""

    timeout = 5.0

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.n = 0

    async def line(self) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), self.timeout)
        m = re.search(rb"\{(\d+)\}\r\n\Z", line)
        if m:
            line += await self.reader.readexactly(int(m.group(1)))
            line += await self.line()
        return line

    async def cmd(self, text: str | bytes) -> list[bytes]:
        """Send a tagged command; returns untagged lines and the tagged one last."""
        self.n += 1
        tag = b"t%d" % self.n
        data = text.encode() if isinstance(text, str) else text
        self.writer.write(tag + b" " + data + b"\r\n")
        out = []
        while True:
            line = await self.line()
            out.append(line)
            if line.startswith(tag + b" "):
                return out

    def send(self, data: bytes) -> None:
        self.writer.write(data)


async def connect(port: int, login: bool = True) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    c = Client(reader, writer)
    greeting = await c.line()
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev2 IMAP4rev1 ")
    if login:
        r = await c.cmd(f"LOGIN mox@localhost {PASSWORD}")
        assert b" OK " in r[-1], r
    return c




SIMPLE_MSG = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: mox@localhost\r\n"
    b"Subject: simple\r\n"
    b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <s1@example.org>\r\n"
    b"\r\n"
    b"simple body\r\n"
)


async def append(c: Client, data: bytes, flags: str = "", mailbox: str = "INBOX") -> list[bytes]:
    """APPEND with a non-synchronising literal; returns the response lines."""
    c.n += 1
    tag = b"t%d" % c.n
    c.send(tag + b" APPEND " + mailbox.encode() + b" (" + flags.encode() + b") {%d+}\r\n" % len(data) + data + b"\r\n")
    out = []
    while True:
        line = await c.line()
        out.append(line)
        if line.startswith(tag + b" "):
            return out
