"""Rate and concurrency limits per remote IP address and its networks, as upstream mox's ratelimit package.

Every limit is counted at three tiers at once: the address itself and two
wider networks around it, so one host cannot exceed its own limit and a
network full of hosts (a botnet in one hosting range, or an attacker rotating
addresses in an IPv6 /64) cannot exceed the wider limits either::

    tier     IPv4   IPv6
    1        /32    /64    (one IPv6 host usually owns a whole /64)
    2        /26    /48
    3        /21    /32

A :class:`Limiter` has one or more fixed windows (a minute, a day, or all of
time), each with a limit per tier. :meth:`Limiter.add` charges n items to all
tiers of all windows, or to none if any of them would go over its limit (no
partial charge). When a window's period ends, all its counts start at zero
again and the old counts are dropped, as upstream does; a count that reaches
zero is dropped too, so memory holds only what the current windows counted.

A refusal says which limit was hit (:class:`Refusal`): a short
machine-readable name, the tier's network, the window and the limit, and a
text for the protocol reply (upstream's SMTP reply texts, with the limit
named). The limits below are upstream's; each constant names the file and
variable they come from. Upstream hard-codes them ("todo future: make these
configurable"), so do we.

Failed authentication (:func:`failed_auth_limiter`): as upstream, a
connection to submission or IMAP is refused while its address could not add
one more failure; a failure adds one, a success resets the address's count.
Within one connection, each authentication attempt after the third failure
is first delayed by (failures - 3) seconds (:func:`auth_fail_delay`); the
sleeping is the server's job.

Not thread-safe: a limiter belongs to the event loop (no method awaits, so
calls from coroutines do not interleave; upstream needs a mutex instead).

Time is passed in (``now``, seconds since the epoch as :func:`time.time`
returns, or monotonic seconds: a limiter only compares times it was given),
so tests control it.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "AUTH_FAIL_DELAY",
    "AUTH_FAIL_DELAY_AFTER",
    "AUTH_FAIL_SLOW_AFTER",
    "CONNECTIONS_LIMITS",
    "CONNECTION_RATE_LIMITS",
    "DAY",
    "DELIVERY_MESSAGES_PER_DAY",
    "DELIVERY_MESSAGES_PER_MINUTE",
    "DELIVERY_SIZE_PER_DAY",
    "DELIVERY_SIZE_PER_MINUTE",
    "FAILED_AUTH_PER_DAY",
    "FAILED_AUTH_PER_MINUTE",
    "FOREVER",
    "HOUR",
    "HTTP_CONNECTION_RATE_PER_HOUR",
    "HTTP_CONNECTION_RATE_PER_MINUTE",
    "MAX_KEYS_PER_WINDOW",
    "MINUTE",
    "ConcurrencyLimiter",
    "Limiter",
    "Refusal",
    "WindowLimit",
    "auth_fail_delay",
    "connection_rate_limiter",
    "connections_limiter",
    "delivery_message_limiter",
    "delivery_size_limiter",
    "failed_auth_limiter",
    "http_connection_rate_limiter",
    "tier_networks",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# A window that never ends: upstream uses time.Duration(math.MaxInt64) for
# counts that only go up and down again, like open connections.
FOREVER = math.inf

# Prefix lengths of the three tiers, upstream ratelimit.go maskIP.
IPV4_TIER_PREFIXES = (32, 26, 21)
IPV6_TIER_PREFIXES = (64, 48, 32)

# --- The limits, all from upstream (github.com/mjl-/mox). Tuples are the
# limits for tier 1, 2 and 3 (see the module docstring).

# smtpserver/server.go and imapserver/server.go limitersInit,
# limiterConnectionRate: new connections per minute.
CONNECTION_RATE_LIMITS = (300, 900, 2700)
# Same place, limiterConnections: open connections at any time (window "all of time").
CONNECTIONS_LIMITS = (30, 90, 270)
# mox-/limitauth.go LimitersInit, LimiterFailedAuth: failed authentications
# per minute and per day.
FAILED_AUTH_PER_MINUTE = (10, 30, 90)
FAILED_AUTH_PER_DAY = (50, 150, 450)
# http/web.go limiterConnectionrate: HTTP connections per minute and per hour.
HTTP_CONNECTION_RATE_PER_MINUTE = (1000, 3000, 9000)
HTTP_CONNECTION_RATE_PER_HOUR = (5000, 15000, 45000)
# smtpserver/analyze.go (limitIPMasked1MessagesPerMinute = 500 in server.go,
# 1500 and 4500 for the wider tiers; per day 20 times those): messages
# delivered from a network. Upstream counts the messages stored in the
# recipient's account; here they are counted in memory, per process.
DELIVERY_MESSAGES_PER_MINUTE = (500, 1500, 4500)
DELIVERY_MESSAGES_PER_DAY = (20 * 500, 20 * 1500, 20 * 4500)
# Same file (limitIPMasked1SizePerMinute = 1000 MB in server.go, MB = 1024*1024):
# bytes delivered from a network per minute, and three times that per day.
_MB = 1024 * 1024
DELIVERY_SIZE_PER_MINUTE = (1000 * _MB, 3000 * _MB, 9000 * _MB)
DELIVERY_SIZE_PER_DAY = (3 * 1000 * _MB, 3 * 3000 * _MB, 3 * 9000 * _MB)

# smtpserver/server.go and imapserver/server.go authFailDelay: after more than
# AUTH_FAIL_DELAY_AFTER failed attempts on a connection, each further attempt
# waits (failures - 3) * 1 s before it is checked.
AUTH_FAIL_DELAY = 1.0
AUTH_FAIL_DELAY_AFTER = 3
# From the third failure on a connection upstream also answers slowly
# (setSlow: a delay before each read and after small writes).
AUTH_FAIL_SLOW_AFTER = 3

# Our own bound, not upstream's: distinct keys one window keeps before it
# drops the oldest (three keys per address, one per tier). A minute of
# connections from a million different addresses stays within bounds at the
# cost of forgetting some of the earliest counts. Concurrency counts are
# never dropped: they go back to zero when connections close.
MAX_KEYS_PER_WINDOW = 300_000


def _parse_ip(ip: str | IPAddress) -> IPAddress:
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # An IPv4 client on a dual-stack socket is counted as the IPv4 address,
        # as upstream (net.IP.To4).
        return addr.ipv4_mapped
    return addr


def tier_networks(ip: str | IPAddress) -> tuple[Network, Network, Network]:
    """The networks of the three tiers an address is counted in, e.g. 192.0.2.7/32, 192.0.2.0/26, 192.0.0.0/21.

    Raises:
        ValueError: not an IP address.
    """
    addr = _parse_ip(ip)
    prefixes = IPV4_TIER_PREFIXES if addr.version == 4 else IPV6_TIER_PREFIXES
    a, b, c = (ipaddress.ip_network((addr, p), strict=False) for p in prefixes)
    return a, b, c


def _describe_window(window: float) -> str:
    if window == FOREVER:
        return ""
    for size, unit in ((DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")):
        if window == size:
            return f"per {unit}"
        if window > size and window % size == 0:
            return f"per {int(window // size)} {unit}s"
    return f"per {window:g} seconds"


@dataclass(frozen=True)
class WindowLimit:
    """Limits for one fixed window, one per tier.

    Attributes:
        window: length in seconds (:data:`MINUTE`, :data:`DAY`, ...), or
            :data:`FOREVER` for a count without a period.
        limits: maximum total per window for tier 1, 2 and 3.
    """

    window: float
    limits: tuple[int, int, int]

    def __post_init__(self) -> None:
        if not self.window > 0:
            raise ValueError(f"window must be positive, not {self.window}")
        if any(limit < 0 for limit in self.limits):
            raise ValueError("limits must not be negative")


@dataclass(frozen=True)
class Refusal:
    """Which limit refused an add, for logs and the protocol reply.

    Attributes:
        name: the limiter, machine-readable: "connection-rate", "connections",
            "failed-auth", "delivery-messages", ...
        network: the tier's network whose count would exceed the limit.
        tier: 1 (the address), 2 or 3 (wider networks).
        window: the window's length in seconds (:data:`FOREVER`: no period).
        limit: the limit that would be exceeded.
        text: a short human text naming the limit, for an SMTP or IMAP reply.
    """

    name: str
    network: Network
    tier: int
    window: float
    limit: int
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class _Window:
    spec: WindowLimit
    period: int = -1  # Index of the period the counts are for: floor(now / window).
    counts: dict[tuple[int, Network], int] = field(default_factory=dict)

    def roll(self, now: float) -> None:
        period = 0 if self.spec.window == FOREVER else math.floor(now / self.spec.window)
        if period > self.period:
            # A new period: drop all counts of the previous one (upstream resets
            # the whole map, there is no sliding).
            self.period = period
            self.counts = {}


class Limiter:
    """A fixed-window rate limiter over the three tiers of an IP address (upstream ratelimit.Limiter).

    Args:
        name: machine-readable name reported in a :class:`Refusal`.
        text: what is limited, for the refusal text, e.g. "connection rate
            from your ip or network too high".
        windows: one or more windows with their limits.
        unit: what is counted, for the refusal text ("connections", "bytes").
        clock: the time used when ``now`` is not passed.
        max_keys: keys a window keeps before dropping the least recently
            changed (:data:`MAX_KEYS_PER_WINDOW`); None: no bound.
    """

    def __init__(
        self,
        name: str,
        text: str,
        windows: Sequence[WindowLimit],
        *,
        unit: str = "",
        clock: Callable[[], float] = time.time,
        max_keys: int | None = MAX_KEYS_PER_WINDOW,
    ) -> None:
        if not windows:
            raise ValueError("a limiter needs at least one window")
        self.name = name
        self.text = text
        self.unit = unit
        self.clock = clock
        self.max_keys = max_keys
        self._windows = [_Window(w) for w in windows]

    @property
    def windows(self) -> tuple[WindowLimit, ...]:
        return tuple(w.spec for w in self._windows)

    def _refusal(self, net: Network, tier: int, spec: WindowLimit) -> Refusal:
        limit = spec.limits[tier - 1]
        what = f"{limit} {self.unit}".rstrip() if self.unit else str(limit)
        per = _describe_window(spec.window)
        detail = f"limit {what}{' ' + per if per else ''} for {net}"
        return Refusal(self.name, net, tier, spec.window, limit, f"{self.text} ({detail})")

    def check(self, ip: str | IPAddress, now: float | None = None, n: int = 1) -> Refusal | None:
        """The limit that adding n would exceed, or None if it would fit; nothing is counted.

        Raises:
            ValueError: ip is not an IP address.
        """
        return self._check_add(ip, now, n, add=False)

    def try_add(self, ip: str | IPAddress, now: float | None = None, n: int = 1) -> Refusal | None:
        """Count n for ip in all tiers and windows, unless that exceeds a limit: then count nothing.

        Returns:
            None if counted, or the first limit that refused (first window, narrowest tier).

        Raises:
            ValueError: ip is not an IP address.
        """
        return self._check_add(ip, now, n, add=True)

    def add(self, ip: str | IPAddress, now: float | None = None, n: int = 1) -> bool:
        """Like :meth:`try_add`, True if counted (upstream Limiter.Add)."""
        return self.try_add(ip, now, n) is None

    def can_add(self, ip: str | IPAddress, now: float | None = None, n: int = 1) -> bool:
        """Whether n could be added now (upstream Limiter.CanAdd)."""
        return self.check(ip, now, n) is None

    def _check_add(self, ip: str | IPAddress, now: float | None, n: int, *, add: bool) -> Refusal | None:
        nets = tier_networks(ip)
        t = self.clock() if now is None else now
        for w in self._windows:
            w.roll(t)
        for w in self._windows:
            for tier, net in enumerate(nets, 1):
                # Only increases are checked: giving back (n < 0, a closed
                # connection) always succeeds, as upstream's v+n > limit.
                if n > 0 and w.counts.get((tier, net), 0) + n > w.spec.limits[tier - 1]:
                    return self._refusal(net, tier, w.spec)
        if add:
            for w in self._windows:
                for tier, net in enumerate(nets, 1):
                    self._count(w, (tier, net), n)
        return None

    def _count(self, w: _Window, key: tuple[int, Network], n: int) -> None:
        v = w.counts.pop(key, 0) + n
        if v > 0:
            w.counts[key] = v  # Re-inserted: the dict's order is least recently changed first.
        while self.max_keys is not None and len(w.counts) > self.max_keys:
            del w.counts[next(iter(w.counts))]

    def reset(self, ip: str | IPAddress, now: float | None = None) -> None:
        """Forget the address's own count in the current windows, and take it off its wider tiers.

        Used after a successful login (upstream Limiter.Reset): earlier
        failures from this address no longer count, those of its neighbours
        still do.
        """
        nets = tier_networks(ip)
        t = self.clock() if now is None else now
        for w in self._windows:
            w.roll(t)
            own = w.counts.get((1, nets[0]), 0)
            if own:
                for tier, net in enumerate(nets, 1):
                    self._count(w, (tier, net), -own)

    def count(self, ip: str | IPAddress, tier: int = 1, now: float | None = None) -> tuple[int, ...]:
        """The current counts of the address's tier network, one per window (for tests and diagnostics)."""
        net = tier_networks(ip)[tier - 1]
        t = self.clock() if now is None else now
        out = []
        for w in self._windows:
            w.roll(t)
            out.append(w.counts.get((tier, net), 0))
        return tuple(out)

    def __len__(self) -> int:
        """Keys held over all windows: the memory the limiter uses."""
        return sum(len(w.counts) for w in self._windows)


