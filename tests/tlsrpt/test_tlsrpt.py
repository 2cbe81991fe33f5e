"""TLSRPT record, report JSON and report message parsing (RFC 8460)."""

from __future__ import annotations

import base64
import datetime
import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox import tlsrpt
from mox.dns import MockResolver, parse_domain
from mox.tlsrpt import (
    FailureDetails,
    PolicyType,
    Report,
    ReportError,
    Result,
    ResultPolicy,
    ResultType,
    Summary,
)

SCHEMA = json.loads((Path(__file__).parent / "data" / "tlsrpt-report.schema.json").read_text())
UTC = datetime.UTC

EXAMPLE = {
    "organization-name": "Company-X",
    "date-range": {"start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z"},
    "contact-info": "sts-reporting@company-x.example",
    "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
    "policies": [
        {
            "policy": {
                "policy-type": "sts",
                "policy-string": ["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"],
                "policy-domain": "company-y.example",
                "mx-host": ["*.mail.company-y.example"],
            },
            "summary": {"total-successful-session-count": 5326, "total-failure-session-count": 303},
            "failure-details": [
                {
                    "result-type": "certificate-expired",
                    "sending-mta-ip": "2001:db8:abcd:0012::1",
                    "receiving-mx-hostname": "mx1.mail.company-y.example",
                    "failed-session-count": 100,
                },
                {
                    "result-type": "starttls-not-supported",
                    "sending-mta-ip": "2001:db8:abcd:0013::1",
                    "receiving-mx-hostname": "mx2.mail.company-y.example",
                    "receiving-ip": "203.0.113.56",
                    "failed-session-count": 200,
                    "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported",
                },
                {
                    "result-type": "validation-failure",
                    "sending-mta-ip": "198.51.100.62",
                    "receiving-ip": "203.0.113.58",
                    "receiving-mx-hostname": "mx-backup.mail.company-y.example",
                    "failed-session-count": 3,
                    "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED",
                },
            ],
        }
    ],
}


# Record (section 3).


@pytest.mark.parametrize(
    ("txt", "ruas", "ext"),
    [
        ("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", [["mailto:tlsrpt@example.com"]], []),
        ("v=TLSRPTv1;rua=mailto:a@example.com,https://example.com/r;", [["mailto:a@example.com", "https://example.com/r"]], []),
        ("v=TLSRPTv1 ; rua=mailto:a@x.example , mailto:b@x.example ; rua=https://x.example/ ; ext.1=val", [["mailto:a@x.example", "mailto:b@x.example"], ["https://x.example/"]], [("ext.1", "val")]),
        ("v=TLSRPTv1; rua=mailto:a%2Cb%21c%3Bd@example.com", [["mailto:a%2Cb%21c%3Bd@example.com"]], []),
    ],
)
def test_tlsrpt_record_parse(txt: str, ruas: list[list[str]], ext: list[tuple[str, str]]) -> None:
    rec, is_tlsrpt = tlsrpt.parse_record(txt)
    assert is_tlsrpt and rec is not None
    assert rec.ruas == ruas
    assert [(e.key, e.value) for e in rec.extensions] == ext
    # Written back, the record parses to the same.
    again, _ = tlsrpt.parse_record(str(rec))
    assert again == rec


def test_tlsrpt_record_decoded_addresses() -> None:
    rec, _ = tlsrpt.parse_record("v=TLSRPTv1; rua=mailto:a%2Cb%21c%3Bd@example.com")
    assert rec is not None and rec.addresses() == ["mailto:a,b!c;d@example.com"]
    assert tlsrpt.encode_uri("mailto:a,b!c;d@example.com") == "mailto:a%2Cb%21c%3Bd@example.com"


@pytest.mark.parametrize("txt", ["v=spf1 -all", "v=TLSRPTv2; rua=mailto:a@b.example", "v=TLSRPTv1", "v=TLSRPTv1x; rua=mailto:a@b"])
def test_tlsrpt_record_not_tlsrpt(txt: str) -> None:
    assert tlsrpt.parse_record(txt) == (None, False)


