"""Opening an account whose close has just finished, before the closer's cleanup ran, must not spin."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mox.store import account as acc_mod


async def test_open_after_close_task_done_but_not_cleaned(tmp_path: Path) -> None:
    acc = await acc_mod.open_account(tmp_path, "a")
    d = acc.dir
    acc_mod._registry.accounts.pop(d, None)

    async def finished() -> None:
        await acc_mod._finish_close(acc)

    task = asyncio.ensure_future(finished())
    await task
    # As if _close_now had not yet resumed to remove its entry.
    acc_mod._registry.closing[d] = task
    again = await asyncio.wait_for(acc_mod.open_account(tmp_path, "a"), 10)
    assert again is not acc
    await again.close()
