import base64
import datetime
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.dns.domain import parse_domain
from mox.smtp import codes as c
from mox.smtp.codes import Reply
from mox.smtp.server import (
    AuthAborted,
    AuthStep,
    Close,
    Connection,
    Event,
    Hello,
    MailFrom,
    MessageAborted,
    MessageComplete,
    MessageData,
    NeedData,
    RcptTo,
    SendReply,
    ServerConfig,
    SMTPStateError,
    StartTLS,
)

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


class Driver:
    """A stand-in for the asyncio server: feeds bytes, answers decisions with a policy."""

    def __init__(self, **cfg: Any) -> None:
        cfg.setdefault("now", lambda: NOW)
        self.conn = Connection(ServerConfig(hostname=parse_domain("mox.example"), **cfg))
        self.events: list[Event] = []
        self.messages: list[tuple[MessageComplete, bytes]] = []
        self.aborted: list[str] = []
        self.closed: Close | None = None
        self.tls_discarded: list[bytes] = []
        self.reject_rcpt: Callable[[RcptTo], Reply | None] = lambda ev: None
        self.reject_mail: Callable[[MailFrom], Reply | None] = lambda ev: None
        self.auth_password = b"\x00user\x00secret"
        self._msg = bytearray()
        self.greeting = self.run()

    def run(self, data: bytes = b"") -> bytes:
        if data:
            self.conn.receive_data(data)
        out = bytearray()
        while True:
            ev = self.conn.next_event()
            self.events.append(ev)
            if isinstance(ev, NeedData):
                return bytes(out)
            if isinstance(ev, Close):
                self.closed = ev
                return bytes(out)
            if isinstance(ev, SendReply):
                out += ev.data
            elif isinstance(ev, Hello):
                self.conn.accept()
            elif isinstance(ev, MailFrom):
                r = self.reject_mail(ev)
                self.conn.reject(r) if r else self.conn.accept()
            elif isinstance(ev, RcptTo):
                r = self.reject_rcpt(ev)
                self.conn.reject(r) if r else self.conn.accept()
            elif isinstance(ev, MessageData):
                self._msg += ev.data
            elif isinstance(ev, MessageComplete):
                self.messages.append((ev, bytes(self._msg)))
                self._msg.clear()
                self.conn.accept()
            elif isinstance(ev, MessageAborted):
                self.aborted.append(ev.reason)
                self._msg.clear()
            elif isinstance(ev, StartTLS):
                self.tls_discarded.append(ev.discarded)
                self.conn.tls_started(channel_binding=b"cb")
            elif isinstance(ev, AuthStep):
                if ev.mechanism == "PLAIN":
                    if ev.data is None:
                        self.conn.auth_continue(b"")
                    elif ev.data == self.auth_password:
                        self.conn.auth_success()
                    else:
                        self.conn.auth_fail()
                else:
                    self.conn.auth_continue(b"challenge")

    def replies(self, data: bytes) -> list[str]:
        """Run and return the reply lines, e.g. ["250 2.1.0 sender ok"]."""
        return self.run(data).decode().split("\r\n")[:-1]

    def codes(self, data: bytes) -> list[int]:
        return [int(line[:3]) for line in self.replies(data) if line[3] == " "]


def ehlo(d: Driver) -> None:
    d.replies(b"EHLO client.example\r\n")


def test_greeting_and_ehlo_lists_exactly_enabled_extensions() -> None:
    d = Driver(tls_available=True)
    assert d.greeting == b"220 mox.example ESMTP mox\r\n"
    lines = d.replies(b"EHLO client.example\r\n")
    assert lines == [
        "250-mox.example",
        "250-PIPELINING",
        "250-SIZE 104857600",
        "250-STARTTLS",
        "250-ENHANCEDSTATUSCODES",
        "250-8BITMIME",
        "250-CHUNKING",
        "250-BINARYMIME",
        "250-DSN",
        "250-LIMITS RCPTMAX=1000",
        "250 SMTPUTF8",
    ]


