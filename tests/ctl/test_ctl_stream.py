"""Data streams over the ctl connection: flow control, bounded memory, aborts,
clients that disappear mid-stream.

The server side runs on the test's event loop; the blocking client runs in a
thread, talking over a socketpair whose kernel buffers are as small as Linux
allows (about 4 KB), so any reliance on buffer space would deadlock.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import socket
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mox.ctl import (
    ConnectionClosed,
    CtlClient,
    CtlCommandError,
    CtlConn,
    CtlError,
    CtlServer,
    StreamAborted,
)
from mox.ctl.protocol import DEFAULT_CHUNK_SIZE, STREAM_WINDOW

T = TypeVar("T")

MiB = 1024 * 1024


class RecordingLog:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def debug(self, msg: str, /, **kv: Any) -> None:
        self.records.append(("debug", msg, kv))

    def info(self, msg: str, /, **kv: Any) -> None:
        self.records.append(("info", msg, kv))

    def error(self, msg: str, /, **kv: Any) -> None:
        self.records.append(("error", msg, kv))


def min_buffer_socketpair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    for s in (a, b):
        # The kernel rounds 1 up to its minimum.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    assert a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < 16 * 1024
    return a, b


async def run_exchange(
    server: CtlServer,
    client_fn: Callable[[socket.socket], T],
    *,
    timeout: float = 60,
    minimal_buffers: bool = True,
) -> T:
    """Serve one connection of server over a socketpair (minimal kernel
    buffers unless told otherwise) while client_fn(client_socket) runs in a
    thread; return client_fn's result."""
    a, b = min_buffer_socketpair() if minimal_buffers else socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=a)
    served = asyncio.create_task(server.serve_connection(reader, writer))
    try:
        async with asyncio.timeout(timeout):
            result = await asyncio.to_thread(client_fn, b)
            await served
    finally:
        b.close()
        if not served.done():
            served.cancel()
    return result


def pattern_chunks(size: int, seed: int = 1, block: int = MiB) -> Iterator[bytes]:
    """Deterministic pseudo-random data; each block carries its index, so a
    dropped, repeated or reordered chunk changes the hash."""
    base = random.Random(seed).randbytes(block)
    i = 0
    sent = 0
    while sent < size:
        n = min(block, size - sent)
        yield (i.to_bytes(8, "big") + base[8:])[:n]
        sent += n
        i += 1


async def aiter_chunks(size: int, seed: int = 1) -> AsyncIterator[bytes]:
    for c in pattern_chunks(size, seed):
        yield c


def expected_hash(size: int, seed: int = 1) -> str:
    h = hashlib.sha256()
    for c in pattern_chunks(size, seed):
        h.update(c)
    return h.hexdigest()


async def upload(conn: CtlConn, args: list[str]) -> dict[str, Any]:
    h = hashlib.sha256()
    n = 0
    async for chunk in conn.recv_stream():
        h.update(chunk)
        n += len(chunk)
    return {"size": n, "sha256": h.hexdigest()}


async def download(conn: CtlConn, args: list[str]) -> dict[str, Any]:
    size, seed = int(args[0]), int(args[1])
    h = hashlib.sha256()

    async def source() -> AsyncIterator[bytes]:
        for c in pattern_chunks(size, seed):
            h.update(c)
            yield c

    n = await conn.send_stream(source())
    return {"size": n, "sha256": h.hexdigest()}


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def peak_rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


STREAM_SIZE = 200 * MiB
MEMORY_BOUND = 20 * MiB


