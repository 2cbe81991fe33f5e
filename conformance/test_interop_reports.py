"""Triggered report runs inside the interop network (conformance/interop_net.py): TLS reports (RFC 8460)
and DMARC aggregate reports (RFC 7489 section 7.2) between mox1 and mox2, sent by `mox tlsrpt
sendreports` and `mox dmarc sendreports` run in the sending container, delivered through its queue
to the reporting addresses published in the signed zones, and parsed by the receiving instance.

- mox1 delivered to mox2 with DANE: its report about mox2's MX host goes to the per-host address of
  `_smtp._tls.mail.mox2.example` (HostTLSRPT of mox2) and is stored as a host report;
- mox2 delivered to mox1 verified by MTA-STS: its report goes to the domain address of
  `_smtp._tls.mox1.example` and is stored for mox1.example;
- each evaluated the other's DMARC policy on delivery: the aggregate report goes to the rua of
  `_dmarc.<domain>` (ri=3600: hourly) and arrives with a DMARC pass.

The deliveries these are about are made by the module fixture, from the client container."""

from __future__ import annotations

import datetime
import email
import email.policy
import email.utils
import gzip
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from interop_net import (
    DMARC_LOCALPART,
    HOST_TLSRPT_LOCALPART,
    MOX1_ACCOUNTS,
    MOX1_DOMAIN,
    MOX1_HOST,
    MOX2_ACCOUNTS,
    MOX2_DOMAIN,
    MOX2_HOST,
    TLSRPT_LOCALPART,
    Network,
    wait_for,
)

# The first test also waits for the network: image builds on a cold cache take minutes on 2 cores.
pytestmark = pytest.mark.timeout(900)

INSTANCES = {"mox1": (MOX1_DOMAIN, MOX1_HOST, MOX1_ACCOUNTS), "mox2": (MOX2_DOMAIN, MOX2_HOST, MOX2_ACCOUNTS)}


def _other(instance: str) -> str:
    return "mox2" if instance == "mox1" else "mox1"


@pytest.fixture(scope="module")
def delivered(interop: Network) -> Iterator[Network]:
    """One message each way, submitted from the client container: mox1 -> mox2 (DANE) and
    mox2 -> mox1 (MTA-STS), both delivered; the senders' TLS results are recorded."""
    net = interop
    net.wait_mox1_certificates()
    tag = uuid.uuid4().hex[:8]
    for sender in ("mox1", "mox2"):
        rcpt = INSTANCES[_other(sender)][2]["mjl"][0]
        net.client_submit(sender, "mjl", [rcpt], f"for reports {sender} {tag}")
    for sender in ("mox1", "mox2"):
        net.fetch_message(_other(sender), "mjl", ["SUBJECT", f'"for reports {sender} {tag}"'], timeout=90)
    yield net


def _tls_day(net: Network, instance: str, policy_domain: str) -> str:
    """The UTC day (yyyy-mm-dd) of instance's TLS results for policy_domain that call for a report;
    waits for them (the queue writes results every few seconds)."""
    days: list[str] = []

    def check() -> bool:
        days[:] = [r["day"] for r in net.tls_results(instance) if r["policy_domain"] == policy_domain and r["send_report"]]
        return bool(days)

    wait_for(f"{instance}: TLS results for {policy_domain}", check, 30, lambda: f"{net.tls_results(instance)}")
    d = days[-1]
    return f"{d[:4]}-{d[4:6]}-{d[6:]}"


def _sendreports(net: Network, instance: str, args: list[str]) -> list[dict[str, Any]]:
    """`mox ARGS` (a sendreports command) run in instance's container; its JSON output."""
    _code, out = net.exec(instance, ["mox", *args])
    try:
        res = json.loads(out[out.index("[") :])
    except ValueError as e:
        raise AssertionError(f"{instance}: mox {' '.join(args)}: no JSON in output: {out}") from e
    assert isinstance(res, list), out
    return res


