"""Frame encoding/decoding and stream bookkeeping of the ctl protocol (sans-IO)."""

from __future__ import annotations

import contextlib
import io
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.ctl.protocol import (
    ACK_FRAME_BYTES,
    END_FRAME_BYTES,
    GREETING,
    MAX_CHUNK_SIZE,
    MAX_GREETING_SIZE,
    MAX_TEXT_FRAME_SIZE,
    VERSION,
    AbortFrame,
    AckFrame,
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
    data_header,
    encode_abort,
    encode_error,
    encode_json,
    encode_ok,
    write_all,
)


def encode(frame: Frame) -> bytes:
    match frame:
        case JsonFrame(value):
            return encode_json(value)
        case OkFrame(result):
            return encode_ok(result)
        case ErrorFrame(message):
            return encode_error(message)
        case AbortFrame(message):
            return encode_abort(message)
        case DataFrame(data):
            return data_header(len(data)) + data
        case EndFrame():
            return END_FRAME_BYTES
        case AckFrame():
            return ACK_FRAME_BYTES
    raise AssertionError(frame)


def decode_all(data: bytes, *, expect_greeting: bool = False, step: int = 0) -> list[Frame | Greeting]:
    dec = FrameDecoder(expect_greeting=expect_greeting)
    out: list[Frame | Greeting] = []
    pieces = [data] if step == 0 else [data[i : i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        dec.feed(piece)
        while (frame := dec.next_frame()) is not None:
            out.append(frame)
    return out


def header(kind: bytes, size: int) -> bytes:
    return struct.pack(">cI", kind, size)


SAMPLE_FRAMES: list[Frame] = [
    JsonFrame({"cmd": "config account add", "args": ["mjl", "mjl@example.org"]}),
    JsonFrame("ünïcode ☃"),
    DataFrame(b"\x00\xffbinary\r\n"),
    EndFrame(),
    AckFrame(),
    AbortFrame("disk full"),
    OkFrame(None),
    OkFrame({"n": 1, "list": [1.5, True, None]}),
    ErrorFrame('account "x" does not exist'),
]


def test_every_frame_kind_roundtrips_even_when_fed_byte_by_byte() -> None:
    wire = GREETING + b"".join(encode(f) for f in SAMPLE_FRAMES)
    assert decode_all(wire, expect_greeting=True, step=1) == [Greeting(VERSION), *SAMPLE_FRAMES]
    assert decode_all(wire, expect_greeting=True) == [Greeting(VERSION), *SAMPLE_FRAMES]


def test_greeting_of_upstream_mox_parses_as_other_version() -> None:
    assert decode_all(b"ctlv0\n", expect_greeting=True) == [Greeting("ctlv0")]


def test_overlong_greeting_is_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="greeting longer"):
        decode_all(b"x" * MAX_GREETING_SIZE, expect_greeting=True)


def test_incomplete_frame_waits_for_more_bytes() -> None:
    dec = FrameDecoder()
    dec.feed(encode_json([1, 2, 3])[:-1])
    assert dec.next_frame() is None
    assert dec.buffered > 0
    dec.feed(b"]")
    assert dec.next_frame() == JsonFrame([1, 2, 3])
    assert dec.buffered == 0


def test_oversized_json_frame_header_is_refused_before_payload_arrives() -> None:
    dec = FrameDecoder()
    dec.feed(header(b"J", MAX_TEXT_FRAME_SIZE + 1))
    with pytest.raises(
        ProtocolError, match=f"json frame of {MAX_TEXT_FRAME_SIZE + 1} bytes exceeds limit of"
    ):
        dec.next_frame()


def test_decoder_stays_failed_after_protocol_error() -> None:
    dec = FrameDecoder()
    dec.feed(b"Z\x00\x00\x00\x00")
    with pytest.raises(ProtocolError, match="unknown frame kind"):
        dec.next_frame()
    dec.feed(ACK_FRAME_BYTES)
    with pytest.raises(ProtocolError, match="unknown frame kind"):
        dec.next_frame()


def test_encoding_json_over_limit_is_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="exceeds limit"):
        encode_json("x" * MAX_TEXT_FRAME_SIZE)
    with pytest.raises(ProtocolError, match="exceeds limit"):
        encode_ok(["x" * MAX_TEXT_FRAME_SIZE])


def test_json_that_is_not_json_is_refused_when_encoding() -> None:
    with pytest.raises(ValueError):
        encode_json(float("nan"))
    with pytest.raises(TypeError):
        encode_json(object())


