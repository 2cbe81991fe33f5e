"""Mail through the interop network (conformance/interop_net.py): DNSSEC through the validating
resolver; Postfix to mox2 with DANE (and refusing a mismatching TLSA); submission from the client
container on mox1 (ACME certificate from pebble) to mox2, seen by IMAP IDLE, delivered DANE-verified
with spf/dkim/dmarc pass, and on mox2 to mox1, delivered verified by mox1.example's MTA-STS policy,
both checked in the TLS results the sender recorded; mox2's queue to Postfix;
submission with DKIM signatures that verify against the published records; IMAP (IDLE too) and
IPv6 from the host; the image running as user mox, and running `mox localserve`; MTA-STS (RFC 8461)
from mox1 to mox2: mox2 publishes enforced policies (`_mta-sts` TXT in the signed zone, the policy over
HTTPS on :443 with a certificate from the test CA), mox1's queue fetches them (trusting the test CA
through TLS.CA CertFiles), delivers with the MX matching and the certificate PKIX-verified besides DANE,
and keeps a message queued whose domain's policy lists no MX host of the domain."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import re
import smtplib
import socket
import ssl
import time
import uuid
from typing import Any

import aioimaplib
import pytest
from interop_net import (
    ACME_HOST,
    MOX1_ACCOUNTS,
    MOX1_DOMAIN,
    MOX1_HOST,
    MOX2_ACCOUNTS,
    MOX2_DOMAIN,
    MOX2_HOST,
    MTASTS_BAD_DOMAIN,
    MTASTS_BAD_MX,
    MTASTS_POLICY_ID,
    POSTFIX_DOMAIN,
    Network,
    dns_query,
    https_get,
    smtp_banner,
    wait_for,
)

from mox import dkim, spf
from mox.dns import StubResolver

# The first test also waits for the network: image builds on a cold cache take minutes on 2 cores.
pytestmark = pytest.mark.timeout(900)


def _fetch_by_subject(net: Network, account: str, subject: str, timeout: float = 30) -> bytes:
    """The message with subject in account's Inbox, read over IMAP; waits until it is there."""
    deadline = time.monotonic() + timeout
    im = net.imap(account)
    try:
        while True:
            typ, data = im.select("INBOX")
            assert typ == "OK", data
            typ, data = im.search(None, "SUBJECT", f'"{subject}"')
            assert typ == "OK", data
            nums = data[0].split() if data and isinstance(data[0], bytes) else []
            if nums:
                typ, data = im.fetch(nums[-1], "(BODY.PEEK[])")
                assert typ == "OK", data
                part = data[0]
                assert isinstance(part, tuple)
                return part[1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no message with subject {subject!r} for {account} within {timeout}s\n{net.all_logs()}")
            time.sleep(0.2)
    finally:
        im.logout()


def test_interop_dnssec_authentic(interop: Network) -> None:
    net = interop
    dns_ip = net.ip("dns")
    for name, rtype in (
        ("example.", "SOA"),
        (f"{MOX2_DOMAIN}.", "MX"),
        (f"{MOX2_HOST}.", "A"),
        (f"{MOX2_HOST}.", "AAAA"),
        (f"_25._tcp.{MOX2_HOST}.", "TLSA"),
        (f"ed1._domainkey.{MOX2_DOMAIN}.", "TXT"),
        (f"_dmarc.{MOX2_DOMAIN}.", "TXT"),
        (f"{POSTFIX_DOMAIN}.", "MX"),
    ):
        r = dns_query(dns_ip, name, rtype)
        assert r.rcode() == 0 and r.answer, f"{name} {rtype}: {r}"
        assert r.flags & 0x20, f"{name} {rtype}: no AD flag, not validated:\n{r}"  # AD, RFC 4035 section 3.2.3

    # The project's own stub resolver sees the same: authentic answers from the signed zones.
    async def lookups() -> None:
        res = StubResolver([(dns_ip, 53)])
        mx = await res.lookup_mx(MOX2_DOMAIN)
        assert mx.authentic and [m.host.rstrip(".") for m in mx.records] == [MOX2_HOST]
        tlsa = await res.lookup_tlsa(f"_25._tcp.{MOX2_HOST}")
        assert tlsa.authentic and len(tlsa.records) == 1
        ptr = await res.lookup_addr(net.ip("mox2"))
        # The reverse zone is unsigned: an answer, but not authentic.
        assert [p.rstrip(".") for p in ptr.records] == [MOX2_HOST] and not ptr.authentic
        ptr6 = await res.lookup_addr(net.ip6("mox2"))
        assert [p.rstrip(".") for p in ptr6.records] == [MOX2_HOST]

    asyncio.run(lookups())

    # Names outside the test zones are answered locally (NXDOMAIN): nothing is resolved elsewhere.
    r = dns_query(dns_ip, "www.debian.org.", "A")
    assert r.rcode() == 3, r


def test_interop_postfix_delivers_to_mox2_with_dane(interop: Network) -> None:
    net = interop
    subject = f"postfix to mox2 {uuid.uuid4().hex[:8]}"
    msg = f"From: <interop@{POSTFIX_DOMAIN}>\nTo: <mjl@{MOX2_DOMAIN}>\nSubject: {subject}\n\nhello from postfix\n"
    (net.state / "postfix" / "msg.txt").write_text(msg)
    # An IMAP IDLE session on mox2, opened before the message is sent, must report it.
    idle = net.imap("mjl")
    try:
        typ, data = idle.select("INBOX")
        assert typ == "OK", data
        before = int(data[0] or b"0")
        tag = idle._new_tag()
        idle.send(tag + b" IDLE\r\n")
        assert idle.readline().startswith(b"+"), "no IDLE continuation"
        net.exec("postfix", ["sh", "-c", f"sendmail -f interop@{POSTFIX_DOMAIN} mjl@{MOX2_DOMAIN} </state/msg.txt"])
        idle.sock.settimeout(60)
        line = idle.readline()
        m_exists = re.match(rb"\* (\d+) EXISTS", line)
        assert m_exists and int(m_exists.group(1)) == before + 1, f"IDLE: {line!r}\n{net.all_logs()}"
        idle.send(b"DONE\r\n")
        while not (line := idle.readline()).startswith(tag):
            assert line, "connection closed after IDLE"
        assert line.split()[1] == b"OK", line
    finally:
        idle.logout()
    # Over IPv4 or IPv6: Postfix picks either (smtp_address_preference = any).
    log = net.wait_postfix_log(f"to=<mjl@{MOX2_DOMAIN}>, relay={MOX2_HOST}[")
    # DANE-verified TLS: Postfix has no CA for mox2's certificate (from the test CA), so "Verified"
    # can only come from the DANE-EE TLSA match (smtp_tls_security_level = dane, RFC 7672).
    assert re.search(rf"Verified TLS connection established to {re.escape(MOX2_HOST)}\[", log), log
    assert re.search(rf"to=<mjl@{re.escape(MOX2_DOMAIN)}>.*status=sent", log), log

    data = _fetch_by_subject(net, "mjl", subject)
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    ar = " ".join(v for v in m.get_all("Authentication-Results", []))
    assert MOX2_HOST in ar and "iprev=pass" in ar and "spf=pass" in ar, data.decode(errors="replace")
    assert f"smtp.mailfrom=interop@{POSTFIX_DOMAIN}" in ar or f"smtp.mailfrom={POSTFIX_DOMAIN}" in ar, ar
    received = m.get_all("Received", [])[0]
    assert "TLS" in received or "ESMTPS" in received, received


def test_interop_submission_local_dkim_spf(interop: Network) -> None:
    net = interop
    subject = f"submission {uuid.uuid4().hex[:8]}"
    sender, rcpt = MOX2_ACCOUNTS["mjl"][0], MOX2_ACCOUNTS["other"][0]
    msg = f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\r\nsubmitted from the host\r\n"
    with net.submission("mjl") as s:
        assert s.sendmail(sender, [rcpt], msg.encode()) == {}
    data = _fetch_by_subject(net, "other", subject)
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    sigs = m.get_all("DKIM-Signature", [])
    assert {re.search(r"s=([a-z0-9]+)", x).group(1) for x in sigs} == {"ed1", "rsa1"}, sigs  # type: ignore[union-attr]
    ar = " ".join(m.get_all("Authentication-Results", []))
    assert MOX2_HOST in ar and "auth=pass" in ar, ar

    # The signatures verify against the DKIM records published in the signed zone (generated from
    # mox2's keys), and SPF for mox2.example passes for mox2's address: what a receiver would find.
    async def check() -> None:
        res = StubResolver([(net.ip("dns"), 53)])
        results = await dkim.verify(data, res)
        assert [str(r.status) for r in results] == ["pass", "pass"], results
        assert all(r.record_authentic for r in results), results
        received = await spf.verify(res, net.ip("mox2"), sender, MOX2_HOST)
        assert str(received.result) == "pass", received

    asyncio.run(check())


def test_interop_imap_login_refused_without_tls(interop: Network) -> None:
    """Plain IMAP LOGIN before STARTTLS is refused on the public listener (LOGINDISABLED)."""
    im = imaplib.IMAP4(interop.ip("mox2"), 143, timeout=20)
    try:
        assert "LOGINDISABLED" in im.capabilities and "STARTTLS" in im.capabilities
    finally:
        im.shutdown()


def test_interop_mox_serve_runs_as_mox(interop: Network) -> None:
    """Started as root in the container (the image's default), `mox serve` bound port 25 and then
    switched to user mox; its data files are owned by mox."""
    _code, out = interop.exec(
        "mox2",
        ["sh", "-c", "id -u mox; awk '/^Uid:/ {print $2, $3}' /proc/1/status; stat -c %u /mox/data/accounts/mjl/index.db /mox/config/mox.conf"],
    )
    mox_uid, proc_uids, db_owner, conf_owner = out.split("\n")[:4]
    assert mox_uid != "0" and proc_uids == f"{mox_uid} {mox_uid}", out  # real and effective uid of PID 1, mox serve
    assert db_owner == mox_uid and conf_owner == mox_uid, out
    assert smtp_banner(interop.ip("mox2"), 25)  # a port below 1024, bound before the switch


def test_interop_image_runs_localserve(interop: Network) -> None:
    """The image also runs `mox localserve`: SMTP on 1025 and IMAP on 1143 answer from the host, and a
    message delivered over SMTP is read back over IMAP with localserve's account."""
    ip = interop.ip("localserve")
    subject = f"localserve {uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(ip, 1025, local_hostname="client.example", timeout=20) as s:
        msg = f"From: <someone@example.org>\r\nTo: <mox@localhost>\r\nSubject: {subject}\r\n\r\nhi\r\n"
        assert s.sendmail("someone@example.org", ["mox@localhost"], msg.encode()) == {}
    im = imaplib.IMAP4(ip, 1143, timeout=20)
    try:
        assert im.login("mox@localhost", "moxmoxmox")[0] == "OK"
        assert im.select("INBOX")[0] == "OK"
        typ, data = im.search(None, "SUBJECT", f'"{subject}"')
        assert typ == "OK" and data[0], f"{data}\n{interop.hosts['localserve'].logs()}"
    finally:
        im.logout()


def test_interop_postfix_refuses_dane_mismatch(interop: Network) -> None:
    """To an MX whose TLSA record matches no key (badmx.mox2.example, mox2's address), Postfix must not
    deliver: the DANE check fails and the message is deferred, never sent in plaintext."""
    net = interop
    rcpt = f"mjl@bad.{MOX2_DOMAIN}"
    (net.state / "postfix" / "bad.txt").write_text(f"From: <interop@{POSTFIX_DOMAIN}>\nTo: <{rcpt}>\nSubject: must not arrive\n\nx\n")
    net.exec("postfix", ["sh", "-c", f"sendmail -f interop@{POSTFIX_DOMAIN} {rcpt} </state/bad.txt"])
    log = net.wait_postfix_log(f"to=<{rcpt}>")
    line = next(x for x in log.splitlines() if f"to=<{rcpt}>" in x)
    assert "status=deferred" in line and "status=sent" not in log.split(f"to=<{rcpt}>")[-1], log
    assert "no matching DANE TLSA records" in log or "Server certificate not verified" in line, log
    # Drop it from Postfix's queue, so it does not retry during later tests.
    net.exec("postfix", ["postsuper", "-d", "ALL", "deferred"])


def test_interop_ipv6_imap_and_smtp(interop: Network) -> None:
    """mox2 listens on its IPv6 address too: SMTP greeting, IMAP STARTTLS (the certificate names the
    address) and login over IPv6 from the host."""
    ip6 = interop.ip6("mox2")
    assert smtp_banner(ip6, 25)
    im = imaplib.IMAP4(ip6, 143, timeout=20)
    try:
        im.starttls(interop.ssl_context())
        addr, password = MOX2_ACCOUNTS["mjl"]
        assert im.login(addr, password)[0] == "OK"
        assert im.select("INBOX")[0] == "OK"
    finally:
        im.logout()


def test_interop_acme_pebble_answers(interop: Network) -> None:
    """pebble (the acme host) serves its ACME directory over HTTPS verified with the test CA, under a
    DNSSEC-validated name; its issuing root of this run was saved for clients (acme/root.pem)."""
    import json

    from cryptography import x509

    net = interop
    r = dns_query(net.ip("dns"), f"{ACME_HOST}.", "A")
    assert r.flags & 0x20 and net.ip("acme") in r.to_text(), r
    directory = json.loads(https_get(f"https://{ACME_HOST}:14000/dir", net.ip("acme"), net.ssl_context()))
    assert {"newNonce", "newAccount", "newOrder"} <= set(directory), directory
    root = x509.load_pem_x509_certificate((net.state / "acme" / "root.pem").read_bytes())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_interop_mox1_acme_certificate(interop: Network) -> None:
    """mox1 gets its certificate from pebble over ACME (tls-alpn-01 on port 443, pebble resolving
    mail.mox1.example through the validating resolver) and serves it on IMAPS, verified with the
    root pebble made at this start; IMAP STARTTLS login works with it."""
    net = interop
    _wait_mox1_certificates(net)
    root = (net.state / "acme" / "root.pem").read_text()
    ctx = ssl.create_default_context(cadata=root)
    with socket.create_connection((net.ip("mox1"), 993), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=MOX1_HOST) as s:
        assert s.recv(100).startswith(b"* OK")
        cert = s.getpeercert()
        assert ("DNS", MOX1_HOST) in cert["subjectAltName"], cert
    im = imaplib.IMAP4(net.ip("mox1"), 143, timeout=20)
    try:
        im.host = MOX1_HOST  # the name the certificate is checked against
        im.starttls(ctx)
        addr, password = MOX1_ACCOUNTS["mjl"]
        assert im.login(addr, password)[0] == "OK"
    finally:
        im.logout()


def test_interop_mox2_delivers_to_postfix(interop: Network) -> None:
    """Submitted to mox2 for a Postfix user, the message leaves through mox2's outgoing queue (MX lookup
    through the validating resolver), over STARTTLS, and Postfix delivers it to the local mailbox."""
    net = interop
    subject = f"mox2 to postfix {uuid.uuid4().hex[:8]}"
    sender, rcpt = MOX2_ACCOUNTS["mjl"][0], f"interop@{POSTFIX_DOMAIN}"
    msg = f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\r\nfrom mox2's queue\r\n"
    with net.submission("mjl") as s:
        assert s.sendmail(sender, [rcpt], msg.encode()) == {}
    log = net.wait_postfix_log(f"to=<{rcpt}>, relay=local", timeout=90)
    assert re.search(rf"to=<{re.escape(rcpt)}>, relay=local.*status=sent", log), log
    # smtpd logs the TLS session of the incoming connection from mox2 (smtpd_tls_loglevel 1).
    assert re.search(rf"Anonymous TLS connection established from {re.escape(MOX2_HOST)}\[", log) or re.search(
        rf"TLS connection established from {re.escape(MOX2_HOST)}\[", log
    ), log
    _code, out = net.exec("postfix", ["sh", "-c", "cat /home/interop/Maildir/new/*"])
    assert subject in out and "DKIM-Signature:" in out, out


def _wait_mox1_certificates(net: Network) -> None:
    net.wait_mox1_certificates()


def _fetch_mox1(net: Network, subject: str, timeout: float = 90) -> bytes:
    """The message with subject in mjl@mox1.example's Inbox; waits until it is there."""
    return net.fetch_message("mox1", "mjl", ["SUBJECT", f'"{subject}"'], timeout=timeout)


def _tls_result(net: Network, instance: str, policy_domain: str, policy_type: str, timeout: float = 30) -> dict[str, Any]:
    """The TLS result instance recorded for policy_domain (written in batches every few seconds),
    once it counts a successful session under a policy of policy_type; waits for it."""
    found: list[dict[str, Any]] = []

    def check() -> bool:
        found[:] = [
            p
            for r in net.tls_results(instance)
            if r["policy_domain"] == policy_domain
            for p in r["results"]
            if p["policy"]["policy-type"] == policy_type and p["summary"]["total-successful-session-count"] >= 1
        ]
        return bool(found)

    wait_for(
        f"{instance}: TLS result with a {policy_type} success for {policy_domain}",
        check,
        timeout,
        lambda: f"{net.tls_results(instance)}\n{net.hosts[instance].logs()}",
    )
    return found[0]


def _authresults(data: bytes, domain: str) -> str:
    """The Authentication-Results of a delivered message, checked for spf, dkim and dmarc pass for domain."""
    m = email.message_from_bytes(data, policy=email.policy.compat32)
    ar = " ".join(m.get_all("Authentication-Results", []))
    for method in ("spf=pass", "dkim=pass", "dmarc=pass"):
        assert method in ar, f"{method} missing: {ar}\n{data.decode(errors='replace')}"
    assert f"header.from={domain}" in ar, ar
    received = m.get_all("Received", [])[0]
    assert "TLS" in received or "ESMTPS" in received, received
    return ar


def test_interop_client_submits_mox1_to_mox2(interop: Network) -> None:
    """From the client container, submission on mox1 (submissions, port 465, its certificate from
    pebble verified with pebble's root) to a user at mox2. An IMAP IDLE session on mox2 (aioimaplib,
    opened before sending) reports the new message; its Authentication-Results show spf, dkim and
    dmarc pass for mox1.example with the records from the signed zone; mox1 delivered with mox2's
    certificate verified by DANE: its TLS results count a success for the tlsa policy of mox2's MX
    host (and for mox2.example's MTA-STS policy)."""
    net = interop
    _wait_mox1_certificates(net)
    subject = f"client mox1 to mox2 {uuid.uuid4().hex[:8]}"
    rcpt = MOX2_ACCOUNTS["mjl"][0]

    async def idle_and_submit() -> list[bytes]:
        addr, password = MOX2_ACCOUNTS["mjl"]
        client = aioimaplib.IMAP4_SSL(host=net.ip("mox2"), port=993, ssl_context=net.ssl_context(), timeout=30)
        await client.wait_hello_from_server()
        assert (await client.login(addr, password)).result == "OK"
        assert (await client.select("INBOX")).result == "OK"
        idle = await client.idle_start(timeout=90)
        out = await asyncio.to_thread(net.client_submit, "mox1", "mjl", [rcpt], subject)
        assert "certificate verified" in out and "authenticated" in out, out
        pushed: list[bytes] = []
        deadline = time.monotonic() + 90
        while not any(re.fullmatch(rb"\d+ EXISTS", x) for x in pushed):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"IDLE on mox2 reported no new message within 90s: {pushed}\n{net.all_logs()}")
            push = await client.wait_server_push(timeout=left)
            if isinstance(push, list):
                pushed += [x for x in push if isinstance(x, bytes)]
        client.idle_done()
        assert (await asyncio.wait_for(idle, 20)).result == "OK"
        await client.logout()
        return pushed

    pushed = asyncio.run(idle_and_submit())
    assert any(re.fullmatch(rb"\d+ EXISTS", x) for x in pushed), pushed
    data = _fetch_by_subject(net, "mjl", subject, timeout=30)
    _authresults(data, MOX1_DOMAIN)
    # DANE: mox2's MX host publishes a TLSA record (DANE-EE, from mox2's key); mox1 records the
    # outcome under the MX host as policy domain (RFC 8460 section 4.3.1, policy-type tlsa).
    dane = _tls_result(net, "mox1", MOX2_HOST, "tlsa")
    assert dane["summary"]["total-failure-session-count"] == 0 and dane["policy"]["policy-string"], dane
    sts = _tls_result(net, "mox1", MOX2_DOMAIN, "sts")
    assert f"mx: {MOX2_HOST}" in sts["policy"]["policy-string"], sts
    handshake = [x for x in net.hosts["mox1"].logs().splitlines() if 'm="tls handshake done"' in x and f"servername={MOX2_HOST}" in x]
    assert handshake and all("daneverified=true" in x for x in handshake), net.hosts["mox1"].logs()


