"""Tiered rate and concurrency limits (mox.ratelimit), as upstream's ratelimit package."""

from __future__ import annotations

import ipaddress

import pytest

from mox import ratelimit
from mox.ratelimit import (
    DAY,
    MINUTE,
    ConcurrencyLimiter,
    Limiter,
    WindowLimit,
    auth_fail_delay,
    connection_rate_limiter,
    connections_limiter,
    failed_auth_limiter,
    tier_networks,
)

T0 = 1_700_000_040.0  # At the start of a minute.


def small(limits: tuple[int, int, int] = (2, 4, 8), **kw: object) -> Limiter:
    return Limiter("test", "test limit", [WindowLimit(MINUTE, limits)], unit="things", **kw)  # type: ignore[arg-type]


def test_tier_networks_ipv4_and_ipv6() -> None:
    assert [str(n) for n in tier_networks("192.0.2.77")] == ["192.0.2.77/32", "192.0.2.64/26", "192.0.0.0/21"]
    assert [str(n) for n in tier_networks("2001:db8:1:2:3::4")] == [
        "2001:db8:1:2::/64",
        "2001:db8:1::/48",
        "2001:db8::/32",
    ]


def test_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    assert tier_networks("::ffff:192.0.2.1") == tier_networks("192.0.2.1")
    lim = small()
    assert lim.add("::ffff:192.0.2.1", T0)
    assert lim.count("192.0.2.1", 1, T0) == (1,)


def test_not_an_ip_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        small().add("not-an-ip", T0)


def test_host_limit_reached_while_network_neighbours_pass_until_network_full() -> None:
    lim = small((2, 4, 8))
    assert lim.add("192.0.2.1", T0) and lim.add("192.0.2.1", T0)
    refusal = lim.try_add("192.0.2.1", T0)
    assert refusal is not None and refusal.tier == 1 and refusal.limit == 2
    assert str(refusal.network) == "192.0.2.1/32"
    # Same /26, other hosts: fine until the /26 total of 4.
    assert lim.add("192.0.2.2", T0) and lim.add("192.0.2.3", T0)
    refusal = lim.try_add("192.0.2.4", T0)
    assert refusal is not None and refusal.tier == 2 and str(refusal.network) == "192.0.2.0/26"
    # The next /26 in the same /21 still has room, up to the /21's 8.
    assert lim.add("192.0.2.64", T0, 2)
    assert lim.add("192.0.2.128", T0, 2)
    refusal = lim.try_add("192.0.3.1", T0)
    assert refusal is not None and refusal.tier == 3 and str(refusal.network) == "192.0.0.0/21"
    # Another /21 is unaffected.
    assert lim.add("192.0.8.1", T0)


def test_ipv6_tiers() -> None:
    lim = small((1, 2, 3))
    assert lim.add("2001:db8:1:1::1", T0)
    # Another address in the same /64 is the same tier-1 key.
    assert not lim.add("2001:db8:1:1::2", T0)
    assert lim.add("2001:db8:1:2::1", T0)
    refusal = lim.try_add("2001:db8:1:3::1", T0)
    assert refusal is not None and str(refusal.network) == "2001:db8:1::/48"
    assert lim.add("2001:db8:2::1", T0)
    refusal = lim.try_add("2001:db8:3::1", T0)
    assert refusal is not None and str(refusal.network) == "2001:db8::/32"


def test_refused_add_charges_nothing() -> None:
    lim = small((5, 6, 100))
    assert lim.add("192.0.2.1", T0, 4)
    assert lim.add("192.0.2.2", T0, 1)
    # 2 more for .1 fits its own 5? No: 4+2 > 5; nothing charged anywhere.
    assert not lim.add("192.0.2.1", T0, 2)
    assert lim.count("192.0.2.1", 1, T0) == (4,)
    assert lim.count("192.0.2.1", 2, T0) == (5,)
    assert lim.count("192.0.2.1", 3, T0) == (5,)
    # Fits at tier 1 and 2 exactly.
    assert lim.add("192.0.2.1", T0, 1)
    assert not lim.add("192.0.2.3", T0, 1)


def test_all_windows_must_fit() -> None:
    lim = Limiter("x", "x", [WindowLimit(MINUTE, (3, 9, 27)), WindowLimit(DAY, (5, 15, 45))])
    for _ in range(3):
        assert lim.add("192.0.2.1", T0)
    assert not lim.add("192.0.2.1", T0)  # Minute window full.
    assert lim.add("192.0.2.1", T0 + MINUTE, 2)
    refusal = lim.try_add("192.0.2.1", T0 + MINUTE)
    assert refusal is not None and refusal.window == DAY and refusal.limit == 5
    # The day window's refusal made nothing count in the minute window either.
    assert lim.count("192.0.2.1", 1, T0 + MINUTE) == (2, 5)


def test_window_rolls_over_and_drops_old_counts() -> None:
    lim = small((1, 2, 3))
    assert lim.add("192.0.2.1", T0)
    assert not lim.add("192.0.2.1", T0 + 59.9)
    assert lim.add("192.0.2.1", T0 + 60)
    assert len(lim) == 3  # Only the current minute's three keys.
    assert lim.add("198.51.100.1", T0 + 125)
    assert lim.count("192.0.2.1", 1, T0 + 125) == (0,)
    assert len(lim) == 3


def test_can_add_and_check_do_not_count() -> None:
    lim = small((1, 2, 3))
    assert lim.can_add("192.0.2.1", T0)
    assert lim.check("192.0.2.1", T0, 1) is None
    assert lim.count("192.0.2.1", 1, T0) == (0,)
    assert lim.add("192.0.2.1", T0)
    assert not lim.can_add("192.0.2.1", T0)