@pytest.mark.parametrize(
    ("txt", "msg"),
    [
        ("v=TLSRPTv1;", "no rua"),
        ("v=TLSRPTv1; ext=1", "no rua"),
        ("v=TLSRPTv1; rua=tlsrpt@example.com", "no scheme"),
        ("v=TLSRPTv1; rua=", "expected a URI"),
        ("v=TLSRPTv1; rua=mailto:a@b.example,", "expected a URI"),
        ("v=TLSRPTv1; rua=mailto:a@b.example x", "leftover"),
        ("v=TLSRPTv1; =x; rua=mailto:a@b.example", "field name"),
        ("v=TLSRPTv1; k; rua=mailto:a@b.example", "expected '='"),
    ],
)
def test_tlsrpt_record_errors(txt: str, msg: str) -> None:
    with pytest.raises(tlsrpt.RecordError, match=msg):
        tlsrpt.parse_record(txt)


@given(st.text(max_size=80))
def test_tlsrpt_record_parse_never_crashes(s: str) -> None:
    for txt in (s, "v=TLSRPTv1; " + s, "v=TLSRPTv1; rua=" + s):
        try:
            rec, ok = tlsrpt.parse_record(txt)
        except tlsrpt.RecordError:
            continue
        if ok:
            assert rec is not None and rec.ruas
            assert tlsrpt.parse_record(str(rec))[0] == rec


async def test_tlsrpt_lookup() -> None:
    r = MockResolver(
        txt={
            "_smtp._tls.example.com": ["v=spf1 -all", "v=TLSRPTv1; rua=mailto:tls@example.com"],
            "_smtp._tls.multi.example": ["v=TLSRPTv1; rua=mailto:a@multi.example", "v=TLSRPTv1; rua=mailto:b@multi.example"],
            "_smtp._tls.bad.example": ["v=TLSRPTv1; rua=nope"],
            "_smtp._tls.other.example": ["something else"],
        }
    )
    r.fail["_smtp._tls.temp.example"] = "temporary"
    rec, txt = await tlsrpt.lookup(parse_domain("example.com"), r)
    assert rec.addresses() == ["mailto:tls@example.com"] and txt.startswith("v=TLSRPTv1")
    with pytest.raises(tlsrpt.MultipleRecordsError):
        await tlsrpt.lookup(parse_domain("multi.example"), r)
    with pytest.raises(tlsrpt.MalformedRecordError):
        await tlsrpt.lookup(parse_domain("bad.example"), r)
    for d in ("other.example", "absent.example"):
        with pytest.raises(tlsrpt.NoRecordError):
            await tlsrpt.lookup(parse_domain(d), r)
    with pytest.raises(tlsrpt.DNSLookupError):
        await tlsrpt.lookup(parse_domain("temp.example"), r)
    assert issubclass(tlsrpt.NoRecordError, tlsrpt.RecordLookupError)


# Report JSON (section 4).


def test_tlsrpt_report_parse_example() -> None:
    rep = tlsrpt.parse_report(json.dumps(EXAMPLE))
    assert rep.organization_name == "Company-X"
    assert rep.start == datetime.datetime(2016, 4, 1, tzinfo=UTC)
    assert rep.end == datetime.datetime(2016, 4, 1, 23, 59, 59, tzinfo=UTC)
    (res,) = rep.policies
    assert res.policy.type is PolicyType.STS and res.policy.domain == "company-y.example"
    assert res.policy.mx_hosts == ["*.mail.company-y.example"]
    assert res.summary == Summary(5326, 303)
    assert [fd.result_type for fd in res.failure_details] == [
        ResultType.CERTIFICATE_EXPIRED, ResultType.STARTTLS_NOT_SUPPORTED, ResultType.VALIDATION_FAILURE
    ]
    assert res.failure_details[2].failure_reason_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    out = rep.to_json()
    jsonschema.validate(out, SCHEMA)
    assert tlsrpt.parse_report(json.dumps(out)) == rep


def test_tlsrpt_result_types_are_rfc_strings() -> None:
    assert {str(t) for t in ResultType} == set(SCHEMA["properties"]["policies"]["items"]["properties"]["failure-details"]["items"]["properties"]["result-type"]["enum"])
    assert tlsrpt.result_type("some-future-type") == "some-future-type"


