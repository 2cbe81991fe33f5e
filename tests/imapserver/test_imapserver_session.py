"""The IMAP server in-process: login, mailboxes, fetch, store, search, append, copy/move, expunge, idle."""

from __future__ import annotations

import asyncio

import pytest
from imaphelpers import PASSWORD, Client, connect

from mox.config.load import Config
from mox.imapserver import server as imapserver
from mox.store.deliver import open_config_account

MSG = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: mox@localhost\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= hello\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"first part with Needle\r\n"
    b"--b\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>second</p>\r\n"
    b"--b--\r\n"
)


async def _append(c: Client, data: bytes, flags: str = "") -> list[bytes]:
    c.n += 1
    tag = b"t%d" % c.n
    c.send(tag + b" APPEND INBOX (" + flags.encode() + b") {%d+}\r\n" % len(data) + data + b"\r\n")
    out = []
    while True:
        line = await c.line()
        out.append(line)
        if line.startswith(tag + b" "):
            return out


async def test_capabilities_and_bad_login(port: int) -> None:
    c = await connect(port, login=False)
    r = await c.cmd("CAPABILITY")
    caps = r[0].split()[2:]
    assert caps[:3] == [b"IMAP4rev2", b"IMAP4rev1", b"ENABLE"]
    for cap in (b"AUTH=PLAIN", b"AUTH=SCRAM-SHA-256", b"AUTH=CRAM-MD5", b"CONDSTORE", b"QRESYNC", b"ESEARCH", b"COMPRESS=DEFLATE"):
        assert cap in caps
    # No TLS, so no channel binding: no -PLUS mechanisms (DESIGN.md section 5).
    assert b"AUTH=SCRAM-SHA-256-PLUS" not in caps and b"STARTTLS" not in caps
    r = await c.cmd("LOGIN mox@localhost wrong")
    assert r[-1].startswith(b"t2 NO [AUTHENTICATIONFAILED]")
    r = await c.cmd("SELECT INBOX")
    assert b" BAD " in r[-1]
    r = await c.cmd("FOO")
    assert b" BAD " in r[-1]
    import base64

    ir = base64.b64encode(b"\0mox@localhost\0" + PASSWORD.encode()).decode()
    r = await c.cmd(f"AUTHENTICATE PLAIN {ir}")
    assert r[-1].startswith(b"t5 OK [CAPABILITY")
    r = await c.cmd("LOGOUT")
    assert r[0].startswith(b"* BYE")


async def test_list_select_status_create_rename_delete(client: Client) -> None:
    r = await client.cmd('LIST "" "*"')
    assert b'* LIST (\\HasNoChildren) "/" INBOX\r\n' in r
    assert any(b"\\Sent" in x and b"Sent" in x for x in r)
    assert (await client.cmd("CREATE a/b"))[-1].startswith(b"t3 OK")
    r = await client.cmd('LIST "" "%"')
    assert b'* LIST (\\HasChildren) "/" a\r\n' in r
    assert not any(b"a/b" in x for x in r)
    r = await client.cmd('LIST "" ""')
    assert r[0] == b'* LIST (\\Noselect) "/" ""\r\n'
    assert (await client.cmd("RENAME a/b a/c"))[-1].startswith(b"t6 OK")
    assert (await client.cmd("DELETE a"))[-1].startswith(b"t7 NO")
    assert (await client.cmd("DELETE a/c"))[-1].startswith(b"t8 OK")
    r = await client.cmd("SELECT nonexistent")
    assert b"NO [NONEXISTENT]" in r[-1]
    r = await client.cmd("STATUS INBOX (MESSAGES UIDNEXT UNSEEN RECENT)")
    assert r[0] == b"* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UNSEEN 0 RECENT 0)\r\n"
    r = await client.cmd("EXAMINE INBOX")
    assert b"* 0 EXISTS\r\n" in r and b"[READ-ONLY]" in r[-1]