class ConcurrencyLimiter:
    """Open connections (or other held resources) per address tier (upstream's limiterConnections).

    :meth:`acquire` counts one, :meth:`release` gives it back; a count that
    reaches zero is forgotten, so the memory used follows the open
    connections. Usage::

        refusal = limiter.acquire(ip)
        if refusal is not None:
            reply(f"421 4.7.0 {refusal.text}")
            return
        try:
            serve()
        finally:
            limiter.release(ip)
    """

    def __init__(self, name: str, text: str, limits: tuple[int, int, int], *, unit: str = "") -> None:
        self._limiter = Limiter(name, text, [WindowLimit(FOREVER, limits)], unit=unit, max_keys=None)

    @property
    def limits(self) -> tuple[int, int, int]:
        return self._limiter.windows[0].limits

    def acquire(self, ip: str | IPAddress) -> Refusal | None:
        """Count one for ip, or return the limit that is reached (nothing counted)."""
        return self._limiter.try_add(ip, 0.0, 1)

    def release(self, ip: str | IPAddress) -> None:
        """Give back one that :meth:`acquire` counted for ip.

        Raises:
            ValueError: nothing is held for ip (a release without acquire).
        """
        if self._limiter.count(ip, 1, 0.0)[0] <= 0:
            raise ValueError(f"release for {ip} without acquire")
        self._limiter.try_add(ip, 0.0, -1)

    def count(self, ip: str | IPAddress, tier: int = 1) -> int:
        """Held now by the address's tier network."""
        return self._limiter.count(ip, tier, 0.0)[0]

    def __len__(self) -> int:
        return len(self._limiter)


