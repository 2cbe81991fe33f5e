"""Account maintenance used by the ctl commands and by the CLI when no server runs."""

from __future__ import annotations

from mox.config.load import Config
from mox.store.deliver import open_config_account


async def recalculate_counts(cfg: Config, account: str) -> list[str]:
    """Recompute every mailbox's counts of an account from its messages; returns what was fixed."""
    acc = await open_config_account(cfg, account)
    try:
        return await acc.recalculate_counts()
    finally:
        await acc.close()