def test_reset_removes_host_count_from_all_tiers_keeping_neighbours() -> None:
    lim = small((3, 5, 100))
    assert lim.add("192.0.2.1", T0, 3)
    assert lim.add("192.0.2.2", T0, 2)
    assert not lim.can_add("192.0.2.3", T0)
    lim.reset("192.0.2.1", T0)
    assert lim.count("192.0.2.1", 1, T0) == (0,)
    assert lim.count("192.0.2.1", 2, T0) == (2,)
    assert lim.add("192.0.2.3", T0, 3)


def test_injected_clock_used_without_now() -> None:
    now = [T0]
    lim = small((1, 2, 3), clock=lambda: now[0])
    assert lim.add("192.0.2.1")
    assert not lim.add("192.0.2.1")
    now[0] += MINUTE
    assert lim.add("192.0.2.1")


def test_memory_bounded_dropping_least_recently_changed() -> None:
    lim = small((5, 50, 500), max_keys=30)
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    for i in range(1000):
        assert lim.add(ipaddress.IPv4Address(base + i * 256 * 8), T0)
    assert len(lim) <= 30
    # The most recent address is still counted.
    last = ipaddress.IPv4Address(base + 999 * 256 * 8)
    assert lim.count(last, 1, T0) == (1,)


def test_refusal_text_names_the_limit() -> None:
    lim = connection_rate_limiter()
    for _ in range(300):
        assert lim.add("192.0.2.9", T0)
    refusal = lim.try_add("192.0.2.9", T0)
    assert refusal is not None
    assert refusal.name == "connection-rate"
    assert refusal.text == (
        "connection rate from your ip or network too high, slow down please "
        "(limit 300 connections per minute for 192.0.2.9/32)"
    )


def test_upstream_connection_rate_tiers() -> None:
    lim = connection_rate_limiter()
    for host in range(1, 4):
        assert lim.add(f"192.0.2.{host}", T0, 300)
    refusal = lim.try_add("192.0.2.4", T0)
    assert refusal is not None and refusal.tier == 2 and refusal.limit == 900


def test_upstream_values() -> None:
    assert ratelimit.CONNECTION_RATE_LIMITS == (300, 900, 2700)
    assert ratelimit.CONNECTIONS_LIMITS == (30, 90, 270)
    assert ratelimit.FAILED_AUTH_PER_MINUTE == (10, 30, 90)
    assert ratelimit.FAILED_AUTH_PER_DAY == (50, 150, 450)
    assert ratelimit.DELIVERY_MESSAGES_PER_MINUTE == (500, 1500, 4500)
    assert ratelimit.DELIVERY_MESSAGES_PER_DAY == (10_000, 30_000, 90_000)
    assert ratelimit.DELIVERY_SIZE_PER_MINUTE[0] == 1000 * 1024 * 1024


def test_concurrency_acquire_release() -> None:
    lim = ConcurrencyLimiter("connections", "too many open connections", (2, 3, 4))
    assert lim.acquire("192.0.2.1") is None
    assert lim.acquire("192.0.2.1") is None
    refusal = lim.acquire("192.0.2.1")
    assert refusal is not None and refusal.tier == 1 and refusal.window == ratelimit.FOREVER
    assert "(limit 2 for 192.0.2.1/32)" in refusal.text
    assert lim.acquire("192.0.2.2") is None
    refusal = lim.acquire("192.0.2.3")
    assert refusal is not None and refusal.tier == 2
    lim.release("192.0.2.1")
    assert lim.count("192.0.2.1") == 1
    assert lim.acquire("192.0.2.3") is None
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        lim.release(ip)
    # Counts back at zero are forgotten.
    assert len(lim) == 0


def test_concurrency_release_without_acquire_raises() -> None:
    lim = connections_limiter()
    with pytest.raises(ValueError):
        lim.release("192.0.2.1")


def test_concurrency_is_not_time_bound() -> None:
    lim = connections_limiter()
    for _ in range(30):
        assert lim.acquire("192.0.2.1") is None
    refusal = lim.acquire("192.0.2.1")
    assert refusal is not None and refusal.text.startswith(
        "too many open connections from your ip or network"
    )


def test_failed_auth_refuses_after_ten_per_minute_and_reset_on_success() -> None:
    lim = failed_auth_limiter()
    for _ in range(10):
        assert lim.can_add("192.0.2.1", T0)
        lim.add("192.0.2.1", T0)
    refusal = lim.check("192.0.2.1", T0)
    assert (
        refusal is not None
        and refusal.name == "failed-auth"
        and refusal.text.startswith("too many auth failures")
    )
    assert lim.can_add("192.0.2.1", T0 + MINUTE)
    lim.reset("192.0.2.1", T0 + MINUTE)
    assert lim.count("192.0.2.1", 1, T0 + MINUTE) == (0, 0)


def test_failed_auth_day_window() -> None:
    lim = failed_auth_limiter()
    t = T0
    for _ in range(5):
        assert lim.add("192.0.2.1", t, 10)
        t += MINUTE
    refusal = lim.check("192.0.2.1", t)
    assert refusal is not None and refusal.window == DAY and "per day" in refusal.text


def test_auth_fail_delay_as_upstream() -> None:
    assert [auth_fail_delay(n) for n in range(7)] == [0, 0, 0, 0, 1, 2, 3]
