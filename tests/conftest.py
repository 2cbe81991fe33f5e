"""Shared fixtures for unit tests: a loopback DNS server, and a guard so nothing queries the machine's resolver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from mox.dns import StubResolver
from mox.dns.testserver import DNSTestServer, isolated_default_dns

# No per-example time limit: hypothesis' default (200 ms) turns a loaded CI machine into
# failures, and timing belongs in bench/, not in tests.
settings.register_profile("moxmail", deadline=None)
settings.load_profile("moxmail")


@pytest.fixture
def dns_server() -> Iterator[DNSTestServer]:
    """A running loopback DNS server, empty: every name is NXDOMAIN until records are added."""
    with DNSTestServer() as server:
        yield server


@pytest.fixture
def dns_resolver(dns_server: DNSTestServer) -> StubResolver:
    """A resolver sending queries only to dns_server, with short timeouts."""
    return dns_server.resolver(timeout=2.0, attempt_timeout=1.0)


@pytest.fixture(autouse=True)
def _check_counts_on_close() -> Iterator[None]:
    """Every account closed in a test recomputes its mailbox counts and fails the test on a mismatch."""
    from mox.store import account

    old = account.CHECK_ON_CLOSE
    account.CHECK_ON_CLOSE = True
    yield
    account.CHECK_ON_CLOSE = old


@pytest.fixture(scope="session", autouse=True)
def _no_system_dns() -> Iterator[None]:
    """Code that falls back to the default resolver queries an empty loopback
    server (NXDOMAIN for everything), never the machine's resolver."""
    with isolated_default_dns():
        yield
