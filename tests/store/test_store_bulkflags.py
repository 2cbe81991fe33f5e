"""Account.store_flags, mailbox_uids and message_attrs: the compact paths IMAP uses on large mailboxes."""

from __future__ import annotations

import asyncio
import json

import pytest
from storehelpers import make_message

from mox.store import events as ev
from mox.store.account import Account
from mox.store.model import Flags, MailboxCounts, MailboxNotFound


async def _fill(account: Account, n: int) -> None:
    for i in range(n):
        await account.add_message("Inbox", make_message(f"m{i}"))


def _flag_changes(batch: ev.Batch | ev.Resync) -> list[ev.FlagsChanged]:
    assert isinstance(batch, ev.Batch)
    return [c for c in batch.changes if isinstance(c, ev.FlagsChanged)]


async def test_store_flags_counts_events_and_modseq(account: Account) -> None:
    await _fill(account, 4)
    await account.set_flags("Inbox", [2], add=Flags.SEEN)
    before = await account.mailbox("Inbox")
    sub = account.bus.subscribe()
    token = object()
    res = await account.store_flags("Inbox", [1, 2, 3, 9], add=Flags.SEEN | Flags.DELETED, source=token)
    assert res.changed == {1, 2, 3} and res.modified == [] and res.states == []
    assert res.modseq > before.modseq
    batch = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(batch, ev.Batch) and batch.source is token
    fc = _flag_changes(batch)
    assert [(c.uid, c.modseq, c.flags, c.mask, c.keywords) for c in fc] == [
        (1, res.modseq, Flags.SEEN | Flags.DELETED, Flags.SEEN | Flags.DELETED, ()),
        (2, res.modseq, Flags.SEEN | Flags.DELETED, Flags.DELETED, ()),
        (3, res.modseq, Flags.SEEN | Flags.DELETED, Flags.SEEN | Flags.DELETED, ()),
    ]
    counts = [c for c in batch.changes if isinstance(c, ev.MailboxCountsChanged)]
    size = len(make_message("m0"))
    assert counts[0].counts == MailboxCounts(total=1, deleted=3, unread=1, unseen=1, size=4 * size)
    mb = await account.mailbox("Inbox")
    assert mb.counts == counts[0].counts and mb.modseq == res.modseq
    msgs = {m.uid: m for m in await account.messages("Inbox")}
    assert msgs[2].flags == Flags.SEEN | Flags.DELETED and msgs[2].modseq == res.modseq and msgs[4].modseq < res.modseq
    await account.check_consistency()

    # Nothing to change: no new modseq, no flag events.
    again = await account.store_flags("Inbox", [1, 2, 3], add=Flags.SEEN)
    assert again.changed == set() and again.modseq == 0
    assert (await account.mailbox("Inbox")).modseq == res.modseq
    # Removing flags brings the counts back.
    await account.store_flags("Inbox", [1, 2, 3], remove=Flags.DELETED | Flags.SEEN)
    mb = await account.mailbox("Inbox")
    assert mb.counts == MailboxCounts(total=4, deleted=0, unread=4, unseen=4, size=4 * size)
    await account.check_consistency()
    sub.close()


async def test_store_flags_keywords_replace_and_states(account: Account) -> None:
    await _fill(account, 3)
    sub = account.bus.subscribe()
    res = await account.store_flags("Inbox", [1, 2], add_keywords=["$Label1", "Work"], states=True)
    assert res.changed == {1, 2}
    assert res.states == [(1, 0, '["$label1", "work"]', res.modseq), (2, 0, '["$label1", "work"]', res.modseq)]
    batch = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(batch, ev.Batch)
    assert [c.keywords for c in _flag_changes(batch)] == [("$label1", "work"), ("$label1", "work")]
    assert [c.keywords for c in batch.changes if isinstance(c, ev.MailboxKeywords)] == [("$label1", "work")]
    assert (await account.mailbox("Inbox")).keywords == ["$label1", "work"]

    res = await account.store_flags("Inbox", [1, 2, 3], remove_keywords=["work"], states=True)
    assert res.changed == {1, 2}
    assert [(u, json.loads(k)) for u, _, k, _ in res.states] == [(1, ["$label1"]), (2, ["$label1"]), (3, [])]

    # Replace: exactly these flags and keywords; a message already like that is left alone.
    await account.store_flags("Inbox", [3], add=Flags.FLAGGED, add_keywords=["$label1"])
    res = await account.store_flags("Inbox", [1, 2, 3], add=Flags.FLAGGED, add_keywords=["$Label1"], replace=True)
    assert res.changed == {1, 2}
    msgs = await account.messages("Inbox")
    assert [(m.flags, m.keywords) for m in msgs] == [(Flags.FLAGGED, ["$label1"])] * 3
    await account.check_consistency()
    sub.close()


