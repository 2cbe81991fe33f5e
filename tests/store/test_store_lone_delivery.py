"""Account.add_message: a lone delivery commits at once, in one trip to the database thread (no
batch timer, no worker threads); deliveries that arrive while a commit runs are grouped."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from typing import Any

import pytest
from storehelpers import make_message

from mox.store import account as account_mod
from mox.store.account import Account
from mox.store.model import StoreError


async def test_lone_delivery_one_hop_no_timer(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    batches: list[int] = []
    orig = Account._prepare_commit

    def prepare(self: Account, batch: list[Any]) -> Any:
        batches.append(len(batch))
        return orig(self, batch)

    def no_timer(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a lone delivery must not wait for a timer")

    async def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a lone delivery is prepared on the database thread")

    monkeypatch.setattr(Account, "_prepare_commit", prepare)
    monkeypatch.setattr(loop, "call_later", no_timer)
    monkeypatch.setattr(loop, "call_at", no_timer)
    monkeypatch.setattr(account_mod.asyncio, "to_thread", no_thread)
    data = make_message("lone", message_id="lone@example.org")
    m = await account.add_message("Inbox", data)  # info=None: parsed on the database thread
    monkeypatch.undo()
    assert batches == [1]
    assert account.read_message(m) == data
    assert m.message_id == "lone@example.org"
    assert not list((account.dir / "tmp").iterdir())


async def test_deliveries_during_a_commit_are_grouped(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    batches: list[int] = []
    orig = Account._prepare_commit

    def prepare(self: Account, batch: list[Any]) -> Any:
        batches.append(len(batch))
        if len(batches) == 1:
            release.wait(10)  # the first commit is slow: the others must queue up behind it
        return orig(self, batch)

    monkeypatch.setattr(Account, "_prepare_commit", prepare)
    first = asyncio.ensure_future(account.add_message("Inbox", make_message("first")))
    deadline = time.monotonic() + 10
    while not batches:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    others = [asyncio.ensure_future(account.add_message("Inbox", make_message(f"m{i}"))) for i in range(5)]
    while len(account._pending) < 5:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    release.set()
    msgs = [await first, *await asyncio.gather(*others)]
    assert batches == [1, 5]
    assert sorted(m.uid for m in msgs) == [1, 2, 3, 4, 5, 6]
    assert len({m.modseq for m in msgs[1:]}) == 1  # one transaction for the five


async def test_lone_delivery_failing_to_write_reports_error(account: Account) -> None:
    shutil.rmtree(account.dir / "tmp")
    with pytest.raises(StoreError, match="storing message"):
        await account.add_message("Inbox", make_message("nowhere"))
    (account.dir / "tmp").mkdir()
    m = await account.add_message("Inbox", make_message("again"))
    assert m.uid == 1
    assert (await account.mailbox("Inbox")).counts.total == 1
