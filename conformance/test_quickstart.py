"""The real command line: ``mox quickstart`` against a test resolver, then ``mox config dnsrecords`` and
``mox config dnscheck`` with the printed records served with DNSSEC; ``mox config printservice``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from serve_harness import REPO, run_mox

from mox.dns.testserver import DNSTestServer

sys.path.insert(0, str(REPO / "tests" / "dnsrecords"))
from dnsrecordshelpers import serve_zone

HOST_IP = "192.0.2.20"


def _env(server: DNSTestServer) -> dict[str, str]:
    return dict(os.environ, MOX_DNS=server.address)


def test_quickstart_dnsrecords_dnscheck(tmp_path: Path) -> None:
    with DNSTestServer() as dns:
        dns.add_ns("com", "a.gtld-servers.net")
        dns.set_authentic("com")
        dns.add_a("mail.example.net", HOST_IP)
        dns.add_ptr(HOST_IP, "mail.example.net")
        dns.set_authentic("example.net")
        r = subprocess.run(
            [sys.executable, "-m", "mox", "quickstart", "-hostname", "mail.example.net", "jan@example.net", "0"],
            cwd=tmp_path, env=_env(dns), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Checking if DNS resolvers are DNSSEC-verifying... OK" in r.stdout
        assert f"Looking up reverse names for IP(s) {HOST_IP}... OK" in r.stdout
        conf = tmp_path / "config" / "mox.conf"
        assert run_mox(conf, "config", "test").returncode == 0
        assert (tmp_path / "mox.service").is_file() and (tmp_path / "quickstart.log").is_file()

        r = subprocess.run([sys.executable, "-m", "mox", "-config", str(conf), "config", "dnsrecords", "example.net"],
                           env=_env(dns), capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert serve_zone(dns, r.stdout) > 15
        r = subprocess.run([sys.executable, "-m", "mox", "-config", str(conf), "config", "dnscheck", "example.net"],
                           env=_env(dns), capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert "no errors in the dns records of example.net" in r.stdout

        # A wrong MTA-STS policy id and a CNAME to elsewhere are reported precisely.
        dns.remove("_mta-sts.example.net", "TXT")
        dns.add_txt("_mta-sts.example.net", "v=STSv1; id=old1")
        dns.remove("autoconfig.example.net")
        dns.add_cname("autoconfig.example.net", "www.example.net")
        r = subprocess.run([sys.executable, "-m", "mox", "-config", str(conf), "config", "dnscheck", "example.net"],
                           env=_env(dns), capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 1
        assert (
            "# MTASTS\nerror: TXT record _mta-sts.example.net is 'v=STSv1; id=old1', expected 'v=STSv1; id="
            in r.stdout
        ), r.stdout
        assert (
            "error: CNAME autoconfig.example.net points to www.example.net, expected mail.example.net"
            in r.stdout
        )


def test_quickstart_usage_errors(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mox", "quickstart"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "usage:" in r.stderr
    r = subprocess.run([sys.executable, "-m", "mox", "quickstart", "-skipdial", "-hostname", "mail.example.net", "nobody"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1 and "parsing email address" in r.stderr
    assert not (tmp_path / "config").exists()


def test_printservice_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mox", "config", "printservice"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert (
        f"WorkingDirectory={tmp_path}" in r.stdout
        and "CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_NET_BIND_SERVICE" in r.stdout
    )
    unit = tmp_path / "mox.service"
    unit.write_text(r.stdout)
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "mox.service" not in v.stderr, v.stderr