def test_ehlo_with_everything_off() -> None:
    d = Driver(
        pipelining=False,
        max_message_size=0,
        eightbitmime=False,
        chunking=False,
        dsn=False,
        smtputf8=False,
        enhanced_status_codes=False,
        rcpt_max=5,
    )
    assert d.replies(b"EHLO c.example\r\n") == ["250-mox.example", "250 LIMITS RCPTMAX=5"]
    assert d.replies(b"NOOP\r\n") == ["250 ok"]


def test_submission_ehlo_after_tls_offers_auth_requiretls_futurerelease() -> None:
    d = Driver(submission=True, tls_active=True)
    lines = d.replies(b"EHLO c.example\r\n")
    assert "250-REQUIRETLS" in lines
    assert (
        "250-AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN" in lines
    )
    assert "250-FUTURERELEASE 5184000 2026-03-02T12:00:00Z" in lines
    assert "250-STARTTLS" not in lines


def test_submission_before_tls_has_no_auth_and_refuses_it_with_538() -> None:
    d = Driver(submission=True, tls_available=True)
    lines = d.replies(b"EHLO c.example\r\n")
    assert not any("AUTH" in line for line in lines)
    assert d.replies(b"AUTH PLAIN\r\n") == ["538 5.7.11 authentication requires tls"]
    assert d.replies(b"AUTH BOGUS\r\n") == ["504 5.5.4 mechanism BOGUS not supported"]


def test_helo_gets_plain_250() -> None:
    d = Driver()
    assert d.replies(b"HELO c.example\r\n") == ["250 mox.example"]


def test_full_transaction() -> None:
    d = Driver()
    ehlo(d)
    assert d.replies(b"MAIL FROM:<a@b.example> SIZE=30\r\n") == ["250 2.1.0 sender ok"]
    assert d.replies(b"RCPT TO:<x@mox.example>\r\n") == ["250 2.1.5 recipient ok"]
    assert d.replies(b"RCPT TO:<Postmaster>\r\n") == ["250 2.1.5 recipient ok"]
    assert d.codes(b"DATA\r\n") == [354]
    assert d.replies(b"Subject: t\r\n\r\n..x\r\n.\r\n") == ["250 2.2.0 message accepted"]
    ev, data = d.messages[0]
    assert data == b"Subject: t\r\n\r\n.x\r\n"
    assert ev.mail_from is not None and str(ev.mail_from) == "a@b.example"
    assert [str(p) for p, _ in ev.recipients] == ["x@mox.example", "postmaster"]
    assert ev.stats.size == len(data) and not ev.chunked
    # Transaction is over: a new MAIL is fine, RCPT is not.
    assert d.codes(b"RCPT TO:<x@mox.example>\r\n") == [503]
    assert d.replies(b"QUIT\r\n") == ["221 2.0.0 bye"]
    assert d.closed is not None and d.closed.reason == "quit"


def test_pipelined_transaction_replies_in_order() -> None:
    d = Driver()
    d.reject_rcpt = lambda ev: (
        Reply(550, c.SE_ADDR1_UNKNOWN_DEST_MAILBOX_1, ("no such user",))
        if ev.path.localpart == "bad"
        else None
    )
    out = d.codes(
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mox.example>\r\nRCPT TO:<bad@mox.example>\r\n"
        b"RCPT TO:<y@mox.example>\r\nDATA\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n"
    )
    assert out == [250, 250, 250, 550, 250, 354, 250, 250, 221]
    assert len(d.messages) == 1 and len(d.messages[0][0].recipients) == 2


def test_commands_in_data_are_content() -> None:
    d = Driver()
    d.run(
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mox.example>\r\nDATA\r\nQUIT\r\nRSET\r\n.\r\n"
    )
    assert d.messages[0][1] == b"QUIT\r\nRSET\r\n"
    assert d.closed is None


def test_decision_must_be_answered_before_more_events() -> None:
    d = Driver()
    d.conn.receive_data(b"EHLO c.example\r\nNOOP\r\n")
    ev = d.conn.next_event()
    assert isinstance(ev, Hello)
    with pytest.raises(SMTPStateError):
        d.conn.next_event()
    with pytest.raises(SMTPStateError):
        d.conn.auth_success()
    d.conn.accept()
    assert isinstance(d.conn.next_event(), SendReply)
    noop = d.conn.next_event()
    assert isinstance(noop, SendReply) and noop.data == b"250 2.0.0 ok\r\n"
    assert isinstance(d.conn.next_event(), NeedData)


