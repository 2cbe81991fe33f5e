"""Retry schedule of the queue, as upstream mox.

The first attempt is immediate. After attempt n (1-based) fails temporarily,
the next one is 7.5 minutes * 2^(n-1) later (with a few seconds of jitter):
7.5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 8 h. After the 5th attempt (about two
hours after the first) fails, the sender gets a "delayed" DSN; after the 8th
(about 16 hours) the message fails with a DSN. A message's max_attempts
overrides 8. RFC 5321 section 4.5.4.1 asks for at least 30 minutes between
retries to a destination, and giving up after 4-5 days; upstream chose
shorter first retries and a shorter total, which we follow.
"""

from __future__ import annotations

import random

FIRST_RETRY = 7.5 * 60.0
DEFAULT_MAX_ATTEMPTS = 8
# After a temporary failure of this attempt, a delay DSN is sent (upstream: Attempts == 5).
DELAY_DSN_ATTEMPT = 5
# Upstream adds -5..+4 seconds to each back-off.
JITTER = 5.0
# RFC 4865 / upstream FutureReleaseIntervalMax: a release at most 60 days ahead.
FUTURE_RELEASE_MAX = 60 * 24 * 3600.0


def backoff(attempts_before: int, jitter: float = 0.0) -> float:
    """Seconds from the start of an attempt to the next one, given the attempts made before it."""
    if attempts_before < 0:
        raise ValueError("attempts must be >= 0")
    return FIRST_RETRY * (2 ** min(attempts_before, 30)) + jitter


def random_jitter(rng: random.Random | None = None) -> float:
    r = rng or random
    return r.uniform(-JITTER, JITTER)


def max_attempts(configured: int) -> int:
    return configured if configured > 0 else DEFAULT_MAX_ATTEMPTS


def give_up(attempts: int, configured_max: int) -> bool:
    """Whether a temporary failure of attempt number attempts is the last one."""
    return attempts >= max_attempts(configured_max)


def send_delay_dsn(attempts: int, configured_max: int) -> bool:
    """Whether a temporary failure of attempt number attempts warrants the (single) delay DSN."""
    return attempts == DELAY_DSN_ATTEMPT and not give_up(attempts, configured_max)


def retry_until(last_attempt: float, attempts: int, configured_max: int) -> float:
    """When the last attempt will be made (the DSN's Will-Retry-Until), from the start of attempt number attempts."""
    t = last_attempt
    for n in range(attempts, max_attempts(configured_max)):
        t += backoff(n)
    return t
