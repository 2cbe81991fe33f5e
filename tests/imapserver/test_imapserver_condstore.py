"""CONDSTORE and QRESYNC (RFC 7162): HIGHESTMODSEQ, FETCH MODSEQ/CHANGEDSINCE, STORE
UNCHANGEDSINCE, SEARCH MODSEQ, SELECT (QRESYNC ...), VANISHED."""

from __future__ import annotations

import re

from imaphelpers import SIMPLE_MSG, Client, append, connect

from mox.config.load import Config
from mox.store.deliver import open_config_account
from mox.store.model import Flags


def _num(pattern: bytes, lines: list[bytes]) -> int:
    for x in lines:
        m = re.search(pattern, x)
        if m:
            return int(m.group(1))
    raise AssertionError(f"{pattern!r} not in {lines!r}")


async def test_condstore_select_fetch_store_search(client: Client) -> None:
    for _ in range(3):
        await append(client, SIMPLE_MSG)
    r = await client.cmd("SELECT INBOX")
    assert not any(b"HIGHESTMODSEQ" in x for x in r)
    r = await client.cmd("STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
    hms = _num(rb"HIGHESTMODSEQ (\d+)", r)
    # STATUS HIGHESTMODSEQ enabled CONDSTORE: the selected mailbox's modseq is announced.
    assert any(b"OK [HIGHESTMODSEQ %d]" % hms in x for x in r)
    r = await client.cmd("FETCH 1:* (MODSEQ)")
    mods = [_num(rb"MODSEQ \((\d+)\)", [x]) for x in r[:-1]]
    assert len(mods) == 3 and max(mods) == hms
    r = await client.cmd("UID STORE 2 +FLAGS (\\Flagged)")
    m2 = _num(rb"MODSEQ \((\d+)\)", r)
    assert m2 > hms and r[0].startswith(b"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (")
    r = await client.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {hms})")
    assert len(r) == 2 and r[0] == b"* 2 FETCH (FLAGS (\\Flagged) MODSEQ (%d))\r\n" % m2
    # UNCHANGEDSINCE: message 2 changed after hms, 1 and 3 did not.
    r = await client.cmd(f"STORE 1:3 (UNCHANGEDSINCE {hms}) +FLAGS.SILENT (\\Seen)")
    assert b" OK [MODIFIED 2]" in r[-1]
    assert [x.split(b" FETCH")[0] for x in r[:-1]] == [b"* 1", b"* 3"]
    r = await client.cmd("FETCH 2 FLAGS")
    assert b"\\Seen" not in r[0]
    r = await client.cmd(f"UID SEARCH MODSEQ {m2 + 1}")
    assert r[0].startswith(b"* SEARCH 1 3 (MODSEQ ")
    r = await client.cmd("SEARCH MODSEQ 999999999")
    assert r[0] == b"* SEARCH\r\n"
    r = await client.cmd("STORE 1 (UNCHANGEDSINCE 0) +FLAGS (x)")
    assert b"[MODIFIED 1]" in r[-1]


async def test_select_condstore_and_live_modseq(port: int, client: Client, cfg: Config) -> None:
    await append(client, SIMPLE_MSG)
    r = await client.cmd("SELECT INBOX (CONDSTORE)")
    assert any(b"OK [HIGHESTMODSEQ " in x for x in r)
    acc = await open_config_account(cfg, "mox")
    try:
        await acc.set_flags("Inbox", [1], add=Flags.FLAGGED)
    finally:
        await acc.close()
    r = await client.cmd("NOOP")
    assert re.fullmatch(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)\r\n", r[0])


