"""`mox spf|dkim|dmarc ...` run as an operator would, against a loopback DNS server given in MOX_DNS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mox import dkim
from mox.config.example import write_local_config
from mox.config.load import parse_dynamic
from mox.dns.testserver import DNSTestServer

DOMAIN = "mox.example"


@pytest.fixture
def dns() -> Iterator[DNSTestServer]:
    with DNSTestServer() as s:
        s.add_txt(DOMAIN, "v=spf1 ip4:192.0.2.0/24 -all")
        s.add_txt("exp.example", "v=spf1 -all exp=why.exp.example")
        s.add_txt("why.exp.example", "%{i} is not one of %{d}'s senders")
        s.add_txt("softfail.example", "v=spf1 ~all")
        s.add_txt(
            f"_dmarc.{DOMAIN}",
            f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN},mailto:reports@other.example; ruf=mailto:f@third.example",
        )
        s.add_txt(f"{DOMAIN}._report._dmarc.other.example", "v=DMARC1")
        s.set_authentic(f"_dmarc.{DOMAIN}")
        yield s


def mox(
    dns: DNSTestServer, *args: str, stdin: bytes = b"", config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOX_DNS": dns.address}
    pre = ["-config", str(config)] if config else []
    r = subprocess.run(
        [sys.executable, "-m", "mox", *pre, *args], input=stdin, capture_output=True, env=env, timeout=60
    )
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def txt_record_from_output(out: str) -> str:
    """The record text from `mox dkim txt` output: its quoted strings, concatenated."""
    assert out.startswith("<selector>._domainkey.<your.domain.> TXT "), out
    return "".join(re.findall(r'"([^"]*)"', out))


def test_spf_check_pass_fail_none(dns: DNSTestServer) -> None:
    r = mox(dns, "spf", "check", DOMAIN, "192.0.2.10")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["status: pass (without dnssec)", "mechanism: ip4:192.0.2.0/24"]
    r = mox(dns, "spf", "check", DOMAIN, "198.51.100.1")
    assert r.stdout.splitlines() == ["status: fail (without dnssec)", "mechanism: -all"]
    r = mox(dns, "spf", "check", "exp.example", "198.51.100.1")
    assert r.stdout.splitlines()[0] == "explanation: 198.51.100.1 is not one of exp.example's senders"
    assert "status: softfail (without dnssec)" in mox(dns, "spf", "check", "softfail.example", "::1").stdout
    r = mox(dns, "spf", "check", "nospf.example", "192.0.2.10")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("error: ") and lines[1:] == ["status: none (without dnssec)"]
    r = mox(dns, "spf", "check", DOMAIN, "not-an-ip")
    assert r.returncode == 1 and r.stderr.startswith("mox: parsing ip ")


def test_spf_lookup_and_parse(dns: DNSTestServer) -> None:
    r = mox(dns, "spf", "lookup", DOMAIN)
    assert r.stdout.splitlines() == ["v=spf1 ip4:192.0.2.0/24 -all", "(without dnssec)"]
    r = mox(dns, "spf", "lookup", "nospf.example")
    assert r.returncode == 1 and r.stderr.startswith("mox: spf lookup for nospf.example: ")
    r = mox(dns, "spf", "parse", "v=spf1 mx a:mail.example.org include:_spf.example.net ~all")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = mox(dns, "spf", "parse", "v=spf1 ip4:1.2.3 -all")
    assert (
        r.returncode == 1 and r.stderr.startswith("mox: parsing record: ") and len(r.stderr.splitlines()) == 1
    )
    r = mox(dns, "spf", "parse")
    assert r.returncode == 2 and "usage: mox spf parse $txtrecord" in r.stderr


def test_dkim_keys_sign_verify(dns: DNSTestServer, tmp_path: Path) -> None:
    # Keys: RSA and Ed25519, in PEM; their TXT records parse back to the same public keys.
    rsa_pem = mox(dns, "dkim", "genrsa").stdout
    assert rsa_pem.startswith("-----BEGIN PRIVATE KEY-----\nNote: rsa-2048 dkim private key\n")
    rsa_txt = txt_record_from_output(mox(dns, "dkim", "txt", stdin=rsa_pem.encode()).stdout)
    rsa_rec, _ = dkim.parse_record(rsa_txt)
    assert rsa_txt.startswith("v=DKIM1; h=sha256;") and rsa_rec.flags == ["s"]
    assert rsa_rec.public_key == dkim.record_for_key(dkim.load_private_key_pem(rsa_pem.encode())).public_key
    ed_pem = mox(dns, "dkim", "gened25519").stdout
    ed_txt = txt_record_from_output(mox(dns, "dkim", "txt", stdin=ed_pem.encode()).stdout)
    assert dkim.parse_record(ed_txt)[0].key_type == "ed25519"
    r = mox(dns, "dkim", "txt", stdin=b"not a key")
    assert r.returncode == 1 and r.stderr.startswith("mox: reading dkim private key from stdin: ")

    # A config with our domain; its signing selector gets the new Ed25519 key.
    conf = write_local_config(tmp_path, ips=["127.0.0.1"])
    r = mox(dns, "config", "domain", "add", DOMAIN, "jan", "jan", config=conf)
    assert r.returncode == 0, r.stderr
    dyn, _ = parse_dynamic(conf.parent / "domains.conf")
    dkim_conf = dyn.Domains[DOMAIN].DKIM
    selector = dkim_conf.Sign[0]
    (conf.parent / dkim_conf.Selectors[selector].PrivateKeyFile).write_text(ed_pem)
    dns.add_txt(f"{selector}._domainkey.{DOMAIN}", ed_txt)

    r = mox(dns, "dkim", "lookup", selector, DOMAIN)
    assert r.stdout.splitlines() == [
        f"TXT record: {ed_txt}", "dnssec-signed: no", "Record:", "\tversion: DKIM1", "\thashes: [sha256]",
        "\tkey: ed25519", "\tnotes: ", "\tservices: [*]", "\tflags: [s]",
    ]  # fmt: skip
    r = mox(dns, "dkim", "lookup", "nosel", DOMAIN)
    assert r.stdout.splitlines() == [
        f"error: no dkim dns record at nosel._domainkey.{DOMAIN}", "status: permerror", "dnssec-signed: no"
    ]  # fmt: skip

    message = f"From: Jan <jan@{DOMAIN}>\nTo: piet@other.example\nSubject: hi\n\nhello\n"
    (tmp_path / "msg.eml").write_text(message)
    r = mox(dns, "dkim", "sign", str(tmp_path / "msg.eml"), config=conf)
    assert r.returncode == 0, r.stderr
    signed = r.stdout
    unfolded = signed.replace("\r\n\t", " ")
    assert unfolded.startswith(
        f"DKIM-Signature: v=1; a=ed25519-sha256; d={DOMAIN}; s={selector}; i=jan@{DOMAIN};"
    )
    assert signed.endswith(message.replace("\n", "\r\n"))
    (tmp_path / "signed.eml").write_bytes(signed.encode())

    r = mox(dns, "dkim", "verify", str(tmp_path / "signed.eml"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ['status "pass", err <nil>', f'record "{dkim.parse_record(ed_txt)[0].text()}"']
    assert lines[2].startswith("header DKIM-Signature: v=1; a=ed25519-sha256;")

    (tmp_path / "tampered.eml").write_bytes(signed.replace("hello", "hell0").encode())
    r = mox(dns, "dkim", "verify", str(tmp_path / "tampered.eml"))
    assert r.stdout.splitlines()[0] == 'status "fail", err body hash does not match'

    # Signing needs the From domain in the config.
    (tmp_path / "other.eml").write_text("From: x@elsewhere.example\nSubject: x\n\nx\n")
    r = mox(dns, "dkim", "sign", str(tmp_path / "other.eml"), config=conf)
    assert (r.returncode, r.stderr) == (1, "mox: domain elsewhere.example not configured\n")

    # DMARC: the aligned DKIM signature passes even though SPF fails.
    r = mox(dns, "dmarc", "verify", "198.51.100.1", f"jan@{DOMAIN}", f"mail.{DOMAIN}", stdin=signed.encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"spf result: {DOMAIN}: fail (without dnssec)",
        'dkim result: "pass" (err <nil>)',
        f"dmarc from: jan@{DOMAIN}",
        'dmarc status: "pass"',
        "dmarc reject: false",
        f"dmarc record: v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN},mailto:reports@other.example; ruf=mailto:f@third.example",
    ]
    # Tampered and from an IP outside the SPF policy: DMARC fails and the policy says reject.
    r = mox(
        dns,
        "dmarc",
        "verify",
        "198.51.100.1",
        f"jan@{DOMAIN}",
        "",
        stdin=(tmp_path / "tampered.eml").read_bytes(),
    )
    assert 'dmarc status: "fail"' in r.stdout and "dmarc reject: true" in r.stdout
    # Unsigned but from an allowed IP: SPF aligns.
    r = mox(dns, "dmarc", "verify", "192.0.2.1", f"bounce@{DOMAIN}", "", stdin=message.encode())
    assert r.stdout.splitlines()[:2] == [
        f"spf result: {DOMAIN}: pass (without dnssec)",
        f"dmarc from: jan@{DOMAIN}",
    ]
    assert 'dmarc status: "pass"' in r.stdout


def test_dmarc_lookup(dns: DNSTestServer) -> None:
    r = mox(dns, "dmarc", "lookup", DOMAIN)
    assert r.stdout.splitlines()[1] == "(with dnssec)"
    assert r.stdout.startswith(f"dmarc record at domain {DOMAIN}: v=DMARC1; p=reject; rua=")
    # A subdomain without its own record gets the organizational domain's.
    r = mox(dns, "dmarc", "lookup", f"sub.{DOMAIN}")
    assert r.stdout.startswith(f"dmarc record at domain {DOMAIN}: ")
    r = mox(dns, "dmarc", "lookup", "nodmarc.example")
    assert r.returncode == 1 and r.stderr == "mox: dmarc lookup domain nodmarc.example: no dmarc dns record\n"
    r = mox(dns, "dmarc", "verify", "192.0.2.1", "", "", stdin=b"From: a@nodmarc.example\n\nx\n")
    assert r.returncode == 1 and r.stderr == "mox: dmarc verify: no dmarc dns record\n"
    r = mox(dns, "dmarc", "verify", "192.0.2.1", "")
    assert r.returncode == 2


def test_dmarc_checkreportaddrs(dns: DNSTestServer) -> None:
    r = mox(dns, "dmarc", "checkreportaddrs", DOMAIN)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f'dmarc record at domain {DOMAIN}: "v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN},mailto:reports@other.example; ruf=mailto:f@third.example"',
        "(with dnssec)",
        f"aggregate reporting mailto:dmarc@{DOMAIN}: pass (same organizational domain) (without dnssec)",
        f'aggregate reporting mailto:reports@other.example: pass (txt record {DOMAIN}._report._dmarc.other.example: ["v=DMARC1"]) (without dnssec)',
        f"failure reporting mailto:f@third.example: fail: no dmarc reporting dns record (no txt records {DOMAIN}._report._dmarc.third.example) (without dnssec)",
    ]