def test_tlsrpt_report_lenient_where_reporters_deviate() -> None:
    doc: dict[str, Any] = json.loads(json.dumps(EXAMPLE))
    doc["date-range"]["start-datetime"] = "2016-04-01T00:00:00"  # no zone: taken as UTC
    doc["date-range"]["end-datetime"] = "2016-04-02T01:59:59+02:00"
    doc["policies"][0]["policy"]["mx-host"] = "mx.company-y.example"  # string before erratum 6241
    del doc["contact-info"]
    del doc["policies"][0]["failure-details"]
    rep = tlsrpt.parse_report(json.dumps(doc))
    assert rep.start == datetime.datetime(2016, 4, 1, tzinfo=UTC)
    assert rep.end == datetime.datetime(2016, 4, 1, 23, 59, 59, tzinfo=UTC)
    assert rep.policies[0].policy.mx_hosts == ["mx.company-y.example"] and rep.policies[0].failure_details == []


@pytest.mark.parametrize(
    ("mutate", "msg"),
    [
        (lambda d: d.pop("report-id"), "missing 'report-id'"),
        (lambda d: d.update({"policies": {}}), "'policies' must be a list"),
        (lambda d: d["date-range"].update({"start-datetime": "yesterday"}), "invalid date-time"),
        (lambda d: d["date-range"].update({"end-datetime": 5}), "expected a date-time string"),
        (lambda d: d["policies"][0]["policy"].update({"policy-type": "dane"}), "unknown policy-type 'dane'"),
        (lambda d: d["policies"][0]["summary"].update({"total-failure-session-count": -1}), "non-negative integer"),
        (lambda d: d["policies"][0]["summary"].update({"total-failure-session-count": True}), "non-negative integer"),
        (lambda d: d["policies"][0]["failure-details"][0].pop("result-type"), r"failure-details\[0\]: missing 'result-type'"),
        (lambda d: d["policies"][0]["failure-details"][1].update({"receiving-ip": 1}), "'receiving-ip' must be a string"),
        (lambda d: d["policies"][0]["policy"].update({"policy-string": [1]}), "list of strings"),
        (lambda d: d["policies"][0].update({"policy": []}), "expected an object"),
    ],
)
def test_tlsrpt_report_errors(mutate: Any, msg: str) -> None:
    doc = json.loads(json.dumps(EXAMPLE))
    mutate(doc)
    with pytest.raises(ReportError, match=msg):
        tlsrpt.parse_report(json.dumps(doc))


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"null", b'"x"', b"[" * 100000])
def test_tlsrpt_report_not_json_object(data: bytes) -> None:
    with pytest.raises(ReportError):
        tlsrpt.parse_report(data)


def test_tlsrpt_report_merge_adds_counts_per_policy() -> None:
    t0 = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    rep = Report("x", t0, t0, "postmaster@x.example", "id")
    sts = ResultPolicy(PolicyType.STS, "example.com", ["version: STSv1"], ["mx.example.com"])
    fd = FailureDetails(ResultType.CERTIFICATE_EXPIRED, 1, receiving_mx_hostname="mx.example.com")
    rep.merge(Result(sts, Summary(1, 0)))
    rep.merge(Result(ResultPolicy(PolicyType.STS, "example.com", ["version: STSv1"], ["mx.example.com"]), Summary(2, 1), [fd]))
    rep.merge(Result(ResultPolicy(PolicyType.STS, "example.com", ["version: STSv1"], ["mx.example.com"]), Summary(0, 2), [fd, fd]))
    rep.merge(Result(ResultPolicy(PolicyType.NO_POLICY_FOUND, "example.com"), Summary(1, 0)))
    assert len(rep.policies) == 2
    assert rep.policies[0].summary == Summary(3, 3)
    assert [d.failed_session_count for d in rep.policies[0].failure_details] == [3]
    assert fd.failed_session_count == 1  # inputs not modified
    assert rep.has_failures()
    # Negative compensations never make counts negative.
    rep.policies[1].add(-5, 0)
    assert rep.policies[1].summary == Summary(0, 0)


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
_times = st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2200, 1, 1)).map(
    lambda t: t.replace(microsecond=0, tzinfo=UTC)
)
_fds = st.builds(
    FailureDetails,
    result_type=st.sampled_from(list(ResultType)),
    failed_session_count=st.integers(0, 2**40),
    sending_mta_ip=_text,
    receiving_mx_hostname=_text,
    receiving_mx_helo=_text,
    receiving_ip=_text,
    additional_information=_text,
    failure_reason_code=_text,
)
_results = st.builds(
    Result,
    policy=st.builds(ResultPolicy, type=st.sampled_from(list(PolicyType)), domain=_text.filter(bool), strings=st.lists(_text, max_size=3), mx_hosts=st.lists(_text, max_size=3)),
    summary=st.builds(Summary, st.integers(0, 2**40), st.integers(0, 2**40)),
    failure_details=st.lists(_fds, max_size=3),
)
_reports = st.builds(Report, _text, _times, _times, _text, _text.filter(bool), st.lists(_results, max_size=3))


