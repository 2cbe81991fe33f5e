"""Parsing MOX_DNS, the list of name servers that replaces /etc/resolv.conf."""

import pytest

from mox.dns import StubResolver, parse_nameservers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:53", [("127.0.0.1", 53)]),
        ("[::1]:5353", [("::1", 5353)]),
        ("[2001:DB8::1]:53", [("2001:db8::1", 53)]),
        ("10.0.0.2:53,[::1]:1053", [("10.0.0.2", 53), ("::1", 1053)]),
        (" 127.0.0.1:53 , 127.0.0.2:54 ", [("127.0.0.1", 53), ("127.0.0.2", 54)]),
        ("127.0.0.1:65535", [("127.0.0.1", 65535)]),
    ],
)
def test_parse_nameservers_good(value: str, expected: list[tuple[str, int]]) -> None:
    assert parse_nameservers(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("127.0.0.1", r"'127\.0\.0\.1': missing :port"),
        ("127.0.0.1:53,", "empty element"),
        (",127.0.0.1:53", "empty element"),
        ("::1:53", "IPv6 address must be in brackets"),
        ("[::1]", r"expected :port after '\]'"),
        ("[::1]53", r"expected :port after '\]'"),
        ("[::1:53", "missing ']'"),
        ("localhost:53", "'localhost' is not an IP address"),
        ("[127.0.0.1:53", "missing ']'"),
        ("127.0.0.1:0", "port '0' is not a number 1-65535"),
        ("127.0.0.1:65536", "port '65536' is not a number 1-65535"),
        ("127.0.0.1:dns", "port 'dns' is not a number"),
        ("127.0.0.1:", "port '' is not a number"),
        ("127.0.0.1:+53", "port"),
        ("127.0.0.1:٥٣", "port"),
    ],
)
def test_parse_nameservers_bad(value: str, message: str) -> None:
    with pytest.raises(ValueError, match="^MOX_DNS: .*" + message):
        parse_nameservers(value)


def test_from_environment_reads_mox_dns() -> None:
    r = StubResolver.from_environment({"MOX_DNS": "192.0.2.53:53,[2001:db8::53]:5353"})
    assert r.nameservers == (("192.0.2.53", 53), ("2001:db8::53", 5353))
    # Servers the operator named are trusted to validate, loopback or not.
    assert r.trust_ad is True
    assert "192.0.2.53:53" in repr(r) and "[2001:db8::53]:5353" in repr(r)


def test_empty_nameserver_list_refused() -> None:
    with pytest.raises(ValueError, match="no nameservers"):
        StubResolver([])