def test_interop_client_submits_mox2_to_mox1_mtasts(interop: Network) -> None:
    """From the client container, submission on mox2 (port 465, the test CA) to a user at mox1.
    mox1.example publishes no TLSA record but an enforced MTA-STS policy (served by mox1 with a
    certificate from pebble): mox2 fetches it, delivers PKIX-verified (trusting pebble's root of
    this run) and records an sts success for mox1.example; mox1's Authentication-Results show spf,
    dkim and dmarc pass for mox2.example."""
    net = interop
    _wait_mox1_certificates(net)
    subject = f"client mox2 to mox1 {uuid.uuid4().hex[:8]}"
    out = net.client_submit("mox2", "mjl", [MOX1_ACCOUNTS["mjl"][0]], subject)
    assert "certificate verified" in out, out
    data = _fetch_mox1(net, subject)
    _authresults(data, MOX2_DOMAIN)
    sts = _tls_result(net, "mox2", MOX1_DOMAIN, "sts")
    assert "mode: enforce" in sts["policy"]["policy-string"] and sts["policy"]["mx-host"] == [MOX1_HOST], sts
    assert sts["summary"]["total-failure-session-count"] == 0, sts
    logs = net.hosts["mox2"].logs().splitlines()
    assert any('m="mtasts policy fetched"' in x and f"domain={MOX1_DOMAIN}" in x for x in logs), "\n".join(logs)
    assert sts["summary"]["total-successful-session-count"] >= 1, sts
    # No TLSA for mox1's MX: verified by PKIX alone, as the enforced policy requires. Other deliveries to
    # the same host (DSNs, reports to the host's own TLSRPT address, which has no policy) may be
    # opportunistic, so only one verified handshake is required here; the sts result above has no failures.
    handshakes = [x for x in logs if 'm="tls handshake done"' in x and f"servername={MOX1_HOST}" in x]
    assert any("pkixverified=true" in x for x in handshakes), "\n".join(handshakes)


