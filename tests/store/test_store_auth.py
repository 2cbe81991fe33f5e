"""Logins: address variants, disabled accounts, password checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mox.config import edit
from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.store.auth import LoginDisabled, LoginFailed, authenticate_plain, login_account
from mox.store.deliver import open_config_account
from mox.store.password import make_secrets


@pytest.fixture
async def cfg(tmp_path: Path) -> Config:
    c = load_config(write_local_config(tmp_path, ips=["127.0.0.1"]))
    c = edit.address_add(c, "@localhost", "mox")
    acc = await open_config_account(c, "mox")
    try:
        await acc.set_password_secrets(make_secrets("moxmoxmox", bcrypt_cost=4).to_json())
    finally:
        await acc.close()
    return c


async def test_login_with_address_variants(cfg: Config) -> None:
    for name in ("mox@localhost", "MOX@localhost", "mox+tag@localhost"):
        assert await authenticate_plain(cfg, name, "moxmoxmox") == "mox"
    with pytest.raises(LoginFailed):
        await authenticate_plain(cfg, "mox@localhost", "wrong password")
    with pytest.raises(LoginFailed):
        login_account(cfg, "other@localhost")  # only the catchall matches: no login
    with pytest.raises(LoginFailed):
        login_account(cfg, "not an address")


async def test_login_disabled_refuses_with_message(cfg: Config) -> None:
    cfg = edit.account_login_disabled(cfg, "mox", "migrating, back tomorrow")
    with pytest.raises(LoginDisabled, match="migrating, back tomorrow"):
        await authenticate_plain(cfg, "mox@localhost", "moxmoxmox")
