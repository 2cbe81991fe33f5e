"""SELECT, FETCH of index-only attributes and STORE on whole mailboxes (mox.imapserver.bulk):
the responses, CONDSTORE/UIDONLY forms, and what other sessions see."""

from __future__ import annotations

import asyncio
import datetime
import re

from hypothesis import given
from hypothesis import strategies as st
from imaphelpers import SIMPLE_MSG, Client, append, connect

from mox.config.load import Config
from mox.imapproto import write as w
from mox.imapserver import bulk
from mox.store.deliver import open_config_account
from mox.store.model import Flags


@given(st.floats(min_value=-2e9, max_value=6e10, allow_nan=False) | st.integers(min_value=-2_000_000_000, max_value=60_000_000_000))
def test_date_time_as_datetime(t: float) -> None:
    assert bulk.date_time(t) == w.date_time(datetime.datetime.fromtimestamp(t, datetime.UTC))


def test_date_time_rounding_edges() -> None:
    for t in (0.0, -0.5, 0.9999996, 1.0000004, -1.9999996, 86399.9999999, 1700000000.25):
        assert bulk.date_time(t) == w.date_time(datetime.datetime.fromtimestamp(t, datetime.UTC)), t


def test_flag_list() -> None:
    assert bulk.flag_list(0, "[]") == b"()"
    assert bulk.flag_list(1 | 8, '["$label1", "work"]') == b"(\\Seen \\Deleted $label1 work)"


async def test_fetch_index_attributes(client: Client) -> None:
    await append(client, SIMPLE_MSG)
    client.send(b'a APPEND INBOX (\\Flagged $Work) "05-Jan-2021 01:02:03 +0100" {%d+}\r\n' % len(SIMPLE_MSG) + SIMPLE_MSG + b"\r\n")
    assert b"a OK " in await client.line()
    await append(client, SIMPLE_MSG, flags="\\Seen")
    await client.cmd("SELECT INBOX")
    r = await client.cmd("UID FETCH 2:* (FLAGS RFC822.SIZE INTERNALDATE)")
    assert r[0] == b'* 2 FETCH (UID 2 FLAGS (\\Flagged $work) RFC822.SIZE %d INTERNALDATE "05-Jan-2021 00:02:03 +0000")\r\n' % len(SIMPLE_MSG)
    assert re.fullmatch(rb"\* 3 FETCH \(UID 3 FLAGS \(\\Seen\) RFC822.SIZE \d+ INTERNALDATE \"\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000\"\)\r\n", r[1])
    assert len(r) == 3 and b" OK " in r[2]
    # Attribute order as asked; MODSEQ enables CONDSTORE; SAVEDATE.
    r = await client.cmd("FETCH 1,3 (RFC822.SIZE UID MODSEQ SAVEDATE)")
    assert r[0].startswith(b"* OK [HIGHESTMODSEQ ")
    assert re.fullmatch(rb"\* 1 FETCH \(RFC822.SIZE \d+ UID 1 MODSEQ \(\d+\) SAVEDATE \"[^\"]+\"\)\r\n", r[1])
    assert r[2].startswith(b"* 3 FETCH (RFC822.SIZE ") and len(r) == 4
    # CHANGEDSINCE: only messages changed after the modseq.
    r = await client.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", r[0]).group(1))  # type: ignore[union-attr]
    r = await client.cmd("STORE 1 +FLAGS.SILENT (\\Answered)")
    r = await client.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {hms})")
    assert len(r) == 2 and r[0].startswith(b"* 1 FETCH (FLAGS (\\Answered) MODSEQ (")


async def test_fetch_uidonly(client: Client) -> None:
    for _ in range(2):
        await append(client, SIMPLE_MSG)
    await client.cmd("ENABLE UIDONLY")
    await client.cmd("SELECT INBOX")
    r = await client.cmd("UID FETCH 1:* (FLAGS)")
    assert r[:2] == [b"* 1 UIDFETCH (FLAGS ())\r\n", b"* 2 UIDFETCH (FLAGS ())\r\n"]
    r = await client.cmd("UID STORE 2 +FLAGS (\\Seen)")
    assert r[0] == b"* 2 UIDFETCH (FLAGS (\\Seen))\r\n"


async def test_fetch_expunged_elsewhere_not_yet_reported(port: int, client: Client) -> None:
    for _ in range(3):
        await append(client, SIMPLE_MSG)
    await client.cmd("SELECT INBOX")
    other = await connect(port)
    await other.cmd("SELECT INBOX")
    await other.cmd("STORE 2 +FLAGS (\\Deleted)")
    await other.cmd("EXPUNGE")
    # RFC 9051 section 7.5.1: no EXPUNGE during FETCH; the message is still answered for.
    r = await client.cmd("FETCH 1:3 (UID FLAGS)")
    assert [x.split(b" (")[0] for x in r[:-1]] == [b"* 1 FETCH", b"* 2 FETCH", b"* 3 FETCH"]
    assert r[1] == b"* 2 FETCH (UID 2 FLAGS (\\Deleted))\r\n"
    r = await client.cmd("NOOP")
    assert b"* 2 EXPUNGE\r\n" in r
    r = await client.cmd("UID FETCH 1:* (FLAGS)")
    assert [x[:18] for x in r[:-1]] == [b"* 1 FETCH (UID 1 F", b"* 2 FETCH (UID 3 F"]
    other.writer.close()