def _submit_on_mox1(net: Network, rcpt: str, subject: str) -> None:
    """Submission on mox1 from the client container (port 465, verified with pebble's root) from mjl to rcpt."""
    _wait_mox1_certificates(net)
    net.client_submit("mox1", "mjl", [rcpt], subject, body="mta-sts test\n")


def test_interop_mtasts_policy_published(interop: Network) -> None:
    """mox2 serves its policies at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (certificate naming
    that host, from the test CA), and the `_mta-sts` TXT records are DNSSEC-validated."""
    net = interop
    for domain, mx in ((MOX2_DOMAIN, MOX2_HOST), (MTASTS_BAD_DOMAIN, MTASTS_BAD_MX)):
        r = dns_query(net.ip("dns"), f"_mta-sts.{domain}.", "TXT")
        assert r.flags & 0x20 and f"v=STSv1; id={MTASTS_POLICY_ID}" in r.to_text(), r
        body = https_get(f"https://mta-sts.{domain}:443/.well-known/mta-sts.txt", net.ip("mox2"), net.ssl_context())
        lines = body.decode().splitlines()
        assert lines[0] == "version: STSv1" and "mode: enforce" in lines and f"mx: {mx}" in lines, body


def test_interop_mtasts_mox1_to_mox2_enforced(interop: Network) -> None:
    """mox1's queue fetches mox2.example's enforced policy and delivers to the matching MX with the
    certificate PKIX-verified (required by the policy) besides DANE."""
    net = interop
    subject = f"mta-sts {uuid.uuid4().hex[:8]}"
    _submit_on_mox1(net, MOX2_ACCOUNTS["mjl"][0], subject)
    _fetch_by_subject(net, "mjl", subject, timeout=90)
    logs = net.hosts["mox1"].logs().splitlines()
    fetched = [x for x in logs if 'm="mtasts policy fetched"' in x and f"domain={MOX2_DOMAIN}" in x]
    assert fetched, "\n".join(logs)
    handshakes = [x for x in logs if 'm="tls handshake done"' in x and f"servername={MOX2_HOST}" in x]
    # pkixverified: checked because the policy is enforced (without it mox1 only uses DANE for mox2).
    # Every connection to that host is DANE-verified; mail to an address at the host name itself (its
    # TLSRPT address) has no MTA-STS policy, so PKIX is required of one handshake, not all.
    assert handshakes and all("daneverified=true" in x for x in handshakes), "\n".join(handshakes)
    assert any("pkixverified=true" in x for x in handshakes), "\n".join(handshakes)