@settings(max_examples=30, deadline=None)
@given(_reports)
def test_tlsrpt_report_round_trip(rep: Report) -> None:
    doc = rep.to_json()
    jsonschema.validate(doc, SCHEMA)
    assert tlsrpt.parse_report(rep.dumps()) == rep


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["policies", "policy", "summary", "date-range", "report-id", "organization-name", "x"]), c, max_size=4), max_leaves=15))
def test_tlsrpt_report_parse_random_json(doc: object) -> None:
    try:
        tlsrpt.report_from_json(doc)
    except ReportError as e:
        assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.


# Report messages (section 5.3).


def _report_message(ctype: str, body: bytes, *, report_type: str = "tlsrpt", multipart: bool = True) -> bytes:
    b64 = base64.encodebytes(body).replace(b"\n", b"\r\n")
    if not multipart:
        return f"From: a@x.example\r\nSubject: r\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\r\n".encode() + b64
    return (
        b"From: reporter@x.example\r\nTo: tlsrpt@y.example\r\nSubject: Report Domain: y.example\r\nMIME-Version: 1.0\r\n"
        + f'Content-Type: multipart/report; report-type="{report_type}"; boundary="b1"\r\n\r\n'.encode()
        + b"--b1\r\nContent-Type: text/plain\r\n\r\nSee the attached report.\r\n"
        + f'--b1\r\nContent-Type: {ctype}; name="r.json.gz"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n'.encode()
        + b64
        + b"--b1--\r\n"
    )


def test_tlsrpt_parse_message_gzip_and_json() -> None:
    js = json.dumps(EXAMPLE).encode()
    want = tlsrpt.parse_report(js)
    assert tlsrpt.parse_message(_report_message("application/tlsrpt+gzip", gzip.compress(js))) == want
    assert tlsrpt.parse_message(_report_message("application/tlsrpt+json", js)) == want
    assert tlsrpt.parse_message(_report_message("application/tlsrpt+json", js, multipart=False)) == want


def test_tlsrpt_parse_message_errors() -> None:
    js = json.dumps(EXAMPLE).encode()
    with pytest.raises(ReportError, match="report-type 'feedback-report'"):
        tlsrpt.parse_message(_report_message("application/tlsrpt+json", js, report_type="feedback-report"))
    with pytest.raises(tlsrpt.NoReportError):
        tlsrpt.parse_message(_report_message("application/json", js))
    with pytest.raises(tlsrpt.NoReportError):
        tlsrpt.parse_message(b"Subject: hi\r\n\r\nhello\r\n")
    with pytest.raises(ReportError, match="gzip"):
        tlsrpt.parse_message(_report_message("application/tlsrpt+gzip", b"not gzip"))
    with pytest.raises(ReportError, match="truncated"):
        tlsrpt.parse_message(_report_message("application/tlsrpt+gzip", gzip.compress(js)[:-20]))
    with pytest.raises(ReportError, match="invalid json"):
        tlsrpt.parse_message(_report_message("application/tlsrpt+json", b"{nope"))


def test_tlsrpt_gunzip_limit() -> None:
    bomb = gzip.compress(b"0" * 100_000)
    assert len(tlsrpt.gunzip_limited(bomb, 100_000)) == 100_000
    with pytest.raises(ReportError, match="larger than"):
        tlsrpt.gunzip_limited(bomb, 99_999)


@given(st.binary(max_size=300))
def test_tlsrpt_parse_message_random(data: bytes) -> None:
    for msg in (data, _report_message("application/tlsrpt+json", data), _report_message("application/tlsrpt+gzip", data)):
        try:
            tlsrpt.parse_message(msg)
        except ReportError as e:
            assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.
