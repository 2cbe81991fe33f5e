"""Shared secrets and lookups for the SASL tests."""

from __future__ import annotations

import functools

from mox.sasl import AccountSecrets
from mox.store.password import PasswordSecrets, make_secrets

# RFC 4616 section 4 and RFC 2195 section 2 use this user and password.
USER = "tim"
PASSWORD = "tanstaaftanstaaf"
ACCOUNT = "timacct"


@functools.cache
def secrets() -> PasswordSecrets:
    return make_secrets(PASSWORD, bcrypt_cost=4, scram_iterations=4096)


def credentials() -> AccountSecrets:
    return AccountSecrets(ACCOUNT, secrets())


async def lookup(username: str) -> AccountSecrets | None:
    return credentials() if username == USER else None
