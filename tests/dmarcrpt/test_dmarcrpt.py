"""DMARC aggregate report XML (RFC 7489 appendix C) and report messages."""

from __future__ import annotations

import base64
import gzip
import io
import zipfile
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st

from mox import dmarcrpt
from mox.dmarcrpt import (
    AuthResults,
    DateRange,
    DKIMAuthResult,
    Feedback,
    FeedbackError,
    Identifiers,
    PolicyEvaluated,
    PolicyOverrideReason,
    PolicyPublished,
    ReportMetadata,
    ReportRecord,
    Row,
    SPFAuthResult,
)

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "data" / "rfc7489-appendix-c.xsd")

# A report as large receivers send them (no namespace, some optional elements, envelope_from from later drafts).
GOOGLE_STYLE = b"""<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>
    <report_id>10051505501689795560</report_id>
    <date_range>
      <begin>1596412800</begin>
      <end>1596499199</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>example.org</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>reject</p>
    <sp>reject</sp>
    <pct>100</pct>
  </policy_published>
  <record>
    <row>
      <source_ip>2001:db8::1</source_ip>
      <count>1</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>pass</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>example.org</header_from>
      <envelope_from>example.org</envelope_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>example.org</domain>
        <result>pass</result>
        <selector>example</selector>
      </dkim>
      <spf>
        <domain>example.org</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
</feedback>
"""


def _sample() -> Feedback:
    return Feedback(
        ReportMetadata("mail.example.com", "postmaster@mail.example.com", "20260101.00.abc", DateRange(1767139200, 1767225599), errors=["one error"]),
        PolicyPublished("example.org", adkim="s", aspf="r", p="reject", sp="quarantine", pct=50, fo="1"),
        [
            ReportRecord(
                Row("2001:db8::1", 3, PolicyEvaluated("reject", "fail", "fail", [PolicyOverrideReason("local_policy", "why")])),
                Identifiers("example.org", envelope_to="mail.example.com"),
                AuthResults([DKIMAuthResult("example.org", "fail", "sel1")], [SPFAuthResult("example.org", "softfail", "mfrom")]),
            ),
            ReportRecord(Row("198.51.100.7", 1, PolicyEvaluated("none", "pass", "fail")), Identifiers("example.org")),
        ],
    )


def test_dmarcrpt_parse_google_style() -> None:
    f = dmarcrpt.parse_feedback(GOOGLE_STYLE)
    assert f.report_metadata.org_name == "google.com"
    assert f.report_metadata.date_range == DateRange(1596412800, 1596499199)
    assert f.policy_published == PolicyPublished("example.org", "r", "r", "reject", "reject", 100, "")
    (r,) = f.records
    assert r.row.source_ip == "2001:db8::1" and r.row.count == 1
    assert r.row.policy_evaluated == PolicyEvaluated("none", "pass", "pass")
    assert r.identifiers == Identifiers("example.org", envelope_from="example.org")
    assert r.auth_results.dkim == [DKIMAuthResult("example.org", "pass", "example")]
    assert r.auth_results.spf == [SPFAuthResult("example.org", "pass", "")]


def test_dmarcrpt_parse_with_namespace() -> None:
    doc = GOOGLE_STYLE.replace(b"<feedback>", b'<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">')
    assert dmarcrpt.parse_feedback(doc) == dmarcrpt.parse_feedback(GOOGLE_STYLE)


def test_dmarcrpt_generated_xml_validates_and_round_trips() -> None:
    f = _sample()
    xml = dmarcrpt.feedback_xml(f)
    SCHEMA.validate(xml.decode())
    back = dmarcrpt.parse_feedback(xml)
    # IPv6 is written out in full for the schema's pattern; a record without SPF result gets "none".
    assert back.records[0].row.source_ip == "2001:0db8:0000:0000:0000:0000:0000:0001"
    assert back.records[1].auth_results.spf == [SPFAuthResult("example.org", "none", "mfrom")]
    back.records[0].row.source_ip = "2001:db8::1"
    back.records[1].auth_results.spf = []
    assert back == f


def test_dmarcrpt_generated_defaults_for_required_elements() -> None:
    f = _sample()
    f.policy_published = PolicyPublished("example.org", p="none")
    xml = dmarcrpt.feedback_xml(f)
    SCHEMA.validate(xml.decode())
    pp = dmarcrpt.parse_feedback(xml).policy_published
    assert (pp.sp, pp.fo, pp.pct) == ("none", "0", 100)


def test_dmarcrpt_invalid_xml_chars_dropped() -> None:
    f = _sample()
    f.records[0].row.policy_evaluated.reasons[0].comment = "bad\x00\x1bchars"
    xml = dmarcrpt.feedback_xml(f)
    assert dmarcrpt.parse_feedback(xml).records[0].row.policy_evaluated.reasons[0].comment == "badchars"


@pytest.mark.parametrize(
    ("doc", "msg"),
    [
        (b"", "invalid xml"),
        (b"<feedback>", "invalid xml"),
        (b"<report/>", "expected <feedback>"),
        (b"<feedback/>", "missing <report_metadata>"),
        (GOOGLE_STYLE.replace(b"<begin>1596412800</begin>", b"<begin>yesterday</begin>"), "not an integer"),
        (GOOGLE_STYLE.replace(b"<count>1</count>", b"<count>-1</count>"), "negative count"),
        (GOOGLE_STYLE.replace(b"<domain>example.org</domain>\n    <adkim>", b"<adkim>"), "missing <domain>"),
        (GOOGLE_STYLE.replace(b"<report_id>10051505501689795560</report_id>", b""), "missing <report_id>"),
        (b'<!DOCTYPE f [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]><feedback>&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;</feedback>', "amplification"),
    ],
)
def test_dmarcrpt_parse_errors(doc: bytes, msg: str) -> None:
    with pytest.raises(FeedbackError, match=msg):
        dmarcrpt.parse_feedback(doc)


