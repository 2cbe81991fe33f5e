"""The ctl socket as the CLI sees it: a real unix socket in a data directory,
commands, errors, and the socket file's life cycle."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mox.ctl import (
    CtlClient,
    CtlCommandError,
    CtlConn,
    CtlConnectError,
    CtlError,
    CtlServer,
    ProtocolError,
    StdlibLog,
    call,
)
from mox.ctl.protocol import GREETING, MAX_TEXT_FRAME_SIZE, encode_json

T = TypeVar("T")


class RecordingLog:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def debug(self, msg: str, /, **kv: Any) -> None:
        self.records.append(("debug", msg, kv))

    def info(self, msg: str, /, **kv: Any) -> None:
        self.records.append(("info", msg, kv))

    def error(self, msg: str, /, **kv: Any) -> None:
        self.records.append(("error", msg, kv))


async def hello(conn: CtlConn, args: list[str]) -> Any:
    return {"hello": args}


async def nothing(conn: CtlConn, args: list[str]) -> None:
    return None


async def fail(conn: CtlConn, args: list[str]) -> None:
    raise CtlCommandError(f'account "{args[0]}" does not exist')


async def crash(conn: CtlConn, args: list[str]) -> None:
    accounts = {"mjl": 1}
    accounts["missing"]  # a bug: KeyError


async def huge_result(conn: CtlConn, args: list[str]) -> str:
    return "x" * MAX_TEXT_FRAME_SIZE


async def unserialisable(conn: CtlConn, args: list[str]) -> object:
    return object()


HANDLERS = {
    "hello": hello,
    "nothing": nothing,
    "fail": fail,
    "crash": crash,
    "huge": huge_result,
    "unserialisable": unserialisable,
}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[CtlServer]:
    srv = CtlServer(tmp_path / "ctl", dict(HANDLERS), log=RecordingLog())
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


async def in_thread(fn: Callable[[], T]) -> T:
    async with asyncio.timeout(30):
        return await asyncio.to_thread(fn)


async def wait_idle(server: CtlServer) -> None:
    async with asyncio.timeout(5):
        while server.active_connections:
            await asyncio.sleep(0.01)


def records(server: CtlServer) -> list[tuple[str, str, dict[str, Any]]]:
    assert isinstance(server.log, RecordingLog)
    return server.log.records


async def test_command_with_arguments_returns_result(server: CtlServer) -> None:
    assert await in_thread(lambda: call(server.path, "hello", ["a", "b c"])) == {"hello": ["a", "b c"]}
    assert await in_thread(lambda: CtlClient.connect(server.path).call("nothing")) is None
    await wait_idle(server)


async def test_socket_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        srv = CtlServer(tmp_path / "ctl", {})
        await srv.start()
    finally:
        os.umask(old)
    try:
        st = os.stat(srv.path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
    finally:
        await srv.close()
    assert not os.path.exists(srv.path)


async def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ctl"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # bound, never listening: what a crash leaves
    stale.close()
    srv = CtlServer(path, dict(HANDLERS))
    await srv.start()
    try:
        assert await in_thread(lambda: call(path, "hello", [])) == {"hello": []}
    finally:
        await srv.close()


async def test_live_socket_or_other_file_is_not_removed(server: CtlServer, tmp_path: Path) -> None:
    second = CtlServer(server.path, {})
    with pytest.raises(OSError, match="in use, is another mox serve running"):
        await second.start()
    assert await in_thread(lambda: call(server.path, "hello", [])) == {"hello": []}

    regular = tmp_path / "notasocket"
    regular.write_text("keep me")
    with pytest.raises(OSError, match="is not a socket"):
        await CtlServer(regular, {}).start()
    assert regular.read_text() == "keep me"


async def test_command_error_reaches_client_as_printable_message(server: CtlServer) -> None:
    def run() -> str:
        try:
            call(server.path, "fail", ["mjl"])
        except CtlError as exc:
            return f"mox: {exc}"  # what the CLI prints
        raise AssertionError("no error")

    assert await in_thread(run) == 'mox: account "mjl" does not exist'
    assert not any(level == "error" for level, _, _ in records(server))


async def test_unknown_command(server: CtlServer) -> None:
    with pytest.raises(CtlError) as exc:
        await in_thread(lambda: call(server.path, "frobnicate", []))
    assert str(exc.value) == 'unknown command "frobnicate"'


async def test_handler_exception_is_internal_error_and_logged_with_traceback(server: CtlServer) -> None:
    with pytest.raises(CtlError) as exc:
        await in_thread(lambda: call(server.path, "crash", []))
    assert str(exc.value) == "internal error: 'missing'"
    errors = [kv for level, _, kv in records(server) if level == "error"]
    assert len(errors) == 1
    assert errors[0]["cmd"] == "crash"
    assert "Traceback" in errors[0]["stack"] and "KeyError" in errors[0]["stack"]
    # The server keeps serving.
    assert await in_thread(lambda: call(server.path, "hello", ["again"])) == {"hello": ["again"]}


async def test_result_too_large_or_not_json_is_internal_error(server: CtlServer) -> None:
    with pytest.raises(
        CtlError, match=r"internal error: cannot send result of command: json result of .* exceeds"
    ):
        await in_thread(lambda: call(server.path, "huge", []))
    with pytest.raises(
        CtlError, match="internal error: cannot send result of command: Object of type object"
    ):
        await in_thread(lambda: call(server.path, "unserialisable", []))


async def test_connecting_to_missing_socket_says_what_to_check(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ctl"
    with pytest.raises(CtlConnectError) as exc:
        CtlClient.connect(path)
    assert str(exc.value) == f"connecting to ctl socket {path}: no such file (is mox serve running?)"
    assert isinstance(exc.value, CtlError)


async def test_connecting_to_socket_without_server(tmp_path: Path) -> None:
    path = tmp_path / "ctl"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    with pytest.raises(CtlConnectError, match="connection refused \\(is mox serve running\\?\\)"):
        CtlClient.connect(path)


async def test_version_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    path = str(tmp_path / "ctl")

    async def old_mox(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ctlv0\n")  # what upstream mox greets with
        await reader.read()
        writer.close()

    srv = await asyncio.start_unix_server(old_mox, path=path)
    try:
        with pytest.raises(ProtocolError) as exc:
            await in_thread(lambda: CtlClient.connect(path))
        assert str(exc.value) == (
            "ctl protocol mismatch: server speaks 'ctlv0', this mox expects 'ctlv1' "
            "(is the running mox serve from another version?)"
        )
    finally:
        srv.close()
        await srv.wait_closed()


def raw_connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    greeting = b""
    while not greeting.endswith(b"\n"):
        greeting += s.recv(1)
    assert greeting == GREETING
    return s


def read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


async def test_oversized_json_frame_from_client_is_refused(server: CtlServer) -> None:
    def run() -> bytes:
        with raw_connect(server.path) as s:
            s.sendall(struct.pack(">cI", b"J", 2 * MAX_TEXT_FRAME_SIZE))
            return read_all(s)

    msg = f"protocol error: json frame of {2 * MAX_TEXT_FRAME_SIZE} bytes exceeds limit of {MAX_TEXT_FRAME_SIZE} bytes"
    assert await in_thread(run) == struct.pack(">cI", b"F", len(msg)) + msg.encode()


async def test_oversized_json_is_refused_by_client_before_sending(server: CtlServer) -> None:
    def run() -> None:
        with CtlClient.connect(server.path) as c:
            c.start("hello", ["x" * MAX_TEXT_FRAME_SIZE])

    with pytest.raises(ProtocolError, match=r"json frame of .* bytes exceeds limit of 1048576 bytes"):
        await in_thread(run)


@pytest.mark.parametrize(
    "request_frame",
    [encode_json(["hello"]), encode_json({"cmd": "hello", "args": [1]}), encode_json({"cmd": "hello"})],
)
async def test_malformed_request_is_protocol_error(server: CtlServer, request_frame: bytes) -> None:
    def run() -> bytes:
        with raw_connect(server.path) as s:
            s.sendall(request_frame)
            return read_all(s)

    reply = await in_thread(run)
    assert reply[:1] == b"F"
    assert reply[5:].startswith(b'protocol error: request must be {"cmd": string')


async def test_garbage_from_client_is_protocol_error(server: CtlServer) -> None:
    def run() -> bytes:
        with raw_connect(server.path) as s:
            s.sendall(b"accountadd\n")  # an upstream ctlv0 client
            return read_all(s)

    assert b"protocol error: unknown frame kind b'a'" in await in_thread(run)


async def test_idle_client_is_disconnected_after_request_timeout(server: CtlServer) -> None:
    server.request_timeout = 0.2

    def run() -> bytes:
        with raw_connect(server.path) as s:
            return read_all(s)

    assert await in_thread(run) == b""
    await wait_idle(server)


async def test_concurrent_commands_do_not_wait_for_each_other(server: CtlServer) -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def blocker(conn: CtlConn, args: list[str]) -> str:
        await release.wait()
        return "released"

    server.handlers["block"] = blocker
    blocked = loop.run_in_executor(None, lambda: call(server.path, "block", []))
    for i in range(5):
        args = [str(i)]
        assert await in_thread(lambda: call(server.path, "hello", args)) == {"hello": args}  # noqa: B023
    assert not blocked.done()
    release.set()
    assert await blocked == "released"


async def test_close_ends_running_commands_and_client_sees_closed_connection(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def forever(conn: CtlConn, args: list[str]) -> None:
        started.set()
        await asyncio.Event().wait()

    srv = CtlServer(tmp_path / "ctl", {"forever": forever}, log=RecordingLog())
    await srv.start()
    loop = asyncio.get_running_loop()
    pending = loop.run_in_executor(None, lambda: call(srv.path, "forever", []))
    await started.wait()
    await srv.close()
    assert srv.active_connections == 0
    with pytest.raises(CtlError, match="closed by server before the command finished"):
        await pending
    assert not os.path.exists(srv.path)


async def test_detach_hands_over_the_raw_connection(server: CtlServer) -> None:
    async def raw_echo(conn: CtlConn, args: list[str]) -> None:
        await conn.send_json("switching")
        reader, writer, pending = await conn.detach()
        data = pending + await reader.readexactly(5 - len(pending))
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    server.handlers["raw"] = raw_echo

    def run() -> bytes:
        c = CtlClient.connect(server.path)
        c.start("raw")
        assert c.recv_json() == "switching"
        sock, pending = c.detach()
        assert pending == b""
        with sock:
            sock.sendall(b"hello")
            return read_all(sock)

    assert await in_thread(run) == b"HELLO"
    await wait_idle(server)


async def test_handler_failing_after_detach_still_gets_its_connection_closed(server: CtlServer) -> None:
    async def raw_fail(conn: CtlConn, args: list[str]) -> None:
        await conn.send_json("switching")
        await conn.detach()
        raise RuntimeError("imap session setup failed")

    server.handlers["rawfail"] = raw_fail

    def run() -> bytes:
        c = CtlClient.connect(server.path)
        c.start("rawfail")
        assert c.recv_json() == "switching"
        sock, _ = c.detach()
        with sock:
            return read_all(sock)

    assert await in_thread(run) == b""
    await wait_idle(server)
    assert [msg for level, msg, _ in records(server) if level == "error"] == ["ctl command raised exception"]


def test_stdlib_log_formats_key_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="mox.ctl")
    log = StdlibLog()
    log.info("ctl command", cid=1, cmd="config account add", err="")
    log.error("ctl command raised exception", stack="Traceback...\n")
    assert caplog.messages == [
        'ctl command cid=1 cmd="config account add" err=""',
        "ctl command raised exception\nTraceback...\n",
    ]
