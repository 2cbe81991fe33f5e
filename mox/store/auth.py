"""Logging in to an account: the login address, disabled accounts, password checks.

Shared by SMTP submission, IMAP and the web interfaces. As upstream: the
login name is one of the account's addresses (any local part variant the
domain's catchall separators and case rule map to it, not a catchall
``@domain``); an account with ``LoginDisabled`` refuses every login with that
message, while deliveries to it go on; accounts at a ``Disabled`` domain can
still log in.
"""

from __future__ import annotations

import asyncio

from mox.config.load import Config, canonical_localpart
from mox.smtp.address import AddressError, format_localpart, parse_address
from mox.store.deliver import open_config_account
from mox.store.model import StoreError
from mox.store.password import PasswordSecrets, verify_plain


class LoginFailed(StoreError):
    """Unknown login address or wrong password (deliberately not saying which)."""


class LoginDisabled(StoreError):
    """The account's logins are disabled; the message is the account's LoginDisabled text."""


def login_account(cfg: Config, username: str) -> str:
    """The account a login address belongs to.

    Raises:
        LoginFailed: not an address of any account.
        LoginDisabled: the account has logins disabled.
    """
    try:
        addr = parse_address(username)
    except AddressError:
        raise LoginFailed("invalid login address") from None
    dom = cfg.dynamic.Domains.get(addr.domain.name)
    if dom is None:
        raise LoginFailed("unknown login address")
    key = f"{format_localpart(canonical_localpart(addr.localpart, dom))}@{addr.domain.name}"
    ad = cfg.account_destinations.get(key)
    if ad is None:
        raise LoginFailed("unknown login address")
    disabled = cfg.dynamic.Accounts[ad.account].LoginDisabled
    if disabled:
        raise LoginDisabled(disabled)
    return ad.account


async def password_secrets(cfg: Config, account: str) -> PasswordSecrets | None:
    acc = await open_config_account(cfg, account)
    try:
        raw = await acc.password_secrets()
    finally:
        await acc.close()
    return PasswordSecrets.from_json(raw) if raw else None


async def authenticate_plain(cfg: Config, username: str, password: str) -> str:
    """Check a username and password (PLAIN/LOGIN, web login); returns the account name.

    The bcrypt check runs in a thread. Raises LoginFailed or LoginDisabled.
    """
    account = login_account(cfg, username)
    secrets = await password_secrets(cfg, account)
    if secrets is None or not await asyncio.to_thread(verify_plain, secrets, password):
        raise LoginFailed("bad password")
    return account