def test_interop_mtasts_mx_mismatch_not_delivered(interop: Network) -> None:
    """The policy of MTASTS_BAD_DOMAIN allows only MTASTS_BAD_MX, but its MX is mail.mox2.example:
    mox1 must not deliver (temporary failure, message stays queued with the error)."""
    net = interop
    rcpt = f"mjl@{MTASTS_BAD_DOMAIN}"
    _submit_on_mox1(net, rcpt, f"must not arrive {uuid.uuid4().hex[:8]}")
    expect = f"mx host {MOX2_HOST} does not match the enforced mta-sts policy"

    def failed() -> bool:
        return any(
            'm="temporary failure delivering from queue"' in x and rcpt in x and expect in x
            for x in net.hosts["mox1"].logs().splitlines()
        )

    wait_for("mox1: temporary failure for the mx not in the policy", failed, 30, lambda: net.hosts["mox1"].logs())
    try:
        _code, out = net.exec("mox1", ["mox", "queue", "list", "-to", f"@{MTASTS_BAD_DOMAIN}"])
        assert rcpt in out and expect in out, out
        # Never delivered: no attempt got past the policy check.
        logs = net.hosts["mox1"].logs().splitlines()
        assert not any('m="delivered from queue"' in x and rcpt in x for x in logs), "\n".join(logs)
    finally:
        net.exec("mox1", ["mox", "queue", "drop", "-to", f"@{MTASTS_BAD_DOMAIN}"], check=False)
