"""The sans-IO client core without sockets: command lines, message encoding, transactions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mox.smtp.data import DataReader
from mox.smtpclient.ehlo import Extensions, parse_ehlo
from mox.smtpclient.errors import ExtensionUnsupported, ReplyError
from mox.smtpclient.protocol import (
    ClientProtocol,
    DataEncoder,
    LineEndingNormalizer,
    MailOptions,
    Recipient,
    Transaction,
    TxPhase,
    mail_command,
    rcpt_command,
    xtext,
)
from mox.smtpclient.reply import ReplyParseError

FULL = parse_ehlo(["mx", "PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 1000", "DSN", "ENHANCEDSTATUSCODES"])


def test_xtext() -> None:
    assert xtext("abc+def=x y") == "abc+2Bdef+3Dx+20y"
    assert xtext("ü") == "+C3+BC"


def test_mail_and_rcpt_lines() -> None:
    opts = MailOptions(has_8bit=True, requiretls=True, dsn_ret="full", dsn_envid="e 1")
    assert mail_command(FULL, "a@x.example", opts, 10, smtputf8=True) == (
        b"MAIL FROM:<a@x.example> SIZE=10 BODY=8BITMIME SMTPUTF8 REQUIRETLS RET=FULL ENVID=e+201\r\n"
    )
    assert mail_command(Extensions(), "", MailOptions(), 10, smtputf8=False) == b"MAIL FROM:<>\r\n"
    r = Recipient("b@y.example", notify=("delay", "failure"), orcpt="b+x@y.example")
    assert (
        rcpt_command(FULL, r, smtputf8=False)
        == b"RCPT TO:<b@y.example> NOTIFY=DELAY,FAILURE ORCPT=rfc822;b+2Bx@y.example\r\n"
    )
    r = Recipient("b@y.example", orcpt="bü=1@y.example")
    assert (
        rcpt_command(FULL, r, smtputf8=True)
        == "RCPT TO:<b@y.example> ORCPT=utf-8;bü\\x{3D}1@y.example\r\n".encode()
    )
    assert rcpt_command(Extensions(), r, smtputf8=True) == b"RCPT TO:<b@y.example>\r\n"


@pytest.mark.parametrize(
    "kw",
    [
        {"address": "no-at-sign"},
        {"address": "a@b.example\r\nRSET"},
        {"address": "a@b.example", "notify": ("NEVER", "SUCCESS")},
        {"address": "a@b.example", "notify": ("SOMETIMES",)},
        {"address": "a@b.example", "orcpt": "x\r\n"},
    ],
)
def test_bad_recipient(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Recipient(**kw)  # type: ignore[arg-type]


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        MailOptions(dsn_ret="ALL")
    with pytest.raises(ValueError):
        MailOptions(dsn_envid="x" * 101)
    with pytest.raises(ValueError):
        MailOptions(size=-1)


def test_postmaster_recipient() -> None:
    assert Recipient("Postmaster").address == "Postmaster"


def encode_data(pieces: list[bytes]) -> bytes:
    enc = DataEncoder()
    return b"".join(enc.feed(p) for p in pieces) + enc.finish()


def test_data_encoder() -> None:
    assert encode_data([b"a\r\n.b\r\n"]) == b"a\r\n..b\r\n.\r\n"
    assert encode_data([b".start"]) == b"..start\r\n.\r\n"
    assert encode_data([b"a\r", b"\n.", b"b"]) == b"a\r\n..b\r\n.\r\n"
    assert encode_data([b"x\n.\ny"]) == b"x\r\n..\r\ny\r\n.\r\n"
    assert encode_data([b"bare\rcr"]) == b"bare\r\ncr\r\n.\r\n"
    assert encode_data([b"ends cr\r"]) == b"ends cr\r\n.\r\n"
    assert encode_data([]) == b".\r\n"


def test_normalizer() -> None:
    n = LineEndingNormalizer()
    assert n.feed(b"a\nb\r") == b"a\r\nb"
    assert n.feed(b"\nc\r\r\n") == b"\r\nc\r\n\r\n"
    assert n.finish() == b""


@given(st.binary(max_size=200), st.lists(st.integers(1, 30), max_size=8))
def test_data_encoder_roundtrip(msg: bytes, cuts: list[int]) -> None:
    """Encoded in any pieces, mox's DATA reader decodes the CRLF-normalized message."""
    pieces = []
    pos = 0
    for c in cuts:
        pieces.append(msg[pos : pos + c])
        pos += c
    pieces.append(msg[pos:])
    wire = encode_data(pieces)
    assert wire == encode_data([msg])
    norm = LineEndingNormalizer()
    expect = norm.feed(msg) + norm.finish()
    if expect and not expect.endswith(b"\r\n"):
        expect += b"\r\n"
    reader = DataReader(max_size=10_000)
    fed = reader.feed(wire)
    assert fed.done and fed.consumed == len(wire)
    assert fed.content == expect
    assert reader.error() == ""