@pytest.mark.timeout(120)
async def test_200mb_each_way_over_minimal_buffers_with_bounded_memory() -> None:
    server = CtlServer("/unused", {"upload": upload, "download": download}, log=RecordingLog())

    def client_upload(sock: socket.socket) -> tuple[Any, str]:
        h = hashlib.sha256()

        def source() -> Iterator[bytes]:
            for c in pattern_chunks(STREAM_SIZE, seed=7):
                h.update(c)
                yield c

        return CtlClient.from_socket(sock).call("upload", [], send_stream_from=source()), h.hexdigest()

    def client_download(sock: socket.socket) -> tuple[Any, str]:
        h = hashlib.sha256()
        result = CtlClient.from_socket(sock).call(
            "download", [str(STREAM_SIZE), "8"], recv_stream_to=h.update
        )
        return result, h.hexdigest()

    results: dict[str, str] = {}
    for name, fn in (("upload", client_upload), ("download", client_download)):
        have_rss = peak_rss_reset()
        rss_before = rss_kib("VmRSS")
        tracemalloc.start()
        try:
            t0 = time.monotonic()
            result, client_hash = await run_exchange(server, fn)
            elapsed = time.monotonic() - t0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        rss_growth = (rss_kib("VmHWM") - rss_before) * 1024 if have_rss else 0
        assert result["size"] == STREAM_SIZE
        assert result["sha256"] == client_hash
        # Python allocations on both ends (the test's own 1 MiB source chunks
        # included), and the process' peak RSS, stay small.
        assert peak < MEMORY_BOUND, f"{name}: traced peak {peak / MiB:.1f} MiB"
        assert rss_growth < MEMORY_BOUND, f"{name}: peak rss grew {rss_growth / MiB:.1f} MiB"
        results[name] = (
            f"{STREAM_SIZE / MiB / elapsed:.0f} MiB/s (traced), peak {peak / MiB:.1f} MiB traced, "
            f"{rss_growth / MiB:.1f} MiB rss growth"
        )
    assert other_tasks() == set()
    print(results)


async def test_sender_never_runs_more_than_the_window_ahead_of_the_consumer() -> None:
    """Upload: the client's source is pulled at most STREAM_WINDOW chunks (plus
    the one being written) ahead of what the handler has consumed; download:
    likewise for the server's source and the client's sink. Small chunks and
    default socket buffers, so the kernel and asyncio could hold dozens of
    chunks: only the protocol's window keeps the sender back."""
    chunk = 4096
    nchunks = 200
    produced = 0
    max_lead = 0
    lock = threading.Lock()

    def counting_source() -> Iterator[bytes]:
        nonlocal produced
        for _ in range(nchunks):
            with lock:
                produced += 1
            yield b"x" * chunk

    async def slow_upload(conn: CtlConn, args: list[str]) -> int:
        nonlocal max_lead
        consumed = 0
        async for _chunk in conn.recv_stream():
            consumed += 1
            if consumed % 20 == 0:
                await asyncio.sleep(0.01)  # let the sender run ahead if it could
            with lock:
                max_lead = max(max_lead, produced - consumed)
        return consumed

    def upload_client(sock: socket.socket) -> Any:
        c = CtlClient.from_socket(sock)
        c.start("upload")
        c.send_stream(counting_source(), chunk_size=chunk)
        return c.finish()

    server = CtlServer("/unused", {"upload": slow_upload})
    assert await run_exchange(server, upload_client, minimal_buffers=False) == nchunks
    assert 1 <= max_lead <= STREAM_WINDOW + 1

    produced = 0
    max_lead = 0

    async def counting_download(conn: CtlConn, args: list[str]) -> None:
        async def source() -> AsyncIterator[bytes]:
            nonlocal produced
            for _ in range(nchunks):
                produced += 1
                yield b"y" * chunk

        await conn.send_stream(source(), chunk_size=chunk)

    def slow_client(sock: socket.socket) -> int:
        nonlocal max_lead
        consumed = 0

        def sink(data: bytes) -> None:
            nonlocal consumed, max_lead
            consumed += 1
            if consumed % 20 == 0:
                time.sleep(0.01)
            max_lead = max(max_lead, produced - consumed)

        CtlClient.from_socket(sock).call("download", [], recv_stream_to=sink)
        return consumed

    server = CtlServer("/unused", {"download": counting_download})
    assert await run_exchange(server, slow_client, minimal_buffers=False) == nchunks
    assert 1 <= max_lead <= STREAM_WINDOW + 1


