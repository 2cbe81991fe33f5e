"""AUTHENTICATE through mox.sasl (SCRAM-SHA-256/1, CRAM-MD5, PLAIN) and COMPRESS=DEFLATE."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import zlib

from imaphelpers import PASSWORD, Client, connect

from mox.scram import ScramClient


async def _continuation(c: Client) -> bytes:
    line = await c.line()
    assert line.startswith(b"+ "), line
    return base64.b64decode(line[2:].strip())


async def _scram(c: Client, mech: str, password: str, ir: bool) -> bytes:
    sc = ScramClient(mech, "mox@localhost", password)
    first = base64.b64encode(sc.client_first())
    if ir:
        c.send(b"a AUTHENTICATE " + mech.encode() + b" " + first + b"\r\n")
    else:
        c.send(b"a AUTHENTICATE " + mech.encode() + b"\r\n")
        assert await _continuation(c) == b""
        c.send(first + b"\r\n")
    server_first = await _continuation(c)
    c.send(base64.b64encode(sc.client_final(server_first)) + b"\r\n")
    line = await c.line()
    if line.startswith(b"+ "):
        final = base64.b64decode(line[2:].strip())
        if final.startswith(b"v="):
            sc.check_server_final(final)
            c.send(b"\r\n")
        else:
            c.send(b"*\r\n")
        line = await c.line()
    return line


async def test_scram_sha256_and_sha1(port: int) -> None:
    c = await connect(port, login=False)
    line = await _scram(c, "SCRAM-SHA-256", PASSWORD, ir=False)
    assert line.startswith(b"a OK [CAPABILITY "), line
    r = await c.cmd("SELECT INBOX")
    assert b" OK " in r[-1]
    c2 = await connect(port, login=False)
    assert (await _scram(c2, "SCRAM-SHA-1", PASSWORD, ir=True)).startswith(b"a OK ")


async def test_scram_wrong_password(port: int) -> None:
    c = await connect(port, login=False)
    line = await _scram(c, "SCRAM-SHA-256", "wrong", ir=True)
    assert line.startswith(b"a NO [AUTHENTICATIONFAILED]"), line
    r = await c.cmd("SELECT INBOX")
    assert b" BAD " in r[-1]


async def test_cram_md5(port: int) -> None:
    c = await connect(port, login=False)
    c.send(b"a AUTHENTICATE CRAM-MD5\r\n")
    challenge = await _continuation(c)
    digest = hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest()
    c.send(base64.b64encode(b"mox@localhost " + digest.encode()) + b"\r\n")
    assert (await c.line()).startswith(b"a OK ")


async def test_plain_abort_and_bad_mechanisms(port: int) -> None:
    c = await connect(port, login=False)
    c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert await _continuation(c) == b""
    c.send(b"*\r\n")
    assert (await c.line()).startswith(b"a BAD ")
    r = await c.cmd("AUTHENTICATE SCRAM-SHA-256-PLUS")
    assert b"NO [CANNOT]" in r[-1]  # No TLS, no channel binding.
    r = await c.cmd("AUTHENTICATE LOGIN")
    assert b"NO [CANNOT]" in r[-1]
    r = await c.cmd("AUTHENTICATE PLAIN !!!")
    assert b" BAD " in r[-1]
    ir = base64.b64encode(b"other\0mox@localhost\0" + PASSWORD.encode()).decode()
    r = await c.cmd(f"AUTHENTICATE PLAIN {ir}")
    assert b"NO [AUTHORIZATIONFAILED]" in r[-1]
    ir = base64.b64encode(b"\0mox@localhost\0" + PASSWORD.encode()).decode()
    r = await c.cmd(f"AUTHENTICATE PLAIN {ir}")
    assert b" OK " in r[-1]


class _Deflated:
    def __init__(self, c: Client) -> None:
        self.c = c
        self.z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.d = zlib.decompressobj(-15)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.c.writer.write(self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH))

    async def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = await asyncio.wait_for(self.c.reader.read(65536), 5)
            assert data, "connection closed"
            self.buf += self.d.decompress(data)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"


async def test_compress_deflate_then_garbage(client: Client) -> None:
    r = await client.cmd("COMPRESS DEFLATE")
    assert r[-1] == b"t2 OK deflate active\r\n"
    z = _Deflated(client)
    z.send(b"a CAPABILITY\r\n")
    caps = await z.line()
    assert caps.startswith(b"* CAPABILITY ") and b"COMPRESS=DEFLATE" not in caps
    assert await z.line() == b"a OK capability done\r\n"
    z.send(b"b COMPRESS DEFLATE\r\n")
    assert (await z.line()).startswith(b"b NO [COMPRESSIONACTIVE]")
    # A large response goes through compressed too.
    z.send(b"c LIST \"\" *\r\n")
    while not (line := await z.line()).startswith(b"c "):
        assert line.startswith(b"* LIST ")
    # Garbage that is not a deflate stream: the server closes the connection.
    client.writer.write(b"\xff\xff\xff\xff garbage\r\n")
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


async def test_compress_only_deflate(client: Client) -> None:
    r = await client.cmd("COMPRESS FOO")
    assert b" BAD " in r[-1]
    r = await client.cmd("NOOP")
    assert b" OK " in r[-1]


async def test_compress_no_empty_flushes(client: Client) -> None:
    # Each compressed write ends with a sync flush (00 00 ff ff); the server flushes only after
    # output, as a flush of nothing is an empty block that mbsync takes for an empty response.
    await client.cmd("COMPRESS DEFLATE")
    z = _Deflated(client)
    z.send(b"a NOOP\r\n")
    raw = b""
    d = zlib.decompressobj(-15)
    out = b""
    while b"a OK" not in out:
        data = await asyncio.wait_for(client.reader.read(65536), 5)
        assert data, "connection closed"
        raw += data
        out += d.decompress(data)
    d = zlib.decompressobj(-15)
    blocks = raw.split(b"\x00\x00\xff\xff")
    assert blocks[-1] == b""
    for b in blocks[:-1]:
        assert d.decompress(b + b"\x00\x00\xff\xff") != b""