async def test_qresync_select_and_vanished(port: int, client: Client) -> None:
    for _ in range(4):
        await append(client, SIMPLE_MSG)
    r = await client.cmd("SELECT INBOX (QRESYNC (1 1))")
    assert b" BAD " in r[-1]  # Not enabled.
    await client.cmd("ENABLE QRESYNC")
    r = await client.cmd("SELECT INBOX")
    uidvalidity = _num(rb"UIDVALIDITY (\d+)", r)
    hms = _num(rb"HIGHESTMODSEQ (\d+)", r)
    other = await connect(port)
    await other.cmd("SELECT INBOX")
    await other.cmd("STORE 2 +FLAGS (\\Deleted)")
    await other.cmd("EXPUNGE")
    await other.cmd("STORE 3 +FLAGS (\\Answered)")  # Was UID 4.
    other.writer.close()
    # Live: VANISHED instead of EXPUNGE.
    r = await client.cmd("NOOP")
    assert b"* VANISHED 2\r\n" in r and not any(b"EXPUNGE" in x for x in r)
    r = await client.cmd("EXPUNGE")
    assert b" OK [HIGHESTMODSEQ " in r[-1]
    # Resynchronise from the old state: UID 2 vanished, UID 4 changed.
    r = await client.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {hms} 1:4))")
    assert b"* OK [CLOSED] previous mailbox closed\r\n" in r
    assert b"* VANISHED (EARLIER) 2\r\n" in r
    assert any(x.startswith(b"* 3 FETCH (UID 4 FLAGS (\\Answered) MODSEQ (") for x in r)
    # Known UIDs limit the VANISHED report.
    r = await client.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {hms} 3:4))")
    assert not any(b"VANISHED" in x for x in r)
    # Another UIDVALIDITY: no resync data.
    r = await client.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity + 1} {hms}))")
    assert not any(b"VANISHED" in x or b"FETCH" in x for x in r)
    r = await client.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {hms} VANISHED)")
    assert r[0] == b"* VANISHED (EARLIER) 2\r\n"
    assert len(r) == 3 and r[1].startswith(b"* 3 FETCH (UID 4 FLAGS (\\Answered) MODSEQ (")
    r = await client.cmd("FETCH 1:* (FLAGS) (VANISHED)")
    assert b" BAD " in r[-1]


async def test_vanished_needs_qresync(client: Client) -> None:
    await append(client, SIMPLE_MSG)
    await client.cmd("SELECT INBOX")
    r = await client.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert b" BAD " in r[-1]
    r = await client.cmd("UID FETCH 1:* (FLAGS) (VANISHED)")
    assert b" BAD " in r[-1]


async def test_uidonly(port: int, client: Client) -> None:
    for _ in range(3):
        await append(client, SIMPLE_MSG)
    r = await client.cmd("ENABLE UIDONLY")
    assert r[0] == b"* ENABLED UIDONLY\r\n"
    await client.cmd("SELECT INBOX")
    for bad in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (x)", "SEARCH ALL", "COPY 1 Trash", "MOVE 1 Trash", "SORT (DATE) UTF-8 ALL"):
        r = await client.cmd(bad)
        assert b"BAD [UIDREQUIRED]" in r[-1], bad
    r = await client.cmd("UID SEARCH 1:2")
    assert b"BAD [UIDREQUIRED]" in r[-1]
    r = await client.cmd("UID FETCH 2:3 (FLAGS)")
    assert r[:-1] == [b"* 2 UIDFETCH (FLAGS ())\r\n", b"* 3 UIDFETCH (FLAGS ())\r\n"]
    r = await client.cmd("UID STORE 3 +FLAGS (\\Deleted)")
    assert r[0] == b"* 3 UIDFETCH (FLAGS (\\Deleted))\r\n"
    other = await connect(port)
    await other.cmd("SELECT INBOX")
    await other.cmd("UID STORE 1 +FLAGS (\\Seen)")
    other.writer.close()
    r = await client.cmd("EXPUNGE")
    assert b"* VANISHED 3\r\n" in r and b"* 1 UIDFETCH (FLAGS (\\Seen))\r\n" in r
    r = await client.cmd("UID SEARCH ALL")
    assert r[0] == b"* SEARCH 1 2\r\n"
