"""The recipient local parts with which localserve simulates failures."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mox.localserve.failures import SimulatedFailure, failure_code, simulated_failure


def test_suffixes() -> None:
    assert simulated_failure("mox") is None
    assert simulated_failure("jantemperror") == SimulatedFailure(451, False, "data")
    assert simulated_failure("permerror") == SimulatedFailure(550, False, "data")
    assert simulated_failure("x421") == SimulatedFailure(421, False, "data")
    assert simulated_failure("x600") == SimulatedFailure(600, False, "data")
    assert simulated_failure("x399") is None
    assert simulated_failure("x601") is None
    assert simulated_failure("x42") is None
    assert simulated_failure("timeout") == SimulatedFailure(0, True, "data")


def test_stages() -> None:
    assert simulated_failure("mailfrom550") == SimulatedFailure(550, False, "mailfrom")
    assert simulated_failure("rcpttotemperror") == SimulatedFailure(451, False, "rcptto")
    assert simulated_failure("queuepermerror") == SimulatedFailure(550, False, "queue")
    assert simulated_failure("mailfrom") is None
    f = simulated_failure("rcptto451")
    assert f is not None and not f.permanent
    f = simulated_failure("rcptto554")
    assert f is not None and f.permanent


@given(st.text(max_size=40))
def test_any_localpart(lp: str) -> None:
    f = simulated_failure(lp)
    fc = failure_code(lp)
    assert (f is None) == (fc is None)
    if f is not None:
        assert f.timeout == (f.code == 0)
        assert f.timeout or 400 <= f.code <= 600


@given(st.text(alphabet="abcxyz", max_size=10), st.integers(400, 600))
def test_numeric_suffix(prefix: str, code: int) -> None:
    f = simulated_failure(f"{prefix}{code}")
    assert f is not None and f.code == code
