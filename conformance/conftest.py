"""Fixtures for the conformance tests: real ``mox serve`` processes (see serve_harness)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_net import interop
from serve_harness import MoxServe, local_ports

from mox.config.example import write_local_config
from mox.dns.testserver import isolated_default_dns

# The container interop network (interop_net.py), one per test session, shared by every module
# that asks for it.
__all__ = ["interop"]


@pytest.fixture(scope="session", autouse=True)
def _no_system_dns() -> Iterator[None]:
    """mox processes started here inherit MOX_DNS pointing at an empty loopback server."""
    with isolated_default_dns():
        # Servers started by these tests check mailbox counts of every account at close.
        os.environ["MOX_TEST_CHECK_COUNTS"] = "1"
        yield


@pytest.fixture
def mox_serve(tmp_path: Path) -> Iterator[MoxServe]:
    m = MoxServe(tmp_path)
    m.start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def local_config(tmp_path: Path) -> Path:
    """A local config written but not served."""
    return write_local_config(tmp_path, ports=local_ports(), ips=["127.0.0.1"])