def _entry(results: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    found = [r for r in results if r.get(key) == value]
    assert len(found) == 1, f"no single result with {key}={value}: {json.dumps(results, indent=1)}"
    return found[0]


def _stored_tls_reports(net: Network, instance: str, domain: str, since: float) -> list[dict[str, Any]]:
    """TLS reports instance stored (tlsrpt.db, table tls_report) for its policy domain received since."""
    rows = net.db_rows(
        instance,
        "tlsrpt.db",
        "SELECT domain, from_domain, mail_from, host_report, received, report FROM tls_report WHERE domain = ? AND received >= ?",
        (domain, since),
    )
    keys = ("domain", "from_domain", "mail_from", "host_report", "received")
    return [{**dict(zip(keys, r[:5], strict=True)), "report": json.loads(r[5])} for r in rows]


def _wait_tls_report(net: Network, instance: str, domain: str, since: float) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def check() -> bool:
        found[:] = _stored_tls_reports(net, instance, domain, since)
        return bool(found)

    wait_for(f"{instance}: TLS report stored for {domain}", check, 90, net.all_logs)
    assert len(found) == 1, found
    return found[0]


def _policies(report: dict[str, Any], policy_type: str) -> list[dict[str, Any]]:
    return [p for p in report["policies"] if p["policy"]["policy-type"] == policy_type]


@pytest.fixture(scope="module")
def mox1_tls_reports(delivered: Network) -> tuple[list[dict[str, Any]], float]:
    """`mox tlsrpt sendreports DAY` run in mox1 for the day of its results about mox2's MX host:
    (its JSON output, the time just before)."""
    net = delivered
    day = _tls_day(net, "mox1", MOX2_HOST)
    since = time.time() - 1
    return _sendreports(net, "mox1", ["tlsrpt", "sendreports", day]), since


def test_interop_tls_reports_mox1_to_mox2(delivered: Network, mox1_tls_reports: tuple[list[dict[str, Any]], float]) -> None:
    """mox1's report run for its deliveries to mox2 makes two reports: one for the recipient domain
    mox2.example to the address in `_smtp._tls.mox2.example`, and one about mox2's MX host (its DANE
    results: tlsa policy, successes) to the address in the TLSRPT record of that host,
    `_smtp._tls.mail.mox2.example` (mox2's HostTLSRPT). mox2 checks the domain report's DKIM
    signature, parses it and stores it for mox2.example; the message is in the TLSRPT mailbox."""
    net = delivered
    results, since = mox1_tls_reports
    host = _entry(results, "policy_domain", MOX2_HOST)
    assert not host["is_recipient_domain"] and host["queued"] == [f"{HOST_TLSRPT_LOCALPART}@{MOX2_HOST}"], host
    sent = _policies(host["report"], "tlsa")
    assert sent and all(p["summary"]["total-successful-session-count"] >= 1 for p in sent), host
    assert all(MOX2_HOST in p["policy"]["mx-host"] for p in sent), host
    dom = _entry(results, "policy_domain", MOX2_DOMAIN)
    assert dom["is_recipient_domain"] and dom["queued"] == [f"{TLSRPT_LOCALPART}@{MOX2_DOMAIN}"], dom

    stored = _wait_tls_report(net, "mox2", MOX2_DOMAIN, since)
    # From postmaster@<host name>, DKIM-signed by the parent domain mox1.example (RFC 8460 section 3).
    assert stored["host_report"] == 0 and stored["from_domain"] == MOX1_HOST, stored
    assert stored["mail_from"] == f"postmaster@{MOX1_HOST}", stored
    assert stored["report"]["report-id"] == dom["report_id"], (stored, dom)
    assert _policies(stored["report"], "sts") and _policies(stored["report"], "tlsa"), stored
    data = net.fetch_message("mox2", "mjl", ["SUBJECT", f'"Report-ID: <{dom["report_id"]}>"'], mailbox="TLSRPT")
    m = email.message_from_bytes(data, policy=email.policy.default)
    part = next(p for p in m.walk() if p.get_content_type() == "application/tlsrpt+gzip")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes) and json.loads(gzip.decompress(payload))["report-id"] == dom["report_id"]