# --- The limiters upstream uses, each a fresh instance (servers own theirs;
# upstream shares the failed-auth limiter between SMTP and IMAP, so should we).


def connection_rate_limiter(*, clock: Callable[[], float] = time.time) -> Limiter:
    """New SMTP or IMAP connections per minute: 300/900/2700 (:data:`CONNECTION_RATE_LIMITS`)."""
    return Limiter(
        "connection-rate",
        "connection rate from your ip or network too high, slow down please",
        [WindowLimit(MINUTE, CONNECTION_RATE_LIMITS)],
        unit="connections",
        clock=clock,
    )


def connections_limiter() -> ConcurrencyLimiter:
    """Open SMTP or IMAP connections: 30/90/270 (:data:`CONNECTIONS_LIMITS`)."""
    return ConcurrencyLimiter(
        "connections",
        "too many open connections from your ip or network",
        CONNECTIONS_LIMITS,
        unit="open connections",
    )


def failed_auth_limiter(*, clock: Callable[[], float] = time.time) -> Limiter:
    """Failed authentications: 10/30/90 per minute and 50/150/450 per day (upstream LimiterFailedAuth).

    Before serving submission or IMAP, refuse if ``check(ip)`` (can one more
    be added?) gives a refusal; add one per failed attempt; ``reset(ip)``
    after a successful one.
    """
    return Limiter(
        "failed-auth",
        "too many auth failures",
        [WindowLimit(MINUTE, FAILED_AUTH_PER_MINUTE), WindowLimit(DAY, FAILED_AUTH_PER_DAY)],
        unit="failures",
        clock=clock,
    )