def test_overlong_error_message_is_truncated_not_refused() -> None:
    frames = decode_all(encode_error("é" * MAX_TEXT_FRAME_SIZE))
    assert len(frames) == 1
    assert isinstance(frames[0], ErrorFrame)
    assert frames[0].message.endswith("...")
    assert len(frames[0].message.encode()) <= MAX_TEXT_FRAME_SIZE


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (header(b"A", 1) + b"x", "ack frame with 1 bytes payload"),
        (header(b"E", 3) + b"abc", "end frame with 3 bytes payload"),
        (header(b"D", 0), "empty data frame"),
        (header(b"D", MAX_CHUNK_SIZE + 1), "data frame of .* exceeds limit"),
        (header(b"F", MAX_TEXT_FRAME_SIZE + 1), "error frame of .* exceeds limit"),
        (header(b"J", 3) + b"{x}", "invalid json"),
        (header(b"K", 2) + b"\xff\xfe", "invalid json"),
        (header(b"X", 2) + b"\xff\xfe", "invalid utf-8"),
        (header(b"J", 200_000) + b"[" * 200_000, "invalid json"),  # RecursionError inside json
        (b"j\x00\x00\x00\x00", "unknown frame kind"),
    ],
)
def test_malformed_frames_are_protocol_errors(wire: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_all(wire)


def test_data_header_refuses_sizes_the_receiver_would_refuse() -> None:
    with pytest.raises(ValueError):
        data_header(0)
    with pytest.raises(ValueError):
        data_header(MAX_CHUNK_SIZE + 1)


@settings(max_examples=500)
@given(data=st.binary(max_size=4096), greeting=st.booleans(), step=st.integers(min_value=0, max_value=17))
def test_arbitrary_bytes_give_frames_or_protocol_error_only(data: bytes, greeting: bool, step: int) -> None:
    # The property: decoding ends normally or with ProtocolError, never another exception.
    with contextlib.suppress(ProtocolError):
        decode_all(data, expect_greeting=greeting, step=step)


# Arbitrary bytes rarely form a valid header; also mutate valid streams, which
# reaches the payload decoders (JSON, UTF-8) far more often.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    json_values.map(JsonFrame),
    json_values.map(OkFrame),
    st.binary(min_size=1, max_size=64).map(DataFrame),
    st.just(EndFrame()),
    st.just(AckFrame()),
    st.text(max_size=30).map(AbortFrame),
    st.text(max_size=30).map(ErrorFrame),
)


@given(st.lists(frames, max_size=12), st.integers(min_value=0, max_value=9))
def test_valid_frame_sequences_roundtrip_in_any_split(seq: list[Frame], step: int) -> None:
    wire = b"".join(encode(f) for f in seq)
    assert decode_all(wire, step=step) == seq


@settings(max_examples=500)
@given(st.lists(frames, min_size=1, max_size=6), st.data())
def test_mutated_frame_sequences_give_frames_or_protocol_error_only(
    seq: list[Frame], data: st.DataObject
) -> None:
    wire = bytearray(b"".join(encode(f) for f in seq))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
        wire[i] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(wire)))
    with contextlib.suppress(ProtocolError):
        decode_all(bytes(wire[:cut]), step=data.draw(st.integers(min_value=0, max_value=7)))


def test_send_window_blocks_at_window_and_counts_acks() -> None:
    win = SendWindow(2)
    win.sent_chunk()
    assert not win.full
    win.sent_chunk()
    assert win.full
    win.on_response(AckFrame())
    assert not win.full
    win.sent_terminator()
    assert not win.done
    win.on_response(AckFrame())
    win.on_response(AckFrame())
    assert win.done
    with pytest.raises(ProtocolError, match="ack without outstanding"):
        win.on_response(AckFrame())


def test_send_window_abort_ends_stream_and_other_frames_are_errors() -> None:
    win = SendWindow()
    win.sent_chunk()
    win.on_response(AbortFrame("no space"))
    assert win.done
    assert win.peer_abort == "no space"
    with pytest.raises(ProtocolError, match="unexpected json frame during data stream"):
        SendWindow().on_response(JsonFrame(1))


def test_write_all_handles_short_writes_of_raw_files() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.data += bytes(b[:3])
            return min(3, len(b))

    f = Trickle()
    write_all(f, b"hello world")  # type: ignore[arg-type]
    assert f.data == b"hello world"
