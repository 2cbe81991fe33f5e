"""DSN composition and parsing (RFC 3464, RFC 3461 RET/ENVID/ORCPT, RFC 6533 global DSNs)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox import dsn
from mox import message as msg

T = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
ORIGINAL = b"From: <mjl@mox.example>\r\nSubject: hello\r\nMessage-ID: <orig@mox.example>\r\n\r\nbody text\r\n"


def make(**kw: object) -> dsn.Message:
    base: dict[str, object] = dict(
        from_addr="postmaster@mox.example", to_addr="mjl@mox.example", subject="mail delivery failed",
        message_id="dsn1@mox.example", reporting_mta="mox.example", references="<orig@mox.example>",
        text_body="Delivery failed.\n", arrival_date=T, date=T,
        recipients=[dsn.Recipient("rcpt@remote.example", dsn.Action.FAILED, "5.1.1", status_comment="no such user",
                                  remote_mta=dsn.NameIP("mx.remote.example", "192.0.2.10"),
                                  diagnostic_code="550 5.1.1 no such user", last_attempt_date=T)],
        original=ORIGINAL,
    )  # fmt: skip
    base.update(kw)
    return dsn.Message(**base)  # type: ignore[arg-type]


def test_compose_parse_roundtrip_headers_only() -> None:
    data = dsn.compose(make(original_envelope_id="ENV-42", future_release_request="for;3600"), boundary="b1")
    assert data.isascii()
    part = msg.parse(data)
    assert part.is_dsn() and part.params.get("report-type") == "delivery-status"
    assert [p.content_type for p in part.parts] == ["TEXT/PLAIN", "MESSAGE/DELIVERY-STATUS", "TEXT/RFC822-HEADERS"]
    m = dsn.parse(data)
    assert (m.from_addr, m.to_addr, m.subject, m.message_id) == ("postmaster@mox.example", "mjl@mox.example", "mail delivery failed", "dsn1@mox.example")
    assert m.references == "<orig@mox.example>" and m.text_body.startswith("Delivery failed.")
    assert (m.reporting_mta, m.original_envelope_id, m.future_release_request, m.arrival_date) == ("mox.example", "ENV-42", "for;3600", T)
    (r,) = m.recipients
    assert (r.final_recipient, r.action, r.status, r.status_comment) == ("rcpt@remote.example", dsn.Action.FAILED, "5.1.1", "no such user")
    assert r.remote_mta == dsn.NameIP("mx.remote.example", "192.0.2.10")
    assert (r.diagnostic_type, r.diagnostic_code, r.last_attempt_date) == ("smtp", "550 5.1.1 no such user", T)
    # RET=HDRS (or none): the header only, never the body.
    assert m.original is not None and not m.original_full
    assert b"Subject: hello" in m.original and b"body text" not in m.original


def test_ret_full_returns_message() -> None:
    m = dsn.parse(dsn.compose(make(original_full=True)))
    assert m.original_full and m.original is not None and b"body text" in m.original
    assert b"message/rfc822" in dsn.compose(make(original_full=True))


def test_orcpt_and_multiple_recipients() -> None:
    rcpts = [
        dsn.Recipient("a@remote.example", dsn.Action.DELAYED, "4.4.1", original_recipient="Alias@remote.example",
                      will_retry_until=T + dt.timedelta(hours=14)),
        dsn.Recipient("b@remote.example", dsn.Action.DELAYED, "4.0.0"),
    ]  # fmt: skip
    m = dsn.parse(dsn.compose(make(recipients=rcpts)))
    assert [r.final_recipient for r in m.recipients] == ["a@remote.example", "b@remote.example"]
    assert m.recipients[0].original_recipient == "Alias@remote.example" and m.recipients[0].original_recipient_type == "rfc822"
    assert m.recipients[0].will_retry_until == T + dt.timedelta(hours=14)
    assert m.recipients[1].original_recipient == ""


def test_smtputf8_global_dsn() -> None:
    orig = "From: <jörg@mox.example>\r\nSubject: grüße\r\n\r\nx\r\n".encode()
    r = dsn.Recipient("ü@remote.example", dsn.Action.FAILED, "5.1.1", original_recipient="Ü@remote.example", original_recipient_type="utf-8")
    m = make(smtputf8=True, to_addr="jörg@mox.example", recipients=[r], original=orig, text_body="für ü@remote.example\n")
    data = dsn.compose(m, smtputf8=True)
    part = msg.parse(data)
    assert [p.content_type for p in part.parts] == ["TEXT/PLAIN", "MESSAGE/GLOBAL-DELIVERY-STATUS", "MESSAGE/GLOBAL-HEADERS"]
    assert "Final-Recipient: utf-8; ü@remote.example".encode() in data
    p = dsn.parse(data)
    assert p.is_global and p.recipients[0].final_recipient == "ü@remote.example" and p.recipients[0].original_recipient == "Ü@remote.example"
    assert p.to_addr == "jörg@mox.example" and "für" in p.text_body
    # Without SMTPUTF8 for the DSN itself: all 7-bit, addresses escaped (RFC 6533 section 3), header base64.
    data7 = dsn.compose(m, smtputf8=False)
    assert data7.isascii()
    assert b"message/delivery-status" in data7 and b"Final-Recipient: utf-8; \\x{FC}@remote.example" in data7
    p7 = dsn.parse(data7)
    assert not p7.is_global and p7.recipients[0].final_recipient == "ü@remote.example"
    assert p7.original == orig.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert "für" in p7.text_body


def test_compose_errors() -> None:
    with pytest.raises(dsn.DSNError, match="message-id"):
        dsn.compose(make(message_id=""))
    with pytest.raises(dsn.DSNError, match="per-recipient"):
        dsn.compose(make(recipients=[]))
    with pytest.raises(dsn.DSNError, match="status"):
        dsn.compose(make(recipients=[dsn.Recipient("a@b.example", dsn.Action.FAILED, "550")]))
    with pytest.raises(dsn.DSNError, match="line break"):
        dsn.compose(make(subject="a\r\nBcc: x@y"))


@pytest.mark.parametrize(
    "status,err",
    [
        (b"Reporting-MTA: dns; x\r\n", "per-recipient"),
        (b"DSN-Gateway: dns; g\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.0.0\r\n", "Reporting-MTA"),
        (b"Reporting-MTA: dns; x\r\nArrival-Date: x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.0.0\r\n", "date-time"),
        (b"Reporting-MTA: dns; x\r\n\r\nAction: failed\r\nStatus: 5.0.0\r\n", "Final-Recipient"),
        (b"Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: bounced\r\nStatus: 5.0.0\r\n", "Action"),
        (b"Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 550\r\n", "Status"),
        (b"Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: a@b\r\nAction: failed\r\nStatus: 5.0.0\r\n", "type; value"),
        (b"Reporting-MTA: dns; x\r\n\r\n no field\r\n", "continuation"),
        (b"Reporting-MTA: dns; \xc3\xbc\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.0.0\r\n", "non-ASCII"),
    ],
)
def test_parse_delivery_status_errors(status: bytes, err: str) -> None:
    with pytest.raises(dsn.DSNError, match=err):
        dsn.parse_delivery_status(status, False)


def test_parse_not_a_dsn() -> None:
    with pytest.raises(dsn.DSNError, match="multipart/report"):
        dsn.parse(b"Subject: x\r\n\r\nhi\r\n")
    data = dsn.compose(make()).replace(b"message/delivery-status", b"text/plain")
    with pytest.raises(dsn.DSNError, match="second part"):
        dsn.parse(data)


def test_parse_foreign_dsn() -> None:
    # A DSN as another MTA writes it: folded fields, comments, LF line endings, extension fields.
    data = (
        b"From: MAILER-DAEMON@remote.example\nTo: mjl@mox.example\nSubject: Undelivered Mail Returned to Sender\n"
        b"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"XX\"\n\n"
        b"--XX\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\nsorry\n\n"
        b"--XX\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; remote.example\nX-Postfix-Queue-ID: 4F1\n"
        b"Arrival-Date: Fri,  1 Mar 2024 12:00:00 +0000 (UTC)\n\nFinal-Recipient: rfc822; x@remote.example\n"
        b"Original-Recipient: rfc822;x@remote.example\nAction: failed\nStatus: 5.1.1\n"
        b"Remote-MTA: dns; mx.remote.example\nDiagnostic-Code: smtp; 550 5.1.1 <x@remote.example>:\n    Recipient address rejected\n\n"
        b"--XX--\n"
    )
    m = dsn.parse(data)
    assert m.reporting_mta == "remote.example" and ("X-Postfix-Queue-ID", "4F1") in m.message_fields
    (r,) = m.recipients
    assert r.diagnostic_code == "550 5.1.1 <x@remote.example>: Recipient address rejected"
    assert m.arrival_date == T and m.original is None


fields = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="()"), max_size=30)
addrs = st.from_regex(r"[a-z0-9.]{1,10}@[a-z0-9]{1,10}\.example", fullmatch=True)


@given(
    rcpts=st.lists(st.tuples(addrs, st.sampled_from(list(dsn.Action)), st.from_regex(r"[245]\.[0-9]\.[0-9]{1,2}", fullmatch=True), fields, addrs),
                   min_size=1, max_size=4),
    envid=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    utf8=st.booleans(),
)  # fmt: skip
@settings(max_examples=60, deadline=None)
def test_roundtrip_property(rcpts: list[tuple[str, dsn.Action, str, str, str]], envid: str, utf8: bool) -> None:
    recipients = [dsn.Recipient(a, act, status, status_comment=c.strip(), original_recipient=o) for a, act, status, c, o in rcpts]
    m = make(recipients=recipients, original_envelope_id=envid, smtputf8=utf8)
    p = dsn.parse(dsn.compose(m, smtputf8=utf8))
    assert p.original_envelope_id == envid
    assert [(r.final_recipient, r.action, r.status, r.status_comment, r.original_recipient) for r in p.recipients] == [
        (r.final_recipient, r.action, r.status, r.status_comment, r.original_recipient) for r in recipients
    ]


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_parse_delivery_status_never_crashes(data: bytes) -> None:
    for utf8 in (False, True):
        try:
            m = dsn.parse_delivery_status(data, utf8)
        except dsn.DSNError:
            continue
        assert m.reporting_mta and m.recipients


@given(st.binary(max_size=800))
@settings(max_examples=200, deadline=None)
def test_parse_never_crashes(data: bytes) -> None:
    prefix = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
    for d in (data, prefix + data + b"\r\n--b--\r\n"):
        try:
            dsn.parse(d)
        except dsn.DSNError as e:
            assert str(e), f"{type(e).__name__} without a message"  # Bad input gets a clear error.
