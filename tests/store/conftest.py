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


def make_message(subject: str = "hello", message_id: str = "", body: str = "hi\r\n", extra: str = "", size: int = 0) -> bytes:
    head = f"From: a@example.org\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
    if message_id:
        head += f"Message-ID: <{message_id}>\r\n"
    head += extra
    data = (head + "\r\n" + body).encode()
    if size > len(data):
        data += b"x" * (size - len(data) - 2) + b"\r\n"
    return data