async def test_append_fetch_store_search(client: Client) -> None:
    r = await _append(client, MSG, "\\Flagged")
    assert b"[APPENDUID " in r[-1] and r[-1].endswith(b" 1] append done\r\n")
    r = await client.cmd("SELECT INBOX")
    assert b"* 1 EXISTS\r\n" in r and b"[READ-WRITE]" in r[-1]
    r = await client.cmd("FETCH 1 (UID FLAGS RFC822.SIZE ENVELOPE)")
    assert r[0].startswith(b"* 1 FETCH (UID 1 FLAGS (\\Flagged) RFC822.SIZE %d ENVELOPE (" % len(MSG))
    assert b'"Alice" NIL "alice" "example.org"' in r[0]
    r = await client.cmd("FETCH 1 BODYSTRUCTURE")
    assert b'("TEXT" "PLAIN"' in r[0] and b'"MIXED"' in r[0]
    r = await client.cmd("FETCH 1 (BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[]<0.6>)")
    assert b"BODY[1] {22}\r\nfirst part with Needle BODY" in r[0]
    assert b"BODY[HEADER.FIELDS (SUBJECT)] {40}\r\nSubject: =?utf-8?q?caf=C3=A9?= hello\r\n\r\n" in r[0]
    assert b"BODY[]<0> {6}\r\nFrom: " in r[0]
    r = await client.cmd("FETCH 1 FLAGS")
    assert b"\\Seen" not in r[0]
    r = await client.cmd("FETCH 1 BODY[2.MIME]")
    assert b"Content-Type: text/html" in r[0] and b"FLAGS (\\Seen \\Flagged)" in r[0]
    r = await client.cmd("FETCH 2 FLAGS")
    assert b" BAD " in r[-1]
    r = await client.cmd("STORE 1 -FLAGS (\\Seen)")
    assert r[0] == b"* 1 FETCH (FLAGS (\\Flagged))\r\n"
    r = await client.cmd("UID STORE 1 +FLAGS.SILENT (custom)")
    assert r == [b"t11 OK store done\r\n"]
    for key, hit in [
        ("UNSEEN", True), ("SEEN", False), ("FLAGGED", True), ("KEYWORD custom", True), ("SUBJECT {5+}\r\nCAFÉ", True),
        ("FROM alice", True), ("BODY needle", True), ("TEXT nothere", False), ("NOT OR SEEN DELETED", True),
        ("LARGER 10000", False), ("UID 1:*", True), ("1", True), ('HEADER Message-ID "m1@"', True),
    ]:
        r = await client.cmd(f"SEARCH CHARSET UTF-8 {key}".encode())
        assert r[0] == (b"* SEARCH 1\r\n" if hit else b"* SEARCH\r\n"), key
    for key, hit in [
        ("SENTON 1-Jan-2024", True), ("SENTBEFORE 1-Jan-2024", False), ("SENTSINCE 1-Jan-2024", True),
        ("SINCE 1-Jan-2024", True), ("BEFORE 1-Jan-2024", False),
    ]:
        r = await client.cmd(f"UID SEARCH {key}")
        assert r[0] == (b"* SEARCH 1\r\n" if hit else b"* SEARCH\r\n"), key
    r = await client.cmd("SEARCH SAVEDSINCE 1-Jan-2020")
    assert r[0] == b"* SEARCH 1\r\n"
    r = await client.cmd("SEARCH EMAILID x")
    assert b" BAD " in r[-1]
    r = await client.cmd("SEARCH CHARSET KOI8-R ALL")
    assert b" NO [BADCHARSET" in r[-1]