_t = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=12).map(str.strip)
_ips = st.ip_addresses().map(str)
_records = st.builds(
    ReportRecord,
    row=st.builds(Row, _ips, st.integers(0, 10**9), st.builds(PolicyEvaluated, st.sampled_from(["none", "quarantine", "reject"]), st.sampled_from(["pass", "fail"]), st.sampled_from(["pass", "fail"]), st.lists(st.builds(PolicyOverrideReason, st.sampled_from(list(dmarcrpt.PolicyOverride)).map(str), _t), max_size=2))),
    identifiers=st.builds(Identifiers, _t, _t),
    auth_results=st.builds(
        AuthResults,
        st.lists(st.builds(DKIMAuthResult, _t, st.sampled_from(["none", "pass", "fail", "policy", "neutral", "temperror", "permerror"]), _t, _t), max_size=2),
        st.lists(st.builds(SPFAuthResult, _t, st.sampled_from(["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"]), st.sampled_from(["helo", "mfrom"])), min_size=1, max_size=2),
    ),
)
_feedbacks = st.builds(
    Feedback,
    st.builds(ReportMetadata, _t, _t, _t, st.builds(DateRange, st.integers(0, 2**40), st.integers(0, 2**40)), _t, st.lists(_t, max_size=2)),
    st.builds(PolicyPublished, _t.filter(bool), st.sampled_from(["", "r", "s"]), st.sampled_from(["", "r", "s"]), st.sampled_from(["none", "quarantine", "reject"]), st.sampled_from(["none", "quarantine", "reject"]), st.integers(0, 100), st.sampled_from(["0", "1", "d:s"])),
    st.lists(_records, min_size=1, max_size=3),
)


@settings(max_examples=40, deadline=None)
@given(_feedbacks)
def test_dmarcrpt_random_reports_validate_and_round_trip(f: Feedback) -> None:
    xml = dmarcrpt.feedback_xml(f)
    SCHEMA.validate(xml.decode())
    back = dmarcrpt.parse_feedback(xml)
    for a, b in zip(back.records, f.records, strict=True):
        a.row.source_ip = b.row.source_ip
    assert back == f


@given(st.binary(max_size=200))
def test_dmarcrpt_parse_random_bytes(data: bytes) -> None:
    for doc in (data, b"<feedback>" + data + b"</feedback>"):
        try:
            dmarcrpt.parse_feedback(doc)
        except FeedbackError as e:
            assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.


# Report messages.


def _msg(ctype: str, body: bytes, filename: str = "report.xml.gz", multipart: bool = True) -> bytes:
    b64 = base64.encodebytes(body).replace(b"\n", b"\r\n")
    if not multipart:
        return f"From: a@x.example\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\r\n".encode() + b64
    return (
        b'From: noreply@google.com\r\nSubject: Report domain: example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n'
        b"--zz\r\nContent-Type: text/plain\r\n\r\nReport attached.\r\n"
        + f'--zz\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; filename="{filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode()
        + b64
        + b"--zz--\r\n"
    )


def _zip(data: bytes, n: int = 1) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(n):
            z.writestr(f"r{i}.xml", data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("ctype", "encode", "multipart"),
    [
        ("application/gzip", gzip.compress, True),
        ("application/x-gzip", gzip.compress, True),
        ("application/zip", _zip, True),
        ("application/zip", _zip, False),  # Google sends the zip as the whole message
        ("text/xml", lambda b: b, True),
        ("application/octet-stream", gzip.compress, True),
        ("application/octet-stream", _zip, True),
        ("application/octet-stream", lambda b: b, True),
    ],
)
def test_dmarcrpt_parse_message(ctype: str, encode: object, multipart: bool) -> None:
    assert callable(encode)
    got = dmarcrpt.parse_message(_msg(ctype, encode(GOOGLE_STYLE), multipart=multipart))
    assert got == dmarcrpt.parse_feedback(GOOGLE_STYLE)


def test_dmarcrpt_parse_message_errors() -> None:
    with pytest.raises(dmarcrpt.NoReportError):
        dmarcrpt.parse_message(b"Subject: x\r\n\r\nhello\r\n")
    with pytest.raises(dmarcrpt.NoReportError):
        dmarcrpt.parse_message(_msg("image/png", b"\x89PNG"))
    with pytest.raises(FeedbackError, match="zip has 2 files"):
        dmarcrpt.parse_message(_msg("application/zip", _zip(GOOGLE_STYLE, 2)))
    with pytest.raises(FeedbackError, match="reading zip"):
        dmarcrpt.parse_message(_msg("application/zip", b"PK\x03\x04garbage"))
    with pytest.raises(FeedbackError, match="gzip"):
        dmarcrpt.parse_message(_msg("application/gzip", b"garbage"))
    with pytest.raises(FeedbackError, match="larger than"):
        dmarcrpt.parse_message(_msg("application/zip", _zip(b" " * (dmarcrpt.MAX_REPORT_SIZE + 1))))


@given(st.binary(max_size=300), st.sampled_from(["application/gzip", "application/zip", "text/xml", "application/octet-stream"]))
def test_dmarcrpt_parse_message_random(data: bytes, ctype: str) -> None:
    try:
        dmarcrpt.parse_message(_msg(ctype, data))
    except FeedbackError as e:
        assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.
