"""ESEARCH and SEARCHRES, LIST-EXTENDED/LIST-STATUS/SPECIAL-USE/CREATE-SPECIAL-USE, STATUS=SIZE,
NAMESPACE, ID, APPENDLIMIT, MULTIAPPEND, BINARY, SAVEDATE, WITHIN, PREVIEW, REPLACE."""

from __future__ import annotations

import base64

import pytest
from imaphelpers import SIMPLE_MSG, Client, append, connect

from mox.config.load import Config

B64_MSG = (
    b"From: a@example.org\r\n"
    b"Subject: b64\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="x"\r\n'
    b"\r\n"
    b"--x\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.b64encode("héllo wörld\n".encode()) + b"\r\n"
    b"--x\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: x-unknown\r\n"
    b"\r\n"
    b"zzz\r\n"
    b"--x--\r\n"
)


async def test_esearch_and_searchres(client: Client) -> None:
    for _ in range(5):
        await append(client, SIMPLE_MSG)
    await client.cmd("SELECT INBOX")
    await client.cmd("STORE 2,4 +FLAGS (\\Flagged)")
    r = await client.cmd("SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
    assert r[0] == b'* ESEARCH (TAG "t9") MIN 2 MAX 4 ALL 2,4 COUNT 2\r\n'
    r = await client.cmd("UID SEARCH RETURN () 1:3")
    assert r[0] == b'* ESEARCH (TAG "t10") UID ALL 1:3\r\n'
    r = await client.cmd("SEARCH RETURN (COUNT) DELETED")
    assert r[0] == b'* ESEARCH (TAG "t11") COUNT 0\r\n'
    r = await client.cmd("SEARCH RETURN (SAVE) FLAGGED")
    assert r == [b"t12 OK search done\r\n"]
    r = await client.cmd("FETCH $ (UID)")
    assert r[:-1] == [b"* 2 FETCH (UID 2)\r\n", b"* 4 FETCH (UID 4)\r\n"]
    r = await client.cmd("UID SEARCH UID $ 3:*")
    assert r[0] == b"* SEARCH 4\r\n"
    r = await client.cmd("SEARCH RETURN (SAVE MIN) ALL")
    assert r[0] == b'* ESEARCH (TAG "t15") MIN 1\r\n'
    r = await client.cmd("UID FETCH $ UID")
    assert r[:-1] == [b"* 1 FETCH (UID 1)\r\n"]
    r = await client.cmd("SEARCH RETURN (BOGUS) ALL")
    assert b" BAD " in r[-1]
    # A failed SEARCH with SAVE empties the saved result.
    r = await client.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
    assert b" NO " in r[-1]
    r = await client.cmd("UID FETCH $ UID")
    assert r == [b"t19 OK fetch done\r\n"]


async def test_list_extended_status_special_use(client: Client) -> None:
    r = await client.cmd("CREATE Arch (USE (\\Archive))")
    assert b" OK " in r[-1]
    r = await client.cmd("CREATE X (USE (\\All))")
    assert b"NO [USEATTR]" in r[-1]
    await client.cmd("CREATE a/b")
    await client.cmd("UNSUBSCRIBE a")
    await client.cmd("SUBSCRIBE gone")
    r = await client.cmd('LIST (SPECIAL-USE) "" "*"')
    assert b'* LIST (\\HasNoChildren \\Archive) "/" Arch\r\n' in r
    assert not any(b"INBOX" in x for x in r)
    r = await client.cmd('LIST (SUBSCRIBED) "" "*"')
    assert b'* LIST (\\NonExistent \\Subscribed) "/" gone\r\n' in r
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" a/b\r\n' in r
    assert not any(x.endswith(b' "/" a\r\n') for x in r)
    r = await client.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert any(x.endswith(b'"/" a ("CHILDINFO" ("SUBSCRIBED"))\r\n') and b"Subscribed" not in x for x in r)
    r = await client.cmd('LIST (RECURSIVEMATCH) "" "%"')
    assert b" BAD " in r[-1]
    await append(client, SIMPLE_MSG, "\\Deleted")
    r = await client.cmd('LIST "" (INBOX a) RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES SIZE DELETED UNSEEN))')
    assert r[0] == b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX\r\n'
    assert r[1] == b"* STATUS INBOX (MESSAGES 1 SIZE %d DELETED 1 UNSEEN 1)\r\n" % len(SIMPLE_MSG)
    assert r[2] == b'* LIST (\\HasChildren) "/" a\r\n'
    r = await client.cmd("STATUS INBOX (SIZE APPENDLIMIT UIDNEXT)")
    assert r[0].startswith(b"* STATUS INBOX (SIZE %d APPENDLIMIT " % len(SIMPLE_MSG)) and r[0].endswith(b" UIDNEXT 2)\r\n")
    r = await client.cmd("STATUS INBOX (DELETED DELETED-STORAGE)")
    assert r[0] == b"* STATUS INBOX (DELETED 1 DELETED-STORAGE 1)\r\n"
    r = await client.cmd("STATUS INBOX (MAILBOXID)")
    assert b" BAD " in r[-1]
    r = await client.cmd("LSUB \"\" *")
    assert b'* LSUB (\\Noselect) "/" gone\r\n' in r


async def test_namespace_id_and_appendlimit(client: Client) -> None:
    r = await client.cmd("NAMESPACE")
    assert r[0] == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    r = await client.cmd('ID ("name" "test" "version" NIL)')
    assert r[0] == b'* ID ("name" "mox")\r\n'
    r = await client.cmd("ID NIL")
    assert r[0] == b'* ID ("name" "mox")\r\n'
    r = await client.cmd("CAPABILITY")
    assert b" APPENDLIMIT=" in r[0]
    # A message above APPENDLIMIT is refused before its literal is sent.
    r = await client.cmd("APPEND INBOX {999999999999}")
    assert b"BAD [TOOBIG]" in r[-1]


async def test_multiappend_is_atomic(client: Client) -> None:
    lit = b"{%d+}\r\n" % len(SIMPLE_MSG) + SIMPLE_MSG
    r = await client.cmd(b"APPEND INBOX (\\Seen) " + lit + b" " + lit + b" (kw) " + lit)
    assert r[-1].endswith(b"OK [APPENDUID " + r[-1].split(b"APPENDUID ")[1].split(b" ")[0] + b" 1:3] append done\r\n")
    # A bad flag in the last message: nothing is added.
    r = await client.cmd(b"APPEND INBOX " + lit + b" (\\Recent) " + lit)
    assert b" BAD " in r[-1]
    r = await client.cmd("STATUS INBOX (MESSAGES)")
    assert r[0] == b"* STATUS INBOX (MESSAGES 3)\r\n"
    r = await client.cmd(b"APPEND Nonexistent " + lit + b" " + lit)
    assert b"NO [TRYCREATE]" in r[-1]


async def test_binary_savedate_within_preview(client: Client) -> None:
    await append(client, B64_MSG)
    await client.cmd("SELECT INBOX")
    r = await client.cmd("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
    body = "héllo wörld\r\n".encode()
    assert r[0] == b"* 1 FETCH (BINARY[1] {%d}\r\n%s BINARY.SIZE[1] %d)\r\n" % (len(body), body, len(body))
    r = await client.cmd("FETCH 1 (BINARY.PEEK[1]<1.4>)")
    assert r[0] == b"* 1 FETCH (BINARY[1]<1> {4}\r\n" + body[1:5] + b")\r\n"
    r = await client.cmd("FETCH 1 BINARY.PEEK[2]")
    assert b"NO [UNKNOWN-CTE]" in r[-1]
    r = await client.cmd("FETCH 1 (FLAGS)")
    assert b"\\Seen" not in r[0]
    r = await client.cmd("FETCH 1 (BINARY[1])")
    assert b"FLAGS (\\Seen)" in r[0]
    r = await client.cmd("FETCH 1 (SAVEDATE PREVIEW)")
    assert b"SAVEDATE \"" in r[0] and "PREVIEW {13}\r\nhéllo wörld)".encode() in r[0]
    for key, hit in [("YOUNGER 3600", True), ("OLDER 3600", False), ("SAVEDON 1-Jan-2000", False), ("SAVEDATESUPPORTED", True)]:
        r = await client.cmd(f"SEARCH {key}")
        assert r[0] == (b"* SEARCH 1\r\n" if hit else b"* SEARCH\r\n"), key
    r = await client.cmd("SEARCH YOUNGER 0")
    assert b" BAD " in r[-1]
    # Appending binary content with literal8.
    data = b"Subject: bin\r\n\r\nnul\0byte\r\n"
    r = await client.cmd(b"APPEND INBOX ~{%d+}\r\n" % len(data) + data)
    assert b" OK " in r[-1]


async def test_replace(client: Client) -> None:
    await append(client, SIMPLE_MSG)
    await append(client, SIMPLE_MSG)
    await client.cmd("SELECT INBOX")
    new = SIMPLE_MSG.replace(b"simple body", b"edited body")
    r = await client.cmd(b"REPLACE 1 INBOX (\\Draft) {%d+}\r\n" % len(new) + new)
    assert r[0].startswith(b"* OK [APPENDUID ") and r[0].endswith(b" 3] replacement appended\r\n")
    assert b"* 1 EXPUNGE\r\n" in r and b"* 2 EXISTS\r\n" in r and b" OK " in r[-1]
    r = await client.cmd("UID FETCH 3 (FLAGS BODY.PEEK[TEXT])")
    assert b"FLAGS (\\Draft)" in r[0] and b"edited body" in r[0]
    r = await client.cmd(b"UID REPLACE 99 INBOX {%d+}\r\n" % len(new) + new)
    assert b" NO " in r[-1]
    r = await client.cmd(b"REPLACE 1 Nonexistent {%d+}\r\n" % len(new) + new)
    assert b"NO [TRYCREATE]" in r[-1]
    r = await client.cmd("STATUS INBOX (MESSAGES)")
    assert r[0] == b"* STATUS INBOX (MESSAGES 2)\r\n"


async def test_quota(port: int, cfg: Config) -> None:
    c = await connect(port)
    r = await c.cmd("GETQUOTAROOT INBOX")
    assert r[:-1] == [b'* QUOTAROOT INBOX ""\r\n']  # No quota configured.
    r = await c.cmd('GETQUOTA ""')
    assert r == [b"t3 OK getquota done\r\n"]
    cfg.dynamic.Accounts["mox"].QuotaMessageSize = 10_000
    c2 = await connect(port)
    await append(c2, SIMPLE_MSG)
    r = await c2.cmd("GETQUOTAROOT INBOX")
    assert r[:-1] == [b'* QUOTAROOT INBOX ""\r\n', b'* QUOTA "" (STORAGE 1 10)\r\n']
    r = await c2.cmd('GETQUOTA "other"')
    assert b" NO " in r[-1]
    r = await c2.cmd("GETQUOTAROOT Nonexistent")
    assert b"NO [NONEXISTENT]" in r[-1]


async def test_metadata(client: Client) -> None:
    r = await client.cmd('SETMETADATA "" (/private/comment "my comment" /shared/vendor/x/y {3+}\r\nabc)')
    assert b" OK " in r[-1], r
    r = await client.cmd('GETMETADATA "" /private/comment')
    assert r[0] == b'* METADATA "" (/private/comment "my comment")\r\n'
    r = await client.cmd('GETMETADATA "" (/private/Comment /shared/nothing)')
    assert r[0] == b'* METADATA "" (/private/comment "my comment")\r\n'
    r = await client.cmd('GETMETADATA (DEPTH infinity) "" /shared')
    assert r[0] == b'* METADATA "" (/shared/vendor/x/y "abc")\r\n'
    r = await client.cmd('GETMETADATA (DEPTH 1) "" /shared')
    assert r == [b"t6 OK getmetadata done\r\n"]
    r = await client.cmd('GETMETADATA (MAXSIZE 5) "" (/private/comment /shared/vendor/x/y)')
    assert r[0] == b'* METADATA "" (/shared/vendor/x/y "abc")\r\n'
    assert b"OK [METADATA LONGENTRIES 10]" in r[-1]
    # Mailbox annotations; binary values come back as literal8.
    r = await client.cmd(b"SETMETADATA INBOX (/private/color ~{3+}\r\na\0b)")
    assert b" OK " in r[-1], r
    r = await client.cmd("GETMETADATA INBOX /private/color")
    assert r[0] == b"* METADATA INBOX (/private/color ~{3}\r\na\0b)\r\n"
    r = await client.cmd('LIST "" INBOX RETURN (METADATA (/private/color /private/none))')
    assert r[1] == b"* METADATA INBOX (/private/color ~{3}\r\na\0b)\r\n"
    r = await client.cmd("SETMETADATA INBOX (/private/color NIL)")
    assert b" OK " in r[-1]
    r = await client.cmd("GETMETADATA INBOX /private/color")
    assert len(r) == 1
    for bad, what in [
        ('SETMETADATA INBOX (/other/x "1")', b" NO "),
        ('SETMETADATA INBOX (/private/x/ "1")', b" BAD "),
        ('SETMETADATA INBOX (/private/vendor/x "1")', b" NO "),
        ('SETMETADATA Nonexistent (/private/x "1")', b"NO [NONEXISTENT]"),
        ("GETMETADATA (DEPTH 2) INBOX /private/x", b" BAD "),
        ("SETMETADATA INBOX /private/x 1", b" BAD "),
    ]:
        r = await client.cmd(bad)
        assert what in r[-1], bad
    big = b"x" * 90_000
    for i in range(12):
        r = await client.cmd(b"SETMETADATA \"\" (/private/big%d {%d+}\r\n%s)" % (i, len(big), big))
    assert b"NO [METADATA MAXSIZE " in r[-1]


async def test_multisearch_and_inprogress(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    await client.cmd("CREATE Inbox/sub")
    await client.cmd("CREATE Other")
    await append(client, SIMPLE_MSG)
    await append(client, SIMPLE_MSG, "\\Flagged", mailbox="Inbox/sub")
    await append(client, SIMPLE_MSG, "\\Flagged", mailbox="Other")
    await append(client, SIMPLE_MSG, "\\Flagged", mailbox="Other")
    r = await client.cmd("ESEARCH IN (PERSONAL) FLAGGED")
    lines = sorted(r[:-1])
    assert len(lines) == 2 and lines[0].startswith(b'* ESEARCH (TAG "t8" MAILBOX Inbox/sub UIDVALIDITY ') and lines[0].endswith(b") UID ALL 1\r\n")
    assert lines[1].startswith(b'* ESEARCH (TAG "t8" MAILBOX Other UIDVALIDITY ') and lines[1].endswith(b") UID ALL 1:2\r\n")
    r = await client.cmd("ESEARCH IN (INBOXES) RETURN (COUNT) ALL")
    assert len(r) == 3 and all(b"COUNT 1" in x for x in r[:-1])
    r = await client.cmd("ESEARCH IN (SUBTREE-ONE INBOX MAILBOXES (Other Nonexistent)) RETURN (MIN) UNFLAGGED")
    assert len(r) == 2 and b"MAILBOX INBOX " in r[0] and r[0].endswith(b"UID MIN 1\r\n")
    r = await client.cmd("ESEARCH IN (SELECTED) ALL")
    assert b" BAD " in r[-1]  # Nothing selected.
    r = await client.cmd("ESEARCH IN (PERSONAL) 1:2")
    assert b" BAD " in r[-1]
    r = await client.cmd("ESEARCH IN (PERSONAL) RETURN (SAVE) ALL")
    assert b" BAD " in r[-1]
    await client.cmd("SELECT Other")
    r = await client.cmd("ESEARCH UID 2")
    assert len(r) == 2 and b"MAILBOX Other " in r[0] and r[0].endswith(b"UID ALL 2\r\n")
    # INPROGRESS during a content search (interval shortened).
    from mox.imapserver import search as imapsearch

    monkeypatch.setattr(imapsearch, "INPROGRESS_INTERVAL", 0)
    r = await client.cmd("SEARCH TEXT simple")
    assert r[0] == b'* OK [INPROGRESS ("t16" 2 2)] still searching\r\n' and r[1] == b"* SEARCH 1 2\r\n"
