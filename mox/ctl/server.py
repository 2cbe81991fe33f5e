"""Server side of the ctl socket: asyncio, part of ``mox serve``.

:class:`CtlServer` listens on the unix socket ``ctl`` in the data directory
and runs one handler per connection; :class:`CtlConn` is a handler's view of
its connection (JSON values and data streams, see ``mox.ctl.protocol``).
The commands themselves live elsewhere and are passed in as a dict.

Errors: a handler raising :class:`CtlCommandError` sends its message to the
client as the error status; any other exception is logged with its traceback
and the client gets ``internal error: <exception>``. A client that goes away
mid-command only ends that command: its handler sees ConnectionClosed on its
next read or write, and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import traceback
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import IO, Any, Final, Protocol

from mox.ctl.protocol import (
    ACK_FRAME_BYTES,
    DEFAULT_CHUNK_SIZE,
    END_FRAME_BYTES,
    GREETING,
    MAX_CHUNK_SIZE,
    STREAM_WINDOW,
    AbortFrame,
    ConnectionClosed,
    DataFrame,
    EndFrame,
    Frame,
    FrameDecoder,
    Greeting,
    JsonFrame,
    ProtocolError,
    SendWindow,
    StreamAborted,
    data_header,
    encode_abort,
    encode_error,
    encode_json,
    encode_ok,
    frame_name,
    split_chunks,
    write_all,
)

REQUEST_TIMEOUT: Final = 60.0
"""Seconds a new connection gets to send its request frame; after that it is
closed, so idle connections cannot pile up. Commands themselves have no
deadline: an mbox import may legitimately take long."""

READ_SIZE: Final = 256 * 1024
"""Bytes asked from the stream reader at a time."""

SOCKET_MODE: Final = 0o600
"""The ctl socket gives full control over the server: owner only."""


class CtlLog(Protocol):
    """What the ctl code needs from a logger (mox.mlog's Log fits)."""

    def debug(self, msg: str, /, **kv: Any) -> None: ...

    def info(self, msg: str, /, **kv: Any) -> None: ...

    def error(self, msg: str, /, **kv: Any) -> None: ...


class StdlibLog:
    """CtlLog on top of the standard logging module, key=value formatted."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("mox.ctl")

    def _log(self, level: int, msg: str, kv: dict[str, Any]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        stack = kv.pop("stack", None)
        text = " ".join([msg, *(f"{k}={_logfmt_value(v)}" for k, v in kv.items())])
        if stack:
            text += "\n" + str(stack)
        self._logger.log(level, "%s", text)

    def debug(self, msg: str, /, **kv: Any) -> None:
        self._log(logging.DEBUG, msg, kv)

    def info(self, msg: str, /, **kv: Any) -> None:
        self._log(logging.INFO, msg, kv)

    def error(self, msg: str, /, **kv: Any) -> None:
        self._log(logging.ERROR, msg, kv)


def _logfmt_value(v: Any) -> str:
    text = str(v)
    if not text or any(c in text for c in ' "=\n\\'):
        return json.dumps(text)
    return text


class CtlCommandError(Exception):
    """Raised by a handler to fail its command with a message for the user,
    e.g. ``CtlCommandError('account "mjl" does not exist')``."""


Handler = Callable[["CtlConn", list[str]], Awaitable[Any]]
"""A command implementation; its return value (JSON-serialisable or None) is
the ok status' result."""

BytesLike = bytes | bytearray | memoryview

StreamSource = AsyncIterable[BytesLike] | Iterable[BytesLike] | IO[bytes]
"""What send_stream accepts: chunks (of any size, split as needed) from an
async or plain iterable, or a binary file (read in a worker thread)."""

StreamSink = Callable[[bytes], Awaitable[object] | object] | IO[bytes]
"""What recv_stream_into accepts: a function called per chunk (awaited if it
returns an awaitable), or a binary file (written in a worker thread)."""


class CtlConn:
    """A handler's view of its ctl connection.

    All methods raise ConnectionClosed if the client went away, and
    ProtocolError if it sent something not allowed at that point.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cmd: str = "") -> None:
        self.cmd = cmd
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder()
        self._incoming: IncomingStream | None = None
        self._detached = False

    # Low level.

    async def _read_frame(self) -> Frame:
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                assert not isinstance(frame, Greeting)  # only clients expect one
                return frame
            try:
                data = await self._reader.read(READ_SIZE)
            except OSError as exc:
                raise ConnectionClosed(f"reading from ctl client: {exc}") from exc
            if not data:
                raise ConnectionClosed("ctl client closed the connection")
            self._decoder.feed(data)

    def _write(self, *data: BytesLike) -> None:
        if self._writer.is_closing():
            raise ConnectionClosed("ctl client closed the connection")
        for d in data:
            self._writer.write(d)

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except OSError as exc:
            raise ConnectionClosed(f"writing to ctl client: {exc}") from exc

    def _check_idle(self, what: str) -> None:
        if self._incoming is not None and not self._incoming.finished:
            raise RuntimeError(f"ctl command called {what} before the incoming data stream was finished")

    # JSON values.

    async def send_json(self, value: Any) -> None:
        """Send one JSON value (at most 1 MiB encoded) to the client."""
        self._check_idle("send_json")
        self._write(encode_json(value))
        await self._drain()

    async def recv_json(self) -> Any:
        """Receive one JSON value from the client."""
        self._check_idle("recv_json")
        frame = await self._read_frame()
        if not isinstance(frame, JsonFrame):
            raise ProtocolError(f"expected json frame from client, got {frame_name(frame)}")
        return frame.value

    # Streams.

    async def send_stream(self, source: StreamSource, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
        """Send a data stream to the client, with flow control.

        If the source raises, the stream is aborted (the client is told the
        exception's message) and the exception propagates. Chunks from an
        iterable must not be modified after they were yielded: the transport
        may hold on to them until they are sent.

        Returns:
            The number of bytes sent.

        Raises:
            StreamAborted: the client aborted the stream (e.g. its disk is
                full); the connection is ready for the next step.
        """
        self._check_idle("send_stream")
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size {chunk_size} not in 1..{MAX_CHUNK_SIZE}")
        win = SendWindow(STREAM_WINDOW)
        total = 0
        try:
            async with contextlib.aclosing(_source_chunks(source, chunk_size)) as chunks:
                async for chunk in chunks:
                    while win.full and not win.done:
                        win.on_response(await self._read_frame())
                    if win.peer_abort is not None:
                        break
                    self._write(data_header(len(chunk)), chunk)
                    win.sent_chunk()
                    total += len(chunk)
                    await self._drain()
        except (ConnectionClosed, ProtocolError):
            raise
        except Exception as exc:
            # The source failed: tell the client, keep the connection in step
            # if it is still there, and propagate.
            if not win.terminated and win.peer_abort is None and not self._writer.is_closing():
                with contextlib.suppress(ConnectionClosed, ProtocolError):
                    self._write(
                        encode_abort(f"sending data failed: {exc}" if str(exc) else "sending data failed")
                    )
                    win.sent_terminator()
                    await self._drain()
                    while not win.done:
                        win.on_response(await self._read_frame())
            raise
        if win.peer_abort is None:
            self._write(END_FRAME_BYTES)
            win.sent_terminator()
            await self._drain()
            while not win.done:
                win.on_response(await self._read_frame())
        if win.peer_abort is not None:
            if not win.terminated:
                self._write(END_FRAME_BYTES)
                await self._drain()
            raise StreamAborted(f"client aborted data stream: {win.peer_abort}")
        return total

    def recv_stream(self) -> IncomingStream:
        """Receive a data stream from the client: ``async for chunk in
        conn.recv_stream()``. A chunk is acknowledged when the next one is
        asked for, so the client never runs ahead of the consumer by more
        than the window.

        To stop early, call the stream's ``abort(message)``. A handler that
        raises from the loop has the stream aborted for it (the client then
        gets the handler's error); one that returns without finishing or
        aborting the stream has a bug, reported as an internal error."""
        self._check_idle("recv_stream")
        self._incoming = IncomingStream(self)
        return self._incoming

    async def recv_stream_into(self, sink: StreamSink) -> int:
        """Receive a data stream into a binary file or a (possibly async)
        function. If the sink raises, the stream is aborted with the
        exception's message and the exception propagates.

        Returns:
            The number of bytes received.
        """
        stream = self.recv_stream()
        total = 0
        write: Callable[[bytes], Awaitable[object] | object]
        if callable(sink):
            write = sink
        else:
            file = sink

            async def write(data: bytes) -> None:
                await asyncio.to_thread(write_all, file, data)

        async for chunk in stream:
            try:
                r = write(chunk)
                if isinstance(r, Awaitable):
                    await r
            except Exception as exc:
                await stream.abort(f"storing data failed: {exc}" if str(exc) else "storing data failed")
                raise
            total += len(chunk)
        return total

    # Raw mode.

    async def detach(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        """Stop framing: the handler takes over the raw connection (e.g. to
        speak IMAP over it). The client must have switched too, after an
        agreed frame. Returns the reader, the writer and bytes already read
        but not decoded (to be processed before reading more). No status is
        sent for the command; the handler must close the writer."""
        self._check_idle("detach")
        self._detached = True
        return self._reader, self._writer, self._decoder.take_buffered()


class IncomingStream:
    """An incoming data stream, iterated with ``async for``; see
    CtlConn.recv_stream."""

    def __init__(self, conn: CtlConn) -> None:
        self._conn = conn
        self._ack_pending = False
        self.finished = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if self._ack_pending:
            # The consumer is back for more, so it is done with the last chunk.
            self._ack_pending = False
            conn._write(ACK_FRAME_BYTES)
            # Only a client ignoring the window can make acks pile up here.
            await conn._drain()
        if self.finished:
            raise StopAsyncIteration
        frame = await conn._read_frame()
        match frame:
            case DataFrame(data):
                self._ack_pending = True
                return data
            case EndFrame():
                self.finished = True
                conn._write(ACK_FRAME_BYTES)
                raise StopAsyncIteration
            case AbortFrame(message):
                self.finished = True
                conn._write(ACK_FRAME_BYTES)
                raise StreamAborted(f"client aborted data stream: {message}")
            case _:
                raise ProtocolError(f"unexpected {frame_name(frame)} frame in data stream from client")

    async def abort(self, message: str) -> None:
        """Tell the client to stop sending, and skip what it sent meanwhile."""
        if self.finished:
            return
        self.finished = True
        self._ack_pending = False
        conn = self._conn
        conn._write(encode_abort(message))
        await conn._drain()
        while True:
            frame = await conn._read_frame()
            match frame:
                case DataFrame():
                    continue
                case EndFrame() | AbortFrame():
                    return
                case _:
                    raise ProtocolError(f"unexpected {frame_name(frame)} frame in aborted data stream")


async def _source_chunks(source: StreamSource, chunk_size: int) -> AsyncGenerator[BytesLike, None]:
    """Yield non-empty chunks of at most chunk_size from a stream source."""
    if hasattr(source, "read"):
        file: IO[bytes] = source  # type: ignore[assignment]
        # A fresh bytes object per chunk, not one reused buffer: from Python
        # 3.12 the transport queues what it could not send yet by reference
        # (no copy), and drain() does not wait for its buffer to be empty.
        while data := await asyncio.to_thread(file.read, chunk_size):
            yield data
        return
    if isinstance(source, AsyncIterable):
        async for item in source:
            for piece in split_chunks(item, chunk_size):
                yield piece
    else:
        for item in source:
            for piece in split_chunks(item, chunk_size):
                yield piece


class CtlServer:
    """Serves ctl commands on a unix socket.

    Args:
        path: the socket's path, normally ``<datadir>/ctl``.
        handlers: command name (e.g. "config account add") to handler.
        log: a CtlLog; defaults to StdlibLog (stdlib logger "mox.ctl").
    """

    def __init__(
        self, path: str | os.PathLike[str], handlers: dict[str, Handler], log: CtlLog | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.handlers = handlers
        self.log: CtlLog = log if log is not None else StdlibLog()
        self.request_timeout = REQUEST_TIMEOUT
        self._server: asyncio.AbstractServer | None = None
        self._socket_ino: tuple[int, int] | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._next_cid = 1

    @property
    def active_connections(self) -> int:
        """Connections currently being served."""
        return len(self._conns)

    async def start(self) -> None:
        """Create the socket (mode 0600) and start accepting connections.

        A stale socket file from an earlier run is removed; a live one (some
        other server answers on it) or a non-socket file at the path is an
        error.
        """
        await asyncio.to_thread(_remove_stale_socket, self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # On Linux the mode of the socket inode (fchmod before bind) is
            # what bind gives the file, minus the umask: no window in which
            # the socket is more open than 0600. chmod after bind as well, for
            # other systems and in case the umask was stricter than needed.
            with contextlib.suppress(OSError):
                os.fchmod(sock.fileno(), SOCKET_MODE)
            sock.bind(self.path)
            os.chmod(self.path, SOCKET_MODE)
            st = os.stat(self.path)
            self._socket_ino = (st.st_dev, st.st_ino)
            self._server = await asyncio.start_unix_server(self._accepted, sock=sock)
        except BaseException:
            sock.close()
            raise
        self.log.debug("ctl listening", path=self.path)

    async def close(self) -> None:
        """Stop accepting, end running connections and remove the socket."""
        if self._server is not None:
            self._server.close()
        for t in list(self._conns):
            t.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._socket_ino is not None:
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._socket_ino:
                    os.unlink(self.path)
            self._socket_ino = None

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.serve_connection(reader, writer)

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one already-connected client (used for accepted
        connections; tests pass one end of a socketpair). Returns when the
        command is done and the connection closed; never raises except
        CancelledError."""
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        cid = self._next_cid
        self._next_cid += 1
        conn = CtlConn(reader, writer)
        try:
            await self._serve(conn, cid)
        finally:
            self._conns.discard(task)
            if not conn._detached:
                writer.close()
                with contextlib.suppress(Exception):
                    # Bounded: a client that does not read must not keep us.
                    async with asyncio.timeout(5):
                        await writer.wait_closed()

    async def _serve(self, conn: CtlConn, cid: int) -> None:
        log = self.log
        try:
            conn._write(GREETING)
            async with asyncio.timeout(self.request_timeout):
                request = await conn.recv_json()
            cmd, args = _parse_request(request)
        except ConnectionClosed as exc:
            log.debug("ctl connection closed before command", cid=cid, err=str(exc))
            return
        except TimeoutError:
            log.info("ctl client sent no command in time, closing", cid=cid)
            return
        except ProtocolError as exc:
            log.info("ctl protocol error", cid=cid, err=str(exc))
            await self._send_status(conn, cid, encode_error(f"protocol error: {exc}"))
            return
        conn.cmd = cmd
        handler = self.handlers.get(cmd)
        if handler is None:
            log.info("ctl unknown command", cid=cid, cmd=cmd)
            await self._send_status(conn, cid, encode_error(f"unknown command {_quote(cmd)}"))
            return
        log.info("ctl command", cid=cid, cmd=cmd)

        status: bytes
        try:
            result = await handler(conn, args)
            if conn._detached:
                log.debug("ctl connection detached", cid=cid, cmd=cmd)
                return
            if conn._incoming is not None and not conn._incoming.finished:
                raise RuntimeError("command did not read the whole data stream from the client")
            try:
                status = encode_ok(result)
            except (TypeError, ValueError, ProtocolError) as exc:
                raise ValueError(f"cannot send result of command: {exc}") from exc
        except CtlCommandError as exc:
            log.debug("ctl command failed", cid=cid, cmd=cmd, err=str(exc))
            status = encode_error(str(exc))
        except ConnectionClosed as exc:
            log.debug("ctl client went away during command", cid=cid, cmd=cmd, err=str(exc))
            return
        except StreamAborted as exc:
            log.info("ctl data stream aborted", cid=cid, cmd=cmd, err=str(exc))
            status = encode_error(str(exc))
        except ProtocolError as exc:
            log.info("ctl protocol error", cid=cid, cmd=cmd, err=str(exc))
            status = encode_error(f"protocol error: {exc}")
        except Exception as exc:
            log.error(
                "ctl command raised exception",
                cid=cid,
                cmd=cmd,
                err=repr(exc),
                stack=traceback.format_exc(),
            )
            status = encode_error(f"internal error: {exc}")
        if conn._detached:
            # The handler took the raw connection and then failed: it is ours
            # to close again, there is no framing left to report the error.
            conn._detached = False
            return
        await self._send_status(conn, cid, status)

    async def _send_status(self, conn: CtlConn, cid: int, status: bytes) -> None:
        try:
            incoming = conn._incoming
            if incoming is not None and not incoming.finished:
                # The client is still sending; stop it, so it reads our status.
                await incoming.abort("command ended before reading all data")
            conn._write(status)
            await conn._drain()
        except (ConnectionClosed, ProtocolError, OSError) as exc:
            self.log.debug("ctl could not send status", cid=cid, err=str(exc))


def _parse_request(request: Any) -> tuple[str, list[str]]:
    if not isinstance(request, dict) or set(request) != {"cmd", "args"}:
        raise ProtocolError('request must be {"cmd": string, "args": [string, ...]}')
    cmd, args = request["cmd"], request["args"]
    if not isinstance(cmd, str) or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ProtocolError('request must be {"cmd": string, "args": [string, ...]}')
    return cmd, args


def _quote(s: str) -> str:
    # Go-style %q-ish quoting, as upstream prints names in messages.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _remove_stale_socket(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"ctl socket path {path} exists and is not a socket, not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(path)
    except OSError:
        # Nobody listening (ECONNREFUSED): left over from a crash.
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(f"ctl socket {path} is in use, is another mox serve running?")
