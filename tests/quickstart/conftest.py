"""Fixtures for quickstart tests: a loopback DNS server with the host's records; fast keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from quickstarthelpers import host_dns

from mox.dns.testserver import DNSTestServer


@pytest.fixture
def qs_dns() -> Iterator[DNSTestServer]:
    with DNSTestServer() as server:
        host_dns(server)
        yield server


@pytest.fixture(scope="session")
def _rsa_key() -> object:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(autouse=True)
def _fast_keys(monkeypatch: pytest.MonkeyPatch, _rsa_key: object) -> None:
    """One RSA key for the whole session instead of three new ones per quickstart (seconds on a busy machine)."""
    import bcrypt

    from mox import quickstart
    from mox.config import keys

    monkeypatch.setattr(quickstart.rsa, "generate_private_key", lambda **kw: _rsa_key)
    monkeypatch.setattr(quickstart.keys, "make_dkim_rsa_key", lambda: keys._pkcs8(_rsa_key))  # type: ignore[arg-type]
    monkeypatch.setattr(
        quickstart.keys,
        "hash_admin_password",
        lambda pw: bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)),
    )
