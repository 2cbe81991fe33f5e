"""mox mtasts lookup, with DNS answers from a mock resolver."""

from __future__ import annotations

import pytest

from mox import dns
from mox.cli.main import main
from mox.dns import MockResolver


def test_mtasts_lookup_no_record(capsys: pytest.CaptureFixture[str]) -> None:
    dns.set_default_resolver(MockResolver())
    try:
        assert main(["mtasts", "lookup", "example.org"]) == 0
    finally:
        dns.set_default_resolver(None)
    assert capsys.readouterr().out == "error: no mta-sts dns txt record at _mta-sts.example.org\n"


def test_mtasts_lookup_record_without_policy_host(capsys: pytest.CaptureFixture[str]) -> None:
    dns.set_default_resolver(MockResolver(txt={"_mta-sts.example.org": ["v=STSv1; id=abc"]}))
    try:
        assert main(["mtasts", "lookup", "example.org."]) == 0
    finally:
        dns.set_default_resolver(None)
    out = capsys.readouterr().out
    assert out == (
        "error: no policy host mta-sts.example.org in dns\n"
        "DNS TXT record _mta-sts.example.org: v=STSv1; id=abc\n"
    )


def test_mtasts_lookup_bad_domain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mtasts", "lookup", "exa mple.org"]) == 1
    assert "parsing domain" in capsys.readouterr().err