async def test_copy_move_expunge_with_sequence_bookkeeping(client: Client) -> None:
    for _ in range(4):
        await _append(client, MSG)
    await client.cmd("CREATE Other")
    await client.cmd("SELECT INBOX")
    r = await client.cmd("COPY 1:2 Other")
    assert r[-1].startswith(b"t8 OK [COPYUID ") and b" 1:2 1:2]" in r[-1]
    r = await client.cmd("UID MOVE 2 Other")
    assert r[0].startswith(b"* OK [COPYUID ") and b"* 2 EXPUNGE\r\n" in r
    r = await client.cmd("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    r = await client.cmd("EXPUNGE")
    assert r[:2] == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
    r = await client.cmd("UID FETCH 1:* UID")
    assert r[0] == b"* 1 FETCH (UID 3)\r\n"
    r = await client.cmd("STATUS Other (MESSAGES)")
    assert r[0] == b"* STATUS Other (MESSAGES 3)\r\n"


async def test_idle_reports_other_sessions_changes(port: int, client: Client, cfg: Config) -> None:
    await _append(client, MSG)
    await _append(client, MSG)
    await client.cmd("SELECT INBOX")
    other = await connect(port)
    await other.cmd("SELECT INBOX")
    # Non-UID FETCH must not report expunges; NOOP does.
    await other.cmd("STORE 1 +FLAGS (\\Deleted)")
    await other.cmd("EXPUNGE")
    r = await client.cmd("FETCH 2 UID")
    assert r[0] == b"* 2 FETCH (UID 2)\r\n" and len(r) == 2
    r = await client.cmd("NOOP")
    assert b"* 1 EXPUNGE\r\n" in r
    client.send(b"i IDLE\r\n")
    assert (await client.line()).startswith(b"+ ")
    acc = await open_config_account(cfg, "mox")
    try:
        await acc.add_message("Inbox", MSG)
        assert await client.line() == b"* 2 EXISTS\r\n"
        await acc.set_flags("Inbox", [3], add=imapserver.Flags.FLAGGED)
        assert await client.line() == b"* 2 FETCH (UID 3 FLAGS (\\Flagged))\r\n"
    finally:
        await acc.close()
    client.send(b"DONE\r\n")
    assert (await client.line()) == b"i OK idle done\r\n"
    other.writer.close()


async def test_idle_timeout_disconnects(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imapserver, "IDLE_TIMEOUT", 0.2)
    c = await connect(port, login=False)
    assert (await c.line()).startswith(b"* BYE")
    assert await asyncio.wait_for(c.reader.read(), 5) == b""


async def test_noop_reports_adds_and_expunges_in_order(client: Client, cfg: Config) -> None:
    await _append(client, MSG)
    await _append(client, MSG)
    await client.cmd("SELECT INBOX")
    acc = await open_config_account(cfg, "mox")
    try:
        await acc.add_message("Inbox", MSG)  # uid 3
        await acc.set_flags("Inbox", [1], add=imapserver.Flags.DELETED)
        await acc.expunge("Inbox", [1])
        await acc.add_message("Inbox", MSG)  # uid 4, removed before the client hears of it
        await acc.set_flags("Inbox", [4], add=imapserver.Flags.DELETED)
        await acc.expunge("Inbox", [4])
    finally:
        await acc.close()
    r = await client.cmd("NOOP")
    assert r[:-1] == [b"* 1 FETCH (UID 1 FLAGS (\\Deleted))\r\n", b"* 1 EXPUNGE\r\n", b"* 2 EXISTS\r\n"]
    r = await client.cmd("UID FETCH 1:* UID")
    assert r[:-1] == [b"* 1 FETCH (UID 2)\r\n", b"* 2 FETCH (UID 3)\r\n"]
    r = await client.cmd("FETCH 3 UID")
    assert b"BAD" in r[-1]


async def test_login_disabled_without_tls_unless_configured(port: int, cfg: Config) -> None:
    cfg.static.Listeners["local"].IMAP.NoRequireSTARTTLS = False
    c = await connect(port, login=False)
    r = await c.cmd("CAPABILITY")
    assert b" LOGINDISABLED" in r[0] and b"AUTH=PLAIN" not in r[0]
    r = await c.cmd(f"LOGIN mox@localhost {PASSWORD}")
    assert r[-1].startswith(b"t2 NO [PRIVACYREQUIRED]")
    r = await c.cmd("STARTTLS")
    assert b" BAD " in r[-1]  # No TLS configured on this endpoint.


async def test_idle_without_selected_mailbox_and_pipelined_done(client: Client, cfg: Config) -> None:
    client.send(b"i IDLE\r\n")
    assert (await client.line()).startswith(b"+ ")
    acc = await open_config_account(cfg, "mox")
    try:
        await acc.add_message("Inbox", MSG)
    finally:
        await acc.close()
    await asyncio.sleep(0.05)
    client.send(b"DONE\r\n")
    assert (await client.line()) == b"i OK idle done\r\n"
    await client.cmd("SELECT INBOX")
    client.send(b"j IDLE\r\nDONE\r\n")
    assert (await client.line()).startswith(b"+ ")
    assert (await client.line()) == b"j OK idle done\r\n"


async def test_store_unknown_system_flag_is_bad(client: Client) -> None:
    await _append(client, MSG)
    await client.cmd("SELECT INBOX")
    r = await client.cmd("STORE 1 +FLAGS (\\Recent)")
    assert b" BAD " in r[-1]
    r = await client.cmd("STORE 1 FLAGS (\\Seen kw)")
    assert r[0] == b"* 1 FETCH (FLAGS (\\Seen kw))\r\n"
    r = await client.cmd("STORE 1 FLAGS (\\Draft)")
    assert r[0] == b"* 1 FETCH (FLAGS (\\Draft))\r\n"
