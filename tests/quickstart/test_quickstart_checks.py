"""quickstart's checks before it writes the config: the domain's age (RDAP) and the host's IPs in DNS block lists."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest
from quickstarthelpers import HOST_IP, quickstart_in

from mox.dns.testserver import DNSTestServer
from mox.store import close_all_accounts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rdap"))
from rdaphelpers import rdap_server


async def test_listed_ip_warns(tmp_path: Path, qs_dns: DNSTestServer) -> None:
    # sbl.spamhaus.org answers its test entries as RFC 5782 section 5 asks, and lists the host's IP.
    qs_dns.add_a("2.0.0.127.sbl.spamhaus.org", "127.0.0.2")
    qs_dns.add_a("10.2.0.192.sbl.spamhaus.org", "127.0.0.2")
    qs_dns.add_txt("10.2.0.192.sbl.spamhaus.org", "listed for spam, see https://sbl.example/1")
    res, out = await quickstart_in(tmp_path, qs_dns)
    await close_all_accounts()
    listed = [w for w in res.warnings if "block list" in w]
    assert len(listed) == 1, res.warnings
    assert f"IP {HOST_IP} is listed in DNS block list sbl.spamhaus.org: listed for spam" in listed[0]
    assert f"multirbl.valli.org/lookup/{HOST_IP}.html" in listed[0]
    # bl.spamcop.net does not answer its test entry at the test server: not used, and said so.
    assert "NOTE: cannot use block list bl.spamcop.net: block list does not list the test address 127.0.0.2" in out
    assert any(q.name == "10.2.0.192.sbl.spamhaus.org" and q.rdtype == "A" for q in qs_dns.queries)


async def test_unlisted_ip_passes(tmp_path: Path, qs_dns: DNSTestServer) -> None:
    for zone in ("sbl.spamhaus.org", "bl.spamcop.net"):
        qs_dns.add_a(f"2.0.0.127.{zone}", "127.0.0.2")
    res, out = await quickstart_in(tmp_path, qs_dns)
    await close_all_accounts()
    assert "Checking whether host name IPs are listed in popular DNS block lists... OK" in out
    assert not [w for w in res.warnings if "block list" in w]


@pytest.mark.parametrize(("days", "recent"), [(10, True), (800, False)])
async def test_rdap_domain_age(tmp_path: Path, qs_dns: DNSTestServer, days: int, recent: bool) -> None:
    async with rdap_server() as srv:
        srv.registered["example.org"] = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
        res, out = await quickstart_in(tmp_path, qs_dns, rdap_bootstrap=srv.bootstrap_url)
        await close_all_accounts()
        assert srv.requests == ["/dns.json", "/rdap/domain/example.org"]
    warned = [w for w in res.warnings if "registered on" in w]
    if recent:
        assert "Checking if domain example.org was registered recently... 10 days (recent!)" in out
        assert len(warned) == 1 and "example.org" in warned[0]
    else:
        assert "Checking if domain example.org was registered recently... 2 years, 70 days OK" in out
        assert not warned


async def test_rdap_from_environment_and_errors_continue(
    tmp_path: Path, qs_dns: DNSTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with rdap_server() as srv:
        # The registry does not know the domain: quickstart says so and goes on.
        monkeypatch.setenv("MOX_RDAP_BOOTSTRAP", srv.bootstrap_url)
        res, out = await quickstart_in(tmp_path, qs_dns)
        await close_all_accounts()
        assert srv.requests == ["/dns.json", "/rdap/domain/example.org"]
    assert "registered recently... error: domain example.org not found in registry" in out
    assert "(continuing)" in out and res.config_path.is_file()


async def test_skipdial_makes_no_rdap_request(tmp_path: Path, qs_dns: DNSTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async with rdap_server() as srv:
        srv.registered["example.org"] = datetime.datetime.now(datetime.UTC)
        monkeypatch.setenv("MOX_RDAP_BOOTSTRAP", srv.bootstrap_url)
        _res, out = await quickstart_in(tmp_path, qs_dns, skip_dial=True, rdap_bootstrap=srv.bootstrap_url)
        await close_all_accounts()
        assert srv.requests == []
    assert qs_dns.queries == []
    assert "registered recently" not in out and "block lists" not in out