def test_sequence_errors() -> None:
    d = Driver()
    assert d.replies(b"MAIL FROM:<a@b.example>\r\n") == ["503 5.5.1 no ehlo/helo yet"]
    ehlo(d)
    assert d.replies(b"RCPT TO:<a@b.example>\r\n") == ["503 5.5.1 missing MAIL FROM"]
    assert d.replies(b"DATA\r\n") == ["503 5.5.1 missing MAIL FROM"]
    d.replies(b"MAIL FROM:<a@b.example>\r\n")
    assert d.replies(b"MAIL FROM:<a@b.example>\r\n") == ["503 5.5.1 already have MAIL"]
    assert d.replies(b"DATA\r\n") == ["503 5.5.1 missing RCPT TO"]
    assert d.replies(b"RSET\r\n") == ["250 2.0.0 all clear"]
    assert d.codes(b"RCPT TO:<a@b.example>\r\n") == [503]


def test_rejected_mail_leaves_no_transaction() -> None:
    d = Driver()
    ehlo(d)
    d.reject_mail = lambda ev: Reply(550, c.SE_POL7_OTHER_0, ("no",))
    assert d.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@mox.example>\r\n") == [550, 503]


def test_ehlo_resets_transaction() -> None:
    d = Driver()
    ehlo(d)
    d.run(b"MAIL FROM:<a@b.example>\r\n")
    ehlo(d)
    assert d.codes(b"RCPT TO:<x@mox.example>\r\n") == [503]


