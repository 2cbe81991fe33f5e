"""DNS records for a domain: the zone text, and dnscheck's verdict on live DNS that differs from it."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Iterator

import bcrypt
import dns.name
import dns.zone
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnsrecordshelpers import serve_zone

from mox import quickstart
from mox.config import keys
from mox.config.load import Config, load_config
from mox.dns import parse_domain
from mox.dns.testserver import DNSTestServer
from mox.dnsrecords import (
    Record,
    SectionResult,
    check_domain,
    domain_records,
    host_private_keys,
    record_line,
    zone_text,
)
from mox.store import close_all_accounts

DOMAIN = parse_domain("example.org")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    root = tmp_path_factory.mktemp("qs")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    mp = pytest.MonkeyPatch()
    mp.setattr(quickstart.rsa, "generate_private_key", lambda **kw: key)
    mp.setattr(quickstart.keys, "make_dkim_rsa_key", lambda: keys._pkcs8(key))
    # The machine's own interfaces (e.g. container networks with public-looking IPs) must not
    # end up in the listener IPs and so in the suggested SPF record.
    mp.setattr(quickstart, "interface_ips", lambda: (["127.0.0.1", "::1"], [], []))
    mp.setattr(
        quickstart.keys,
        "hash_admin_password",
        lambda pw: bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)),
    )
    opts = quickstart.Options("jan@example.org", user="0", hostname="mail.example.org", skip_dial=True)

    async def go() -> None:
        await quickstart.run(opts, root, io.StringIO())
        await close_all_accounts()

    try:
        asyncio.run(go())
    finally:
        mp.undo()
    return load_config(root / "config" / "mox.conf")


@pytest.fixture
def served(cfg: Config) -> Iterator[DNSTestServer]:
    """A DNSSEC-signed zone holding exactly the suggested records."""
    with DNSTestServer() as server:
        serve_zone(server, zone_text(domain_records(cfg, DOMAIN, has_dnssec=True)))
        server.set_authentic("example.org")
        yield server


def _by_section(results: list[SectionResult]) -> dict[str, SectionResult]:
    return {r.section: r for r in results}


def test_zone_text_is_a_zone_file(cfg: Config) -> None:
    text = zone_text(
        domain_records(
            cfg, DOMAIN, has_dnssec=False, cert_issuer="letsencrypt.org", acme_account_uri="https://ca/acct/1"
        )
    )
    zone = dns.zone.from_text(text, origin=dns.name.root, relativize=False, check_origin=False)
    names = {n.to_text() for n in zone.nodes}
    assert "_dmarc.example.org." in names and "example.org." in names
    # Without DNSSEC, TLSA is commented out, as are the account-bound CAA records.
    assert "_25._tcp.mail.example.org." not in names
    assert (
        ";; _25._tcp.mail.example.org." in text
        and ";; example.org." in text
        and "accounturi=https://ca/acct/1" in text
    )
    # TLSA 3 1 1: SHA-256 of each host key's SubjectPublicKeyInfo.
    for k in host_private_keys(cfg):
        spki = k.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert f"TLSA  3 1 1 {hashlib.sha256(spki).hexdigest()}" in text
    # DKIM RSA keys do not fit one 255-byte string: several strings, one record.
    rsa_sel = next(r for r in zone.nodes if "a._domainkey" in r.to_text())
    rd = next(iter(zone.nodes[rsa_sel].rdatasets[0]))
    assert len(rd.strings) > 2 and b"".join(rd.strings).startswith(b"v=DKIM1; h=sha256; k=rsa; p=")


def test_record_line() -> None:
    assert (
        record_line(Record("a.example", "MX", "10 b.example.", "MX"), 12)
        == "a.example.   MX    10 b.example."
    )
    line = record_line(Record("a.example", "TXT", "x" * 150, "SPF", commented=True), 12)
    assert line.count("\n") == 3 and all(ln.startswith(";; ") for ln in line.split("\n"))


async def test_all_present_no_errors(cfg: Config, served: DNSTestServer) -> None:
    results = await check_domain(cfg, DOMAIN, served.resolver())
    assert [(r.section, r.errors, r.warnings) for r in results if r.errors or r.warnings] == []


async def test_differences_are_named(cfg: Config, served: DNSTestServer) -> None:
    served.remove("example.org", "MX")
    served.add_mx("example.org", 10, "mx.elsewhere.example")
    served.remove("example.org", "TXT")
    served.add_txt("example.org", "v=spf1 ip4:192.0.2.1 mx ~all")
    sel = sorted(cfg.dynamic.Domains["example.org"].DKIM.Selectors)[1]
    served.remove(f"{sel}._domainkey.example.org", "TXT")
    served.add_txt(
        f"{sel}._domainkey.example.org", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    )
    served.remove("_smtp._tls.example.org", "TXT")
    served.add_txt("_smtp._tls.example.org", "v=TLSRPTv1; rua=mailto:other@example.org")
    served.remove("_imap._tcp.example.org", "SRV")
    served.remove("_submissions._tcp.example.org", "SRV")
    served.add("_submissions._tcp.example.org", "SRV", "0 1 587 mail.example.org.")
    served.set_authentic("example.org", False)
    res = _by_section(await check_domain(cfg, DOMAIN, served.resolver()))
    assert res["MX"].errors == [
        "MX records of example.org are mx.elsewhere.example, expected mail.example.org"
    ]
    # An SPF record allowing more than suggested only warns.
    assert res["SPF"].errors == [] and res["SPF"].warnings and "ip4:192.0.2.1" in res["SPF"].warnings[0]
    assert res["DKIM"].errors == [
        f"DKIM record {sel}._domainkey.example.org has a different public key than the configured private key"
    ]
    assert res["Domain TLSRPT"].errors == [
        "TLSRPT record _smtp._tls.example.org does not send reports to mailto:tlsreports@example.org"
    ]
    assert res["SRV conf"].errors == [
        "SRV _submissions._tcp.example.org is 0 1 587 mail.example.org, expected 0 1 465 mail.example.org."
    ]
    assert "not DNSSEC-signed" in res["DNSSEC"].warnings[0]
    assert any("are not DNSSEC-signed: DANE needs DNSSEC" in e for e in res["DANE"].errors)


async def test_spf_lacking_mx_is_an_error(cfg: Config, served: DNSTestServer) -> None:
    served.remove("example.org", "TXT")
    served.add_txt("example.org", "v=spf1 a -all")
    res = _by_section(await check_domain(cfg, DOMAIN, served.resolver()))
    assert len(res["SPF"].errors) == 1 and "lacking mx" in res["SPF"].errors[0]


async def test_lookup_failure(cfg: Config, served: DNSTestServer) -> None:
    served.fail("_dmarc.example.org", "servfail")
    res = _by_section(await check_domain(cfg, DOMAIN, served.resolver()))
    assert len(res["DMARC"].errors) == 1 and res["DMARC"].errors[0].startswith(
        "looking up TXT _dmarc.example.org: "
    )