# --- Transactions, driven by hand.


class Peer:
    """Feeds replies into a transaction, checking what it writes."""

    def __init__(self, ext: Extensions) -> None:
        self.proto = ClientProtocol()
        self.proto.reader.enhanced_codes = ext.enhancedstatuscodes
        self.ext = ext

    def tx(self, rcpts: list[str], **kw: object) -> Transaction:
        opts = kw.pop("opts", MailOptions())
        return Transaction(
            self.ext, self.proto, "a@x.example", [Recipient(r) for r in rcpts], opts, size=10, **kw
        )  # type: ignore[arg-type]

    def reply(self, tx: Transaction, data: bytes) -> bytes:
        self.proto.receive_data(data)
        out = b""
        while (ev := self.proto.next_event()) is not None:
            out += tx.handle(ev)
        return out


def test_pipelined_data() -> None:
    p = Peer(FULL)
    tx = p.tx(["b@y.example", "c@y.example"])
    assert tx.start() == (
        b"MAIL FROM:<a@x.example> SIZE=10 BODY=7BIT\r\nRCPT TO:<b@y.example>\r\nRCPT TO:<c@y.example>\r\nDATA\r\n"
    )
    assert p.reply(tx, b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 unknown\r\n") == b""
    assert tx.phase is TxPhase.ENVELOPE
    p.reply(tx, b"354 go\r\n")
    assert tx.phase is TxPhase.SEND_DATA
    tx.data_sent()
    p.reply(tx, b"250 2.0.0 queued\r\n")
    assert tx.phase is TxPhase.DONE
    ok, bad = tx.results()
    assert ok.accepted and ok.code == 250 and ok.text == "queued"
    assert not bad.accepted and bad.permanent and bad.enhanced == "5.1.1"


def test_pipelined_no_recipients_354() -> None:
    # RFC 2920 section 3.1: a server may answer 354 to DATA although all RCPTs failed; we end it empty.
    p = Peer(FULL)
    tx = p.tx(["b@y.example"])
    tx.start()
    out = p.reply(tx, b"250 ok\r\n450 4.2.0 later\r\n354 go\r\n")
    assert out == b".\r\n" and tx.phase is TxPhase.FINAL
    p.reply(tx, b"554 5.5.1 no valid recipients\r\n")
    (r,) = tx.results()
    assert not r.accepted and r.code == 450 and not r.permanent


def test_pipelined_mail_refused() -> None:
    p = Peer(FULL)
    tx = p.tx(["b@y.example"])
    tx.start()
    p.reply(tx, b"550 5.7.1 refused\r\n503 5.5.1 no mail\r\n503 5.5.1 no rcpt\r\n")
    assert tx.phase is TxPhase.DONE
    with pytest.raises(ReplyError) as ei:
        tx.results()
    assert ei.value.command == "mail" and ei.value.permanent and ei.value.enhanced == "5.7.1"


def test_sequential() -> None:
    ext = parse_ehlo(["mx", "8BITMIME"])
    p = Peer(ext)
    tx = p.tx(["b@y.example", "c@y.example"], rset_first=True)
    assert tx.start() == b"RSET\r\n"
    assert p.reply(tx, b"250 ok\r\n") == b"MAIL FROM:<a@x.example> BODY=7BIT\r\n"
    assert p.reply(tx, b"250 ok\r\n") == b"RCPT TO:<b@y.example>\r\n"
    assert p.reply(tx, b"250 ok\r\n") == b"RCPT TO:<c@y.example>\r\n"
    assert p.reply(tx, b"250 ok\r\n") == b"DATA\r\n"
    p.reply(tx, b"354 go\r\n")
    tx.data_sent()
    p.reply(tx, b"451 local error\r\n")
    with pytest.raises(ReplyError) as ei:
        tx.results()
    assert ei.value.command == "data" and not ei.value.permanent


def test_bdat_inline() -> None:
    ext = parse_ehlo(["mx", "PIPELINING", "CHUNKING"])
    p = Peer(ext)
    tx = p.tx(["b@y.example"], inline_bdat=b"Subject: x\r\n\r\nbody\r\n")
    assert (
        tx.start()
        == b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nBDAT 20 LAST\r\nSubject: x\r\n\r\nbody\r\n"
    )
    p.reply(tx, b"250 ok\r\n250 ok\r\n250 queued\r\n")
    assert tx.phase is TxPhase.DONE and tx.results()[0].accepted


def test_bdat_chunks_sequential_failure() -> None:
    ext = parse_ehlo(["mx", "CHUNKING"])
    p = Peer(ext)
    tx = p.tx(["b@y.example"])
    tx.start()
    p.reply(tx, b"250 ok\r\n")
    p.reply(tx, b"250 ok\r\n")
    assert tx.phase is TxPhase.SEND_DATA
    assert tx.bdat(100, False) == b"BDAT 100\r\n"
    p.reply(tx, b"452 4.3.1 out of space\r\n")
    # RFC 3030 section 2: no more chunks after a failure.
    assert tx.phase is TxPhase.DONE
    with pytest.raises(ReplyError) as ei:
        tx.results()
    assert ei.value.command == "bdat" and not ei.value.permanent


def test_rcptmax() -> None:
    ext = parse_ehlo(["mx", "PIPELINING", "LIMITS RCPTMAX=1"])
    p = Peer(ext)
    tx = p.tx(["b@y.example", "c@y.example"])
    assert tx.start().count(b"RCPT") == 1
    p.reply(tx, b"250 ok\r\n250 ok\r\n354 go\r\n")
    tx.data_sent()
    p.reply(tx, b"250 ok\r\n")
    ok, untried = tx.results()
    assert ok.accepted and untried.reply is None and not untried.accepted and not untried.permanent


def test_extension_checks() -> None:
    bare = parse_ehlo(["mx"])
    p = Peer(bare)
    with pytest.raises(ExtensionUnsupported) as ei:
        p.tx(["b@y.example"], opts=MailOptions(has_8bit=True))
    assert ei.value.enhanced == "5.6.3"
    with pytest.raises(ExtensionUnsupported) as ei:
        p.tx(["ü@y.example"], opts=MailOptions(smtputf8_optional=True))
    assert ei.value.enhanced == "5.6.7"
    tx = p.tx(["b@y.example"], opts=MailOptions(smtputf8=True, smtputf8_optional=True))
    assert b"SMTPUTF8" not in tx.start()
    rt = parse_ehlo(["mx", "REQUIRETLS"])
    with pytest.raises(ExtensionUnsupported, match="not tls"):
        Peer(rt).tx(["b@y.example"], opts=MailOptions(requiretls=True))
    assert (
        b"REQUIRETLS"
        in Peer(rt).tx(["b@y.example"], opts=MailOptions(requiretls=True), tls_verified=True).start()
    )
    with pytest.raises(ValueError):
        p.tx([])


def test_reply_without_command() -> None:
    proto = ClientProtocol()
    proto.receive_data(b"250 unsolicited\r\n")
    with pytest.raises(ReplyParseError):
        proto.next_event()
