"""FETCH and SEARCH with the per-message cache (mox.imapproto.msgcache): values equal freshly
computed ones, old stores without records, COPY/EXPUNGE, encodings SEARCH TEXT must decode."""

from __future__ import annotations

import base64
import re

from imaphelpers import Client, append, connect

from mox.config.load import Config
from mox.imapproto import write as w
from mox.message.envelope import Envelope
from mox.message.part import parse
from mox.store.deliver import open_config_account

PLAIN = b"From: Bob <bob@example.org>\r\nSubject: plain\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n\r\nAn Invoice for you.\r\n"
B64 = (
    b"From: b@example.org\r\nSubject: b64\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes("the invoice, Jörg".encode()).replace(b"\n", b"\r\n")
)
QP = b"From: q@example.org\r\nSubject: qp\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nan inv=\r\noice here\r\n"
WORD = b"From: w@example.org\r\nSubject: =?utf-8?q?Inv=C3=B6ice_=C3=BCber_INVOICE?=\r\n\r\nnothing\r\n"
ATTACH = (
    b'From: a@example.org\r\nSubject: attach\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n--z\r\n\r\nhello\r\n'
    b"--z\r\nContent-Type: application/octet-stream\r\n\r\ninvoice\r\n--z--\r\n"
)
NONE = b"From: n@example.org\r\nSubject: none\r\n\r\nnothing to see\r\n"
MSGS = [PLAIN, B64, QP, WORD, ATTACH, NONE]


async def _setup(c: Client) -> None:
    for m in MSGS:
        assert b" OK " in (await append(c, m))[-1]
    assert b" OK " in (await c.cmd("SELECT INBOX"))[-1]


def _items(line: bytes) -> tuple[bytes, bytes]:
    m = re.match(rb"\* \d+ FETCH \(UID \d+ ENVELOPE (.*) BODYSTRUCTURE (.*)\)\r\n$", line, re.S)
    assert m is not None, line
    return m.group(1), m.group(2)


def _fresh(raw: bytes, utf8: bool) -> tuple[bytes, bytes]:
    p = parse(raw)
    return w.envelope(p.envelope or Envelope(), utf8), w.body_structure(p, True, utf8)


async def test_search_text_decodes_encodings(client: Client) -> None:
    await _setup(client)
    r = await client.cmd('UID SEARCH TEXT "invoice"')
    # Base64 and quoted-printable bodies and encoded-words match; an attachment does not.
    assert r[0] == b"* SEARCH 1 2 3 4\r\n", r
    r = await client.cmd('UID SEARCH BODY "INVOICE"')
    assert r[0] == b"* SEARCH 1 2 3\r\n", r
    r = await client.cmd('UID SEARCH TEXT "jörg"')
    assert r[0] == b"* SEARCH 2\r\n", r
    r = await client.cmd('UID SEARCH NOT TEXT "invoice"')
    assert r[0] == b"* SEARCH 5 6\r\n", r
    r = await client.cmd('UID SEARCH SUBJECT "über"')
    assert r[0] == b"* SEARCH 4\r\n", r
    r = await client.cmd('UID SEARCH SUBJECT "invoice"')
    assert r[0] == b"* SEARCH 4\r\n", r
    r = await client.cmd('UID SEARCH HEADER Content-Transfer-Encoding ""')
    assert r[0] == b"* SEARCH 2 3\r\n", r
    r = await client.cmd('UID SEARCH FROM "Q@EXAMPLE"')
    assert r[0] == b"* SEARCH 3\r\n", r
    r = await client.cmd('UID SEARCH OR SUBJECT plain TEXT "nothing to"')
    assert r[0] == b"* SEARCH 1 6\r\n", r