async def test_select_unseen_rev1_and_rev2(client: Client) -> None:
    await append(client, SIMPLE_MSG, flags="\\Seen")
    await append(client, SIMPLE_MSG)
    await append(client, SIMPLE_MSG)
    r = await client.cmd("SELECT INBOX")
    assert b"* 3 EXISTS\r\n" in r and b"* OK [UNSEEN 2] first unseen\r\n" in r
    await client.cmd("STORE 1:* +FLAGS.SILENT (\\Seen)")
    r = await client.cmd("EXAMINE INBOX")
    assert not any(b"UNSEEN" in x for x in r) and b" OK [READ-ONLY] " in r[-1]
    await client.cmd("ENABLE IMAP4rev2")
    await client.cmd("STORE 1 -FLAGS.SILENT (\\Seen)")  # Read-only: refused.
    r = await client.cmd("SELECT INBOX")
    assert not any(b"UNSEEN" in x or b"RECENT" in x for x in r) and b"* 3 EXISTS\r\n" in r


async def test_store_all_other_session_sees_flags(port: int, client: Client) -> None:
    for _ in range(3):
        await append(client, SIMPLE_MSG)
    await client.cmd("SELECT INBOX")
    other = await connect(port)
    await other.cmd("ENABLE CONDSTORE")
    await other.cmd("SELECT INBOX")
    other.send(b"i IDLE\r\n")
    assert (await other.line()).startswith(b"+ ")
    r = await client.cmd("STORE 1:* +FLAGS.SILENT (\\Seen)")
    assert len(r) == 1 and b" OK " in r[0]
    seen = [await other.line() for _ in range(3)]
    for i, x in enumerate(seen):
        assert re.fullmatch(rb"\* %d FETCH \(UID %d FLAGS \(\\Seen\) MODSEQ \(\d+\)\)\r\n" % (i + 1, i + 1), x), x
    # All changed in one transaction: one modseq.
    assert len({re.search(rb"MODSEQ \((\d+)\)", x).group(1) for x in seen}) == 1  # type: ignore[union-attr]
    other.send(b"DONE\r\n")
    assert await other.line() == b"i OK idle done\r\n"
    # Not silent: FLAGS for every message addressed, changed or not.
    r = await client.cmd("STORE 1:* +FLAGS (\\Seen)")
    assert r[:3] == [b"* %d FETCH (FLAGS (\\Seen))\r\n" % i for i in (1, 2, 3)]
    # Nothing changed: the other session hears nothing.
    r = await other.cmd("NOOP")
    assert len(r) == 1
    r = await client.cmd("UID STORE 1:* FLAGS (\\Flagged)")
    assert r[:3] == [b"* %d FETCH (UID %d FLAGS (\\Flagged))\r\n" % (i, i) for i in (1, 2, 3)]
    other.writer.close()


async def test_store_all_unchangedsince(port: int, client: Client) -> None:
    for _ in range(4):
        await append(client, SIMPLE_MSG)
    r = await client.cmd("SELECT INBOX (CONDSTORE)")
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(r)).group(1))  # type: ignore[union-attr]
    other = await connect(port)
    await other.cmd("SELECT INBOX")
    await other.cmd("STORE 2,4 +FLAGS.SILENT (\\Answered)")
    r = await client.cmd(f"STORE 1:* (UNCHANGEDSINCE {hms}) +FLAGS (\\Seen)")
    # The changes of the other session come first (this is not a UID command, so after the
    # STORE's own responses); 2 and 4 failed the test and get no FETCH from the STORE.
    store_lines = [x for x in r[:-1] if b"\\Seen" in x]
    assert [x.split(b" FETCH")[0] for x in store_lines] == [b"* 1", b"* 3"]
    assert all(re.search(rb"FLAGS \(\\Seen\) MODSEQ \(\d+\)\)", x) for x in store_lines)
    assert b" OK [MODIFIED 2,4] " in r[-1]
    r = await client.cmd(f"UID STORE 1:* (UNCHANGEDSINCE {hms}) +FLAGS.SILENT (\\Flagged)")
    # 1 and 3 changed with the STORE above, 2 and 4 by the other session: nothing is stored.
    assert b" OK [MODIFIED 1:4] " in r[-1] and not any(b"\\Flagged" in x for x in r)
    r = await client.cmd("UID STORE 1:* +FLAGS.SILENT (\\Flagged)")
    # With CONDSTORE, .SILENT still reports MODSEQ of the changed messages (RFC 7162 section 3.1.3).
    assert [re.sub(rb"MODSEQ \(\d+\)", b"M", x) for x in r[:-1]] == [b"* %d FETCH (UID %d M)\r\n" % (i, i) for i in (1, 2, 3, 4)]
    other.writer.close()


