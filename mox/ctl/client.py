"""Client side of the ctl socket: blocking, for the ``mox`` command line.

Typical use by a CLI command::

    client = CtlClient.connect(data_dir / "ctl")
    result = client.call("config account add", ["mjl", "mjl@example.org"])

or, for an exchange beyond "arguments in, result out"::

    client = CtlClient.connect(path)
    client.start("export mbox", [account, mailbox])
    info = client.recv_json()
    client.recv_stream(sys.stdout.buffer)
    result = client.finish()

Every failure is a :class:`CtlError` (or subclass) whose message can be
printed as is: an error status from the server, a broken connection, a
protocol mismatch. The protocol is described in ``mox.ctl.protocol``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
import types
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Final

from mox.ctl.protocol import (
    ACK_FRAME_BYTES,
    DEFAULT_CHUNK_SIZE,
    END_FRAME_BYTES,
    MAX_CHUNK_SIZE,
    STREAM_WINDOW,
    VERSION,
    AbortFrame,
    ConnectionClosed,
    CtlError,
    DataFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDecoder,
    Greeting,
    JsonFrame,
    OkFrame,
    ProtocolError,
    SendWindow,
    StreamAborted,
    data_header,
    encode_abort,
    encode_json,
    frame_name,
    split_chunks,
    write_all,
)

GREETING_TIMEOUT: Final = 10.0
"""Seconds to wait for the server's greeting after connecting."""

STATUS_AFTER_ERROR_TIMEOUT: Final = 5.0
"""After a failed write, seconds to wait for the error status the server
probably sent before it closed."""

RECV_SIZE: Final = 256 * 1024

ClientStreamSource = IO[bytes] | Iterable[bytes | bytearray | memoryview]
"""A binary file (read until EOF) or an iterable of byte chunks (any size)."""

ClientStreamSink = IO[bytes] | Callable[[bytes], object]
"""A binary file or a function called with each chunk."""


class CtlConnectError(CtlError):
    """The ctl socket could not be reached."""


