"""Account store: mailboxes, messages, counts, events, durability, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from storehelpers import make_message

from mox.store import events as ev
from mox.store.account import Account, MessageInfo, open_account
from mox.store.model import Flags, MailboxCounts, MailboxExists, QuotaExceeded, SpecialUse, StoreError


def info(message_id: str = "", subject: str = "", refs: list[str] | None = None, response: bool = False) -> MessageInfo:
    return MessageInfo(message_id=message_id, subject_base=subject, referenced_ids=refs or [], is_response=response)


async def test_new_account_has_inbox_and_special_mailboxes_subscribed(account: Account) -> None:
    mbs = {m.name: m for m in await account.mailboxes()}
    assert set(mbs) == {"Inbox", "Sent", "Archive", "Trash", "Drafts", "Junk"}
    assert mbs["Sent"].special_use is SpecialUse.SENT and mbs["Inbox"].special_use is None
    assert len({m.uidvalidity for m in mbs.values()}) == 6
    assert await account.subscriptions() == sorted(mbs)


async def test_add_message_stores_file_assigns_uids_and_counts(account: Account) -> None:
    sub = account.bus.subscribe()
    data = make_message()
    m1 = await account.add_message("Inbox", data, info=info())
    m2 = await account.add_message("Inbox", data + b"more\r\n", flags=Flags.SEEN, info=info())
    assert (m1.uid, m2.uid) == (1, 2)
    assert account.read_message(m1) == data
    mb = await account.mailbox("inbox")
    assert mb.name == "Inbox" and mb.uidnext == 3
    assert mb.counts == MailboxCounts(total=2, deleted=0, unread=1, unseen=1, size=2 * len(data) + 6)
    batch = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(batch, ev.Batch)
    added = [c for c in batch.changes if isinstance(c, ev.MessageAdded)]
    assert added and added[0].uid == 1
    sub.close()


async def test_flags_and_expunge_keep_counts_right(account: Account) -> None:
    for _ in range(4):
        await account.add_message("Inbox", make_message(), info=info())
    await account.set_flags("Inbox", [1, 2], add=Flags.SEEN)
    await account.set_flags("Inbox", [2, 3], add=Flags.DELETED, add_keywords=["$Label1"])
    mb = await account.mailbox("Inbox")
    size = len(make_message())
    assert mb.counts == MailboxCounts(total=2, deleted=2, unread=1, unseen=2, size=4 * size)
    assert mb.keywords == ["$label1"]
    changed = await account.set_flags("Inbox", [1], add=Flags.SEEN)
    assert changed == []  # no change, no new modseq
    removed = await account.expunge("Inbox")
    assert removed == [2, 3]
    mb = await account.mailbox("Inbox")
    assert mb.counts == MailboxCounts(total=2, deleted=0, unread=1, unseen=1, size=2 * size)
    msgs = await account.messages("Inbox", include_expunged=True)
    gone = [m for m in msgs if m.expunged]
    assert [m.uid for m in gone] == [2, 3]
    assert all(not account.message_path(m.id).exists() for m in gone)
    assert gone[0].modseq > msgs[0].modseq


async def test_concurrent_deliveries_share_transactions(account: Account) -> None:
    before = (await account.mailbox("Inbox")).modseq
    msgs = await asyncio.gather(*(account.add_message("Inbox", make_message(f"m{i}"), info=info()) for i in range(64)))
    assert sorted(m.uid for m in msgs) == list(range(1, 65))
    modseqs = {m.modseq for m in msgs}
    # Group commit: far fewer transactions (one modseq each) than messages.
    assert len(modseqs) < 16
    assert (await account.mailbox("Inbox")).modseq >= max(modseqs) > before


async def test_quota_refuses_message_and_keeps_nothing(tmp_path: Path) -> None:
    acc = await open_account(tmp_path, "small", quota=1000)
    try:
        await acc.add_message("Inbox", make_message(size=600), info=info())
        with pytest.raises(QuotaExceeded, match="quota of 1000 bytes"):
            await acc.add_message("Inbox", make_message(size=600), info=info())
        assert (await acc.mailbox("Inbox")).counts.total == 1
        assert list((acc.dir / "tmp").iterdir()) == []
    finally:
        await acc.close()


async def test_mailbox_create_rename_delete(account: Account) -> None:
    await account.mailbox_create("Lists/mox/dev")
    names = [m.name for m in await account.mailboxes()]
    assert {"Lists", "Lists/mox", "Lists/mox/dev"} <= set(names)
    with pytest.raises(MailboxExists):
        await account.mailbox_create("Lists/mox")
    with pytest.raises(StoreError):
        await account.mailbox_create("inbox")
    with pytest.raises(StoreError, match="empty"):
        await account.mailbox_create("a//b")
    await account.add_message("Lists/mox/dev", make_message(), info=info())
    await account.mailbox_rename("Lists", "Archive/Lists")
    names = {m.name for m in await account.mailboxes()}
    assert "Archive/Lists/mox/dev" in names and "Lists" not in names
    with pytest.raises(StoreError, match="child"):
        await account.mailbox_delete("Archive/Lists")
    m = (await account.messages("Archive/Lists/mox/dev"))[0]
    await account.mailbox_delete("Archive/Lists/mox/dev")
    assert not account.message_path(m.id).exists()


async def test_special_use_moves_and_subscriptions(account: Account) -> None:
    await account.mailbox_create("Papierkorb")
    await account.set_special_use("Papierkorb", SpecialUse.TRASH)
    mbs = {m.name: m for m in await account.mailboxes()}
    assert mbs["Papierkorb"].special_use is SpecialUse.TRASH and mbs["Trash"].special_use is None
    await account.subscribe("Does/Not/Exist")
    await account.subscribe("Trash", False)
    subs = await account.subscriptions()
    assert "Does/Not/Exist" in subs and "Trash" not in subs


async def test_threading_by_references_subject_and_window(account: Account) -> None:
    t0 = 1_700_000_000.0
    root = await account.add_message("Inbox", make_message(), received=t0, info=info("root@x", "plans"))
    reply = await account.add_message("Inbox", make_message(), received=t0 + 60, info=info("r1@x", "plans", ["root@x"], True))
    assert reply.thread_id == root.id and reply.thread_parent_ids == [root.id] and not reply.thread_missing_link
    # Immediate parent unknown, root known: missing link, still in the thread.
    deep = await account.add_message("Inbox", make_message(), received=t0 + 120, info=info("r3@x", "plans", ["root@x", "r2@x"], True))
    assert deep.thread_id == root.id and deep.thread_missing_link
    # Changed subject: no match.
    other = await account.add_message("Inbox", make_message(), received=t0 + 180, info=info("o@x", "new topic", ["r1@x"], True))
    assert other.thread_id == other.id
    # Subject only, replies within four weeks match, later ones don't.
    near = await account.add_message("Inbox", make_message(), received=t0 + 86400, info=info("", "plans", [], True))
    assert near.thread_id == root.id
    far = await account.add_message("Inbox", make_message(), received=t0 + 40 * 86400, info=info("", "plans", [], True))
    assert far.thread_id == far.id


async def test_muted_thread_marks_new_messages_seen(account: Account) -> None:
    root = await account.add_message("Inbox", make_message(), info=info("root@x", "s"))
    account.conn  # noqa: B018 (open)
    await account._db(lambda: account.conn.execute("UPDATE message SET thread_muted = 1, thread_collapsed = 1 WHERE id = ?", (root.id,)))
    reply = await account.add_message("Inbox", make_message(), info=info("r@x", "s", ["root@x"], True))
    assert reply.thread_muted and reply.thread_collapsed and reply.flags & Flags.SEEN
    assert (await account.mailbox("Inbox")).counts.unseen == 1


async def test_orphan_files_and_tmp_removed_at_open(tmp_path: Path) -> None:
    acc = await open_account(tmp_path, "o")
    m = await acc.add_message("Inbox", make_message(), info=info())
    orphan = acc.message_path(m.id + 100)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"half")
    (acc.dir / "tmp" / "leftover").write_bytes(b"x")
    await acc.close()
    acc = await open_account(tmp_path, "o")
    try:
        assert not orphan.exists() and not (acc.dir / "tmp" / "leftover").exists()
        assert acc.message_path(m.id).exists()
    finally:
        await acc.close()


async def test_consistency_check_detects_and_recalculate_repairs(tmp_path: Path) -> None:
    acc = await open_account(tmp_path, "c")
    await acc.add_message("Inbox", make_message(), info=info())
    db = sqlite3.connect(acc.dir / "index.db")
    db.execute("UPDATE mailbox SET unseen = 7 WHERE name = 'Inbox'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="Inbox: stored counts"):
        await acc.check_consistency()
    fixed = await acc.recalculate_counts()
    assert len(fixed) == 1 and fixed[0].startswith("Inbox:")
    await acc.check_consistency()
    await acc.close()


async def test_slow_subscriber_gets_resync_and_never_blocks(account: Account) -> None:
    sub = account.bus.subscribe(maxsize=3)
    for i in range(10):
        await account.add_message("Inbox", make_message(f"{i}"), info=info())
    await asyncio.sleep(0.05)
    items = sub.pending()
    assert items == [ev.Resync()]
    await account.add_message("Inbox", make_message(), info=info())
    assert isinstance(await asyncio.wait_for(sub.get(), 1), ev.Batch)
    sub.close()


async def test_same_account_object_is_shared_and_refcounted(tmp_path: Path) -> None:
    a = await open_account(tmp_path, "s")
    b = await open_account(tmp_path, "s")
    assert a is b
    await a.close()
    await b.add_message("Inbox", make_message(), info=info())
    await b.close()


async def test_add_messages_bulk_is_all_or_nothing(tmp_path: Path) -> None:
    from mox.store.account import NewMessage

    acc = await open_account(tmp_path, "bulk", quota=5000)
    try:
        got = await acc.add_messages("Imported", [NewMessage(make_message(f"{i}"), info=info()) for i in range(5)])
        assert [m.uid for m in got] == [1, 2, 3, 4, 5]
        assert all(acc.read_message(m) == make_message(f"{i}") for i, m in enumerate(got))
        with pytest.raises(QuotaExceeded):
            await acc.add_messages("Imported", [NewMessage(make_message(size=2000), info=info()) for _ in range(3)])
        assert (await acc.mailbox("Imported")).counts.total == 5
        assert list((acc.dir / "tmp").iterdir()) == []
    finally:
        await acc.close()


async def test_out_of_order_parent_reattaches_earlier_replies(account: Account) -> None:
    # Replies arrive before the message they reply to.
    r1 = await account.add_message("Inbox", make_message(), info=info("r1@x", "trip", ["p@x"], True))
    r2 = await account.add_message("Inbox", make_message(), info=info("r2@x", "trip", ["p@x", "r1@x"], True))
    assert r1.thread_missing_link and r2.thread_id == r1.thread_id == r1.id
    parent = await account.add_message("Inbox", make_message(), info=info("p@x", "trip"))
    got = {m.id: m for m in await account.messages("Inbox")}
    assert got[r1.id].thread_id == parent.id and got[r1.id].thread_parent_ids == [parent.id]
    assert not got[r1.id].thread_missing_link
    assert got[r2.id].thread_id == parent.id and got[r2.id].thread_parent_ids == [r1.id, parent.id]


async def test_thread_mute_and_collapse_apply_to_whole_thread(account: Account) -> None:
    root = await account.add_message("Inbox", make_message(), info=info("root@x", "s"))
    reply = await account.add_message("Inbox", make_message(), info=info("r@x", "s", ["root@x"], True))
    sub = account.bus.subscribe()
    await account.set_thread_state([reply.id], muted=True)
    batch = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(batch, ev.Batch) and batch.changes == (ev.ThreadChanged((root.id, reply.id), True, False),)
    sub.close()
    new = await account.add_message("Inbox", make_message(), info=info("r2@x", "s", ["root@x", "r@x"], True))
    assert new.thread_muted and new.flags & Flags.SEEN


async def test_parsed_part_cache(account: Account) -> None:
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"
    m = await account.add_message("Inbox", data)  # info parsed by the store, cache filled
    part = await account.parsed(m)
    assert part.media_type == "MULTIPART" and part.parts[0].body_bytes(data) == b"hi"
    await account._db(lambda: account.conn.execute("UPDATE message SET parsed = '' WHERE id = ?", (m.id,)))
    again = await account.parsed(m)
    assert again.to_json() == part.to_json()


async def test_daily_send_limits(account: Account) -> None:
    t = 1_700_000_000.0
    assert await account.check_send_limits(["a@x", "b@x"], max_messages=5, max_first_time=3, now=t) is None
    assert await account.check_send_limits(["a@x"], max_messages=5, max_first_time=3, now=t + 1) is None
    # Fourth first-time recipient within a day: refused, nothing recorded.
    assert await account.check_send_limits(["c@x", "d@x"], max_messages=5, max_first_time=3, now=t + 2) == (
        "MaxFirstTimeRecipientsPerDay",
        3,
    )
    assert await account.check_send_limits(["a@x", "b@x", "a@x"], max_messages=5, max_first_time=3, now=t + 3) == (
        "MaxOutgoingMessagesPerDay",
        5,
    )
    # A day later the window is empty again, and earlier recipients are no longer first-time.
    assert await account.check_send_limits(["a@x", "b@x", "c@x"], max_messages=5, max_first_time=1, now=t + 86400 + 10) is None


async def test_copy_and_move_messages(account: Account) -> None:
    for i in range(3):
        await account.add_message("Inbox", make_message(f"m{i}"), info=info(), keywords=["$label1"] if i == 0 else None)
    await account.set_flags("Inbox", [2], add=Flags.SEEN)
    await account.mailbox_create("Work")
    sub = account.bus.subscribe()
    pairs = await account.copy_messages("Inbox", [1, 2, 9], "Work")
    assert pairs == [(1, 1), (2, 2)]
    work = await account.messages("Work")
    assert [account.read_message(m) for m in work] == [make_message("m0"), make_message("m1")]
    assert work[0].keywords == ["$label1"] and work[1].flags & Flags.SEEN
    mb = await account.mailbox("Work")
    assert mb.counts.total == 2 and mb.counts.unseen == 1 and mb.keywords == ["$label1"]
    batch = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(batch, ev.Batch) and sum(isinstance(c, ev.MessageAdded) for c in batch.changes) == 2
    # Move: the copies appear, the originals are expunged, files shared by hard link stay readable.
    pairs = await account.copy_messages("Inbox", [1, 3], "Work", move=True)
    assert pairs == [(1, 3), (3, 4)]
    assert [m.uid for m in await account.messages("Inbox")] == [2]
    assert (await account.mailbox("Inbox")).counts.total == 1
    work = await account.messages("Work")
    assert [account.read_message(m) for m in work] == [make_message("m0"), make_message("m1"), make_message("m0"), make_message("m2")]
    with pytest.raises(StoreError):
        await account.copy_messages("Inbox", [2], "Inbox", move=True)
    sub.close()