async def test_flag_changes_then_expunge_in_order(port: int, client: Client) -> None:
    for _ in range(3):
        await append(client, SIMPLE_MSG)
    await client.cmd("SELECT INBOX")
    other = await connect(port)
    await other.cmd("SELECT INBOX")
    await other.cmd("STORE 1:3 +FLAGS.SILENT (\\Flagged)")
    await other.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    await other.cmd("EXPUNGE")
    await other.cmd("STORE 2 +FLAGS.SILENT ($Done)")  # Was UID 3.
    r = await client.cmd("NOOP")
    assert r[:-1] == [
        b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n",
        b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n",
        b"* 3 FETCH (UID 3 FLAGS (\\Flagged))\r\n",
        b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Deleted))\r\n",
        b"* 2 EXPUNGE\r\n",
        b"* 2 FETCH (UID 3 FLAGS (\\Flagged $done))\r\n",
    ]
    other.writer.close()


async def test_qresync_select_reports_only_changes(port: int, client: Client) -> None:
    for _ in range(4):
        await append(client, SIMPLE_MSG)
    await client.cmd("ENABLE QRESYNC UIDONLY")
    r = await client.cmd("SELECT INBOX")
    uv = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(r)).group(1))  # type: ignore[union-attr]
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(r)).group(1))  # type: ignore[union-attr]
    await client.cmd("UNSELECT")
    other = await connect(port)
    await other.cmd("SELECT INBOX")
    await other.cmd("STORE 3 +FLAGS.SILENT (\\Deleted)")
    await other.cmd("EXPUNGE")
    await other.cmd("UID STORE 2 +FLAGS.SILENT ($Seen2)")
    r = await client.cmd(f"SELECT INBOX (QRESYNC ({uv} {hms}))")
    assert b"* 3 EXISTS\r\n" in r and b"* VANISHED (EARLIER) 3\r\n" in r
    changed = [x for x in r if b"UIDFETCH" in x]
    assert len(changed) == 1 and re.fullmatch(rb"\* 2 UIDFETCH \(FLAGS \(\$seen2\) MODSEQ \(\d+\)\)\r\n", changed[0])
    other.writer.close()


async def test_resync_after_missed_changes(port: int, client: Client, cfg: Config) -> None:
    for _ in range(3):
        await append(client, SIMPLE_MSG)
    await client.cmd("SELECT INBOX")
    acc = await open_config_account(cfg, "mox")
    try:
        for sub in list(acc.bus._subs):
            sub.maxsize = 2  # Falls behind after two commits: told to resynchronise.
        await acc.set_flags("Inbox", [2], add=Flags.DELETED)
        await acc.expunge("Inbox")
        await acc.add_message("Inbox", SIMPLE_MSG)
        await acc.add_message("Inbox", SIMPLE_MSG)
        await asyncio.sleep(0.05)  # The batches reach the session's queue through the loop.
    finally:
        await acc.close()
    r = await client.cmd("NOOP")
    assert r[:-1] == [b"* 2 EXPUNGE\r\n", b"* 4 EXISTS\r\n"]
    r = await client.cmd("UID FETCH 1:* (UID)")
    assert [x for x in r[:-1]] == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 3)\r\n", b"* 3 FETCH (UID 4)\r\n", b"* 4 FETCH (UID 5)\r\n"]


async def test_resync_reports_flags_changed_meanwhile(port: int, client: Client, cfg: Config) -> None:
    """Missed changes: the resync reports flags changed since what the session had seen (FETCH FLAGS
    for known messages, with MODSEQ under CONDSTORE), besides the expunges and new messages."""
    for _ in range(3):
        await append(client, SIMPLE_MSG)
    await client.cmd("ENABLE CONDSTORE")
    await client.cmd("SELECT INBOX")
    acc = await open_config_account(cfg, "mox")
    try:
        await acc.set_flags("Inbox", [3], add=Flags.ANSWERED)  # Seen normally, before the overflow.
        await asyncio.sleep(0.05)
        r = await client.cmd("NOOP")
        assert len(r) == 2 and re.fullmatch(rb"\* 3 FETCH \(UID 3 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)\r\n", r[0]), r
        for sub in list(acc.bus._subs):
            sub.maxsize = 2
        await acc.set_flags("Inbox", [1], add=Flags.FLAGGED)
        await acc.set_flags("Inbox", [2], add=Flags.DELETED)
        await acc.expunge("Inbox")
        await acc.add_message("Inbox", SIMPLE_MSG)
        await asyncio.sleep(0.05)
    finally:
        await acc.close()
    r = await client.cmd("NOOP")
    assert r[0] == b"* 2 EXPUNGE\r\n", r
    assert re.fullmatch(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)\r\n", r[1]), r
    assert r[2:-1] == [b"* 3 EXISTS\r\n"], r