class CtlClient:
    """A connection to a running ``mox serve``, for one command.

    Use :meth:`connect`; then :meth:`call`, or :meth:`start`, the
    command-specific steps, and :meth:`finish`. Also a context manager that
    closes the connection.
    """

    def __init__(self, sock: socket.socket, path: str = "") -> None:
        """Wrap a connected socket whose greeting was not yet read; prefer
        :meth:`connect` or :meth:`from_socket`."""
        self.path = path
        self._sock = sock
        self._decoder = FrameDecoder(expect_greeting=True)
        self._rbuf = bytearray(RECV_SIZE)
        self._started = False
        self._finished = False
        self._result: Any = None
        self._error: CtlError | None = None

    @classmethod
    def connect(cls, path: str | os.PathLike[str], *, timeout: float | None = None) -> CtlClient:
        """Connect to the ctl socket at path and check the server's greeting.

        Args:
            timeout: seconds any later socket operation may block (default:
                none, commands like an import can take long).

        Raises:
            CtlConnectError: no socket, no server, or no permission.
            ProtocolError: the server speaks another ctl protocol version.
        """
        p = os.fspath(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(GREETING_TIMEOUT)
            sock.connect(p)
        except OSError as exc:
            sock.close()
            raise CtlConnectError(f"connecting to ctl socket {p}: {_connect_reason(exc)}") from exc
        try:
            client = cls(sock, p)
            client._read_greeting()
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        return client

    @classmethod
    def from_socket(cls, sock: socket.socket, *, timeout: float | None = None) -> CtlClient:
        """Use an already connected socket (e.g. a socketpair in tests);
        reads and checks the greeting."""
        client = cls(sock)
        sock.settimeout(GREETING_TIMEOUT)
        client._read_greeting()
        sock.settimeout(timeout)
        return client

    def _read_greeting(self) -> None:
        frame = self._read_frame()
        if not isinstance(frame, Greeting):
            raise ProtocolError(f"expected greeting from ctl server, got {frame_name(frame)}")
        if frame.version != VERSION:
            raise ProtocolError(
                f"ctl protocol mismatch: server speaks {frame.version!r}, this mox expects {VERSION!r} "
                "(is the running mox serve from another version?)"
            )

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._sock.close()

    def __enter__(self) -> CtlClient:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.close()

    # Low level.

    def _read_frame(self) -> Frame | Greeting:
        while True:
            frame = self._decoder.next_frame()
            if frame is not None:
                return frame
            try:
                n = self._sock.recv_into(self._rbuf)
            except TimeoutError as exc:
                raise ConnectionClosed("timeout reading from ctl socket") from exc
            except OSError as exc:
                raise ConnectionClosed(f"reading from ctl socket: {exc}") from exc
            if n == 0:
                raise ConnectionClosed("ctl connection closed by server before the command finished")
            self._decoder.feed(memoryview(self._rbuf)[:n])

    def _read(self) -> Frame:
        """Read a frame inside the exchange: an error status raises CtlError,
        an early ok status is a protocol error."""
        frame = self._read_frame()
        match frame:
            case ErrorFrame(message):
                self._finished = True
                self._error = CtlError(message)
                raise self._error
            case OkFrame():
                self._finished = True
                raise ProtocolError("ctl server ended the command earlier than expected")
            case Greeting():
                raise ProtocolError("unexpected second greeting from ctl server")
        return frame

    def _send(self, *data: bytes | bytearray | memoryview) -> None:
        try:
            for d in data:
                self._sock.sendall(d)
        except OSError as exc:
            # The server may have closed after sending an error status (e.g.
            # an argument was wrong while we were still sending data): that
            # status is in our receive buffer, and is the real story.
            self._raise_pending_status(exc)

    def _raise_pending_status(self, exc: OSError) -> None:
        with contextlib.suppress(CtlError, OSError):
            self._sock.settimeout(STATUS_AFTER_ERROR_TIMEOUT)
            while True:
                frame = self._read_frame()
                if isinstance(frame, ErrorFrame):
                    self._finished = True
                    self._error = CtlError(frame.message)
                    break
                if isinstance(frame, OkFrame):
                    break
        if self._error is not None:
            raise self._error from exc
        if isinstance(exc, TimeoutError):
            raise ConnectionClosed("timeout writing to ctl socket") from exc
        raise ConnectionClosed(f"writing to ctl socket: {exc}") from exc

    def _check_open(self) -> None:
        if not self._started:
            raise RuntimeError("ctl command not started")
        if self._finished:
            if self._error is not None:
                raise self._error
            raise RuntimeError("ctl command already finished")

    # The exchange.

    def start(self, cmd: str, args: Iterable[str] = ()) -> None:
        """Send the request naming the command and its arguments.

        Raises:
            ProtocolError: the request would exceed the JSON frame limit.
        """
        if self._started:
            raise RuntimeError("ctl command already started; one connection carries one command")
        frame = encode_json({"cmd": cmd, "args": list(args)})
        self._started = True
        self._send(frame)

    def send_json(self, value: Any) -> None:
        """Send a JSON value (at most 1 MiB encoded)."""
        self._check_open()
        self._send(encode_json(value))

    def recv_json(self) -> Any:
        """Receive a JSON value; raises CtlError if the server failed the
        command instead."""
        self._check_open()
        frame = self._read()
        if not isinstance(frame, JsonFrame):
            raise ProtocolError(f"expected json frame from ctl server, got {frame_name(frame)}")
        return frame.value

    def send_stream(self, source: ClientStreamSource, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
        """Send a data stream, at most STREAM_WINDOW chunks ahead of what the
        server has consumed. If the source raises, the stream is aborted and
        the exception propagates.

        Returns:
            The number of bytes sent.

        Raises:
            StreamAborted: the server stopped the stream; the reason is
                usually in the error status, see finish().
            CtlError: the server failed the command meanwhile.
        """
        self._check_open()
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size {chunk_size} not in 1..{MAX_CHUNK_SIZE}")
        win = SendWindow(STREAM_WINDOW)
        total = 0
        try:
            for chunk in _source_chunks(source, chunk_size):
                while win.full and not win.done:
                    win.on_response(self._read())
                if win.peer_abort is not None:
                    break
                self._send(data_header(len(chunk)), chunk)
                win.sent_chunk()
                total += len(chunk)
        except CtlError:
            raise
        except Exception as exc:
            # Reading the source failed: abort politely, then propagate.
            if not win.terminated and win.peer_abort is None:
                with contextlib.suppress(CtlError):
                    self._send(encode_abort(f"client failed reading data: {exc}"))
                    win.sent_terminator()
                    while not win.done:
                        win.on_response(self._read())
            raise
        if win.peer_abort is None:
            self._send(END_FRAME_BYTES)
            win.sent_terminator()
            while not win.done:
                win.on_response(self._read())
        if win.peer_abort is not None:
            if not win.terminated:
                self._send(END_FRAME_BYTES)
            raise StreamAborted(f"server aborted data stream: {win.peer_abort}")
        return total

    def recv_stream(self, sink: ClientStreamSink) -> int:
        """Receive a data stream into a binary file or a function. Each chunk
        is acknowledged after the sink returned. If the sink raises, the
        stream is aborted and the exception propagates.

        Returns:
            The number of bytes received.

        Raises:
            StreamAborted: the server gave up sending (e.g. a read error).
            CtlError: the server failed the command instead of sending.
        """
        self._check_open()
        write: Callable[[bytes], object] = sink if callable(sink) else functools.partial(write_all, sink)
        total = 0
        while True:
            frame = self._read()
            match frame:
                case DataFrame(data):
                    try:
                        write(data)
                    except Exception as exc:
                        self._abort_receive(f"client failed storing data: {exc}")
                        raise
                    self._send(ACK_FRAME_BYTES)
                    total += len(data)
                case EndFrame():
                    self._send(ACK_FRAME_BYTES)
                    return total
                case AbortFrame(message):
                    self._send(ACK_FRAME_BYTES)
                    raise StreamAborted(f"server aborted data stream: {message}")
                case _:
                    raise ProtocolError(f"expected data stream from ctl server, got {frame_name(frame)}")

    def _abort_receive(self, message: str) -> None:
        with contextlib.suppress(CtlError):
            self._send(encode_abort(message))
            while True:
                frame = self._read()
                if isinstance(frame, EndFrame | AbortFrame):
                    return
                if not isinstance(frame, DataFrame):
                    raise ProtocolError(f"unexpected {frame_name(frame)} frame in aborted data stream")

    def finish(self) -> Any:
        """Read the final status and close the connection.

        Returns:
            The command's result (None for most commands).

        Raises:
            CtlError: with the server's message, if the command failed.
        """
        if not self._started:
            raise RuntimeError("ctl command not started")
        try:
            if self._finished:
                if self._error is not None:
                    raise self._error
                raise RuntimeError("ctl command already finished")
            frame = self._read_frame()
            match frame:
                case OkFrame(result):
                    self._finished = True
                    self._result = result
                    return result
                case ErrorFrame(message):
                    self._finished = True
                    self._error = CtlError(message)
                    raise self._error
                case _:
                    raise ProtocolError(f"expected final status from ctl server, got {frame_name(frame)}")
        finally:
            self.close()

    def call(
        self,
        cmd: str,
        args: Iterable[str] = (),
        *,
        send_stream_from: ClientStreamSource | None = None,
        recv_stream_to: ClientStreamSink | None = None,
    ) -> Any:
        """Run a whole command: request, optionally a stream to the server,
        optionally a stream from it, final status. Closes the connection.

        Returns:
            The command's result.

        Raises:
            CtlError: with the server's message if the command failed (also
                when a stream was aborted and the server said why).
        """
        try:
            self.start(cmd, args)
            try:
                if send_stream_from is not None:
                    self.send_stream(send_stream_from)
                if recv_stream_to is not None:
                    self.recv_stream(recv_stream_to)
            except StreamAborted as aborted:
                # The error status that follows usually says why.
                try:
                    self.finish()
                except CtlError as exc:
                    raise exc from None
                raise aborted from None
            return self.finish()
        finally:
            self.close()

    def detach(self) -> tuple[socket.socket, bytes]:
        """Stop framing (see CtlConn.detach): returns the socket and bytes
        already received but not decoded. The caller owns the socket."""
        self._finished = True
        return self._sock, self._decoder.take_buffered()


def call(path: str | os.PathLike[str], cmd: str, args: Iterable[str] = (), **kwargs: Any) -> Any:
    """Connect to the ctl socket at path and run one command; see CtlClient.call."""
    return CtlClient.connect(path).call(cmd, args, **kwargs)


def _connect_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no such file (is mox serve running?)"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused (is mox serve running?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (run as the user mox runs as, or root)"
    if isinstance(exc, TimeoutError):
        return "timeout (is mox serve running?)"
    return exc.strerror or str(exc)


def _source_chunks(source: ClientStreamSource, chunk_size: int) -> Iterator[bytes | bytearray | memoryview]:
    readinto = getattr(source, "readinto", None)
    if readinto is not None:
        # One buffer, reused: sendall has copied it into the kernel before
        # the next read.
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        while n := readinto(view):
            yield view[:n]
        return
    read = getattr(source, "read", None)
    if read is not None:
        while data := read(chunk_size):
            yield data
        return
    for data in source:
        yield from split_chunks(data, chunk_size)