def http_connection_rate_limiter(*, clock: Callable[[], float] = time.time) -> Limiter:
    """New HTTP connections: 1000/3000/9000 per minute and 5000/15000/45000 per hour."""
    return Limiter(
        "http-connection-rate",
        "connection rate from your ip or network too high, slow down please",
        [
            WindowLimit(MINUTE, HTTP_CONNECTION_RATE_PER_MINUTE),
            WindowLimit(HOUR, HTTP_CONNECTION_RATE_PER_HOUR),
        ],
        unit="connections",
        clock=clock,
    )


def delivery_message_limiter(*, clock: Callable[[], float] = time.time) -> Limiter:
    """Messages delivered from a network: 500/1500/4500 per minute, 20 times that per day."""
    return Limiter(
        "delivery-messages",
        "too many messages from your ip or network",
        [WindowLimit(MINUTE, DELIVERY_MESSAGES_PER_MINUTE), WindowLimit(DAY, DELIVERY_MESSAGES_PER_DAY)],
        unit="messages",
        clock=clock,
    )


def delivery_size_limiter(*, clock: Callable[[], float] = time.time) -> Limiter:
    """Bytes delivered from a network: 1000/3000/9000 MiB per minute, three times that per day."""
    return Limiter(
        "delivery-size",
        "too much message data from your ip or network",
        [WindowLimit(MINUTE, DELIVERY_SIZE_PER_MINUTE), WindowLimit(DAY, DELIVERY_SIZE_PER_DAY)],
        unit="bytes",
        clock=clock,
    )


def auth_fail_delay(failures: int) -> float:
    """Seconds to wait before checking the next authentication attempt on a connection.

    failures is the number of failed attempts on this connection so far.
    Upstream (smtpserver cmdAuth, imapserver authenticate/login): no delay
    for the first attempts, then (failures - 3) times :data:`AUTH_FAIL_DELAY`,
    growing by a second per further failure.
    """
    if failures <= AUTH_FAIL_DELAY_AFTER:
        return 0.0
    return (failures - AUTH_FAIL_DELAY_AFTER) * AUTH_FAIL_DELAY
