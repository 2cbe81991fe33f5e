"""Account.add_message: a lone delivery commits at once, in one trip to the database thread (no
batch timer, no worker threads); deliveries that arrive while a commit runs are grouped; message
files and their directories are synced together, after the rename and before the COMMIT."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
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


async def test_file_and_directory_synced_after_rename_before_commit(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    orig_file, orig_dir = account_mod._fsync_file, account_mod._fsync_dir

    def fsync_file(p: Path) -> None:
        events.append(f"file {p.relative_to(account.dir)}")
        orig_file(p)

    def fsync_dir(p: Path) -> None:
        events.append(f"dir {p.relative_to(account.dir)}")
        orig_dir(p)

    monkeypatch.setattr(account_mod, "_fsync_file", fsync_file)
    monkeypatch.setattr(account_mod, "_fsync_dir", fsync_dir)
    account.conn.set_trace_callback(lambda stmt: events.append(stmt) if stmt in ("BEGIN IMMEDIATE", "COMMIT") else None)
    try:
        m = await account.add_message("Inbox", make_message("synced"))
    finally:
        account.conn.set_trace_callback(None)
    path = account.message_path(m.id).relative_to(account.dir)
    assert events[0] == "BEGIN IMMEDIATE" and events[-1] == "COMMIT"
    # The file under its final name (renamed first), and its directory, both before COMMIT.
    assert sorted(events[1:-1]) == sorted([f"file {path}", f"dir {path.parent}", f"dir {path.parent.parent}"])


def test_fsync_all_runs_syncs_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [tmp_path / f"f{i}" for i in range(3)]
    for f in files:
        f.write_bytes(b"x")
    # Every sync waits until all are in flight: done one after the other, the barrier breaks.
    barrier = threading.Barrier(len(files) + 1, timeout=10)
    done: list[Path] = []

    def sync(p: Path) -> None:
        barrier.wait()
        done.append(p)

    monkeypatch.setattr(account_mod, "_fsync_file", sync)
    monkeypatch.setattr(account_mod, "_fsync_dir", sync)
    account_mod._fsync_all(files, [tmp_path])
    assert sorted(done) == sorted([*files, tmp_path])


def test_fsync_all_raises_after_all_finished(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_bytes(b"x")
    with pytest.raises(FileNotFoundError):
        account_mod._fsync_all([tmp_path / "missing", present], [tmp_path])
    account_mod._fsync_all([], [])  # nothing to do
