"""mox.dnsbl: query names (RFC 5782 sections 2.1, 2.4), listings and health checks against a loopback DNS server."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mox import dnsbl
from mox.dns.testserver import DNSTestServer

ZONE = "bl.example"


def test_query_name() -> None:
    assert dnsbl.query_name(ZONE, "192.0.2.10") == "10.2.0.192.bl.example."
    assert dnsbl.query_name("BL.Example.", "::ffff:192.0.2.10") == "10.2.0.192.bl.example."
    # RFC 5782 section 2.4's example address.
    v6 = dnsbl.query_name(ZONE, "2001:db8:1:2:3:4:567:89ab")
    assert v6 == "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example."
    with pytest.raises(ValueError):
        dnsbl.query_name(ZONE, "not-an-ip")


@given(st.ip_addresses())
def test_query_name_reverses_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    name = dnsbl.query_name(ZONE, ip)
    assert name.endswith("." + ZONE + ".")
    labels = name[: -len(ZONE) - 2].split(".")
    if ip.version == 6 and ip.ipv4_mapped is None:
        assert len(labels) == 32
        assert int("".join(reversed(labels)), 16) == int(ip)
    else:
        v4 = ip.ipv4_mapped if ip.version == 6 else ip
        assert v4 is not None
        assert ipaddress.IPv4Address(".".join(reversed(labels))) == v4


def _healthy(server: DNSTestServer) -> None:
    server.add_a(f"2.0.0.127.{ZONE}", "127.0.0.2")
    server.add_txt(f"2.0.0.127.{ZONE}", "test entry")


async def test_lookup_and_health(dns_server: DNSTestServer) -> None:
    r = dns_server.resolver()
    with pytest.raises(dnsbl.HealthError, match="does not list the test address"):
        await dnsbl.check_health(r, ZONE)
    _healthy(dns_server)
    await dnsbl.check_health(r, ZONE)

    assert await dnsbl.lookup(r, ZONE, "192.0.2.1") == dnsbl.Result(dnsbl.Status.PASS)
    assert await dnsbl.lookup(r, ZONE, "127.0.0.2") == dnsbl.Result(dnsbl.Status.FAIL, "test entry")
    # Listed without a TXT record: still listed, no reason.
    dns_server.add_a(f"3.2.0.192.{ZONE}", "127.0.0.4")
    assert await dnsbl.lookup(r, ZONE, "192.0.2.3") == dnsbl.Result(dnsbl.Status.FAIL, "")
    # Operator error codes outside 127.0.0.0/24 are no listing.
    dns_server.add_a(f"4.2.0.192.{ZONE}", "127.255.255.254")
    res = await dnsbl.lookup(r, ZONE, "192.0.2.4")
    assert res.status == dnsbl.Status.TEMPERROR and "127.255.255.254" in res.error

    dns_server.add_a(f"1.0.0.127.{ZONE}", "127.0.0.2")
    with pytest.raises(dnsbl.HealthError, match=r"127\.0\.0\.1"):
        await dnsbl.check_health(r, ZONE)


async def test_dns_failure_is_temperror(dns_server: DNSTestServer) -> None:
    _healthy(dns_server)
    dns_server.fail(f"5.2.0.192.{ZONE}", "servfail")
    res = await dnsbl.lookup(dns_server.resolver(), ZONE, "192.0.2.5", timeout=3)
    assert res.status == dnsbl.Status.TEMPERROR and res.error


def test_cli_check_and_checkhealth(
    dns_server: DNSTestServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mox.cli.main import main
    # The commands use the default resolver: MOX_DNS pointing at the test server.
    monkeypatch.setenv("MOX_DNS", dns_server.address)
    monkeypatch.setattr("mox.dns.resolver._default", None)
    assert main(["dnsbl", "checkhealth", ZONE]) == 1
    assert "unhealthy: block list does not list the test address 127.0.0.2" in capsys.readouterr().err
    _healthy(dns_server)
    assert main(["dnsbl", "checkhealth", ZONE]) == 0
    assert capsys.readouterr().out == "healthy\n"
    assert main(["dnsbl", "check", ZONE, "127.0.0.2"]) == 0
    assert capsys.readouterr().out == "status: fail\nexplanation: 'test entry'\n"
    assert main(["dnsbl", "check", ZONE, "192.0.2.1"]) == 0
    assert capsys.readouterr().out == "status: pass\n"
    assert main(["dnsbl", "check", ZONE, "nonsense"]) == 2
