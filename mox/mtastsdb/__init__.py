"""The MTA-STS policy cache (RFC 8461 section 5.1 and 10) used by outgoing delivery.

``db = await PolicyDB.open("data/mtasts.db")``; per recipient domain
``r = await db.get(resolver, domain)`` gives the policy to apply (or None),
whether it was checked now (``fresh``) and the TLS report information
(policy_type, policy_strings, mx_hosts, result_type, reason). The server runs
``db.refresh_loop(resolver, stop=event)`` in the background. See
:mod:`mox.mtastsdb.db`.
"""

from mox.mtastsdb.db import (
    BACKOFF_SECONDS,
    POLICY_TYPE_NO_POLICY,
    POLICY_TYPE_STS,
    REFRESH_AFTER,
    REFRESH_BATCH,
    REFRESH_CONCURRENCY,
    REFRESH_INTERVAL,
    UNUSED_EXPIRY,
    FetchFn,
    GetResult,
    PolicyDB,
    PolicyRecord,
)

__all__ = [
    "BACKOFF_SECONDS",
    "POLICY_TYPE_NO_POLICY",
    "POLICY_TYPE_STS",
    "REFRESH_AFTER",
    "REFRESH_BATCH",
    "REFRESH_CONCURRENCY",
    "REFRESH_INTERVAL",
    "UNUSED_EXPIRY",
    "FetchFn",
    "GetResult",
    "PolicyDB",
    "PolicyRecord",
]