async def test_streams_from_and_into_files_and_json_in_between(tmp_path: Path) -> None:
    size = 3 * MiB + 12345
    src = tmp_path / "in.bin"
    with src.open("wb") as f:
        for c in pattern_chunks(size, seed=3):
            f.write(c)

    async def roundtrip(conn: CtlConn, args: list[str]) -> Any:
        await conn.send_json({"ready": args})
        stored = tmp_path / "stored.bin"
        with stored.open("wb") as f:
            n = await conn.recv_stream_into(f)
        assert await conn.recv_json() == "now send it back"
        with stored.open("rb") as f:
            back = await conn.send_stream(f)
        return [n, back]

    def client(sock: socket.socket) -> Any:
        c = CtlClient.from_socket(sock)
        c.start("roundtrip", ["a", "b"])
        assert c.recv_json() == {"ready": ["a", "b"]}
        with src.open("rb") as f:
            assert c.send_stream(f) == size
        c.send_json("now send it back")
        out = io.BytesIO()
        assert c.recv_stream(out) == size
        assert out.getvalue() == src.read_bytes()
        return c.finish()

    server = CtlServer("/unused", {"roundtrip": roundtrip})
    assert await run_exchange(server, client) == [size, size]


async def test_empty_streams_and_odd_chunk_sizes() -> None:
    async def echo(conn: CtlConn, args: list[str]) -> None:
        data = bytearray()
        await conn.recv_stream_into(data.extend)
        await conn.send_stream([bytes(data), b"", b"!"])

    def client(sock: socket.socket) -> bytes:
        c = CtlClient.from_socket(sock)
        c.start("echo")
        assert c.send_stream([b"", b"a" * (DEFAULT_CHUNK_SIZE * 2 + 1), b"b"]) == DEFAULT_CHUNK_SIZE * 2 + 2
        out = bytearray()
        c.recv_stream(out.extend)
        assert c.finish() is None
        return bytes(out)

    server = CtlServer("/unused", {"echo": echo})
    assert await run_exchange(server, client) == b"a" * (DEFAULT_CHUNK_SIZE * 2 + 1) + b"b!"

    def client_empty(sock: socket.socket) -> bytes:
        c = CtlClient.from_socket(sock)
        c.start("echo")
        assert c.send_stream(iter([])) == 0
        out = bytearray()
        c.recv_stream(out.extend)
        c.finish()
        return bytes(out)

    assert await run_exchange(server, client_empty) == b"!"


async def test_handler_error_mid_upload_stops_the_client_and_reports_the_message() -> None:
    pulled = 0

    async def picky_import(conn: CtlConn, args: list[str]) -> None:
        n = 0
        async for chunk in conn.recv_stream():
            n += len(chunk)
            if n > 2 * MiB:
                raise CtlCommandError("mbox is malformed at byte 2097152")

    def source() -> Iterator[bytes]:
        nonlocal pulled
        for c in pattern_chunks(500 * MiB, block=DEFAULT_CHUNK_SIZE):
            pulled += len(c)
            yield c

    def client(sock: socket.socket) -> str:
        with pytest.raises(CtlError) as exc:
            CtlClient.from_socket(sock).call("import", [], send_stream_from=source())
        return str(exc.value)

    server = CtlServer("/unused", {"import": picky_import})
    assert await run_exchange(server, client) == "mbox is malformed at byte 2097152"
    assert pulled < 5 * MiB  # stopped within the window, not after 500 MiB


