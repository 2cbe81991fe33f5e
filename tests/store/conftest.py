"""Store fixtures: an account in a temporary data directory, checked for consistent counts when closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mox.store.account import Account, open_account


@pytest.fixture
async def account(tmp_path: Path) -> AsyncIterator[Account]:
    acc = await open_account(tmp_path, "mjl")
    yield acc
    await acc.close()  # raises on inconsistent counts
