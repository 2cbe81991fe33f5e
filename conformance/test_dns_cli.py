"""`mox dns lookup` against a loopback DNS server given in MOX_DNS, as an operator would use it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from mox.dns.testserver import DNSTestServer


@pytest.fixture
def dns() -> Iterator[DNSTestServer]:
    with DNSTestServer(authentic=True) as s:
        s.add_mx("example.org", 10, "mail.example.org")
        s.add_txt("_dmarc.example.org", "v=DMARC1; p=reject")
        s.add_ip("mail.example.org", "198.51.100.7", "2001:db8::7")
        s.add_ptr("198.51.100.7", "mail.example.org")
        s.add_tlsa("_25._tcp.mail.example.org", 3, 1, 1, bytes.fromhex("ab" * 32))
        s.add("_imaps._tcp.example.org", "SRV", "0 1 993 mail.example.org.")
        s.set_authentic("_dmarc.example.org", False)
        yield s


def lookup(dns: DNSTestServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOX_DNS": dns.address}
    return subprocess.run([sys.executable, "-m", "mox", "dns", "lookup", *args], capture_output=True, text=True, env=env, timeout=60)


def test_dns_lookup_prints_records_and_dnssec_status(dns: DNSTestServer) -> None:
    r = lookup(dns, "mx", "example.org")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["mx records (1, with dnssec):", "- mail.example.org, preference 10"]
    r = lookup(dns, "txt", "_dmarc.example.org.")
    assert r.stdout.splitlines() == ["txt records (1, without dnssec):", "- v=DMARC1; p=reject"]
    r = lookup(dns, "ips", "mail.example.org")
    assert r.stdout.splitlines()[0] == "records (2, with dnssec):" and "- 2001:db8::7" in r.stdout
    assert lookup(dns, "ptr", "198.51.100.7").stdout.splitlines() == ["names (1, with dnssec):", "- mail.example.org"]
    r = lookup(dns, "tlsa", "_25._tcp.mail.example.org")
    assert "usage 3, selector 1, matchtype 1, certificate association data " + "ab" * 32 in r.stdout
    r = lookup(dns, "srv", "_imaps._tcp.example.org")
    assert "- host mail.example.org, port 993, priority 0, weight 1" in r.stdout


def test_dns_lookup_errors(dns: DNSTestServer) -> None:
    r = lookup(dns, "mx", "nothing.example.org")
    assert r.returncode == 1 and r.stderr.startswith("mox: dns lookup: ") and "(with dnssec)" in r.stderr
    r = lookup(dns, "bogus", "example.org")
    assert r.returncode == 2 and "unknown record type" in r.stderr
    assert lookup(dns, "ptr", "localhost").returncode == 1
