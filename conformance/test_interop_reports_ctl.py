"""ctl commands that send reports, ``tlsrpt sendreports`` and ``dmarc sendreports``, against the live
interop instances (the table of all ctl commands is in test_interop_ctl.py).

A module of its own that sorts after the other interop modules: the reports go out through the
instances' queues, also to the MX hosts' TLSRPT addresses (domains without MTA-STS policies, so
delivered without PKIX verification), and the other modules' checks look at all TLS handshakes in the
instances' logs. Sending reports also consumes the stored results and evaluations of the day, those
of earlier tests included; the test delivers first, so there is always something of its own to report.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from interop_ctl_helpers import account, count_exported, mox, unique, wait_exported, wait_mox1_certificates
from interop_net import MOX1_DOMAIN, MOX1_HOST, MOX2_DOMAIN, Network, wait_for

pytestmark = pytest.mark.timeout(900)


def test_ctl_sendreports(interop: Network) -> None:
    """tlsrpt sendreports on mox2 and dmarc sendreports on mox1 after a delivery from mox2 to mox1:
    mox2's TLS report for mox1.example arrives at mox1's TLSRPT address, mox1's DMARC aggregate report
    about mox2.example at mox2's DMARC address (both in account mjl's report mailboxes, read from the
    account files without changing them).

    Sending reports consumes the stored results and evaluations of the day/interval, also those of
    other tests' deliveries made earlier in the session; tests that trigger reports themselves deliver
    first, so they get their own."""
    net = interop
    wait_mox1_certificates(net)
    # TLS results count sessions (RFC 8460 section 4.1): a delivery over a connection mox2's queue
    # kept open from an earlier delivery adds none. Wait until mox1 has no connection from mox2.
    wait_for("mox2: no open connection to mox1", lambda: _open_connections(net, "mox1", "mox2") == 0, 30, net.hosts["mox1"].logs)
    with account(net, "mox1", "ctlrptrcpt") as rcpt, account(net, "mox2", "ctlrpt") as acc:
        subject = unique("ctl reports ")
        acc.submit([rcpt.address], subject)
        rcpt.wait_exported(f"Subject: {subject}")
    wait_for(
        "mox2: delivery to mox1 done (queue empty for it)",
        lambda: f"to:{rcpt.address}" not in mox(net, "mox2", "queue", "list"),
        30,
        net.hosts["mox2"].logs,
    )

    # The queue writes TLS results in batches (mox.queue.remote.RESULTS_FLUSH, 5 s) and sendreports
    # does not flush them first: repeat until the delivery's results are in a report.
    today = datetime.datetime.now(datetime.UTC)
    day = today.strftime("%Y-%m-%d")
    # Report IDs are per domain and day (RFC 8460 section 4.4): count this one's messages.
    tls_id = f"{today.strftime('%Y%m%d')}.{MOX1_DOMAIN}@{MOX2_DOMAIN}"
    before = count_exported(net, "mox1", "mjl", "TLSRPT", f"Report-ID: <{tls_id}>")
    sent = _until_reported(net, "mox2", ["tlsrpt", "sendreports", day], lambda r: r["policy_domain"] == MOX1_DOMAIN and r["is_recipient_domain"])
    assert sent["error"] == "" and sent["queued"] == [f"tls-reports@{MOX1_DOMAIN}"] and sent["report_id"] == tls_id, sent
    wait_for(
        "mox1: the TLS report in mjl's TLSRPT mailbox",
        lambda: count_exported(net, "mox1", "mjl", "TLSRPT", f"Report-ID: <{tls_id}>") > before,
        60,
        net.hosts["mox1"].logs,
    )
    msg = wait_exported(net, "mox1", "mjl", "TLSRPT", f"Report-ID: <{tls_id}>")
    assert f"Report Domain: {MOX1_DOMAIN} Submitter: {MOX2_DOMAIN}" in msg, msg

    # DMARC: the reporting hour ending at the next midnight UTC covers every interval (RFC 7489 ri).
    midnight = (today + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    sent = _until_reported(net, "mox1", ["dmarc", "sendreports", midnight.strftime("%Y-%m-%dT%H:%M:%SZ")], lambda r: r["domain"] == MOX2_DOMAIN)
    assert sent["error"] == "" and sent["queued"] and sent["report_id"], sent
    msg = wait_exported(net, "mox2", "mjl", "DMARC", sent["report_id"], timeout=60)
    assert f"Report Domain: {MOX2_DOMAIN} Submitter: {MOX1_HOST}" in msg, msg


def _open_connections(net: Network, server: str, client: str) -> int:
    """SMTP connections from client's addresses that server logged as opened but not (yet) as closed."""
    ips = (net.ip(client), net.ip6(client))
    opened = closed = 0
    for line in net.hosts[server].logs().splitlines():
        if not any(f" remote={ip} " in line for ip in ips):
            continue
        if 'm="smtp connection" ' in line:
            opened += 1
        elif 'm="smtp connection closed" ' in line:
            closed += 1
    return opened - closed


def _until_reported(net: Network, host: str, args: list[str], match: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
    """Run `mox ARGS` (a sendreports command) until its JSON result has an entry that matches; that entry."""
    found: list[dict[str, Any]] = []
    outputs: list[str] = []

    def check() -> bool:
        out = mox(net, host, *args)
        outputs.append(out)
        found.extend(r for r in json.loads(out) if match(r))
        return bool(found)

    wait_for(f"{host}: mox {' '.join(args)} reporting the delivery", check, timeout, lambda: "\n".join(outputs) + net.hosts[host].logs())
    assert len(found) == 1, found
    return found[0]