async def test_fetch_envelope_bodystructure_equal_fresh_values(client: Client, cfg: Config) -> None:
    await _setup(client)
    r = await client.cmd("UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert [_items(x) for x in r[:-1]] == [_fresh(m, False) for m in MSGS]
    r = await client.cmd("FETCH 2 BODY")
    assert r[0] == b"* 2 FETCH (BODY " + w.body_structure(parse(B64), False, False) + b")\r\n"
    # A store without records (from before the cache): computed, then stored.
    acc = await open_config_account(cfg, "mox")
    try:
        await acc._db(lambda: acc.conn.execute("DELETE FROM imap_cache"))
        assert r[0] == (await client.cmd("FETCH 2 BODY"))[0]
        r2 = await client.cmd("UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
        assert [_items(x) for x in r2[:-1]] == [_fresh(m, False) for m in MSGS]
        assert len(await acc.imap_cache_many(list(range(1, 100)))) == len(MSGS)
    finally:
        await acc.close()


async def test_fetch_utf8_session_gets_utf8_values(port: int) -> None:
    c = await connect(port)
    try:
        assert b" OK " in (await c.cmd("ENABLE UTF8=ACCEPT"))[-1]
        await _setup(c)
        r = await c.cmd("UID FETCH 4 (ENVELOPE BODYSTRUCTURE)")
        assert _items(r[0]) == _fresh(WORD, True)
        assert "Invöice".encode() in r[0]
    finally:
        c.writer.close()


async def test_copy_expunge_and_sections_with_cache(client: Client, cfg: Config) -> None:
    await _setup(client)
    assert b" OK " in (await client.cmd("CREATE other"))[-1]
    assert b" OK " in (await client.cmd("UID COPY 1:2 other"))[-1]
    acc = await open_config_account(cfg, "mox")
    try:
        before = await acc.imap_cache_many(list(range(1, 100)))
        assert len(before) == len(MSGS) + 2
        assert b" OK " in (await client.cmd("UID STORE 1 +FLAGS.SILENT (\\Deleted)"))[-1]
        assert b" OK " in (await client.cmd("EXPUNGE"))[-1]
        assert len(await acc.imap_cache_many(list(range(1, 100)))) == len(MSGS) + 1
    finally:
        await acc.close()
    assert b" OK " in (await client.cmd("SELECT other"))[-1]
    r = await client.cmd("FETCH 1:2 (ENVELOPE BODYSTRUCTURE)")
    assert [_items(x.replace(b" FETCH (", b" FETCH (UID 0 ")) for x in r[:-1]] == [_fresh(m, False) for m in MSGS[:2]]
    # Partial FETCH, BINARY and sections are served from the message file as before.
    r = await client.cmd("FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[TEXT] BINARY.PEEK[1] BINARY.SIZE[1])")
    assert r[0] == (
        b"* 1 FETCH (BODY[]<0> {10}\r\n" + PLAIN[:10] + b" BODY[TEXT] {21}\r\nAn Invoice for you.\r\n"
        b" BINARY[1] {21}\r\nAn Invoice for you.\r\n BINARY.SIZE[1] 21)\r\n"
    ), r
    r = await client.cmd("FETCH 2 (BINARY.PEEK[1] BODY.PEEK[1.MIME])")
    assert "the invoice, Jörg".encode() in r[0] and b"BODY[1.MIME]" in r[0]
    r = await client.cmd("FETCH 1:2 BODY.PEEK[]")
    assert r[0] == b"* 1 FETCH (BODY[] {%d}\r\n" % len(PLAIN) + PLAIN + b")\r\n"
    assert r[1] == b"* 2 FETCH (BODY[] {%d}\r\n" % len(B64) + B64 + b")\r\n"


async def test_fetch_of_message_expunged_by_other_session(port: int, client: Client) -> None:
    await _setup(client)
    other = await connect(port)
    try:
        assert b" OK " in (await other.cmd("SELECT INBOX"))[-1]
        assert b" OK " in (await other.cmd("UID STORE 1 +FLAGS.SILENT (\\Deleted)"))[-1]
        assert b" OK " in (await other.cmd("EXPUNGE"))[-1]
    finally:
        other.writer.close()
    # This session was not told yet: message 1 is gone, the others are still served.
    r = await client.cmd("FETCH 1:2 (ENVELOPE)")
    assert b" NO [EXPUNGEISSUED] " in r[-1], r
    r = await client.cmd("FETCH 2 (ENVELOPE BODY.PEEK[])")
    assert b" OK " in r[-1] and B64 in b"".join(r)


async def test_fetch_header_sections_from_cached_header_end(client: Client) -> None:
    await _setup(client)
    for raw in MSGS:
        header = raw[: parse(raw).body_offset]
        fields = b"".join(line + b"\r\n" for line in header.split(b"\r\n") if line.lower().startswith((b"from:", b"subject:"))) + b"\r\n"
        notsubj = b"".join(line + b"\r\n" for line in header.split(b"\r\n")[:-2] if not line.lower().startswith(b"subject:")) + b"\r\n"
        uid = MSGS.index(raw) + 1
        want = (
            b"* %d FETCH (UID %d BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}\r\n%s RFC822.HEADER {%d}\r\n%s"
            b" BODY[HEADER]<2> {5}\r\n%s BODY[HEADER.FIELDS.NOT (SUBJECT)] {%d}\r\n%s)\r\n"
        ) % (uid, uid, len(fields), fields, len(header), header, header[2:7], len(notsubj), notsubj)
        r = await client.cmd(f"UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (From Subject)] RFC822.HEADER BODY.PEEK[HEADER]<2.5> BODY.PEEK[HEADER.FIELDS.NOT (Subject)])")
        assert r[0] == want, (r[0], want)
        # With an attribute that needs the whole file, the same header values.
        r2 = await client.cmd(f"UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (From Subject)] RFC822.HEADER BODY.PEEK[HEADER]<2.5> BODY.PEEK[HEADER.FIELDS.NOT (Subject)] RFC822.SIZE BODY.PEEK[TEXT])")
        assert r2[0].startswith(want[: -len(b")\r\n")] + b" RFC822.SIZE %d BODY[TEXT] " % len(raw)), r2[0]
