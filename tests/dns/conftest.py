"""Fixtures for the DNS tests: a loopback DNS server and a resolver using only it."""

from collections.abc import Iterator

import pytest

from mox.dns import StubResolver, set_default_resolver
from mox.dns.testserver import DNSTestServer


@pytest.fixture
def resolver(dns_server: DNSTestServer) -> StubResolver:
    """A resolver sending queries only to dns_server, with short timeouts."""
    return dns_server.resolver(timeout=2.0, attempt_timeout=1.0)


@pytest.fixture(autouse=True)
def _reset_default_resolver() -> Iterator[None]:
    # Tests that set a default resolver (or MOX_DNS) must not leak it to others.
    yield
    set_default_resolver(None)
