"""SASL exchanges against a configured account (mox.sasl.accounts)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mox.config import edit
from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.sasl import (
    Challenge,
    Failure,
    FailureCode,
    NeedCredentials,
    Success,
    new_server,
    provide_credentials,
)
from mox.sasl.accounts import account_lookup
from mox.scram import ScramClient
from mox.store.auth import LoginDisabled
from mox.store.deliver import open_config_account
from mox.store.password import make_secrets

PASSWORD = "moxmoxmox"


@pytest.fixture
async def cfg(tmp_path: Path) -> Config:
    c = load_config(write_local_config(tmp_path, ips=["127.0.0.1"]))
    acc = await open_config_account(c, "mox")
    try:
        await acc.set_password_secrets(make_secrets(PASSWORD, bcrypt_cost=4, scram_iterations=4096).to_json())
    finally:
        await acc.close()
    return c


async def test_plain_against_account(cfg: Config) -> None:
    lookup = account_lookup(cfg)
    mech = new_server("PLAIN")
    step = mech.respond(base64.b64encode(b"\x00MOX@localhost\x00" + PASSWORD.encode()).decode(), initial=True)
    assert isinstance(step, NeedCredentials)
    assert await provide_credentials(mech, step, lookup) == Success("MOX@localhost", "mox")

    mech = new_server("PLAIN")
    step = mech.step(b"\x00nobody@localhost\x00" + PASSWORD.encode())
    assert isinstance(step, NeedCredentials)
    result = await provide_credentials(mech, step, lookup)
    assert isinstance(result, Failure) and result.code is FailureCode.BAD_CREDENTIALS


async def test_scram_against_account(cfg: Config) -> None:
    client = ScramClient("SCRAM-SHA-256", "mox@localhost", PASSWORD)
    mech = new_server("SCRAM-SHA-256")
    step = mech.step(client.client_first())
    assert isinstance(step, NeedCredentials)
    step = await provide_credentials(mech, step, account_lookup(cfg))
    assert isinstance(step, Challenge)
    step = mech.step(client.client_final(step.data))
    assert isinstance(step, Challenge)
    client.check_server_final(step.data)
    assert mech.step(b"") == Success("mox@localhost", "mox")


async def test_login_disabled_propagates(cfg: Config) -> None:
    cfg = edit.account_login_disabled(cfg, "mox", "migrating")
    mech = new_server("PLAIN")
    step = mech.step(b"\x00mox@localhost\x00" + PASSWORD.encode())
    assert isinstance(step, NeedCredentials)
    with pytest.raises(LoginDisabled, match="migrating"):
        await provide_credentials(mech, step, account_lookup(cfg))
