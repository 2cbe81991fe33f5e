"""TLS reporting state (RFC 8460): results of our outgoing deliveries, and incoming reports.

Stored in ``<DataDir>/tlsrpt.db`` (SQLite, WAL, its own thread).

For the outgoing delivery code (the queue), after each delivery attempt::

    from mox import tlsrpt, tlsrptdb

    db = await tlsrptdb.open_data_dir(cfg.data_dir)
    sts = tlsrpt.Result(tlsrpt.ResultPolicy.sts("example.com", policy_lines, ["mx.example.com"]))
    sts.add(1, 0)                                   # one successful session
    dane = tlsrpt.Result(tlsrpt.ResultPolicy.tlsa("mx.example.com", ["3 1 1 ab12..."]))
    dane.add(0, 1, tlsrpt.FailureDetails(tlsrpt.ResultType.TLSA_INVALID, 1, receiving_mx_hostname="mx.example.com",
                                         receiving_ip="192.0.2.1"))
    await db.add_results([
        tlsrptdb.new_result("example.com", "example.com", is_host=False, results=[sts]),      # MTA-STS: recipient domain
        tlsrptdb.new_result("mx.example.com", "example.com", is_host=True, results=[dane]),   # DANE: the MX host
    ])

Use ``send_report=False`` when the message being delivered is itself a TLS
report (no reports about reports). Results for the same (policy domain,
UTC day, recipient domain) are merged: counts per policy add up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from mox import tlsrpt
from mox.dns import Domain
from mox.tlsrptdb.db import (
    TLSRPTDB,
    ReportRecord,
    SuppressAddress,
    TLSResult,
    close_all,
    day_utc,
    domain_name,
    open_data_dir,
)


def new_result(
    policy_domain: Domain | str,
    recipient_domain: Domain | str,
    *,
    is_host: bool,
    results: Iterable[tlsrpt.Result],
    send_report: bool = True,
    now: float | None = None,
) -> TLSResult:
    """A :class:`TLSResult` for the UTC day of now (the current time by default), for :meth:`TLSRPTDB.add_results`."""
    t = time.time() if now is None else now
    return TLSResult(
        policy_domain=domain_name(policy_domain),
        day_utc=day_utc(t),
        recipient_domain=domain_name(recipient_domain),
        is_host=is_host,
        send_report=send_report,
        results=list(results),
    )


__all__ = [
    "TLSRPTDB",
    "ReportRecord",
    "SuppressAddress",
    "TLSResult",
    "close_all",
    "day_utc",
    "domain_name",
    "new_result",
    "open_data_dir",
]
