"""Reply parsing (sans-IO): multiline replies, enhanced codes, bounds; hypothesis over random input and splits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mox.smtpclient.reply import (
    MAX_REPLY_LINE,
    ReplyParseError,
    ReplyReader,
    parse_enhanced,
    parse_reply_line,
)


def replies(data: bytes, enhanced: bool = True) -> list[tuple[int, str, tuple[str, ...]]]:
    r = ReplyReader()
    r.enhanced_codes = enhanced
    r.feed(data)
    out = []
    while (rep := r.next_reply()) is not None:
        out.append((rep.code, rep.enhanced, rep.lines))
    return out


def test_single_and_multiline() -> None:
    assert replies(b"250 2.1.0 ok\r\n") == [(250, "2.1.0", ("ok",))]
    assert replies(b"250-first\r\n250-second\r\n250 third\r\n", enhanced=False) == [
        (250, "", ("first", "second", "third"))
    ]
    # RFC 2034: the code repeats on every line; removed from each.
    assert replies(b"550-5.7.1 one\r\n550 5.7.1 two\r\n") == [(550, "5.7.1", ("one", "two"))]
    # Enhanced codes only once announced.
    assert replies(b"250 2.1.0 ok\r\n", enhanced=False) == [(250, "", ("2.1.0 ok",))]
    # Code only, bare LF, several replies in one piece.
    assert replies(b"250\n354 go\r\n221 2.0.0 bye\r\n") == [
        (250, "", ("",)),
        (354, "", ("go",)),
        (221, "2.0.0", ("bye",)),
    ]


def test_enhanced_class_must_match() -> None:
    assert parse_enhanced(550, "5.1.1 no such user") == ("5.1.1", "no such user")
    assert parse_enhanced(550, "4.1.1 mismatch") == ("", "4.1.1 mismatch")
    assert parse_enhanced(250, "2.0.0") == ("2.0.0", "")
    assert parse_enhanced(250, "2.0.0x") == ("", "2.0.0x")
    assert parse_enhanced(451, "4.03.001 padded") == ("4.3.1", "padded")
    assert parse_enhanced(451, "4.1234.1 too long") == ("", "4.1234.1 too long")


def test_reply_properties() -> None:
    r = ReplyReader()
    r.enhanced_codes = True
    r.feed(b"452 4.5.3 too many recipients\r\n")
    rep = r.next_reply()
    assert rep is not None
    assert rep.temporary and not rep.permanent and not rep.positive
    assert rep.secode == "5.3" and rep.text == "too many recipients"
    assert rep.first_line == "452 4.5.3 too many recipients"


@pytest.mark.parametrize(
    "data",
    [
        b"hello\r\n",
        b"25 short\r\n",
        b"650 bad class\r\n",
        b"250xno separator\r\n",
        b"250-one\r\n550 two\r\n",  # Different codes in one reply.
    ],
)
def test_malformed(data: bytes) -> None:
    r = ReplyReader()
    r.feed(data)
    with pytest.raises(ReplyParseError):
        r.next_reply()
    # Stays failed.
    with pytest.raises(ReplyParseError):
        r.feed(b"250 ok\r\n")


def test_long_line_bounded() -> None:
    r = ReplyReader()
    r.feed(b"250-" + b"x" * 100)
    assert r.next_reply() is None
    with pytest.raises(ReplyParseError, match="longer than"):
        for _ in range(200):
            r.feed(b"x" * 1000)
    assert r.buffered == 0  # Buffer dropped, not grown.
    # A complete line just over the limit.
    r = ReplyReader()
    with pytest.raises(ReplyParseError):
        r.feed(b"250 " + b"x" * MAX_REPLY_LINE + b"\r\n")
        r.next_reply()
    # Exactly at the limit is fine.
    r = ReplyReader()
    r.feed(b"250 " + b"x" * (MAX_REPLY_LINE - 6) + b"\r\n")
    rep = r.next_reply()
    assert rep is not None and len(rep.lines[0]) == MAX_REPLY_LINE - 6


def test_too_many_lines() -> None:
    r = ReplyReader(max_lines=5)
    r.feed(b"250-x\r\n" * 10)
    with pytest.raises(ReplyParseError, match="more than 5 lines"):
        r.next_reply()


def test_take_buffered() -> None:
    r = ReplyReader()
    r.feed(b"220 go ahead\r\n\x16\x03\x01")
    assert r.next_reply() is not None
    assert r.buffered == 3 and r.take_buffered() == b"\x16\x03\x01" and r.buffered == 0


def test_utf8_text() -> None:
    assert replies("250 2.0.0 grüße\r\n".encode()) == [(250, "2.0.0", ("grüße",))]
    assert replies(b"250 \xff\r\n")[0][2] == ("\ufffd",)


_codes = st.sampled_from([220, 250, 354, 421, 450, 452, 550, 554])
_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@st.composite
def wire_replies(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, tuple[str, ...]]]]:
    n = draw(st.integers(1, 4))
    data = b""
    expect = []
    for _ in range(n):
        code = draw(_codes)
        lines = draw(st.lists(_text, min_size=1, max_size=4))
        for i, ln in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            data += f"{code}{sep}{ln}\r\n".encode()
        expect.append((code, tuple(lines)))
    return data, expect


@given(wire_replies(), st.lists(st.integers(1, 50), max_size=10))
def test_split_anywhere(sample: tuple[bytes, list[tuple[int, tuple[str, ...]]]], cuts: list[int]) -> None:
    """Fed in arbitrary pieces, the same replies come out as fed at once."""
    data, expect = sample
    r = ReplyReader()
    got = []
    pos = 0
    for c in [*cuts, len(data)]:
        r.feed(data[pos : pos + c])
        pos += c
        while (rep := r.next_reply()) is not None:
            got.append((rep.code, rep.lines))
    r.feed(data[pos:])
    while (rep := r.next_reply()) is not None:
        got.append((rep.code, rep.lines))
    assert got == expect


@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    """Any input gives replies or ReplyParseError, never another exception."""
    r = ReplyReader(max_line=64)
    r.enhanced_codes = True
    try:
        r.feed(data)
        while r.next_reply() is not None:
            pass
    except ReplyParseError:
        pass
    assert r.buffered <= max(len(data), 64)


@given(st.binary(max_size=80))
def test_parse_line_random(line: bytes) -> None:
    try:
        rl = parse_reply_line(line)
    except ReplyParseError:
        return
    assert 200 <= rl.code <= 599


@given(st.integers(200, 599), st.text(max_size=30))
def test_parse_enhanced_random(code: int, text: str) -> None:
    enhanced, rest = parse_enhanced(code, text)
    if enhanced:
        assert enhanced.startswith(str(code // 100) + ".")
        assert text.endswith(rest)
    else:
        assert rest == text
