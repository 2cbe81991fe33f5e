"""The asyncio client against fault-injecting SMTP servers on 127.0.0.1: delivery and its failures."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from smtpclienthelpers import FakeServer, serve

from mox.smtpclient import (
    CommandTimeout,
    ConnectionLost,
    ConnectionUnusable,
    ExtensionUnsupported,
    GreetingError,
    MailOptions,
    ProtocolError,
    Recipient,
    ReplyError,
    Timeouts,
    TLSConfig,
    TLSMode,
    connect,
)

FAST = Timeouts(
    connect=2, greeting=2, command=2, data_init=2, data_block=2, data_final=2, tls_handshake=2, quit=1
)
NOTLS = TLSConfig(mode=TLSMode.SKIP)
MSG = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: test\r\n\r\nhello\r\n"


async def dial(port: int, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("tls", NOTLS)
    kw.setdefault("timeouts", FAST)
    return await connect("127.0.0.1", port, ehlo_hostname="client.example", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "extensions, bdat",
    [
        (["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"], False),
        (["8BITMIME"], False),
        (["PIPELINING", "CHUNKING", "8BITMIME"], True),
        (["CHUNKING"], True),
    ],
)
async def test_deliver_modes(extensions: list[str], bdat: bool) -> None:
    async with serve(FakeServer(extensions=extensions)) as (srv, port):
        c = await dial(port)
        res = await c.deliver("a@example.com", ["b@example.org", "c@example.org"], MSG)
        assert res.delivered == ["b@example.org", "c@example.org"]
        assert all(r.code == 250 for r in res.recipients)
        await c.close()
    (rcv,) = srv.received
    assert rcv.data == MSG
    assert rcv.bdat is bdat
    assert rcv.rcpts == ["b@example.org", "c@example.org"]
    assert srv.commands[-1] == "QUIT"


async def test_pipelined_command_order() -> None:
    # The single write of MAIL, RCPT... DATA is checked sans-IO (test_pipelined_data); here the
    # server's view: commands in order, each answered, and replies matched to the right command.
    fake = FakeServer(rcpt_replies={"c@example.org": b"550 5.1.1 unknown\r\n"})
    async with serve(fake) as (srv, port):
        c = await dial(port)
        res = await c.deliver("a@example.com", ["b@example.org", "c@example.org"], MSG)
        await c.close()
    assert [x.split(":")[0] for x in srv.commands[1:5]] == ["MAIL FROM", "RCPT TO", "RCPT TO", "DATA"]
    assert res.delivered == ["b@example.org"] and res.failed[0].code == 550


async def test_dot_stuffing_and_bare_lf() -> None:
    msg = b"Subject: x\n\n.leading dot\nbare lf\r\nbare cr\rend"
    async with serve(FakeServer(extensions=["8BITMIME"])) as (srv, port):
        c = await dial(port)
        await c.deliver("a@example.com", ["b@example.org"], msg)
        await c.close()
    assert srv.received[0].data == b"Subject: x\r\n\r\n.leading dot\r\nbare lf\r\nbare cr\r\nend\r\n"


async def test_bdat_bare_lf() -> None:
    msg = b"Subject: x\n\n.dot\nend"
    async with serve(FakeServer(extensions=["PIPELINING", "CHUNKING"])) as (srv, port):
        c = await dial(port)
        await c.deliver("a@example.com", ["b@example.org"], msg)
        await c.close()
    # BDAT sends the octets as they are, only line endings normalized: no CRLF added at the end.
    assert srv.received[0].data == b"Subject: x\r\n\r\n.dot\r\nend"


@pytest.mark.parametrize("extensions", [["PIPELINING", "CHUNKING"], ["CHUNKING"], ["PIPELINING"], []])
async def test_large_file_streams(tmp_path: Path, extensions: list[str]) -> None:
    # 2.5 MiB from a path: read and sent in 1 MiB pieces (several BDAT chunks).
    line = b"x" * 78 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (2_621_440 // len(line))
    p = tmp_path / "msg"
    p.write_bytes(body)
    async with serve(FakeServer(extensions=extensions)) as (srv, port):
        c = await dial(port)
        res = await c.deliver("a@example.com", ["b@example.org"], p)
        assert res.delivered == ["b@example.org"]
        # A file object, read from its current position.
        with open(p, "rb") as f:
            f.seek(len(b"Subject: big\r\n\r\n"))
            await c.deliver("a@example.com", ["b@example.org"], f)
        await c.close()
    assert srv.received[0].data == body
    assert srv.received[1].data == body[len(b"Subject: big\r\n\r\n") :]
    if "CHUNKING" in extensions:
        assert sum(1 for cmd in srv.commands if cmd.startswith("BDAT")) >= 6


async def test_several_messages_per_connection() -> None:
    fake = FakeServer(rcpt_replies={"bad@example.org": b"550 5.1.1 no such user\r\n"})
    async with serve(fake) as (srv, port):
        c = await dial(port)
        for i in range(5):
            await c.deliver("a@example.com", ["b@example.org"], MSG + b"%d\r\n" % i)
        # All recipients refused: the transaction is open at the server, a RSET precedes the next.
        res = await c.deliver("a@example.com", ["bad@example.org"], MSG)
        assert res.delivered == []
        assert res.failed[0].permanent and res.failed[0].code == 550 and res.failed[0].enhanced == "5.1.1"
        await c.deliver("a@example.com", ["b@example.org"], MSG)
        await c.close()
    assert len(srv.received) == 6
    assert srv.connections == 1
    assert sum(1 for cmd in srv.commands if cmd == "RSET") == 1


@pytest.mark.parametrize("exts", [["PIPELINING"], [], ["PIPELINING", "CHUNKING"], ["CHUNKING"]])
async def test_some_recipients_refused(exts: list[str]) -> None:
    fake = FakeServer(
        extensions=[*exts, "ENHANCEDSTATUSCODES"],
        rcpt_replies={
            "perm@example.org": b"550 5.1.1 unknown user\r\n",
            "temp@example.org": b"450 4.2.1 try later\r\n",
        },
    )
    async with serve(fake) as (srv, port):
        c = await dial(port)
        res = await c.deliver(
            "a@example.com", ["ok@example.org", "perm@example.org", "temp@example.org"], MSG
        )
        await c.close()
    assert res.delivered == ["ok@example.org"]
    perm, temp = res.failed
    assert (perm.recipient, perm.code, perm.enhanced, perm.permanent) == (
        "perm@example.org",
        550,
        "5.1.1",
        True,
    )
    assert perm.text == "unknown user"
    assert (temp.recipient, temp.code, temp.permanent) == ("temp@example.org", 450, False)
    assert srv.received[0].rcpts == ["ok@example.org"]


@pytest.mark.parametrize("extensions", [["PIPELINING"], [], ["PIPELINING", "CHUNKING"]])
@pytest.mark.parametrize(
    "code, permanent", [(b"451 4.3.0 try again later", False), (b"554 5.7.1 rejected", True)]
)
async def test_mail_refused(extensions: list[str], code: bytes, permanent: bool) -> None:
    fake = FakeServer(extensions=[*extensions, "ENHANCEDSTATUSCODES"], replies={"MAIL": code + b"\r\n"})
    async with serve(fake) as (_srv, port):
        c = await dial(port)
        with pytest.raises(ReplyError) as ei:
            await c.deliver("a@example.com", ["b@example.org"], MSG)
        assert ei.value.permanent is permanent
        assert ei.value.command == "mail"
        assert ei.value.code == int(code[:3])
        # The connection stays usable.
        fake.replies.clear()
        res = await c.deliver("a@example.com", ["b@example.org"], MSG)
        assert res.delivered == ["b@example.org"]
        await c.close()


@pytest.mark.parametrize(
    "code, permanent", [(b"452 4.3.1 insufficient storage", False), (b"554 5.6.0 bad content", True)]
)
@pytest.mark.parametrize("extensions", [["PIPELINING"], ["PIPELINING", "CHUNKING"]])
async def test_data_refused(code: bytes, permanent: bool, extensions: list[str]) -> None:
    replies = {"DATAEND": code + b"\r\n", "BDAT": code + b"\r\n"}
    async with serve(FakeServer(extensions=[*extensions, "ENHANCEDSTATUSCODES"], replies=replies)) as (
        _srv,
        port,
    ):
        c = await dial(port)
        with pytest.raises(ReplyError) as ei:
            await c.deliver("a@example.com", ["b@example.org"], MSG)
        assert ei.value.permanent is permanent
        assert ei.value.enhanced == code[4:9].decode()
        assert not c.botched
        await c.close()


async def test_mail_refused_then_disconnect() -> None:
    # Like a server that blocklisted us: 554 to MAIL, then the connection closes.
    async def hook(line: str, w: asyncio.StreamWriter) -> bool:
        if line.startswith("MAIL"):
            w.write(b"554 5.7.1 your ip is listed\r\n")
            await w.drain()
            w.transport.abort()
            return True
        return False

    async with serve(FakeServer(hook=hook)) as (_srv, port):
        c = await dial(port)
        with pytest.raises(ReplyError) as ei:
            await c.deliver("a@example.com", ["b@example.org"], MSG)
        assert ei.value.permanent and ei.value.code == 554
        assert c.botched
        with pytest.raises(ConnectionUnusable):
            await c.deliver("a@example.com", ["b@example.org"], MSG)
        await c.close()


@pytest.mark.parametrize("extensions", [["PIPELINING"], ["PIPELINING", "CHUNKING"], []])
async def test_disconnect_mid_data(extensions: list[str]) -> None:
    big = b"Subject: x\r\n\r\n" + b"y" * 70 + b"\r\n" * 1 + (b"z" * 998 + b"\r\n") * 400
    async with serve(FakeServer(extensions=extensions, disconnect_in_data=1000)) as (_srv, port):
        c = await dial(port)
        with pytest.raises(ConnectionLost) as ei:
            await c.deliver("a@example.com", ["b@example.org"], big)
        assert not ei.value.permanent
        assert c.botched
        await c.close()


async def test_greeting_refused() -> None:
    for greeting, permanent in ((b"554 5.7.1 go away\r\n", True), (b"421 4.3.2 busy\r\n", False)):
        async with serve(FakeServer(greeting=greeting)) as (_srv, port):
            with pytest.raises(GreetingError) as ei:
                await dial(port)
            assert ei.value.permanent is permanent


async def test_multiline_greeting_and_replies() -> None:
    fake = FakeServer(
        greeting=b"220-fake.example ESMTP\r\n220-no UCE\r\n220 welcome\r\n",
        replies={"DATAEND": b"250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 queued as X\r\n"},
    )
    async with serve(fake) as (_srv, port):
        c = await dial(port)
        assert c.greeting is not None and c.greeting.lines == ("fake.example ESMTP", "no UCE", "welcome")
        res = await c.deliver("a@example.com", ["b@example.org"], MSG)
        r = res.recipients[0].reply
        assert r is not None and r.enhanced == "2.0.0" and r.lines == ("first", "second", "queued as X")
        await c.close()


async def test_helo_fallback() -> None:
    async with serve(FakeServer(replies={"EHLO": b"502 5.5.1 command not implemented\r\n"})) as (srv, port):
        c = await dial(port)
        assert not c.extensions.ehlo and not c.extensions.pipelining
        res = await c.deliver("a@example.com", ["b@example.org"], MSG)
        assert res.delivered
        await c.close()
    assert "HELO client.example" in srv.commands


async def test_huge_reply_line() -> None:
    # 10 MB without a line end: a protocol error after at most MAX_REPLY_LINE octets buffered.
    async def hook(line: str, w: asyncio.StreamWriter) -> bool:
        if line.startswith("EHLO"):
            w.write(b"250-" + b"x" * 10_000_000 + b"\r\n250 ok\r\n")
            await w.drain()
            return True
        return False

    async with serve(FakeServer(hook=hook)) as (_srv, port):
        with pytest.raises(ProtocolError) as ei:
            await dial(port)
        assert not ei.value.permanent
        assert "longer than" in str(ei.value)


async def test_malformed_reply() -> None:
    async with serve(FakeServer(replies={"MAIL": b"hello there\r\n"})) as (_srv, port):
        c = await dial(port)
        with pytest.raises(ProtocolError):
            await c.deliver("a@example.com", ["b@example.org"], MSG)
        assert c.botched
        await c.close()


@pytest.mark.parametrize("stall", ["GREETING", "EHLO", "MAIL", "RCPT", "DATAEND"])
async def test_stalling_server(stall: str) -> None:
    short = Timeouts(
        connect=1, greeting=0.2, command=0.2, data_init=0.2, data_block=0.2, data_final=0.2, quit=0.2
    )
    async with serve(FakeServer(stall=stall, extensions=["8BITMIME"])) as (_srv, port):
        with pytest.raises(CommandTimeout) as ei:
            c = await dial(port, timeouts=short)
            await c.deliver("a@example.com", ["b@example.org"], MSG)
        assert not ei.value.permanent
        assert ei.value.command in ("greeting", "ehlo", "mail", "rcpt", "data-end")


async def test_connect_refused() -> None:
    # A port nobody listens on.
    async with serve(FakeServer()) as (_srv, port):
        pass
    with pytest.raises(ConnectionLost) as ei:
        await dial(port)
    assert ei.value.command == "connect" and not ei.value.permanent


async def test_local_addr_bind() -> None:
    async with serve(FakeServer()) as (_srv, port):
        c = await dial(port, local_addr="127.0.0.1")
        assert c.local_addr is not None and c.local_addr[0] == "127.0.0.1"
        await c.close()


async def test_extension_requirements() -> None:
    async with serve(FakeServer(extensions=["PIPELINING", "SIZE 100"])) as (srv, port):
        c = await dial(port)
        with pytest.raises(ExtensionUnsupported) as ei:
            await c.deliver("a@example.com", ["b@example.org"], MSG, MailOptions(has_8bit=True))
        assert ei.value.extension == "8BITMIME" and ei.value.permanent
        with pytest.raises(ExtensionUnsupported) as ei:
            await c.deliver("a@example.com", ["b@example.org"], MSG, MailOptions(smtputf8=True))
        assert ei.value.extension == "SMTPUTF8" and ei.value.permanent
        with pytest.raises(ExtensionUnsupported) as ei:
            await c.deliver("a@example.com", ["b@example.org"], MSG, MailOptions(requiretls=True))
        assert ei.value.extension == "REQUIRETLS"
        with pytest.raises(ExtensionUnsupported) as ei:
            await c.deliver("a@example.com", ["b@example.org"], b"x" * 200)
        assert ei.value.extension == "SIZE" and ei.value.permanent
        # SMTPUTF8 that may be left out: sent without the parameter.
        res = await c.deliver(
            "a@example.com", ["b@example.org"], MSG, MailOptions(smtputf8=True, smtputf8_optional=True)
        )
        assert res.delivered
        # Not for a non-ASCII address though.
        with pytest.raises(ExtensionUnsupported):
            await c.deliver("a@example.com", ["ü@example.org"], MSG, MailOptions(smtputf8_optional=True))
        await c.close()
    assert srv.received[0].mail_params == [f"SIZE={len(MSG)}"]


async def test_mail_parameters() -> None:
    async with serve(FakeServer()) as (srv, port):
        c = await dial(port)
        opts = MailOptions(has_8bit=True, smtputf8=True, dsn_ret="hdrs", dsn_envid="id+1")
        rcpts = [
            Recipient("b@example.org", notify=("success", "failure"), orcpt="b@example.org"),
            Recipient("ü@example.org"),
        ]
        await c.deliver("a@example.com", rcpts, MSG, opts)
        await c.close()
    rcv = srv.received[0]
    assert rcv.mail_params == [f"SIZE={len(MSG)}", "BODY=8BITMIME", "SMTPUTF8", "RET=HDRS", "ENVID=id+2B1"]
    assert rcv.rcpt_lines == [
        "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org",
        "RCPT TO:<ü@example.org>",
    ]


async def test_dsn_params_only_with_dsn() -> None:
    async with serve(FakeServer(extensions=["PIPELINING"])) as (srv, port):
        c = await dial(port)
        opts = MailOptions(dsn_ret="FULL", dsn_envid="x")
        await c.deliver("", [Recipient("b@example.org", notify=("NEVER",), orcpt="b@example.org")], MSG, opts)
        await c.close()
    assert srv.received[0].mail_params == []
    assert srv.received[0].mail_from == ""
    assert srv.received[0].rcpt_lines == ["RCPT TO:<b@example.org>"]


async def test_rcptmax_and_mailmax() -> None:
    fake = FakeServer(extensions=["PIPELINING", "LIMITS RCPTMAX=2 MAILMAX=2"])
    async with serve(fake) as (_srv, port):
        c = await dial(port)
        assert c.extensions.rcpt_max == 2 and c.extensions.mail_max == 2
        res = await c.deliver("a@example.com", ["b@example.org", "c@example.org", "d@example.org"], MSG)
        assert res.delivered == ["b@example.org", "c@example.org"]
        (untried,) = res.failed
        assert untried.recipient == "d@example.org" and untried.reply is None and not untried.permanent
        await c.deliver("a@example.com", ["d@example.org"], MSG)
        with pytest.raises(ConnectionUnusable):
            await c.deliver("a@example.com", ["e@example.org"], MSG)
        await c.close()


async def test_too_many_recipients_452_without_pipelining() -> None:
    fake = FakeServer(extensions=[], rcpt_replies={"c@example.org": b"452 4.5.3 too many recipients\r\n"})
    async with serve(fake) as (srv, port):
        c = await dial(port)
        res = await c.deliver("a@example.com", ["b@example.org", "c@example.org", "d@example.org"], MSG)
        await c.close()
    assert res.delivered == ["b@example.org"]
    assert [(r.recipient, r.code, r.permanent) for r in res.failed] == [
        ("c@example.org", 452, False),
        ("d@example.org", 0, False),
    ]
    assert not any("d@example.org" in cmd for cmd in srv.commands)


async def test_bad_arguments() -> None:
    async with serve(FakeServer()) as (_srv, port):
        c = await dial(port)
        with pytest.raises(ValueError):
            await c.deliver("a@example.com", [], MSG)
        with pytest.raises(ValueError):
            await c.deliver("a@example.com", ["b@example.org>\r\nDATA"], MSG)
        with pytest.raises(ValueError):
            await c.deliver("a b@example.com", ["b@example.org"], MSG)
        # Nothing was sent: the connection is still fine.
        assert (await c.deliver("a@example.com", ["b@example.org"], io.BytesIO(MSG))).delivered
        await c.close()


async def test_unseekable_source_streams() -> None:
    # A pipe: size unknown, so no SIZE parameter and the message is streamed, not read at once.
    import os

    r, w = os.pipe()
    os.write(w, MSG)
    os.close(w)
    async with serve(FakeServer(extensions=["PIPELINING", "SIZE 1000"])) as (srv, port):
        c = await dial(port)
        with open(r, "rb", buffering=0) as f:
            assert (await c.deliver("a@example.com", ["b@example.org"], f)).delivered  # type: ignore[arg-type]
        await c.close()
    assert srv.received[0].data == MSG and srv.received[0].mail_params == []


async def test_421_closes() -> None:
    async with serve(FakeServer(replies={"MAIL": b"421 4.3.2 shutting down\r\n"}, extensions=[])) as (
        _srv,
        port,
    ):
        c = await dial(port)
        with pytest.raises(ReplyError) as ei:
            await c.deliver("a@example.com", ["b@example.org"], MSG)
        assert ei.value.code == 421 and not ei.value.permanent
        assert c.botched
        await c.close()


async def test_bad_ehlo_hostname() -> None:
    with pytest.raises(ValueError):
        await connect("127.0.0.1", 1, ehlo_hostname="bad name\r\nRSET")


@pytest.mark.parametrize("extensions", [["PIPELINING", "CHUNKING"], ["PIPELINING"]])
async def test_large_message_bounded_memory(tmp_path: Path, extensions: list[str]) -> None:
    # 16 MiB from a file: the client's allocations stay far below the message size.
    import tracemalloc

    p = tmp_path / "big"
    line = b"y" * 4095 + b"\n"  # Bare LF: converted on the way, chunk by chunk.
    with open(p, "wb") as f:
        f.write(b"Subject: big\n\n")
        for _ in range(16):
            f.write(line * 256)
    size = p.stat().st_size
    async with serve(FakeServer(extensions=extensions, keep_data=False)) as (srv, port):
        c = await dial(port, timeouts=Timeouts(data_block=60, data_final=60))
        tracemalloc.start()
        try:
            res = await c.deliver("a@example.com", ["b@example.org"], p)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert res.delivered
        await c.close()
    assert srv.received[0].size == size + 16 * 256 + 2  # Every LF became CRLF.
    # Loading it whole would take the file plus its converted copy, over 32 MiB.
    assert peak < 12 * 1024 * 1024, peak
