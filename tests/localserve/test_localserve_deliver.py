"""The localserve deliverer: queued outgoing mail lands in the local account; special local parts fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from mox.config.example import free_local_ports
from mox.localserve import write_config
from mox.localserve.deliver import make_deliverer
from mox.queue.model import OutcomeKind, make_path
from mox.queue.queue import open_queue
from mox.store import close_all_accounts
from mox.store.deliver import open_config_account

MESSAGE = b"From: mox@localhost\r\nTo: someone@remote.example\r\nSubject: outgoing\r\nMessage-ID: <1@localhost>\r\n\r\nhi\r\n"


async def _wait(cond: Callable[[], object], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():  # type: ignore[misc]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_outgoing_delivered_locally_and_failures(tmp_path: Path) -> None:
    cfg = await write_config(tmp_path / "ls", ip="127.0.0.1", ports=free_local_ports())
    q = await open_queue(cfg.data_dir, lambda: cfg, jitter=lambda: 0.0)
    try:
        deliverer = make_deliverer(lambda: cfg)
        q.start(deliverer)
        rcpts = [make_path("someone", "remote.example"), make_path("xpermerror", "remote.example"), make_path("queue451", "other.example")]
        await q.add("mox", make_path("mox", "localhost"), rcpts, MESSAGE)

        async def inbox() -> list[bytes]:
            acc = await open_config_account(cfg, "mox")
            try:
                return [acc.read_message(m) for m in await acc.messages("Inbox")]
            finally:
                await acc.close()

        async def two() -> bool:
            return len(await inbox()) >= 2

        # The message itself, and the DSN for the permanent failure.
        await _wait(two)
        msgs = await inbox()
        assert any(b"Subject: outgoing" in m and b"Content-Type: multipart/report" not in m for m in msgs)
        assert any(b"xpermerror@remote.example" in m and b"multipart/report" in m for m in msgs)
        # The temporary failure stays queued for a retry.
        left = await q.list_messages()
        assert [m.recipient_localpart for m in left] == ["queue451"]
        assert left[0].results[-1].code == 451
    finally:
        await q.close()
        await close_all_accounts()


async def test_outcomes() -> None:
    from mox.localserve.deliver import _failure

    assert _failure("mox") is None
    t = _failure("timeout")
    assert t is not None and t.kind == OutcomeKind.TEMPORARY
    p = _failure("rcptto554")
    assert p is not None and p.kind == OutcomeKind.PERMANENT and p.code == 554 and p.secode == "5.0.0"
