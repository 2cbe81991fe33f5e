"""quickstart against a test resolver: the files it writes load, and the records it prints pass dnscheck."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from quickstarthelpers import HOST_IP, quickstart_in

from mox.config.load import load_config
from mox.dns import parse_domain
from mox.dns.testserver import DNSTestServer
from mox.dnsrecords import check_domain
from mox.quickstart import LETSENCRYPT_DIRECTORY, Options, QuickstartError, run
from mox.store import close_all_accounts
from mox.store.auth import password_secrets


def _errors(results: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{r.section}: {e}" for r in results for e in r.errors]


async def test_quickstart_records_pass_dnscheck(tmp_path: Path, qs_dns: DNSTestServer) -> None:
    res, out = await quickstart_in(tmp_path, qs_dns)
    assert (tmp_path / "quickstart.log").read_text() == out
    assert f"Admin password: {res.admin_password}" in out and res.account_password in out
    cfg = load_config(tmp_path / "config" / "mox.conf")
    st = cfg.static
    assert st.Hostname == "mail.example.org" and st.User == "0"
    assert st.ACME["letsencrypt"].DirectoryURL == LETSENCRYPT_DIRECTORY
    assert st.HostTLSRPT.Localpart == "tlsreports" and st.Postmaster.Account == "jan"
    pub = st.Listeners["public"]
    assert pub.TLS is not None and pub.TLS.ACME == "letsencrypt" and len(pub.TLS.HostPrivateKeyFiles) == 2
    assert HOST_IP in pub.IPs + pub.NATIPs
    dom = cfg.dynamic.Domains["example.org"]
    algs = sorted(s.Algorithm for s in dom.DKIM.Selectors.values())
    assert algs == ["ed25519", "rsa-2048"] and len(dom.DKIM.Sign) == 2
    assert "#CheckUpdates: true" in (tmp_path / "config" / "mox.conf").read_text()
    assert await password_secrets(cfg, "jan") is not None
    await close_all_accounts()

    # Every kind of record is printed; TLSA not commented out: the domain is DNSSEC-signed.
    for text in ("example.org.", "MX    10 mail.example.org.", "_25._tcp.mail.example.org.", "TLSA  3 1 1 ",
                 "_smtp._tls.mail.example.org.", "_smtp._tls.example.org.", "_dmarc.example.org.", "rua=mailto:dmarcreports@example.org",
                 "_mta-sts.example.org.", "mta-sts.example.org.", "autoconfig.example.org.", "_imaps._tcp.example.org.",
                 "_submissions._tcp.example.org.", "_autodiscover._tcp.example.org.", 'CAA   0 issue "letsencrypt.org"',
                 f"A     {HOST_IP}", "2026", "k=ed25519", "k=rsa"):  # fmt: skip
        assert text in res.records, text
    assert ";; _25._tcp" not in res.records

    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dnsrecords"))
    from dnsrecordshelpers import serve_zone

    assert serve_zone(qs_dns, res.records) > 15
    resolver = qs_dns.resolver()
    d = parse_domain("example.org")
    results = await check_domain(cfg, d, resolver)
    assert _errors(results) == []
    assert all(not r.warnings for r in results), [r.warnings for r in results]

    # Break records: each problem is named.
    sel = sorted(dom.DKIM.Selectors)[1]
    qs_dns.remove(f"{sel}._domainkey.example.org", "TXT")
    qs_dns.remove("_dmarc.example.org", "TXT")
    qs_dns.add_txt("_dmarc.example.org", "v=DMARC1; p=none; rua=mailto:someone@example.net")
    qs_dns.remove("_25._tcp.mail.example.org", "TLSA")
    qs_dns.add_tlsa("_25._tcp.mail.example.org", 3, 1, 1, b"\x01" * 32)
    qs_dns.add_txt("example.org", "v=spf1 -all")
    errors = _errors(await check_domain(cfg, d, resolver))
    assert any(e.startswith(f"DKIM: missing TXT record {sel}._domainkey.example.org") for e in errors), errors
    assert any(e.startswith("DMARC: ") and "dmarcreports@example.org" in e for e in errors), errors
    assert sum(e.startswith("DANE: missing TLSA record _25._tcp.mail.example.org") for e in errors) == 2, (
        errors
    )
    assert any(e.startswith("SPF: 2 TXT records example.org starting with v=spf1") for e in errors), errors


async def test_quickstart_warns_without_dnssec(tmp_path: Path, qs_dns: DNSTestServer) -> None:
    qs_dns.set_authentic("com", False)
    qs_dns.set_authentic("example.org", False)
    res, out = await quickstart_in(tmp_path, qs_dns)
    assert "do not seem to verify DNSSEC" in out
    assert "not appear to be DNSSEC-signed" in out
    assert ";; _25._tcp.mail.example.org." in res.records
    # gmail.com has no MX at the test server: the SMTP check warns, nothing is dialled.
    assert "looking up the gmail.com mx record" in out


async def test_skipdial_makes_no_query(tmp_path: Path, qs_dns: DNSTestServer) -> None:
    res, _out = await quickstart_in(tmp_path, qs_dns, skip_dial=True, acme_url="https://127.0.0.1:14000/dir")
    assert qs_dns.queries == []
    cfg = load_config(tmp_path / "config" / "mox.conf")
    assert cfg.static.ACME["acme"].DirectoryURL == "https://127.0.0.1:14000/dir"
    assert "CAA" not in res.records
    await close_all_accounts()


async def test_existing_webserver(tmp_path: Path, qs_dns: DNSTestServer) -> None:
    res, out = await quickstart_in(tmp_path, qs_dns, skip_dial=True, existing_webserver=True)
    conf = (tmp_path / "config" / "mox.conf").read_text()
    assert "path/to/mail.example.org-chain.crt.pem" in conf
    cfg = load_config(tmp_path / "config" / "mox.conf", check_files=False)
    assert cfg.static.ACME == {} and cfg.static.Listeners["internal"].MTASTSHTTPS.Port == 81
    assert "http://127.0.0.1:81" in out
    assert "TLSA" not in res.records
    await close_all_accounts()


async def test_refuses_to_overwrite_and_cleans_up(tmp_path: Path, qs_dns: DNSTestServer) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mox.conf").write_text("mine\n")
    with pytest.raises(QuickstartError, match="already exists"):
        await run(
            Options("jan@example.org", user="0", hostname="mail.example.org", skip_dial=True),
            tmp_path,
            io.StringIO(),
        )
    assert (tmp_path / "config" / "mox.conf").read_text() == "mine\n"
    assert sorted(p.name for p in (tmp_path / "config").iterdir()) == ["mox.conf"]
    assert not (tmp_path / "data").exists()
    with pytest.raises(QuickstartError, match="parsing email address"):
        await run(Options("not-an-address", skip_dial=True), tmp_path, io.StringIO())


async def test_unknown_user_is_refused_and_cleaned_up(tmp_path: Path) -> None:
    opts = Options("jan@example.org", user="no-such-user-moxtest", hostname="mail.example.org", skip_dial=True)
    with pytest.raises(QuickstartError, match="unknown user 'no-such-user-moxtest'"):
        await run(opts, tmp_path, io.StringIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quickstart.log"]
