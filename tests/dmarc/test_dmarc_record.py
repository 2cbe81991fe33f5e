import pytest

from mox.dmarc import URI, Align, Policy, Record, RecordError, parse_record


def test_full_record() -> None:
    r, ok = parse_record(
        "v=DMARC1; p=reject; sp=quarantine; rua=mailto:a@example.org!10m,mailto:b@example.net;"
        " ruf=mailto:f@example.org; adkim=s; aspf=S; ri=3600; fo=1:d; rf=afrf; pct=50; unknown=x y z;"
    )
    assert ok and r is not None
    assert r.policy == Policy.REJECT and r.subdomain_policy == Policy.QUARANTINE
    assert r.aggregate_report_addresses == [URI("mailto:a@example.org", 10, "m"), URI("mailto:b@example.net")]
    assert r.aggregate_report_addresses[0].max_bytes == 10 * 1024 * 1024
    assert r.failure_report_addresses == [URI("mailto:f@example.org")]
    assert (r.adkim, r.aspf) == (Align.STRICT, Align.STRICT)
    assert r.aggregate_reporting_interval == 3600
    assert r.failure_reporting_options == ["1", "d"]
    assert r.percentage == 50


def test_defaults_and_case_and_whitespace() -> None:
    r, ok = parse_record("v = DMARC1 ;P = None")
    assert ok and r is not None
    assert r == Record(policy=Policy.NONE)
    assert r.text() == "v=DMARC1; p=none"


@pytest.mark.parametrize(
    "txt",
    ["v=spf1 -all", "", "v=DMARC2; p=none", "v=dmarc1; p=none", "p=none; v=DMARC1", "v=DMARC1"],
)
def test_not_dmarc_records_are_skipped(txt: str) -> None:
    assert parse_record(txt) == (None, False)


@pytest.mark.parametrize(
    "txt",
    [
        "v=DMARC1; p=bogus",
        "v=DMARC1; adkim=r; p=none",  # p= must come first
        "v=DMARC1; p=none; p=reject",  # duplicate
        "v=DMARC1; p=none; pct=101",
        "v=DMARC1; p=none; pct=x",
        "v=DMARC1; p=none; adkim=x",
        "v=DMARC1; p=none; fo=2",
        "v=DMARC1; p=none; rua=nonsense",
        "v=DMARC1; p=none; garbage",
        "v=DMARC1; sp=none",  # no p= and no rua=
        "v=DMARC1; p=none; sp=bogus",  # invalid sp= without rua=
    ],
)
def test_malformed_records(txt: str) -> None:
    with pytest.raises(RecordError):
        parse_record(txt)


def test_missing_policy_with_rua_is_none() -> None:
    # RFC 7489 section 6.6.3: a valid rua= without (valid) p= means p=none.
    for txt in (
        "v=DMARC1; rua=mailto:r@example.org",
        "v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.org",
    ):
        r, _ = parse_record(txt)
        assert r is not None and r.policy == Policy.NONE and r.subdomain_policy == Policy.EMPTY


def test_report_record_needs_no_policy() -> None:
    r, ok = parse_record("v=DMARC1", require_policy=False)
    assert ok and r is not None and r.policy == Policy.EMPTY


def test_text_round_trip() -> None:
    txt = "v=DMARC1; p=quarantine; sp=reject; rua=mailto:a%21b@example.org!5k; adkim=s; pct=20"
    r, _ = parse_record(txt)
    assert r is not None
    assert r.text() == txt
    assert parse_record(r.text())[0] == r
