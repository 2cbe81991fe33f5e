"""mox.rdap: the pure parsers (with hypothesis) and lookups against a loopback RDAP server."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rdaphelpers import rdap_server

from mox import rdap
from mox.dns import parse_domain
from mox.dns.testserver import DNSTestServer

NOW = datetime.datetime(2026, 1, 10, tzinfo=datetime.UTC)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


def _boot(services: list[list[list[str]]]) -> bytes:
    return json.dumps({"version": "1.0", "services": services}).encode()


def test_service_urls_longest_match_https_first() -> None:
    services = rdap.parse_bootstrap(
        _boot([[["org"], ["https://org.example/rdap/"]], [["example.org", "x"], ["http://plain.example/", "https://sub.example/r"]]])
    )
    assert rdap.service_urls(services, "example.org") == ["https://sub.example/r/", "http://plain.example/"]
    assert rdap.service_urls(services, "a.example.org") == ["https://sub.example/r/", "http://plain.example/"]
    assert rdap.service_urls(services, "other.org") == ["https://org.example/rdap/"]
    # Label boundaries: "xorg" is not under "org".
    assert rdap.service_urls(services, "xorg") == []
    assert rdap.service_urls(services, "example.net") == []


@given(st.lists(label, min_size=1, max_size=4), st.lists(label, min_size=1, max_size=3))
def test_service_urls_matches_own_tld(labels: list[str], tlds: list[str]) -> None:
    name = ".".join(labels)
    tld = labels[-1]
    services = rdap.parse_bootstrap(_boot([[tlds, ["https://other.example/"]], [[tld], ["https://mine.example/"]]]))
    # The name's own TLD always matches; an equally long entry listed earlier with the same label also does.
    got = rdap.service_urls(services, name)
    assert got in (["https://mine.example/"], ["https://other.example/"])
    if tld not in tlds:
        assert got == ["https://mine.example/"]


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b'{"services": 1}', b'{"services": [[["org"]]]}', b'{"services": [[["org"], [1]]]}', b"\xff"],
)
def test_parse_bootstrap_errors(data: bytes) -> None:
    with pytest.raises(rdap.RDAPSyntaxError):
        rdap.parse_bootstrap(data)


@given(st.binary(max_size=200))
def test_parsers_only_raise_syntax_errors(data: bytes) -> None:
    for fn in (rdap.parse_bootstrap, rdap.parse_events):
        try:
            fn(data)
        except rdap.RDAPSyntaxError as e:
            assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["services", "events", "eventAction", "eventDate", "x"]), c, max_size=3),
                    max_leaves=12))  # fmt: skip
def test_parsers_on_any_json(doc: object) -> None:
    data = json.dumps(doc).encode()
    for fn in (rdap.parse_bootstrap, rdap.parse_events):
        try:
            fn(data)
        except rdap.RDAPSyntaxError as e:
            assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.


def test_last_registration() -> None:
    data = json.dumps(
        {
            "events": [
                {"eventAction": "registration", "eventDate": "2001-02-03T04:05:06Z"},
                {"eventAction": "reregistration", "eventDate": "2020-05-06T00:00:00.5+02:00"},
                {"eventAction": "expiration", "eventDate": "2027-05-06T00:00:00Z"},
                # Registration events in the future do not count.
                {"eventAction": "reinstantiation", "eventDate": "2030-01-01T00:00:00Z"},
                {"eventAction": "last changed", "eventDate": "2025-12-01T00:00:00Z"},
            ]
        }
    ).encode()
    events = rdap.parse_events(data)
    assert len(events) == 5
    got = rdap.last_registration(events, NOW)
    assert got == datetime.datetime(2020, 5, 5, 22, 0, 0, 500000, tzinfo=datetime.UTC)
    with pytest.raises(rdap.NoRegistrationError):
        rdap.last_registration([e for e in events if e.action == "expiration"], NOW)
    assert rdap.parse_events(b"{}") == []


@pytest.mark.parametrize("date", ["2020-01-01", "yesterday", "2020-01-01T00:00:00"])
def test_event_dates_need_rfc3339(date: str) -> None:
    with pytest.raises(rdap.RDAPSyntaxError):
        rdap.parse_events(json.dumps({"events": [{"eventAction": "registration", "eventDate": date}]}).encode())


@given(st.datetimes(min_value=datetime.datetime(1985, 1, 1), max_value=datetime.datetime(2026, 1, 1), timezones=st.just(datetime.UTC)))
def test_registration_date_roundtrip(t: datetime.datetime) -> None:
    doc = {"events": [{"eventAction": "registration", "eventDate": t.isoformat()}]}
    assert rdap.last_registration(rdap.parse_events(json.dumps(doc).encode()), NOW) == t


def test_bootstrap_url_env() -> None:
    assert rdap.bootstrap_url({}) == rdap.BOOTSTRAP_URL
    assert rdap.bootstrap_url({"MOX_RDAP_BOOTSTRAP": "http://127.0.0.1:1/x.json"}) == "http://127.0.0.1:1/x.json"


async def test_lookup_against_loopback_server(dns_server: DNSTestServer) -> None:
    reg = datetime.datetime(2025, 12, 25, 12, 0, tzinfo=datetime.UTC)
    resolver = dns_server.resolver()
    async with rdap_server() as srv:
        srv.registered["example.org"] = reg
        got = await rdap.lookup_last_registration(resolver, parse_domain("example.org"), bootstrap=srv.bootstrap_url)
        assert got == reg
        assert srv.requests == ["/dns.json", "/rdap/domain/example.org"]
        with pytest.raises(rdap.NoDomainError):
            await rdap.lookup_last_registration(resolver, parse_domain("unknown.net"), bootstrap=srv.bootstrap_url)
        with pytest.raises(rdap.NoRDAPError):
            await rdap.lookup_last_registration(resolver, parse_domain("example.nl"), bootstrap=srv.bootstrap_url)
        # The registry's host name is resolved through mox.dns: the test server does not know it.
        with pytest.raises(rdap.RDAPError, match=r"rdap\.invalid"):
            await rdap.lookup_last_registration(resolver, parse_domain("example.com"), bootstrap=srv.bootstrap_url)
        with pytest.raises(rdap.RDAPError, match="http status 404"):
            await rdap.lookup_last_registration(resolver, parse_domain("example.org"), bootstrap=srv.base + "/missing.json")
    assert not [q for q in dns_server.queries if q.name != "rdap.invalid"]