def test_interop_tls_report_mox1_to_mox2_mx_host(delivered: Network, mox1_tls_reports: tuple[list[dict[str, Any]], float]) -> None:
    """The report about mox2's MX host arrives at tls-reports@mail.mox2.example (HostTLSRPT); mox2
    checks its DKIM signature (mox1.example for postmaster@mail.mox1.example), parses it and stores
    it as a report about its host: a tlsa policy with successes and no failures."""
    net = delivered
    results, since = mox1_tls_reports
    host = _entry(results, "policy_domain", MOX2_HOST)
    rcpt = host["queued"][0]

    def refused() -> list[str]:
        return [x for x in net.hosts["mox1"].logs().splitlines() if 'm="permanent failure delivering from queue"' in x and f"recipient={rcpt}" in x]

    wait_for(
        f"mox2: TLS report stored for {MOX2_HOST}, or mox1's delivery to {rcpt} failed",
        lambda: bool(_stored_tls_reports(net, "mox2", MOX2_HOST, since) or refused()),
        90,
        net.all_logs,
    )
    assert not refused(), f"mox1 could not deliver the report to {rcpt}: {refused()}"
    (stored,) = _stored_tls_reports(net, "mox2", MOX2_HOST, since)
    assert stored["host_report"] == 1 and stored["from_domain"] == MOX1_HOST, stored
    assert stored["report"]["report-id"] == host["report_id"], (stored, host)
    tlsa = _policies(stored["report"], "tlsa")
    assert tlsa and all(MOX2_HOST in p["policy"]["mx-host"] for p in tlsa), stored
    assert sum(p["summary"]["total-successful-session-count"] for p in tlsa) >= 1, stored
    assert all(p["summary"]["total-failure-session-count"] == 0 for p in tlsa), stored


def test_interop_tls_report_mox2_to_mox1_domain(delivered: Network) -> None:
    """mox2's report about its MTA-STS-verified deliveries to mox1 goes to mox1.example's domain
    TLSRPT address; mox1 parses it and stores it for mox1.example: an sts policy with successes."""
    net = delivered
    day = _tls_day(net, "mox2", MOX1_DOMAIN)
    since = time.time() - 1
    results = _sendreports(net, "mox2", ["tlsrpt", "sendreports", day])
    dom = _entry(results, "policy_domain", MOX1_DOMAIN)
    assert dom["is_recipient_domain"] and dom["queued"] == [f"{TLSRPT_LOCALPART}@{MOX1_DOMAIN}"], dom
    assert _policies(dom["report"], "sts"), dom

    stored = _wait_tls_report(net, "mox1", MOX1_DOMAIN, since)
    assert stored["host_report"] == 0 and stored["from_domain"] == MOX2_HOST, stored
    (sts,) = _policies(stored["report"], "sts")
    assert sts["policy"]["policy-domain"] == MOX1_DOMAIN and "mode: enforce" in sts["policy"]["policy-string"], sts
    assert sts["summary"]["total-successful-session-count"] >= 1 and sts["summary"]["total-failure-session-count"] == 0, sts


def _evaluations(net: Network, instance: str, policy_domain: str) -> list[dict[str, Any]]:
    rows = net.db_rows(instance, "dmarceval.db", "SELECT data FROM evaluation WHERE policy_domain = ?", (policy_domain,))
    return [json.loads(r[0]) for r in rows]


def _age_evaluations(net: Network, instance: str, policy_domain: str, when: float) -> None:
    """Move instance's DMARC evaluations of policy_domain to time when (written from the host into the
    running instance's dmarceval.db, WAL mode; the column and the stored JSON both)."""
    path = net.state / instance / "data" / "dmarceval.db"
    con = sqlite3.connect(path, timeout=10)
    try:
        with con:
            n = con.execute(
                "UPDATE evaluation SET evaluated = ?, data = json_set(data, '$.evaluated', ?) WHERE policy_domain = ?",
                (when, when, policy_domain),
            ).rowcount
    finally:
        con.close()
    assert n >= 1, f"{instance}: no evaluations of {policy_domain} to move"


