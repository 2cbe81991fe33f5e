"""Reassigning threads from the message files (reassignthreads and the account upgrade step)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

from storehelpers import make_message

from mox.store import account as account_mod
from mox.store.account import Account, MessageInfo, open_account
from mox.store.threads import ThreadAssigner, reassign_threads


def simple_info(data: bytes) -> MessageInfo:
    """Enough header reading for these tests (the real one is mox.store.deliver.message_info)."""
    text = data.decode()
    mid = re.search(r"^Message-ID: <([^>]*)>", text, re.M | re.I)
    subj = re.search(r"^Subject: (.*)$", text, re.M)
    refs = re.search(r"^References: (.*)$", text, re.M)
    subject = subj.group(1).strip() if subj else ""
    is_resp = subject.lower().startswith("re:")
    base = subject[3:].strip().lower() if is_resp else subject.lower()
    return MessageInfo(
        message_id=mid.group(1) if mid else "",
        subject_base=base,
        is_response=is_resp,
        referenced_ids=re.findall(r"<([^>]*)>", refs.group(1)) if refs else [],
    )


def msg(mid: str, subject: str, refs: list[str] = ()) -> bytes:  # type: ignore[assignment]
    extra = ("References: " + " ".join(f"<{r}>" for r in refs) + "\r\n") if refs else ""
    return make_message(subject, mid, extra=extra)


async def add(acc: Account, data: bytes, received: float) -> int:
    return (await acc.add_message("Inbox", data, received=received, info=simple_info(data))).id


async def test_reassign_reproduces_delivery_threading_and_fixes_damage(account: Account) -> None:
    t = 1_700_000_000.0
    ids = [
        await add(account, msg("a@x", "Plans"), t),
        await add(account, msg("c@x", "Re: Plans", ["a@x", "b@x"]), t + 10),  # parent b unknown: missing link
        await add(account, msg("b@x", "Re: Plans", ["a@x"]), t + 20),  # arrives later: c moves under it
        await add(account, msg("", "Re: Plans"), t + 30),  # subject only
        await add(account, msg("z@x", "Other"), t + 40),
    ]
    before = {m.id: (m.thread_id, m.thread_parent_ids, m.thread_missing_link) for m in await account.messages("Inbox")}
    assert before[ids[1]] == (ids[0], [ids[2], ids[0]], False)
    # Damage the thread fields, then recompute from the files.
    await account._db(lambda: account.conn.execute("UPDATE message SET thread_id = id, thread_parent_ids = '[]', message_id = '', subject_base = ''"))
    seen: list[tuple[int, int]] = []
    n = await reassign_threads(account, simple_info, progress=lambda d, t: seen.append((d, t)), batch_size=2)
    assert n == 5 and seen[-1] == (5, 5) and len(seen) == 3
    after = {m.id: (m.thread_id, m.thread_parent_ids, m.thread_missing_link) for m in await account.messages("Inbox")}
    assert after == before
    assert {m.message_id for m in await account.messages("Inbox")} == {"a@x", "b@x", "c@x", "", "z@x"}


def test_assigner_subject_window_and_cycles() -> None:
    a = ThreadAssigner()
    a.add(1, 0.0, MessageInfo(message_id="1@x", subject_base="s"))
    a.add(2, 40 * 86400.0, MessageInfo(message_id="2@x", subject_base="s", is_response=True))
    assert a.nodes[2].thread_id == 2  # outside the 4-week window
    # A message claiming its own reply as parent does not create a cycle.
    a.add(3, 1.0, MessageInfo(message_id="3@x", subject_base="t", referenced_ids=["4@x"]))
    a.add(4, 2.0, MessageInfo(message_id="4@x", subject_base="t", referenced_ids=["3@x"]))
    assert 4 not in a.nodes[4].parents and 3 not in a.nodes[3].parents


async def test_upgrade_step_runs_in_background_at_open(tmp_path: Path) -> None:
    acc = await open_account(tmp_path, "up")
    for i in range(5):
        await add(acc, msg(f"{i}@x", f"Re: topic {i % 2}", [f"{i - 2}@x"] if i >= 2 else []), 1_700_000_000.0 + i)
    await acc.close()
    db = sqlite3.connect(acc.dir / "index.db")
    db.execute("DELETE FROM meta WHERE key = 'threads'")
    db.execute("UPDATE message SET thread_id = id, thread_parent_ids = '[]'")
    db.commit()
    db.close()
    acc = await open_account(tmp_path, "up")
    try:
        # Usable at once while the upgrade runs.
        assert (await acc.mailbox("Inbox")).counts.total == 5
        assert acc._upgrade is not None
        await asyncio.wait_for(acc._upgrade, 10)
        assert await acc._db(acc._threads_assigned)
        parents = {m.message_id: m.thread_parent_ids for m in await acc.messages("Inbox")}
        assert parents["2@x"] and parents["4@x"][-1] == parents["2@x"][-1]
    finally:
        await acc.close()


def test_check_on_close_is_on_in_store_tests() -> None:
    assert account_mod.CHECK_ON_CLOSE
