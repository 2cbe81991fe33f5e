"""Credential lookup for SASL mechanisms from the accounts in the configuration and store.

Kept apart from :mod:`mox.sasl` so the mechanisms stay pure: this module
imports the store. The login name is one of an account's addresses, as
:func:`mox.store.auth.login_account` decides.
"""

from __future__ import annotations

from mox.config.load import Config
from mox.sasl import AccountSecrets, CredentialLookup
from mox.store.auth import LoginFailed, login_account, password_secrets

__all__ = ["account_lookup"]


def account_lookup(cfg: Config) -> CredentialLookup:
    """A lookup of login addresses in cfg's accounts, for :func:`mox.sasl.provide_credentials`.

    An unknown address, or an account without a password, gives None: the
    mechanism then fails as for a wrong password. An account with logins
    disabled raises :class:`mox.store.auth.LoginDisabled`, whose message the
    server should send (upstream answers with the account's text).
    """

    async def lookup(username: str) -> AccountSecrets | None:
        try:
            account = login_account(cfg, username)
        except LoginFailed:
            return None
        secrets = await password_secrets(cfg, account)
        return AccountSecrets(account, secrets) if secrets is not None else None

    return lookup
