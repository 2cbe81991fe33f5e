"""IMAP extensions against a real `mox serve`: imaplib with ENABLE/CONDSTORE/ESEARCH/SORT/THREAD,
SCRAM-SHA-256-PLUS over IMAPS with TLS 1.2 channel binding, and aioimaplib's IDLE."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import socket
import ssl

import aioimaplib
from serve_harness import MoxServe
from test_imap_basic import _deliver
from test_smtp_delivery import set_password

from mox.scram import ScramClient


def _msg(subject: str, mid: str, refs: str = "") -> bytes:
    h = f"From: a@example.org\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
    if refs:
        h += f"References: {refs}\r\n"
    return (h + "\r\nbody\r\n").encode()


def test_extensions_with_imaplib(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, "moxmoxmox")
    im = imaplib.IMAP4("127.0.0.1", m.ports.imap, timeout=20)
    try:
        for cap in ("IMAP4REV2", "ENABLE", "CONDSTORE", "QRESYNC", "ESEARCH", "SORT", "THREAD=REFERENCES", "NOTIFY"):
            assert cap in im.capabilities, cap
        im.login("mox@localhost", "moxmoxmox")
        assert im.enable("CONDSTORE")[0] == "OK"
        for subject, mid, refs in [("hello", "a@x", ""), ("Re: hello", "b@x", "<a@x>"), ("other", "c@x", "")]:
            assert im.append("INBOX", None, None, _msg(subject, mid, refs))[0] == "OK"
        typ, data = im.select("INBOX")
        assert typ == "OK" and data == [b"3"]
        assert im.response("HIGHESTMODSEQ")[1][0] is not None
        typ, data = im.fetch("1:*", "(MODSEQ)")
        assert typ == "OK" and all(b"MODSEQ (" in x for x in data if isinstance(x, bytes))
        assert im.uid("SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL")[0] == "OK"
        data = im.response("ESEARCH")[1]
        assert isinstance(data[0], bytes) and data[0].endswith(b"UID MIN 1 MAX 3 COUNT 3"), data
        assert im.sort("(REVERSE SUBJECT)", "UTF-8", "ALL") == ("OK", [b"3 1 2"])
        assert im.thread("REFERENCES", "UTF-8", "ALL") == ("OK", [b"(1 2)(3)"])
        assert im.logout()[0] == "BYE"
    finally:
        try:
            im.shutdown()
        except OSError:
            pass


def _line(s: ssl.SSLSocket, buf: list[bytes]) -> bytes:
    while b"\r\n" not in buf[0]:
        data = s.recv(4096)
        assert data, "connection closed"
        buf[0] += data
    line, _, buf[0] = buf[0].partition(b"\r\n")
    return line


def test_scram_plus_over_tls12(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, "moxmoxmox")
    ctx = ssl.create_default_context(cafile=str(m.config.parent / "localhost.crt"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # tls-unique exists only up to TLS 1.2.
    with socket.create_connection(("127.0.0.1", m.ports.imaps), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as s:
        buf = [b""]
        greeting = _line(s, buf)
        assert b"AUTH=SCRAM-SHA-256-PLUS" in greeting and b"AUTH=SCRAM-SHA-1-PLUS" in greeting
        binding = s.get_channel_binding("tls-unique")
        assert binding
        sc = ScramClient("SCRAM-SHA-256-PLUS", "mox@localhost", "moxmoxmox", channel_binding=("tls-unique", binding))
        s.sendall(b"a AUTHENTICATE SCRAM-SHA-256-PLUS " + base64.b64encode(sc.client_first()) + b"\r\n")
        line = _line(s, buf)
        assert line.startswith(b"+ ")
        s.sendall(base64.b64encode(sc.client_final(base64.b64decode(line[2:]))) + b"\r\n")
        line = _line(s, buf)
        assert line.startswith(b"+ ")
        sc.check_server_final(base64.b64decode(line[2:]))
        s.sendall(b"\r\n")
        assert _line(s, buf).startswith(b"a OK [CAPABILITY ")


def test_idle_with_aioimaplib(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, "moxmoxmox")

    async def run() -> None:
        client = aioimaplib.IMAP4(host="127.0.0.1", port=m.ports.imap, timeout=20)
        await client.wait_hello_from_server()
        assert (await client.login("mox@localhost", "moxmoxmox")).result == "OK"
        assert (await client.select("INBOX")).result == "OK"
        idle = await client.idle_start(timeout=20)
        await asyncio.to_thread(_deliver, m)
        push = await client.wait_server_push(timeout=20)
        assert isinstance(push, list) and b"1 EXISTS" in push, push
        client.idle_done()
        assert (await asyncio.wait_for(idle, 20)).result == "OK"
        await client.logout()

    asyncio.run(run())
