"""Wire protocol of the ctl socket, sans-IO.

The ctl socket is a unix domain socket named ``ctl`` in the data directory.
``mox`` subcommands connect to it to ask the running ``mox serve`` to do
things (add an account, import an mbox, export a queue message, ...). One
connection carries exactly one command. This module holds the framing, the
limits and the flow-control bookkeeping; it does no I/O (like h11), so every
edge case is a plain unit test. The asyncio server side is in
``mox.ctl.server``, the blocking client side in ``mox.ctl.client``.

This is our own protocol, not upstream's ("ctlv0", newline-delimited lines with
decimal length prefixes): the greeting tells the two apart.

Greeting
========

On connect, the server sends one line::

    ctlv1\\n

The client checks it before sending anything and fails with a clear error on
a mismatch (an upstream mox sends ``ctlv0``). It is a text line, not a frame,
so that a human poking at the socket with ``socat`` sees what it is talking to,
and so that an upstream ``ctlv0`` greeting reads as a version mismatch instead
of garbage.

Frames
======

Everything after the greeting is a frame::

    +------+------------------------+------------------+
    | kind | length, uint32 big end | payload (length) |
    +------+------------------------+------------------+
      1 byte        4 bytes

======  ========  ==========================================================
kind    payload   meaning
======  ========  ==========================================================
``J``   JSON      A JSON value (UTF-8, RFC 8259), at most 1 MiB.
``D``   bytes     A chunk of a data stream, 1 byte to 1 MiB.
``E``   empty     End of a data stream (sent by the stream's sender).
``A``   empty     Acknowledgement of one ``D``, ``E`` or ``X`` (by the receiver).
``X``   UTF-8     Abort of a data stream, with a message (either side).
``K``   JSON      Final status "ok", with the command's result (often null).
``F``   UTF-8     Final status "error", with a message for the user.
======  ========  ==========================================================

Text payloads are limited to 1 MiB too (longer messages are truncated by the
sender). A header announcing more than the limit, an unknown kind, a non-empty
``E``/``A``, an empty ``D``, invalid JSON or invalid UTF-8 is a
:class:`ProtocolError`; the decoder never raises anything else.

Exchange
========

::

    S→C  "ctlv1\\n"
    C→S  J {"cmd": "config account add", "args": ["mjl", "mjl@example.org"]}
         ... command-specific: J frames and data streams, in either direction ...
    S→C  K <result>   or   F <message>

then the server closes the connection. The server may send ``F`` at any point
(e.g. a bad argument before the client's stream was read); a client that is
sending when that happens finds ``F`` where it expected an ``A``, or its writes
fail and ``F`` is waiting in its receive buffer.

Data streams and flow control
=============================

A stream is a sequence of ``D`` frames terminated by ``E`` (complete) or ``X``
(the sender gave up, e.g. its source file failed). The receiver answers every
``D``, ``E`` and ``X`` with one ``A``, and sends the ``A`` for a ``D`` only
after it has *consumed* that chunk (the sink returned; for an iterator: when
the consumer asks for the next chunk). The sender keeps at most
:data:`STREAM_WINDOW` frames unacknowledged, and after its terminator waits for
all outstanding ``A``. So at most ``STREAM_WINDOW * MAX_CHUNK_SIZE`` bytes of a
stream are ever in flight or queued, whatever the stream's size; and since the
sender always reads acks before blocking for the window, a connection with no
kernel buffer space at all cannot deadlock.

The receiver can abort: instead of an ``A`` it sends ``X <message>``, then
discards incoming frames up to and including the sender's terminator
(``E`` or ``X``), acknowledging nothing more. A sender that reads an ``X``
stops, sends ``E`` if it has not yet terminated the stream, and reports the
abort to its caller. Both sides are then at the same point of the exchange.

Decisions: acks are per chunk, not per byte count, which keeps the bookkeeping
one integer. A window of a few 256 KiB chunks lets the sender produce the next
chunk while the receiver consumes the previous one (stop-and-wait, window 1,
measured at roughly half the throughput with bench/ctl_stream.py) and bounds
what is in flight to about a megabyte. The window is fixed, not negotiated:
both ends are the same program.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

VERSION: Final = "ctlv1"
"""Protocol version sent in the greeting; bumped on incompatible changes."""

GREETING: Final = VERSION.encode("ascii") + b"\n"

MAX_GREETING_SIZE: Final = 64
"""Longest greeting line accepted, newline included (upstream's is 6 bytes)."""

MAX_TEXT_FRAME_SIZE: Final = 1024 * 1024
"""Limit for J, K, F and X payloads. Large data goes in streams, never JSON."""

MAX_CHUNK_SIZE: Final = 1024 * 1024
"""Largest D payload a receiver accepts."""

DEFAULT_CHUNK_SIZE: Final = 256 * 1024
"""D payload size senders use: large enough that per-frame overhead (a header,
an ack, a wake-up) is noise, small enough that the window stays small."""

STREAM_WINDOW: Final = 4
"""Unacknowledged stream frames a sender may have outstanding."""

HEADER_SIZE: Final = 5
_HEADER = struct.Struct(">cI")

KIND_JSON: Final = b"J"
KIND_DATA: Final = b"D"
KIND_END: Final = b"E"
KIND_ACK: Final = b"A"
KIND_ABORT: Final = b"X"
KIND_OK: Final = b"K"
KIND_ERROR: Final = b"F"

_KIND_NAMES: Final = {
    KIND_JSON: "json",
    KIND_DATA: "data",
    KIND_END: "end",
    KIND_ACK: "ack",
    KIND_ABORT: "abort",
    KIND_OK: "ok",
    KIND_ERROR: "error",
}


class CtlError(Exception):
    """Base of every ctl error. As raised by the client for an ``F`` status,
    the message is the server's error message, ready to show to the user."""

    @property
    def message(self) -> str:
        return str(self)


class ProtocolError(CtlError):
    """The peer violated the protocol (bad frame, wrong greeting, a frame that
    is not allowed at this point), or a local frame would exceed a limit."""


class ConnectionClosed(CtlError):
    """The connection was closed or broke before the exchange was complete."""


class StreamAborted(CtlError):
    """The other side aborted a data stream; the message says why."""


# Frames. Small immutable values; the decoder produces them, the I/O layers
# match on them.


@dataclass(frozen=True, slots=True)
class Greeting:
    version: str


@dataclass(frozen=True, slots=True)
class JsonFrame:
    value: Any


@dataclass(frozen=True, slots=True)
class DataFrame:
    data: bytes


@dataclass(frozen=True, slots=True)
class EndFrame:
    pass


@dataclass(frozen=True, slots=True)
class AckFrame:
    pass


@dataclass(frozen=True, slots=True)
class AbortFrame:
    message: str


@dataclass(frozen=True, slots=True)
class OkFrame:
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    message: str


Frame = JsonFrame | DataFrame | EndFrame | AckFrame | AbortFrame | OkFrame | ErrorFrame

END_FRAME_BYTES: Final = _HEADER.pack(KIND_END, 0)
ACK_FRAME_BYTES: Final = _HEADER.pack(KIND_ACK, 0)


def frame_name(frame: Frame | Greeting) -> str:
    """Short name of a frame for error messages ("ack", "json", ...)."""
    match frame:
        case Greeting():
            return "greeting"
        case JsonFrame():
            return "json"
        case DataFrame():
            return "data"
        case EndFrame():
            return "end"
        case AckFrame():
            return "ack"
        case AbortFrame():
            return "abort"
        case OkFrame():
            return "ok"
        case ErrorFrame():
            return "error"


# Encoding.


def _json_bytes(value: Any) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON (RFC 8259 section 6).
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _sized(kind: bytes, payload: bytes, what: str) -> bytes:
    if len(payload) > MAX_TEXT_FRAME_SIZE:
        raise ProtocolError(f"{what} of {len(payload)} bytes exceeds limit of {MAX_TEXT_FRAME_SIZE} bytes")
    return _HEADER.pack(kind, len(payload)) + payload


def encode_json(value: Any) -> bytes:
    """Encode a J frame.

    Raises:
        TypeError, ValueError: value is not JSON-serialisable.
        ProtocolError: the encoded value exceeds MAX_TEXT_FRAME_SIZE.
    """
    return _sized(KIND_JSON, _json_bytes(value), "json frame")


def encode_ok(result: Any) -> bytes:
    """Encode a K (final "ok") frame carrying result; raises like encode_json."""
    return _sized(KIND_OK, _json_bytes(result), "json result")


def _text_payload(message: str) -> bytes:
    data = message.encode("utf-8", errors="replace")
    if len(data) > MAX_TEXT_FRAME_SIZE:
        # Cut on a character boundary; a message this long is a bug anyway.
        data = data[: MAX_TEXT_FRAME_SIZE - 3].decode("utf-8", errors="ignore").encode("utf-8") + b"..."
    return data


def encode_error(message: str) -> bytes:
    """Encode an F (final "error") frame; overlong messages are truncated."""
    payload = _text_payload(message)
    return _HEADER.pack(KIND_ERROR, len(payload)) + payload


def encode_abort(message: str) -> bytes:
    """Encode an X (stream abort) frame; overlong messages are truncated."""
    payload = _text_payload(message)
    return _HEADER.pack(KIND_ABORT, len(payload)) + payload


def data_header(size: int) -> bytes:
    """Header of a D frame; the caller writes the payload after it, uncopied."""
    if not 0 < size <= MAX_CHUNK_SIZE:
        raise ValueError(f"data chunk size {size} not in 1..{MAX_CHUNK_SIZE}")
    return _HEADER.pack(KIND_DATA, size)


def write_all(file: IO[bytes], data: bytes) -> None:
    """Write all of data to a binary file; raw (unbuffered) files may take
    less than offered per call. Used by both sides' stream-to-file sinks."""
    view = memoryview(data)
    while view:
        n = file.write(view)
        if n is None or n >= len(view):
            return
        view = view[n:]


# Decoding.


def parse_greeting(line: bytes) -> Greeting:
    """Parse a greeting line (newline included)."""
    if not line.endswith(b"\n"):
        raise ProtocolError("greeting not terminated by newline")
    try:
        text = line[:-1].decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"greeting is not ascii: {line[:-1]!r}") from None
    if not text.isprintable():
        raise ProtocolError(f"greeting has unprintable characters: {text!r}")
    return Greeting(text)