async def test_handler_failing_before_reading_the_upload_is_reported() -> None:
    async def bad_args(conn: CtlConn, args: list[str]) -> None:
        raise CtlCommandError('unknown account "nobody"')

    def client(sock: socket.socket) -> str:
        with pytest.raises(CtlError) as exc:
            CtlClient.from_socket(sock).call("import", ["nobody"], send_stream_from=pattern_chunks(50 * MiB))
        return str(exc.value)

    server = CtlServer("/unused", {"import": bad_args})
    assert await run_exchange(server, client) == 'unknown account "nobody"'


async def test_handler_returning_without_reading_upload_is_internal_error() -> None:
    log = RecordingLog()

    async def lazy(conn: CtlConn, args: list[str]) -> str:
        conn.recv_stream()
        return "done"

    def client(sock: socket.socket) -> str:
        with pytest.raises(CtlError) as exc:
            CtlClient.from_socket(sock).call("lazy", [], send_stream_from=pattern_chunks(10 * MiB))
        return str(exc.value)

    server = CtlServer("/unused", {"lazy": lazy}, log=log)
    assert await run_exchange(server, client) == (
        "internal error: command did not read the whole data stream from the client"
    )
    assert any(level == "error" and "stack" in kv for level, _, kv in log.records)


async def test_client_sink_failure_aborts_download_and_server_sees_it() -> None:
    seen: list[str] = []
    sent = 0

    async def export(conn: CtlConn, args: list[str]) -> None:
        nonlocal sent

        async def source() -> AsyncIterator[bytes]:
            nonlocal sent
            for c in pattern_chunks(500 * MiB, block=DEFAULT_CHUNK_SIZE):
                sent += len(c)
                yield c

        try:
            await conn.send_stream(source())
        except StreamAborted as exc:
            seen.append(str(exc))
            raise

    def client(sock: socket.socket) -> str:
        got = 0

        def sink(chunk: bytes) -> None:
            nonlocal got
            got += len(chunk)
            if got > MiB:
                raise OSError(28, "No space left on device")

        c = CtlClient.from_socket(sock)
        c.start("export")
        with pytest.raises(OSError, match="No space left"):
            c.recv_stream(sink)
        # The connection is still in step: the server's status follows.
        with pytest.raises(CtlError) as exc:
            c.finish()
        return str(exc.value)

    server = CtlServer("/unused", {"export": export})
    msg = await run_exchange(server, client)
    assert msg == "client aborted data stream: client failed storing data: [Errno 28] No space left on device"
    assert seen == [msg]
    assert sent < 5 * MiB


async def test_server_source_failure_aborts_download_with_internal_error() -> None:
    log = RecordingLog()

    async def export(conn: CtlConn, args: list[str]) -> None:
        async def source() -> AsyncIterator[bytes]:
            yield b"first part"
            raise OSError(5, "Input/output error")

        await conn.send_stream(source())

    def client(sock: socket.socket) -> tuple[str, bytes]:
        out = bytearray()
        with pytest.raises(CtlError) as exc:
            CtlClient.from_socket(sock).call("export", [], recv_stream_to=out.extend)
        return str(exc.value), bytes(out)

    server = CtlServer("/unused", {"export": export}, log=log)
    msg, data = await run_exchange(server, client)
    assert msg == "internal error: [Errno 5] Input/output error"
    assert data == b"first part"


async def test_client_source_failure_aborts_upload() -> None:
    handler_saw: list[str] = []

    async def upload_checked(conn: CtlConn, args: list[str]) -> None:
        try:
            async for _ in conn.recv_stream():
                pass
        except StreamAborted as exc:
            handler_saw.append(str(exc))
            raise CtlCommandError("import cancelled") from None

    def source() -> Iterator[bytes]:
        yield b"x" * 1000
        raise ValueError("cannot read mbox file")

    def client(sock: socket.socket) -> str:
        c = CtlClient.from_socket(sock)
        c.start("upload")
        with pytest.raises(ValueError, match="cannot read mbox"):
            c.send_stream(source())
        with pytest.raises(CtlError) as exc:
            c.finish()
        return str(exc.value)

    server = CtlServer("/unused", {"upload": upload_checked})
    assert await run_exchange(server, client) == "import cancelled"
    assert handler_saw == ["client aborted data stream: client failed reading data: cannot read mbox file"]