async def test_store_flags_unchanged_since(account: Account) -> None:
    await _fill(account, 3)
    base = (await account.mailbox("Inbox")).modseq
    await account.set_flags("Inbox", [2], add=Flags.ANSWERED)
    res = await account.store_flags("Inbox", [1, 2, 3], add=Flags.SEEN, unchanged_since=base, states=True)
    assert res.modified == [2] and res.changed == {1, 3}
    # The state of the message that failed the test is what it was.
    assert [(u, f) for u, f, _, _ in res.states] == [(1, int(Flags.SEEN)), (2, int(Flags.ANSWERED)), (3, int(Flags.SEEN))]
    msgs = {m.uid: m for m in await account.messages("Inbox")}
    assert msgs[2].flags == Flags.ANSWERED


async def test_store_flags_many_uids_reads_whole_mailbox(account: Account) -> None:
    # More than 1000 UIDs (most of them not existing) take the one-pass read.
    await _fill(account, 5)
    await account.expunge("Inbox")  # Nothing deleted: no change.
    await account.set_flags("Inbox", [5], add=Flags.DELETED)
    await account.expunge("Inbox")
    res = await account.store_flags("Inbox", [*range(2, 1500)], add=Flags.FLAGGED, states=True)
    assert res.changed == {2, 3, 4}  # 5 is expunged, 1 not addressed.
    assert [s[0] for s in res.states] == [2, 3, 4]
    msgs = {m.uid: m for m in await account.messages("Inbox")}
    assert not msgs[1].flags & Flags.FLAGGED and msgs[4].flags & Flags.FLAGGED
    await account.check_consistency()


async def test_store_flags_missing_mailbox(account: Account) -> None:
    with pytest.raises(MailboxNotFound):
        await account.store_flags("Nope", [1], add=Flags.SEEN)
    with pytest.raises(MailboxNotFound):
        await account.mailbox_uids("Nope")


async def test_mailbox_uids_and_message_attrs(account: Account) -> None:
    await _fill(account, 4)
    mb, uids, unseen, changed = await account.mailbox_uids("Inbox", first_unseen=True)
    assert mb.name == "Inbox" and uids == [1, 2, 3, 4] and unseen == 1 and changed == []
    base = mb.modseq
    await account.set_flags("Inbox", [1, 2], add=Flags.SEEN)
    await account.set_flags("Inbox", [3], add=Flags.DELETED)
    await account.expunge("Inbox")
    mb, uids, unseen, changed = await account.mailbox_uids("Inbox", first_unseen=True, changed_since=base)
    assert uids == [1, 2, 4] and unseen == 4 and mb.counts.imap_count == 3
    # Changed since: flags set on 1 and 2, 3 expunged.
    assert [(r[0], r[1], r[7]) for r in changed] == [(1, int(Flags.SEEN), 0), (2, int(Flags.SEEN), 0), (3, int(Flags.DELETED), 1)]
    assert (await account.mailbox_uids("Inbox", changed_since=mb.modseq))[3] == []
    assert (await account.mailbox_uids("Inbox"))[2] == 0  # Not asked for.
    await account.set_flags("Inbox", [4], add=Flags.SEEN)
    assert (await account.mailbox_uids("Inbox", first_unseen=True))[2] == 0

    msgs = {m.uid: m for m in await account.messages("Inbox", include_expunged=True)}
    rows = await account.message_attrs(mb.id)
    assert [r[0] for r in rows] == [1, 2, 3, 4]  # Expunged ones included.
    for uid, flags, kw, size, received, modseq, savedate, expunged in rows:
        m = msgs[uid]
        assert (flags, json.loads(kw), size, received, modseq, savedate, bool(expunged)) == (
            int(m.flags), m.keywords, m.size, m.received, m.modseq, m.savedate, m.expunged,
        )  # fmt: skip
    assert [r[0] for r in await account.message_attrs(mb.id, [4, 2, 9, 2])] == [2, 4]
    assert [r[0] for r in await account.message_attrs(mb.id, changed_since=base)] == [1, 2, 3, 4]
    assert [r[0] for r in await account.message_attrs(mb.id, [1, 4], changed_since=msgs[3].modseq)] == [4]
    assert await account.message_attrs(mb.id, []) == []
