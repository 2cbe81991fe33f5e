"""SPF macro expansion, RFC 7208 section 7."""

from __future__ import annotations

import ipaddress

import pytest

from mox.spf import MacroValues, RecordSyntaxError, expand

# RFC 7208 section 7.4: "The <sender> is strong-bad@email.example.com.
# The IPv4 SMTP client IP is 192.0.2.3. The IPv6 SMTP client IP is
# 2001:db8::cb01. The PTR domain name of the client IP is mx.example.org."
V4 = MacroValues(
    sender="strong-bad@email.example.com",
    domain="email.example.com",
    ip=ipaddress.IPv4Address("192.0.2.3"),
    helo="mx.example.org",
    validated_ptr="mx.example.org",
    receiving_host="mx.receiver.example",
    timestamp=1234567890,
)
V6 = MacroValues(
    sender="strong-bad@email.example.com",
    domain="email.example.com",
    ip=ipaddress.IPv6Address("2001:db8::cb01"),
    helo="mx.example.org",
)


@pytest.mark.parametrize(
    ("spec", "expanded"),
    [
        # The table of RFC 7208 section 7.4.
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
        # The other letters, escapes and transformers.
        ("%{p}.%{h}.%{i}", "mx.example.org.mx.example.org.192.0.2.3"),
        ("%{d2r}%%%_%-", "example.email% %20"),
        ("%{l2r+-}", "bad.strong"),
        ("%{D}", "email.example.com"),
        ("%{S}", "strong-bad%40email.example.com"),
        ("%{d100}", "email.example.com"),
    ],
)
def test_spf_macro_rfc7208_examples_ipv4(spec: str, expanded: str) -> None:
    assert expand(spec, V4) == expanded


def test_spf_macro_rfc7208_example_ipv6() -> None:
    # RFC 7208 section 7.4, the IPv6 example.
    assert (
        expand("%{ir}.%{v}._spf.%{d2}", V6)
        == "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )


def test_spf_macro_exp_only_letters() -> None:
    # Section 7.1: c, r, t only in explanation text, where spaces are literal.
    assert expand("%{c} via %{r} at %{t}", V4, exp=True) == "192.0.2.3 via mx.receiver.example at 1234567890"
    assert expand("%{c}", V6, exp=True) == "2001:db8::cb01"
    assert (
        expand("%{R}", MacroValues("a@b.c", "b.c", ipaddress.IPv4Address("192.0.2.1")), exp=True) == "unknown"
    )
    with pytest.raises(RecordSyntaxError):
        expand("%{c}.example.com", V4)
    with pytest.raises(RecordSyntaxError):
        expand("a b", V4)


def test_spf_macro_url_escaping_for_upper_case_letters() -> None:
    # Section 7.3: upper-case macro letters are URL-escaped (RFC 3986 unreserved kept).
    v = MacroValues("~jack&jill=up-a_b3.c@example.com", "example.com", ipaddress.IPv4Address("192.0.2.1"))
    assert expand("%{L}", v, exp=True) == "~jack%26jill%3Dup-a_b3.c"
    assert expand("%{l}", v, exp=True) == "~jack&jill=up-a_b3.c"


def test_spf_macro_empty_local_part_is_postmaster() -> None:
    v = MacroValues("@example.com", "example.com", ipaddress.IPv4Address("192.0.2.1"))
    assert expand("%{l}.%{o}", v) == "postmaster.example.com"


def test_spf_macro_long_expansion_truncated_from_the_left() -> None:
    # Section 7.3: drop whole labels from the left until 253 characters remain.
    label = "x" * 60
    v = MacroValues(f"{label}.{label}.{label}@example.com", "example.com", ipaddress.IPv4Address("192.0.2.1"))
    out = expand("%{l}.%{l}.example.com", v)
    assert len(out) <= 253
    assert out.endswith(f"{label}.{label}.example.com")
    assert not out.startswith(".")
    assert len(expand("%{l}.%{l}.example.com.", v)) <= 254
