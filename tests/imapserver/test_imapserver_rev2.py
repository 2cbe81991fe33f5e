"""ENABLE (RFC 5161), IMAP4rev2 per session (RFC 9051 appendix E) and UTF8=ACCEPT (RFC 6855)."""

from __future__ import annotations

from imaphelpers import SIMPLE_MSG, Client, append, connect


async def test_enable_reports_only_known_capabilities(client: Client) -> None:
    r = await client.cmd("ENABLE IMAP4rev2 FOO CONDSTORE")
    assert r[0] == b"* ENABLED IMAP4rev2 CONDSTORE\r\n" and b" OK " in r[-1]
    r = await client.cmd("ENABLE QRESYNC")
    assert r[0] == b"* ENABLED QRESYNC\r\n"
    r = await client.cmd("ENABLE")
    assert b" BAD " in r[-1]


async def test_enable_qresync_implies_condstore(client: Client) -> None:
    r = await client.cmd("ENABLE QRESYNC")
    assert r[0] == b"* ENABLED QRESYNC CONDSTORE\r\n"


async def test_enable_before_login_is_bad(port: int) -> None:
    c = await connect(port, login=False)
    r = await c.cmd("ENABLE IMAP4rev2")
    assert b" BAD " in r[-1]


async def test_rev1_and_rev2_select_and_search(port: int) -> None:
    c1 = await connect(port)
    await append(c1, SIMPLE_MSG)
    r = await c1.cmd("SELECT INBOX")
    assert b"* 0 RECENT\r\n" in r and any(b"[UNSEEN 1]" in x for x in r)
    assert not any(x.startswith(b"* LIST") for x in r)
    r = await c1.cmd("SEARCH ALL")
    assert r[0] == b"* SEARCH 1\r\n"
    c2 = await connect(port)
    await c2.cmd("ENABLE IMAP4rev2")
    r = await c2.cmd("SELECT INBOX")
    assert not any(b"RECENT" in x or b"[UNSEEN" in x for x in r)
    assert b'* LIST () "/" INBOX\r\n' in r
    r = await c2.cmd("SEARCH ALL")
    assert r[0] == b'* ESEARCH (TAG "t4") ALL 1\r\n'
    r = await c2.cmd("UID SEARCH DELETED")
    assert r[0] == b'* ESEARCH (TAG "t5") UID\r\n'
    r = await c2.cmd("SEARCH RECENT")
    assert b" BAD " in r[-1]


async def test_utf8_mailbox_names(port: int) -> None:
    c1 = await connect(port)
    r = await c1.cmd("CREATE Caf&AOk-")
    assert b" OK " in r[-1]
    r = await c1.cmd('LIST "" Caf*')
    assert r[0] == b'* LIST (\\HasNoChildren) "/" Caf&AOk-\r\n'
    # Invalid modified UTF-7 is refused.
    for bad in ("Caf&AOk", "Caf&AGE-", "Caf&Jjo!-"):
        r = await c1.cmd(f"CREATE {bad}")
        assert b" BAD " in r[-1], bad
    c2 = await connect(port)
    await c2.cmd("ENABLE UTF8=ACCEPT")
    r = await c2.cmd(b'LIST "" Caf*')
    assert r[0] == '* LIST (\\HasNoChildren) "/" "Café"\r\n'.encode()
    r = await c2.cmd('SELECT "Café"'.encode())
    assert b" OK " in r[-1]
    r = await c2.cmd('STATUS "Café" (MESSAGES)'.encode())
    assert r[0] == '* STATUS "Café" (MESSAGES 0)\r\n'.encode()
    # With UTF-8, "&" is just a character.
    r = await c2.cmd('CREATE "a&b"')
    assert b" OK " in r[-1]
    r = await c1.cmd('LIST "" a*')
    assert b'* LIST (\\HasNoChildren) "/" a&-b\r\n' in r