def test_mail_parameter_policy() -> None:
    d = Driver(max_message_size=1000, dsn=False)
    ehlo(d)
    assert d.replies(b"MAIL FROM:<a@b.example> SIZE=1001\r\n") == ["552 5.3.4 message too large"]
    assert d.replies(b"MAIL FROM:<a@b.example> RET=FULL\r\n") == ["555 5.3.3 unrecognized parameter 'RET'"]
    assert d.replies(b"MAIL FROM:<a@b.example> REQUIRETLS\r\n") == [
        "523 5.7.10 requiretls only allowed on tls-encrypted connections"
    ]
    assert d.codes(b"MAIL FROM:<a@b.example> HOLDFOR=10\r\n") == [555]
    assert d.codes(b"MAIL FROM:<a@b.example> AUTH=<>\r\n") == [555]
    assert d.codes(b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n") == [250]
    d.run(b"RSET\r\n")
    assert d.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@mox.example> NOTIFY=NEVER\r\n") == [250, 555]


def test_futurerelease_limits() -> None:
    d = Driver(submission=True, tls_active=True)
    ehlo(d)
    d.run(b"AUTH PLAIN " + base64.b64encode(b"\x00user\x00secret") + b"\r\n")
    assert d.conn.authenticated
    assert d.codes(b"MAIL FROM:<a@b.example> HOLDFOR=99999999\r\n") == [554]
    assert d.codes(b"MAIL FROM:<a@b.example> HOLDUNTIL=2025-01-01T00:00:00Z\r\n") == [554]
    assert d.codes(b"MAIL FROM:<a@b.example> HOLDUNTIL=2027-01-01T00:00:00Z\r\n") == [554]
    assert d.codes(b"MAIL FROM:<a@b.example> HOLDUNTIL=2026-01-02T00:00:00Z REQUIRETLS\r\n") == [250]


def test_recipient_limit_and_null_sender() -> None:
    d = Driver(rcpt_max=2)
    ehlo(d)
    d.run(b"MAIL FROM:<a@b.example>\r\n")
    assert d.codes(b"RCPT TO:<x@m.example>\r\nRCPT TO:<y@m.example>\r\nRCPT TO:<z@m.example>\r\n") == [
        250,
        250,
        452,
    ]
    d.run(b"RSET\r\n")
    assert d.codes(b"MAIL FROM:<>\r\nRCPT TO:<x@m.example>\r\nRCPT TO:<y@m.example>\r\n") == [250, 250, 452]


def test_utf8_rcpt_needs_smtputf8_on_mail() -> None:
    d = Driver()
    ehlo(d)
    d.run(b"MAIL FROM:<a@b.example>\r\n")
    assert d.replies("RCPT TO:<δ@m.example>\r\n".encode()) == [
        "553 5.6.7 non-ASCII address not permitted without SMTPUTF8"
    ]
    d.run(b"RSET\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\n")
    assert d.codes("RCPT TO:<δ@m.example>\r\n".encode()) == [250]


def test_data_too_large_replies_552_after_the_data() -> None:
    d = Driver(max_message_size=10)
    ehlo(d)
    out = d.codes(
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nDATA\r\n" + b"x" * 100 + b"\r\n.\r\nNOOP\r\n"
    )
    assert out == [250, 250, 354, 552, 250]
    assert d.aborted == ["message too large"] and d.messages == []
    datas = [e for e in d.events if isinstance(e, MessageData)]
    assert sum(len(e.data) for e in datas) <= 10


def test_data_with_bare_cr_refused_after_end() -> None:
    d = Driver()
    ehlo(d)
    out = d.replies(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nDATA\r\na\rb\r\n.\r\n")
    assert out[-1] == "500 5.5.2 invalid bare \\r or \\n, may be smtp smuggling"
    assert d.aborted and not d.messages


def test_data_8bit_without_8bitmime_only_refused_when_pedantic() -> None:
    for pedantic, code in ((False, 250), (True, 554)):
        d = Driver(pedantic=pedantic)
        ehlo(d)
        out = d.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nDATA\r\n\xc3\xa9\r\n.\r\n")
        assert out[-1] == code


def test_eof_during_data_aborts_message() -> None:
    d = Driver()
    ehlo(d)
    d.run(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nDATA\r\npartial")
    d.conn.receive_data(b"")
    d.run()
    assert d.aborted == ["connection closed during message data"]
    assert d.closed is not None
    assert isinstance(d.conn.next_event(), Close)


def test_bdat_transaction() -> None:
    d = Driver()
    ehlo(d)
    out = d.replies(
        b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<x@m.example>\r\nBDAT 5\r\nab\r\ncBDAT 0\r\nBDAT 3 LAST\r\n.\r\nNOOP\r\n"
    )
    assert out == [
        "250 2.1.0 sender ok",
        "250 2.1.5 recipient ok",
        "250 2.0.0 5 octets received",
        "250 2.0.0 5 octets received",
        "250 2.2.0 message accepted",
        "250 2.0.0 ok",
    ]
    ev, data = d.messages[0]
    assert data == b"ab\r\nc.\r\n" and ev.chunked


def test_bdat_without_transaction_reads_chunk_then_503() -> None:
    d = Driver()
    ehlo(d)
    assert d.replies(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n") == ["503 5.5.1 missing MAIL FROM", "250 2.0.0 ok"]
    assert not [e for e in d.events if isinstance(e, MessageData)]


def test_no_data_after_bdat_and_binarymime_needs_bdat() -> None:
    d = Driver()
    ehlo(d)
    out = d.replies(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nBDAT 2\r\nabDATA\r\n")
    assert out[-1] == "503 5.5.1 cannot mix BDAT and DATA in one transaction"
    d.run(b"RSET\r\n")
    out = d.replies(b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<x@m.example>\r\nDATA\r\n")
    assert out[-1] == "503 5.5.1 BODY=BINARYMIME requires BDAT"


def test_bdat_too_large_drains_then_552_and_resets() -> None:
    d = Driver(max_message_size=10)
    ehlo(d)
    out = d.codes(
        b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nBDAT 20\r\n" + b"y" * 20 + b"BDAT 1 LAST\r\nz"
    )
    assert out == [250, 250, 552, 503]
    assert d.aborted == ["message too large"]


def test_bdat_far_over_limit_hangs_up() -> None:
    d = Driver(max_message_size=10)
    ehlo(d)
    out = d.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nBDAT 999999999999\r\n")
    assert out == [250, 250, 552] and d.closed is not None


def test_bad_bdat_syntax_hangs_up() -> None:
    d = Driver()
    ehlo(d)
    assert d.codes(b"BDAT lots\r\n") == [501]
    assert d.closed is not None


def test_starttls_discards_pipelined_plaintext() -> None:
    d = Driver(tls_available=True)
    ehlo(d)
    out = d.replies(b"STARTTLS\r\nMAIL FROM:<evil@b.example>\r\nRCPT TO:<x@m.example>\r\n")
    assert out == ["220 2.0.0 go ahead with tls"]
    assert d.tls_discarded == [b"MAIL FROM:<evil@b.example>\r\nRCPT TO:<x@m.example>\r\n"]
    assert d.conn.tls
    # Nothing of the injected commands took effect, and EHLO is needed again.
    assert d.replies(b"MAIL FROM:<a@b.example>\r\n") == ["503 5.5.1 no ehlo/helo yet"]
    lines = d.replies(b"EHLO c.example\r\n")
    assert "250-STARTTLS" not in lines and "250-REQUIRETLS" in lines
    assert d.codes(b"STARTTLS\r\n") == [503]


def test_data_received_during_tls_handshake_is_ignored() -> None:
    d = Driver(tls_available=True)
    ehlo(d)
    d.conn.receive_data(b"STARTTLS\r\n")
    assert isinstance(d.conn.next_event(), SendReply)
    ev = d.conn.next_event()
    assert isinstance(ev, StartTLS)
    d.conn.receive_data(b"QUIT\r\n")
    d.conn.tls_started()
    assert isinstance(d.conn.next_event(), NeedData)


def test_starttls_not_offered() -> None:
    d = Driver()
    ehlo(d)
    assert d.replies(b"STARTTLS\r\n") == ["503 5.5.1 starttls not offered"]


def test_auth_plain_flows() -> None:
    d = Driver(submission=True, tls_active=True)
    ehlo(d)
    assert d.replies(b"MAIL FROM:<a@b.example>\r\n") == ["530 5.7.0 authentication required"]
    assert d.replies(b"AUTH PLAIN " + base64.b64encode(b"\x00user\x00wrong") + b"\r\n") == [
        "535 5.7.8 bad credentials"
    ]
    assert not d.conn.authenticated
    assert d.replies(b"AUTH PLAIN\r\n") == ["334"]
    assert d.replies(base64.b64encode(b"\x00user\x00secret") + b"\r\n") == [
        "235 2.7.0 authentication successful"
    ]
    assert d.conn.authenticated
    assert d.replies(b"AUTH PLAIN\r\n") == ["503 5.5.1 already authenticated"]
    assert d.codes(b"MAIL FROM:<a@b.example>\r\n") == [250]


def test_auth_challenge_cancel_and_bad_base64() -> None:
    d = Driver(submission=True, tls_active=True)
    ehlo(d)
    assert d.replies(b"AUTH CRAM-MD5\r\n") == ["334 " + base64.b64encode(b"challenge").decode()]
    assert d.replies(b"*\r\n") == ["501 5.5.0 authentication aborted"]
    assert isinstance(d.events[-2], SendReply) and any(isinstance(e, AuthAborted) for e in d.events)
    d.run(b"AUTH CRAM-MD5\r\n")
    assert d.codes(b"!!!\r\n") == [501]
    # After an aborted exchange, commands work again.
    assert d.codes(b"NOOP\r\n") == [250]


def test_auth_only_on_submission_and_not_in_transaction() -> None:
    d = Driver()
    ehlo(d)
    assert d.replies(b"AUTH PLAIN\r\n") == ["503 5.5.1 authentication only allowed on submission ports"]


def test_submission_ignores_bad_ehlo_argument_unless_pedantic() -> None:
    d = Driver(submission=True, tls_active=True)
    assert d.codes(b"EHLO [not valid]\r\n") == [250]
    d = Driver(submission=True, tls_active=True, pedantic=True)
    assert d.codes(b"EHLO [not valid]\r\n") == [501]


def test_first_command_unknown_closes() -> None:
    d = Driver()
    assert d.replies(b"GET / HTTP/1.1\r\nHost: x\r\n") == ["500 5.5.2 please try again speaking smtp"]
    assert d.closed is not None


def test_unknown_command_later_is_500() -> None:
    d = Driver()
    ehlo(d)
    assert d.replies(b"FOO\r\n") == ["500 5.5.1 unknown command"]
    assert d.closed is None


def test_too_many_errors_disconnects_with_421() -> None:
    d = Driver(max_errors=3)
    ehlo(d)
    out = d.replies(b"RCPT TO:<a@b.example>\r\n" * 5)
    assert out == [
        "503 5.5.1 missing MAIL FROM",
        "503 5.5.1 missing MAIL FROM",
        "503 5.5.1 missing MAIL FROM",
        "421 4.7.0 too many errors, closing connection",
    ]
    assert d.closed is not None and d.closed.reason == "too many errors"


def test_long_line_disconnects() -> None:
    d = Driver()
    ehlo(d)
    assert d.codes(b"NOOP " + b"x" * 3000) == [500]
    assert d.closed is not None


def test_bare_lf_command_lines_lax_and_pedantic() -> None:
    assert Driver().codes(b"EHLO c.example\nNOOP\n") == [250, 250]
    d = Driver(pedantic=True)
    assert d.replies(b"NOOP\n") == ["500 5.5.2 bad syntax: line must end with CRLF"]


def test_vrfy_expn_help_noop() -> None:
    d = Driver()
    assert d.replies(b"VRFY user\r\nEXPN list\r\nHELP\r\nNOOP\r\n") == [
        "252 2.7.0 no verify, but will try delivery",
        "252 2.7.0 no expand, but will try delivery",
        "214 2.0.0 see rfc 5321 (smtp)",
        "250 2.0.0 ok",
    ]


def test_refuse_replaces_greeting() -> None:
    conn = Connection(ServerConfig(hostname=parse_domain("mox.example")))
    conn.refuse(Reply(421, c.SE_POL7_OTHER_0, ("too many connections",)))
    ev = conn.next_event()
    assert isinstance(ev, SendReply) and ev.data == b"421 4.7.0 too many connections\r\n"
    assert isinstance(conn.next_event(), Close)


def test_driver_reply_override_and_reject_checks() -> None:
    conn = Connection(ServerConfig(hostname=parse_domain("mox.example")))
    conn.next_event()
    conn.receive_data(b"HELO c.example\r\n")
    assert isinstance(conn.next_event(), Hello)
    with pytest.raises(SMTPStateError):
        conn.reject(Reply(250, "", ("ok",)))
    conn.reject(Reply(550, c.SE_POL7_OTHER_0, ("go away",)))
    ev = conn.next_event()
    assert isinstance(ev, SendReply) and ev.data == b"550 5.7.0 go away\r\n"
    assert conn.hello is None


COMMAND_LINES = [
    b"EHLO c.example\r\n",
    b"HELO c.example\r\n",
    b"MAIL FROM:<a@b.example>\r\n",
    b"MAIL FROM:<> BODY=BINARYMIME\r\n",
    b"MAIL FROM:<a@b.example> SMTPUTF8 SIZE=100\r\n",
    b"RCPT TO:<x@m.example>\r\n",
    "RCPT TO:<δ@m.example>\r\n".encode(),
    b"RCPT TO:<bad@m.example>\r\n",
    b"DATA\r\n",
    b"line\r\n",
    b".\r\n",
    b"..\r\n",
    b"BDAT 3\r\n",
    b"BDAT 0 LAST\r\n",
    b"BDAT 2 LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH CRAM-MD5\r\n",
    b"*\r\n",
    b"AHVzZXIAc2VjcmV0\r\n",
    b"VRFY x\r\n",
    b"FOO\r\n",
    b"QUIT\r\n",
    b"\xff\r\n",
    b"\r\n",
    b"\n",
    b"\r",
]


def _check_consistent(d: Driver) -> None:
    conn = d.conn
    # Every reply line is well-formed.
    for ev in d.events:
        if isinstance(ev, SendReply):
            for line in ev.data.split(b"\r\n")[:-1]:
                assert len(line) >= 3 and line[:3].isdigit() and (len(line) == 3 or line[3:4] in b" -")
    if conn.authenticated:
        assert conn.config.submission
    tx = conn._tx
    if tx is not None and not d.closed:
        # A transaction only exists after a greeting, and after AUTH on submission.
        assert conn.hello is not None
        assert conn.authenticated or not conn.config.submission
        assert len(tx.recipients) <= conn.config.rcpt_max
    # Error replies always carry an enhanced code of the same class (RFC 2034, RFC 3463 section 2).
    for ev in d.events:
        if isinstance(ev, SendReply) and ev.reply.code >= 400:
            assert ev.reply.full_enhanced.startswith(f"{ev.reply.code // 100}.")


def _all_replies(d: Driver) -> bytes:
    return b"".join(ev.data for ev in d.events if isinstance(ev, SendReply))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(COMMAND_LINES), max_size=25),
    st.lists(st.integers(min_value=0, max_value=300), max_size=6),
)
def test_split_input_gives_same_replies(lines: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(lines)
    whole = Driver(tls_available=True, max_message_size=50)
    whole.run(wire)
    split = Driver(tls_available=True, max_message_size=50)
    positions = sorted({min(x, len(wire)) for x in cuts})
    for a, b in zip([0, *positions], [*positions, len(wire)], strict=True):
        if split.closed:
            break
        split.run(wire[a:b])
    if not whole.tls_discarded and not split.tls_discarded:
        # (After STARTTLS what is discarded depends on how the bytes arrived.)
        assert _all_replies(split) == _all_replies(whole)
        assert [m[1] for m in split.messages] == [m[1] for m in whole.messages]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(COMMAND_LINES), max_size=30),
    st.booleans(),
    st.booleans(),
    st.lists(st.integers(min_value=1, max_value=40), max_size=5),
)
def test_random_command_sequences(
    lines: list[bytes], submission: bool, pedantic: bool, cuts: list[int]
) -> None:
    d = Driver(
        submission=submission, pedantic=pedantic, tls_available=True, max_message_size=50, max_errors=8
    )
    d.reject_rcpt = lambda ev: (
        Reply(550, c.SE_ADDR1_UNKNOWN_DEST_MAILBOX_1, ("no",)) if ev.path.localpart == "bad" else None
    )
    wire = b"".join(lines)
    pos = 0
    for n in [*cuts, len(wire)]:
        d.run(wire[pos : pos + n])
        pos += n
        if d.closed:
            break
    if not d.closed:
        d.run(wire[pos:])
    if not d.closed:
        d.conn.receive_data(b"")
        d.run()
    assert d.closed is not None
    _check_consistent(d)
    # Each reply-worthy command produced at most one final reply; never more replies than lines plus greeting.
    finals = sum(
        1
        for ev in d.events
        if isinstance(ev, SendReply)
        for line in ev.data.split(b"\r\n")[:-1]
        if line[3:4] != b"-"
    )
    assert finals <= len(lines) + 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_random_bytes_never_crash(data: bytes, submission: bool) -> None:
    d = Driver(submission=submission, tls_available=True)
    d.run(b"EHLO c.example\r\n" + data)
    if not d.closed:
        d.conn.receive_data(b"")
        d.run()
    assert d.closed is not None
    _check_consistent(d)


def test_refuse_mid_conversation_and_mid_data() -> None:
    d = Driver()
    ehlo(d)
    d.run(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nDATA\r\nsome")
    d.conn.refuse(Reply(421, c.SE_SYS3_NOT_ACCEPTING_2, ("shutting down",)))
    assert d.replies(b"") == ["421 4.3.2 shutting down"]
    assert d.aborted == ["connection refused during message data"] and d.closed is not None
    d.conn.receive_data(b"more")
    assert isinstance(d.conn.next_event(), Close)


def test_bdat_size_lie_is_detected_and_hangs_up() -> None:
    d = Driver()
    ehlo(d)
    out = d.codes(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@m.example>\r\nBDAT 3\r\nabcdef\r\nBDAT 1 LAST\r\nx")
    assert out == [250, 250, 250, 500]
    assert d.closed is not None and d.closed.reason == "out of sync after BDAT"