def check_header(kind: bytes, size: int) -> None:
    """Check a frame's kind and payload length; raises ProtocolError."""
    if kind not in _KIND_NAMES:
        raise ProtocolError(f"unknown frame kind {kind!r}")
    if kind in (KIND_END, KIND_ACK):
        if size != 0:
            raise ProtocolError(f"{_KIND_NAMES[kind]} frame with {size} bytes payload, must be empty")
    elif kind == KIND_DATA:
        if size == 0:
            raise ProtocolError("empty data frame")
        if size > MAX_CHUNK_SIZE:
            raise ProtocolError(f"data frame of {size} bytes exceeds limit of {MAX_CHUNK_SIZE} bytes")
    elif size > MAX_TEXT_FRAME_SIZE:
        raise ProtocolError(
            f"{_KIND_NAMES[kind]} frame of {size} bytes exceeds limit of {MAX_TEXT_FRAME_SIZE} bytes"
        )


def _decode_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError; deeply
        # nested arrays ("[[[[...") exhaust the recursion limit instead.
        raise ProtocolError(f"invalid json in frame: {str(exc)[:200]}") from None


def _decode_text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("invalid utf-8 in message frame") from None


def decode_payload(kind: bytes, payload: bytes) -> Frame:
    """Build the frame for a header already checked by check_header."""
    if kind == KIND_DATA:
        return DataFrame(payload)
    if kind == KIND_ACK:
        return AckFrame()
    if kind == KIND_END:
        return EndFrame()
    if kind == KIND_JSON:
        return JsonFrame(_decode_json(payload))
    if kind == KIND_OK:
        return OkFrame(_decode_json(payload))
    if kind == KIND_ABORT:
        return AbortFrame(_decode_text(payload))
    if kind == KIND_ERROR:
        return ErrorFrame(_decode_text(payload))
    raise ProtocolError(f"unknown frame kind {kind!r}")  # check_header already refused it


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, take frames out.

    Holds at most one partial frame plus whatever was fed since, so with
    bounded reads its memory is bounded by MAX_CHUNK_SIZE plus a read.

    Args:
        expect_greeting: first parse the server's greeting line (client side).
    """

    def __init__(self, *, expect_greeting: bool = False) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._expect_greeting = expect_greeting
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned as frames."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes."""
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def take_buffered(self) -> bytes:
        """Remove and return undecoded bytes (when switching to a raw byte
        stream after the exchange, see CtlConn.detach)."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data

    def next_frame(self) -> Frame | Greeting | None:
        """Return the next complete frame, or None if more bytes are needed.

        Raises:
            ProtocolError: the bytes are not a valid frame. The decoder then
                stays failed: the stream cannot be resynchronised.
        """
        if self._failed is not None:
            raise self._failed
        try:
            return self._next()
        except ProtocolError as exc:
            self._failed = exc
            raise

    def _next(self) -> Frame | Greeting | None:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if self._expect_greeting:
            end = buf.find(b"\n", pos, pos + MAX_GREETING_SIZE)
            if end < 0:
                if avail >= MAX_GREETING_SIZE:
                    raise ProtocolError(
                        f"greeting longer than {MAX_GREETING_SIZE} bytes: {bytes(buf[pos : pos + 20])!r}..."
                    )
                return None
            self._expect_greeting = False
            line = bytes(buf[pos : end + 1])
            self._consume(end + 1 - pos)
            return parse_greeting(line)
        if avail < HEADER_SIZE:
            return None
        kind, size = _HEADER.unpack_from(buf, pos)
        check_header(kind, size)
        if avail < HEADER_SIZE + size:
            return None
        start = pos + HEADER_SIZE
        with memoryview(buf) as view:
            payload = bytes(view[start : start + size])  # one copy, not two
        self._consume(HEADER_SIZE + size)
        return decode_payload(kind, payload)

    def _consume(self, n: int) -> None:
        self._pos += n
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos > MAX_CHUNK_SIZE:
            # Compact now and then, so the buffer does not grow with the stream.
            del self._buf[: self._pos]
            self._pos = 0


class SendWindow:
    """Sender-side bookkeeping for one outgoing data stream.

    The I/O layer calls sent_chunk/sent_end/sent_abort after writing a frame,
    and on_response for every frame the receiver sends back; it reads a
    response whenever ``full`` and, after the terminator, until ``done``.
    """

    def __init__(self, window: int = STREAM_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.outstanding = 0
        self.terminated = False
        self.peer_abort: str | None = None

    @property
    def full(self) -> bool:
        return self.outstanding >= self.window

    @property
    def done(self) -> bool:
        return self.peer_abort is not None or (self.terminated and self.outstanding == 0)

    def sent_chunk(self) -> None:
        assert not self.terminated and self.peer_abort is None
        self.outstanding += 1

    def sent_terminator(self) -> None:
        assert not self.terminated
        self.terminated = True
        self.outstanding += 1

    def on_response(self, frame: Frame | Greeting) -> None:
        """Account for one frame from the receiver.

        Raises:
            ProtocolError: anything but an ack or abort, or an ack for
                nothing. (An F status is the I/O layer's business; it checks
                for it before calling this.)
        """
        match frame:
            case AckFrame():
                if self.outstanding == 0:
                    raise ProtocolError("ack without outstanding stream frame")
                self.outstanding -= 1
            case AbortFrame(message):
                self.peer_abort = message
            case _:
                raise ProtocolError(f"unexpected {frame_name(frame)} frame during data stream, expected ack")


def split_chunks(data: bytes | bytearray | memoryview, chunk_size: int) -> Iterator[bytes | bytearray | memoryview]:
    """Pieces of at most chunk_size bytes (views, no copies); nothing for empty data."""
    if len(data) <= chunk_size:
        if data:
            yield data
        return
    view = memoryview(data)
    for i in range(0, len(data), chunk_size):
        yield view[i : i + chunk_size]
