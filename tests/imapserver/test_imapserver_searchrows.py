"""SEARCH on plain message rows (Account.message_light_rows, light_row_message): the rows give
the same messages as messages_light, and keys on flags, keywords, sizes, modseqs and content
evaluate on them (with expunged messages still in the session's view)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from imaphelpers import Client, append, connect

from mox.imapserver import search
from mox.store.account import light_row_message, open_account
from mox.store.model import Flags

MSG = b"Subject: x\r\n\r\nbody\r\n"


async def test_light_rows_equal_messages_light(tmp_path: Path) -> None:
    acc = await open_account(tmp_path, "a")
    try:
        await acc.add_message("Inbox", MSG, flags=Flags.SEEN, keywords=["old", "$x"])
        await acc.add_message("Inbox", MSG + b"more\r\n")
        await acc.add_message("Inbox", MSG, flags=Flags.DELETED)
        assert await acc.expunge("Inbox", [3]) == [3]
        for inc in (False, True):
            want = await acc.messages_light("Inbox", include_expunged=inc)
            mbid, rows = await acc.message_light_rows("Inbox", include_expunged=inc)
            assert [light_row_message(mbid, r) for r in rows] == want and len(want) == (3 if inc else 2)
            assert sorted(want[0].keywords) == ["$x", "old"] and want[0].flags == Flags.SEEN
            # With imap_cache: the same rows, each with its imap_cache record (as imap_cache_many).
            _, cached = await acc.message_light_rows("Inbox", include_expunged=inc, imap_cache=True)
            stored = await acc.imap_cache_many([r[0] for r in rows])
            assert [r[:11] for r in cached] == [r[:11] for r in rows] and all(r[11] is None for r in rows)
            assert [r[11] for r in cached] == [stored.get(r[0]) for r in rows]
    finally:
        await acc.close()


async def test_search_keys_on_rows(client: Client, port: int) -> None:
    for body, flags in ((MSG, "\\Seen $Important"), (MSG + b"invoice\r\n", ""), (MSG, "\\Deleted")):
        assert b" OK " in (await append(client, body, flags))[-1]
    assert b" OK " in (await client.cmd("SELECT INBOX"))[-1]
    assert (await client.cmd("UID SEARCH KEYWORD $Important"))[0] == b"* SEARCH 1\r\n"
    assert (await client.cmd("UID SEARCH UNKEYWORD $Important"))[0] == b"* SEARCH 2 3\r\n"
    assert (await client.cmd("UID SEARCH UNSEEN"))[0] == b"* SEARCH 2 3\r\n"
    assert (await client.cmd(f"UID SEARCH LARGER {len(MSG)}"))[0] == b"* SEARCH 2\r\n"
    assert (await client.cmd("SEARCH TEXT invoice"))[0] == b"* SEARCH 2\r\n"
    assert (await client.cmd("UID SEARCH NOT BODY invoice DELETED"))[0] == b"* SEARCH 3\r\n"
    r = await client.cmd("UID SEARCH MODSEQ 1 TEXT invoice")
    assert r[1].startswith(b"* SEARCH 2 (MODSEQ ") and b" OK " in r[-1]
    r = await client.cmd("UID SORT (SIZE) UTF-8 TEXT body")
    assert r[0] == b"* SORT 1 3 2\r\n"
    # Expunged by another session: still in this session's view until it is told; content
    # keys do not match it (its file is gone), flag keys still do.
    other = await connect(port)
    try:
        assert b" OK " in (await other.cmd("SELECT INBOX"))[-1]
        assert b" OK " in (await other.cmd("EXPUNGE"))[-1]
    finally:
        other.writer.close()
    assert (await client.cmd("UID SEARCH DELETED"))[0] == b"* SEARCH 3\r\n"
    assert (await client.cmd("UID SEARCH DELETED BODY x"))[0] == b"* SEARCH\r\n"


async def test_search_batches_in_threads(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches and chunks: several batches in worker threads at once, results in order,
    # messages needing their parsed tree (base64, Date) finished on the event loop.
    monkeypatch.setattr(search, "SEARCH_BATCH", 2)
    monkeypatch.setattr(search, "SCAN_CHUNK", 1)
    b64 = b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"an invoice") + b"\r\n"
    bodies = [MSG, MSG + b"invoice\r\n", b64, MSG, b64, MSG + b"INVOICE\r\n", MSG]
    for body in bodies:
        assert b" OK " in (await append(client, body))[-1]
    assert b" OK " in (await client.cmd("SELECT INBOX"))[-1]
    assert (await client.cmd("UID SEARCH TEXT invoice"))[0] == b"* SEARCH 2 3 5 6\r\n"
    assert (await client.cmd("UID SEARCH NOT BODY invoice"))[0] == b"* SEARCH 1 4 7\r\n"
    assert (await client.cmd("UID SEARCH OR SENTON 2-Jan-2024 BODY INVOICE"))[0] == b"* SEARCH 2 3 5 6\r\n"
    assert (await client.cmd("UID SEARCH SENTON 2-Jan-2024 SUBJECT x"))[0] == b"* SEARCH\r\n"
    assert (await client.cmd("SEARCH SUBJECT x NOT TEXT invoice"))[0] == b"* SEARCH 1 4 7\r\n"
