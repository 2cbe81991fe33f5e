"""Command framing: literals, continuation, limits, arbitrary input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mox.imapproto import parse as p
from mox.imapproto.reader import (
    MAX_LINE,
    OTHER_LITERAL_MAX,
    CommandReader,
    CommandReceived,
    Event,
    NeedContinuation,
    ParseFailed,
    RawLine,
)


def events(r: CommandReader, data: bytes) -> list[Event]:
    r.receive_data(data)
    out: list[Event] = []
    while (ev := r.next_event()) is not None:
        out.append(ev)
    return out


def test_sync_literal_asks_for_continuation() -> None:
    r = CommandReader()
    assert events(r, b"a LOGIN {3}\r\n") == [NeedContinuation("a", 3)]
    assert events(r, b"bo") == []
    assert events(r, b"b pw\r\n") == [CommandReceived(p.Login("a", "LOGIN", "bob", "pw"))]


def test_literal_plus_needs_no_continuation() -> None:
    r = CommandReader()
    assert events(r, b"a LOGIN {3+}\r\nbob {2+}\r\npw\r\nb NOOP\r\n") == [
        CommandReceived(p.Login("a", "LOGIN", "bob", "pw")),
        CommandReceived(p.Simple("b", "NOOP")),
    ]


def test_literal_minus_limits_non_sync_literals() -> None:
    r = CommandReader(literal_plus=False, literal_minus=True)
    assert events(r, b"a APPEND x {4096+}\r\n" + b"x" * 4096 + b"\r\n")[0] == CommandReceived(
        p.Append("a", "APPEND", "x", [p.AppendMessage(data=b"x" * 4096)])
    )
    r = CommandReader(literal_plus=False, literal_minus=True)
    evs = events(r, b"a APPEND x {4097+}\r\n")
    assert evs == [ParseFailed("a", "non-synchronizing literal too big", "TOOBIG", True)]
    r = CommandReader(literal_plus=False)
    assert events(r, b"a APPEND x {1+}\r\n")[0].fatal  # type: ignore[union-attr]


def test_sync_literal_over_limit_refused_without_reading() -> None:
    r = CommandReader(literal_limit=10)
    assert events(r, b"a APPEND x {11}\r\n") == [ParseFailed("a", "literal too big", "TOOBIG")]
    assert events(r, b"a UID REPLACE 1 x {11}\r\n") == [ParseFailed("a", "literal too big", "TOOBIG")]
    # The client does not send the literal; the next command is read normally.
    assert events(r, b"b NOOP\r\n") == [CommandReceived(p.Simple("b", "NOOP"))]


def test_non_sync_literal_over_limit_is_fatal() -> None:
    r = CommandReader(literal_limit=10)
    assert events(r, b"a APPEND x {11+}\r\n01234567890\r\nb NOOP\r\n") == [
        ParseFailed("a", "literal too big", "TOOBIG", True)
    ]


def test_line_too_long_is_fatal() -> None:
    r = CommandReader()
    evs = events(r, b"a NOOP " + b"x" * MAX_LINE)
    assert evs == [ParseFailed("a", "line too long", None, True)]


def test_syntax_error_carries_tag_and_reading_continues() -> None:
    r = CommandReader()
    evs = events(r, b"a FROB\r\n* NOOP\r\nc NOOP\r\n")
    assert isinstance(evs[0], ParseFailed) and evs[0].tag == "a" and not evs[0].fatal
    assert isinstance(evs[1], ParseFailed) and evs[1].tag is None
    assert evs[2] == CommandReceived(p.Simple("c", "NOOP"))


def test_expect_line_for_idle_done() -> None:
    r = CommandReader()
    assert events(r, b"a IDLE\r\n") == [CommandReceived(p.Simple("a", "IDLE"))]
    r.expect_line()
    assert events(r, b"DONE\r\nb NOOP\r\n") == [RawLine(b"DONE"), CommandReceived(p.Simple("b", "NOOP"))]


def test_many_non_sync_literals_do_not_recurse() -> None:
    r = CommandReader()
    data = b"a APPEND x" + b" {1+}\r\nm" * 900 + b"\r\n"
    evs = events(r, data)
    assert isinstance(evs[0], CommandReceived)
    assert isinstance(evs[0].command, p.Append) and len(evs[0].command.messages) == 900


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"\r\n", b"{3}\r\n", b"{2+}\r\n", b"~{1}\r\n", b"a ", b"FETCH 1:* ", b"(", b")", b'"', b"{99999999999}\r\n"]),
        ),
        max_size=30,
    ),
    st.data(),
)
def test_arbitrary_input_in_arbitrary_splits_only_yields_events(chunks: list[bytes], data: st.DataObject) -> None:
    blob = b"".join(chunks)
    r = CommandReader(literal_limit=1000)
    i = 0
    n = 0
    while i < len(blob):
        j = data.draw(st.integers(i + 1, len(blob)))
        r.receive_data(blob[i:j])
        i = j
        while (ev := r.next_event()) is not None:
            n += 1
            assert n < 10000
            assert isinstance(ev, CommandReceived | NeedContinuation | RawLine | ParseFailed)
            if isinstance(ev, CommandReceived) and isinstance(ev.command, p.Simple) and ev.command.name == "IDLE":
                r.expect_line()


def test_line_split_over_many_small_reads() -> None:
    r = CommandReader()
    line = b'a LOGIN "' + b"x" * 3000 + b'" pw\r'
    for i in range(len(line)):
        assert events(r, line[i : i + 1]) == []
    evs = events(r, b"\n")
    assert evs == [CommandReceived(p.Login("a", "LOGIN", "x" * 3000, "pw"))]


def test_literals_outside_append_have_their_own_limits() -> None:
    r = CommandReader(literal_limit=10 * OTHER_LITERAL_MAX)
    assert events(r, b"a LOGIN {%d}\r\n" % (OTHER_LITERAL_MAX + 1)) == [ParseFailed("a", "literal too big", "TOOBIG")]
    assert events(r, b"a APPEND x {%d}\r\n" % (OTHER_LITERAL_MAX + 1)) == [NeedContinuation("a", OTHER_LITERAL_MAX + 1)]
    r = CommandReader()
    data = b"a SEARCH" + b" TEXT {%d+}\r\n" % OTHER_LITERAL_MAX + b"x" * OTHER_LITERAL_MAX
    evs = events(r, data * 10 + b" TEXT {1}\r\n")
    assert evs == [ParseFailed("a", "literals of command too big", "TOOBIG")]