@pytest.mark.parametrize("sender", ["mox2", "mox1"])
def test_interop_dmarc_aggregate_report(delivered: Network, sender: str) -> None:
    """The sender evaluated the DMARC policy of the other instance's domain when it received the
    fixture's message; `mox dmarc sendreports` for the reporting hour (ri=3600) composes the aggregate
    report and queues it to the rua of `_dmarc.<domain>`; it arrives in the receiver's DMARC mailbox
    with a DMARC pass, and the receiver's `mox dmarc parsereportmsg` shows the evaluation: the
    address it came from, dkim and spf pass.

    Into the receiver's statistics (dmarcrpt.db): a report whose period has not ended is refused, as
    upstream (mox allows 60 s), and the evaluations are only minutes old; so the test moves them back
    into the previous hour (as if the hour had passed) and reports that hour, which has ended: the
    receiver stores the report."""
    net = delivered
    receiver = _other(sender)
    domain, _host, _accounts = INSTANCES[receiver]
    sender_host = INSTANCES[sender][1]
    wait_for(f"{sender}: DMARC evaluation of {domain}", lambda: bool(_evaluations(net, sender, domain)), 30, net.all_logs)
    evs = _evaluations(net, sender, domain)
    assert any(e["aligned_dkim_pass"] and e["aligned_spf_pass"] and e["disposition"] == "none" for e in evs), evs

    hour = int(time.time()) // 3600 * 3600
    _age_evaluations(net, sender, domain, hour - 1800)
    end = datetime.datetime.fromtimestamp(hour, datetime.UTC)
    results = _sendreports(net, sender, ["dmarc", "sendreports", end.strftime("%Y-%m-%dT%H:%M:%SZ")])
    res = _entry(results, "domain", domain)
    rua = f"{DMARC_LOCALPART}@{domain}"
    assert res["queued"] == [rua] and not res.get("error"), res
    report_id = res["report_id"]

    data = net.fetch_message(receiver, "mjl", ["SUBJECT", f'"Report-ID: <{report_id}>"'], mailbox="DMARC", timeout=90)
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    ar = " ".join(m.get_all("Authentication-Results", []))
    assert "dmarc=pass" in ar and "dkim=pass" in ar, ar
    assert email.utils.parseaddr(m["From"])[1] == f"postmaster@{sender_host}", m["From"]

    # The receiving instance's own parser, run in its container on the delivered message.
    tmp = net.state / receiver / "data" / "interop-tmp"
    tmp.mkdir(exist_ok=True)
    (tmp / f"{report_id}.eml").write_bytes(data)
    _code, out = net.exec(receiver, ["mox", "dmarc", "parsereportmsg", f"/mox/data/interop-tmp/{report_id}.eml"])
    assert f'reportID "{report_id}"' in out and f'Policy: domain "{domain}", policy "reject"' in out, out
    assert f'headerfrom "{domain}"' in out and "dkim pass, spf pass" in out, out
    # The evaluated message came from the receiver (the owner of the policy domain).
    assert f"sourceIP {net.ip(receiver)}," in out or f"sourceIP {net.ip6(receiver)}," in out, out

    # The receiver processes the report after delivering the message: stored, or refused with a log line.
    def stored() -> list[tuple[Any, ...]]:
        rows = net.db_rows(receiver, "dmarcrpt.db", "SELECT domain, from_domain, feedback FROM domain_feedback WHERE domain = ?", (domain,))
        return [r for r in rows if json.loads(r[2])["report_metadata"]["report_id"] == report_id]

    wait_for(f"{receiver}: DMARC report {report_id} stored", lambda: bool(stored()), 30, net.all_logs)
    (row,) = stored()
    assert row[1] in (INSTANCES[sender][0], sender_host), row
