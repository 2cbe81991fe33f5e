"""The client against an independent SMTP server implementation (aiosmtpd) on 127.0.0.1, and a
hypothesis run of the transaction state machine against arbitrary replies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.smtpclient import MailOptions, SMTPClientError, Timeouts, TLSConfig, TLSMode, connect
from mox.smtpclient.ehlo import parse_ehlo
from mox.smtpclient.protocol import ClientProtocol, Recipient, Transaction, TxPhase
from mox.smtpclient.reply import ReplyParseError


class Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("unknown@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 accepted"


@pytest.fixture
def aiosmtpd_server() -> Iterator[tuple[Collect, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Collect()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    ctl.start()
    try:
        yield handler, port
    finally:
        ctl.stop()


async def test_aiosmtpd(aiosmtpd_server: tuple[Collect, int]) -> None:
    handler, port = aiosmtpd_server
    t = Timeouts(connect=5, command=5, data_final=5, quit=2)
    c = await connect(
        "127.0.0.1", port, ehlo_hostname="client.example", tls=TLSConfig(mode=TLSMode.SKIP), timeouts=t
    )
    assert c.extensions.eightbitmime and c.extensions.smtputf8
    msg = "Subject: grüße\n\n.dot\r\nbody\n".encode()
    res = await c.deliver(
        "a@example.com",
        ["b@example.org", "unknown@example.org"],
        msg,
        MailOptions(has_8bit=True, smtputf8=True),
    )
    assert res.delivered == ["b@example.org"]
    assert res.failed[0].code == 550
    await c.deliver("a@example.com", ["c@example.org"], b"Subject: two\r\n\r\nx\r\n")
    await c.close()
    await asyncio.sleep(0)
    assert handler.messages[0] == (
        "a@example.com",
        ["b@example.org"],
        "Subject: grüße\r\n\r\n.dot\r\nbody\r\n".encode(),
    )
    assert handler.messages[1][1] == ["c@example.org"]


_reply_lines = st.sampled_from(
    [
        b"250 ok\r\n",
        b"250 2.1.0 ok\r\n",
        b"354 go\r\n",
        b"451 4.3.0 later\r\n",
        b"452 4.5.3 too many\r\n",
        b"550 5.1.1 unknown\r\n",
        b"552 5.3.4 too big\r\n",
        b"554 5.7.1 no\r\n",
        b"250-multi\r\n250 line\r\n",
        b"garbage\r\n",
    ]
)


@settings(max_examples=150)
@given(
    st.sampled_from(
        [
            ["PIPELINING"],
            [],
            ["PIPELINING", "CHUNKING"],
            ["CHUNKING"],
            ["PIPELINING", "LIMITS RCPTMAX=1"],
        ]
    ),
    st.integers(1, 3),
    st.booleans(),
    st.lists(_reply_lines, max_size=12),
)
def test_transaction_any_replies(exts: list[str], nrcpt: int, rset: bool, replies: list[bytes]) -> None:
    """Whatever the server answers, the transaction asks for the next step, ends with
    results, or raises a client error; never another exception or a stuck state."""
    ext = parse_ehlo(["mx", "ENHANCEDSTATUSCODES", *exts])
    proto = ClientProtocol()
    proto.reader.enhanced_codes = True
    rcpts = [Recipient(f"r{i}@example.org") for i in range(nrcpt)]
    inline = b"Subject: x\r\n\r\nx\r\n" if ext.chunking and ext.pipelining else None
    tx = Transaction(
        ext, proto, "a@example.com", rcpts, MailOptions(), size=20, rset_first=rset, inline_bdat=inline
    )
    tx.start()
    try:
        for data in replies:
            if tx.phase is TxPhase.DONE:
                break
            if tx.phase is TxPhase.SEND_DATA:
                if tx.use_bdat:
                    tx.bdat(10, True)
                else:
                    tx.data_sent()
            proto.receive_data(data)
            while tx.phase is not TxPhase.DONE and (ev := proto.next_event()) is not None:
                tx.handle(ev)
    except ReplyParseError:
        return
    if tx.phase is TxPhase.DONE:
        try:
            results = tx.results()
        except SMTPClientError:
            return
        assert len(results) == nrcpt
        for r in results:
            assert not (r.accepted and r.reply is not None and r.reply.code >= 400)
    else:
        # Waiting for more: something must be outstanding or the driver must send data.
        assert proto.pending > 0 or tx.phase is TxPhase.SEND_DATA
