"""Recipient local parts with which ``mox localserve`` simulates delivery failures, as upstream.

A developer testing software that sends mail wants to see how it handles
errors. Under localserve, a recipient whose local part ends in one of these
suffixes fails on purpose:

- ``temperror``: a temporary error, 451;
- ``permerror``: a permanent error, 550;
- three digits from 400 to 600: that reply code;
- ``timeout``: no answer at all (the connection hangs).

The failure happens at the end of DATA, unless the local part begins with
``mailfrom`` or ``rcptto`` (the failure then comes at that command) or with
``queue`` (the submission is accepted, the later delivery from the queue
fails). Pure functions; the queue's localserve deliverer (mox.localserve.deliver)
applies them to outgoing mail; the SMTP server is to ask :func:`simulated_failure`
for the stages before the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["mailfrom", "rcptto", "data", "queue"]

# Reply codes used, RFC 5321 section 4.2.3.
TEMPORARY_CODE = 451
PERMANENT_CODE = 550


@dataclass(frozen=True)
class SimulatedFailure:
    """What to do for a recipient: reply ``code`` (0 with timeout) at ``stage``."""

    code: int
    timeout: bool
    stage: Stage

    @property
    def permanent(self) -> bool:
        return self.code >= 500


def failure_code(localpart: str) -> tuple[int, bool] | None:
    """The code and whether to time out for a local part's suffix, or None for a normal delivery."""
    if localpart.endswith("temperror"):
        return TEMPORARY_CODE, False
    if localpart.endswith("permerror"):
        return PERMANENT_CODE, False
    if localpart.endswith("timeout"):
        return 0, True
    tail = localpart[-3:]
    if len(tail) == 3 and tail.isascii() and tail.isdigit() and 400 <= int(tail) <= 600:
        return int(tail), False
    return None


def simulated_failure(localpart: str) -> SimulatedFailure | None:
    """The failure a localserve recipient asks for, or None to deliver normally."""
    fc = failure_code(localpart)
    if fc is None:
        return None
    stage: Stage = "data"
    for prefix in ("mailfrom", "rcptto", "queue"):
        if localpart.startswith(prefix):
            stage = prefix
            break
    return SimulatedFailure(fc[0], fc[1], stage)