@pytest.mark.parametrize("direction", ["upload", "download"])
async def test_client_disconnecting_mid_stream_leaves_server_healthy(direction: str) -> None:
    log = RecordingLog()
    handler_errors: list[BaseException] = []
    progressed = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def upload_h(conn: CtlConn, args: list[str]) -> None:
        try:
            n = 0
            async for c in conn.recv_stream():
                n += len(c)
                if n > MiB:
                    progressed.set()
        except BaseException as exc:
            handler_errors.append(exc)
            raise

    async def download_h(conn: CtlConn, args: list[str]) -> None:
        async def source() -> AsyncIterator[bytes]:
            for i, c in enumerate(pattern_chunks(1000 * MiB, block=DEFAULT_CHUNK_SIZE)):
                if i == 8:
                    progressed.set()
                yield c

        try:
            await conn.send_stream(source())
        except BaseException as exc:
            handler_errors.append(exc)
            raise

    server = CtlServer("/unused", {"upload": upload_h, "download": download_h, "upload-ok": upload}, log=log)
    fds_before = open_fds()
    a, b = min_buffer_socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=a)
    served = asyncio.create_task(server.serve_connection(reader, writer))

    def client() -> None:
        c = CtlClient.from_socket(b)
        c.start(direction)
        try:
            if direction == "upload":

                def source() -> Iterator[bytes]:
                    for chunk in pattern_chunks(1000 * MiB, block=DEFAULT_CHUNK_SIZE):
                        if progressed.is_set():
                            b.close()  # like a killed mox command
                        yield chunk

                c.send_stream(source())
            else:
                c.recv_stream(lambda chunk: b.close() if progressed.is_set() else None)
        except (CtlError, OSError):
            pass

    async with asyncio.timeout(30):
        await loop.run_in_executor(None, client)
        await served
    assert server.active_connections == 0
    assert len(handler_errors) == 1
    assert isinstance(handler_errors[0], ConnectionClosed)
    assert not any(level == "error" for level, _, _ in log.records), log.records
    assert other_tasks() == set()
    assert open_fds() == fds_before

    # And the next client is served normally.
    def next_client(sock: socket.socket) -> Any:
        return CtlClient.from_socket(sock).call("upload-ok", [], send_stream_from=[b"hello"])

    assert (await run_exchange(server, next_client))["size"] == 5
    assert open_fds() == fds_before


async def test_handler_can_stop_an_upload_early_and_still_succeed() -> None:
    async def head(conn: CtlConn, args: list[str]) -> int:
        stream = conn.recv_stream()
        first = await anext(stream)
        await stream.abort("have enough")
        return len(first)

    def client(sock: socket.socket) -> tuple[str, Any]:
        c = CtlClient.from_socket(sock)
        c.start("head")
        with pytest.raises(StreamAborted) as exc:
            c.send_stream(pattern_chunks(100 * MiB, block=DEFAULT_CHUNK_SIZE))
        return str(exc.value), c.finish()

    server = CtlServer("/unused", {"head": head})
    assert await run_exchange(server, client) == (
        "server aborted data stream: have enough",
        DEFAULT_CHUNK_SIZE,
    )


async def test_async_sink_is_awaited_before_the_ack() -> None:
    stored: list[bytes] = []

    async def store(conn: CtlConn, args: list[str]) -> int:
        async def sink(chunk: bytes) -> None:
            await asyncio.sleep(0)
            stored.append(chunk)

        return await conn.recv_stream_into(sink)

    server = CtlServer("/unused", {"store": store})
    n = await run_exchange(
        server, lambda s: CtlClient.from_socket(s).call("store", [], send_stream_from=[b"abc", b"def"])
    )
    assert n == 6
    assert stored == [b"abc", b"def"]
