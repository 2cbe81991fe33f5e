"""mox tlsrpt lookup / parsereportmsg, mox dmarc parsereportmsg."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mox import dmarcrpt, dns
from mox.cli.main import main
from mox.dns.testserver import DNSTestServer

REPORT = {
    "organization-name": "Reporter",
    "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
    "contact-info": "tls@reporter.example",
    "report-id": "r1",
    "policies": [
        {
            "policy": {"policy-type": "no-policy-found", "policy-string": [], "policy-domain": "example.com", "mx-host": []},
            "summary": {"total-successful-session-count": 2, "total-failure-session-count": 0},
            "failure-details": [],
        }
    ],
}


def _msg(ctype: str, body: bytes) -> bytes:
    return (
        f'From: r@reporter.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type="tlsrpt"; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(body).replace(b"\n", b"\r\n") + b"--b--\r\n"


@pytest.fixture
def resolver(dns_server: DNSTestServer) -> Iterator[DNSTestServer]:
    old = dns.default_resolver()
    dns.set_default_resolver(dns_server.resolver(timeout=2.0, attempt_timeout=1.0))
    try:
        yield dns_server
    finally:
        dns.set_default_resolver(old)


def test_tlsrpt_cli_lookup(resolver: DNSTestServer, capsys: pytest.CaptureFixture[str]) -> None:
    resolver.add_txt("_smtp._tls.example.com", "v=TLSRPTv1; rua=mailto:tls@example.com")
    assert main(["tlsrpt", "lookup", "example.com"]) == 0
    assert capsys.readouterr().out == "v=TLSRPTv1; rua=mailto:tls@example.com\n"
    assert main(["tlsrpt", "lookup", "absent.example"]) == 1
    assert "no tlsrpt record" in capsys.readouterr().err
    assert main(["tlsrpt", "lookup"]) == 2


def test_tlsrpt_cli_parsereportmsg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "msg.eml"
    p.write_bytes(_msg("application/tlsrpt+gzip", gzip.compress(json.dumps(REPORT).encode())))
    assert main(["tlsrpt", "parsereportmsg", str(p), str(p)]) == 0
    out = capsys.readouterr().out
    first = out[: out.index("}\n{") + 2]
    assert json.loads(first) == REPORT and "\t" in out
    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"Subject: x\r\n\r\nx\r\n")
    assert main(["tlsrpt", "parsereportmsg", str(bad)]) == 1
    assert "parse report in" in capsys.readouterr().err
    assert main(["tlsrpt", "parsereportmsg", str(tmp_path / "missing")]) == 1


def test_dmarc_cli_parsereportmsg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = dmarcrpt.Feedback(
        dmarcrpt.ReportMetadata("google.com", "noreply@google.com", "123", dmarcrpt.DateRange(1596412800, 1596499199), errors=["e1"]),
        dmarcrpt.PolicyPublished("example.org", "r", "r", "reject", "reject", 100),
        [
            dmarcrpt.ReportRecord(
                dmarcrpt.Row("192.0.2.1", 1, dmarcrpt.PolicyEvaluated("none", "pass", "fail", [dmarcrpt.PolicyOverrideReason("local_policy", "c")])),
                dmarcrpt.Identifiers("example.org", "to.example"),
                dmarcrpt.AuthResults([dmarcrpt.DKIMAuthResult("example.org", "pass", "sel", "ok")], [dmarcrpt.SPFAuthResult("example.org", "fail", "mfrom")]),
            )
        ],
    )
    p = tmp_path / "msg.eml"
    p.write_bytes(_msg("application/gzip", gzip.compress(dmarcrpt.feedback_xml(f))))
    assert main(["dmarc", "parsereportmsg", str(p)]) == 0
    assert capsys.readouterr().out == (
        'Report: period 2020-08-03 00:00:00 +0000 UTC-2020-08-03 23:59:59 +0000 UTC, organisation "google.com", reportID "123", noreply@google.com\n'
        "Errors:\n\t- e1\n"
        'Policy: domain "example.org", policy "reject", subdomainpolicy "reject", dkim "r", spf "r", percentage 100, options "0"\n'
        '\theaderfrom "example.org", envelopes from "", to "to.example"\n'
        '\tresult none: dkim pass, spf fail; sourceIP 192.0.2.1, count 1; local_policy: "c"\n'
        '\t\tdkim pass; domain "example.org" selector "sel": "ok"\n'
        '\t\tspf fail; domain "example.org" scope "mfrom"\n'
    )
    assert main(["dmarc", "parsereportmsg"]) == 2
