"""The mbox format: separators, mboxrd quoting, line endings, flag headers, positions of skipped messages."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.store.mbox import (
    ImportMessage,
    ImportProblem,
    MboxFormatError,
    MboxReader,
    MessageCounter,
    mbox_entry,
    parse_from_line_date,
    quote_from,
    split_meta_headers,
    to_crlf,
    to_lf,
    unquote_from,
)
from mox.store.model import Flags

JAN1 = float(calendar.timegm((2022, 1, 1, 0, 0, 0)))


def read_all(data: bytes, chunk: int = 0, **kw: int) -> list[ImportMessage | ImportProblem]:
    r = MboxReader("test.mbox", **kw)
    out: list[ImportMessage | ImportProblem] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        out += r.feed(data[i : i + step])
    return out + r.close()


def messages(items: list[ImportMessage | ImportProblem]) -> list[ImportMessage]:
    assert all(isinstance(i, ImportMessage) for i in items), items
    return [i for i in items if isinstance(i, ImportMessage)]


# Byte strings without bare LF, as the store holds them: lines ending CRLF, any other bytes (CR too).
crlf_lines = st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=8)
stored_messages = st.builds(
    lambda lines, last: b"".join(x + b"\r\n" for x in lines) + last,
    crlf_lines,
    st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
)


@given(stored_messages)
def test_line_ending_conversion_round_trips(m: bytes) -> None:
    assert to_crlf(to_lf(m)) == m
    assert b"\r\n" not in to_lf(m).replace(b"\r\r\n", b"")


def test_to_crlf_turns_bare_lf_into_crlf_and_keeps_crlf() -> None:
    assert to_crlf(b"a\nb\r\nc\r\r\nd") == b"a\r\nb\r\nc\r\r\nd"
    assert to_lf(b"a\r\nb\r\r\nc\r") == b"a\nb\r\r\nc\r"


@given(
    st.lists(
        st.sampled_from([b"From x", b">From x", b">>From x", b"From", b" From x", b"x From y", b""]),
        max_size=6,
    )
)
def test_mboxrd_quoting_round_trips(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    quoted = quote_from(data)
    assert unquote_from(quoted) == data
    assert not any(line.startswith(b"From ") for line in quoted.split(b"\n"))


def test_messages_start_at_from_line_after_empty_line() -> None:
    mbox = (
        b"From a@example.org Sat Jan  1 00:00:00 2022\n"
        b"Subject: one\n\nbody\nFrom here is not a separator\n\n"
        b"From b@example.org Sat Jan  1 00:00:01 2022\n"
        b"Subject: two\n\n>From quoted\n>>From twice\n\n"
    )
    ms = messages(read_all(mbox))
    assert [m.data for m in ms] == [
        b"Subject: one\r\n\r\nbody\r\nFrom here is not a separator\r\n",
        b"Subject: two\r\n\r\nFrom quoted\r\n>From twice\r\n",
    ]
    assert [m.received for m in ms] == [JAN1, JAN1 + 1]
    assert ms[1].position == "test.mbox: message 2 at byte offset 93 (line 7)"


def test_crlf_mbox_and_every_chunk_size_give_the_same_messages() -> None:
    mbox = (
        b"From a Sat Jan  1 00:00:00 2022\r\nSubject: one\r\n\r\nbody\r\n\r\n"
        b"From b Sat Jan  1 00:00:00 2022\r\n\r\nFrom c Sat Jan  1 00:00:00 2022\r\nSubject: three\r\n\r\nx\r\n"
    )
    want = [(type(i), str(i)) for i in read_all(mbox)]
    assert [w[0] for w in want] == [ImportMessage, ImportProblem, ImportMessage]
    assert "message 2 at byte offset 57 (line 6): empty message, skipped" in want[1][1]
    for chunk in range(1, len(mbox) + 1):
        assert [(type(i), str(i)) for i in read_all(mbox, chunk)] == want, chunk


def test_flag_headers_become_flags_and_are_removed() -> None:
    mbox = (
        b"From a Sat Jan  1 00:00:00 2022\n"
        b"Subject: x\nStatus: RO\nX-Status: AFTD\nX-Keywords: $Forwarded, Junk,custom  $MDNSent nonjunk Bad(kw\n"
        b"Content-Length: 3\n\nStatus: R in the body stays\n"
    )
    (m,) = messages(read_all(mbox))
    assert m.data == b"Subject: x\r\n\r\nStatus: R in the body stays\r\n"
    assert (
        m.flags
        == Flags.SEEN
        | Flags.ANSWERED
        | Flags.FLAGGED
        | Flags.DRAFT
        | Flags.DELETED
        | Flags.FORWARDED
        | Flags.JUNK
        | Flags.MDNSENT
        | Flags.NOTJUNK
    )
    assert m.keywords == ["custom"]


def test_split_meta_headers_leaves_other_fields_and_continuations() -> None:
    data = b"Status: R\r\n folded-looking first line\r\nX-Statusx: y\r\n\r\nbody"
    rest, removed = split_meta_headers(data)
    assert removed == [(b"status", b"R")]
    assert rest == b" folded-looking first line\r\nX-Statusx: y\r\n\r\nbody"


@pytest.mark.parametrize(
    ("line", "want"),
    [
        (b"From a Sat Jan  1 00:00:00 2022", JAN1),  # ANSIC
        (b"From a Sat Jan 01 00:00:00 2022\r\n", JAN1),
        (b"From a Sat Jan  1 00:00:00 UTC 2022", JAN1),  # UnixDate
        (b"From a Sat Jan 01 01:00:00 +0100 2022", JAN1),  # RubyDate
        (b"From MAILER-DAEMON Fri Dec 31 19:00:00 -0500 2021", JAN1),
        (b"From a", None),
        (b"From a yesterday", None),
        (b"From a Sat Foo  1 00:00:00 2022", None),
        (b"From a Sat Feb 31 00:00:00 2022", float(calendar.timegm((2022, 3, 3, 0, 0, 0)))),
    ],
)
def test_from_line_dates(line: bytes, want: float | None) -> None:
    assert parse_from_line_date(line) == want


def test_date_header_is_used_when_from_line_has_no_date() -> None:
    (m,) = messages(read_all(b"From someone\nDate: Sat, 1 Jan 2022 02:00:00 +0200\nSubject: x\n\nhi\n"))
    assert m.received == JAN1
    (m,) = messages(read_all(b"From someone\nSubject: x\n\nhi\n"))
    assert m.received is None


def test_data_that_is_not_an_mbox_is_refused() -> None:
    with pytest.raises(MboxFormatError, match="does not start with"):
        read_all(b"Subject: not an mbox\n\nbody\n")
    assert read_all(b"") == []


def test_too_large_message_is_skipped_with_position_and_the_next_is_read() -> None:
    big = b"x" * 80 + b"\n"
    mbox = (
        b"From a Sat Jan  1 00:00:00 2022\nSubject: 1\n\nsmall\n\n"
        b"From b Sat Jan  1 00:00:00 2022\nSubject: 2\n\n" + big * 40 + b"\n"
        b"From c Sat Jan  1 00:00:00 2022\nSubject: 3\n\nsmall\n"
    )
    for chunk in (0, 7, 100, 1000):
        items = read_all(mbox, chunk, max_message_size=1000)
        assert [type(i) for i in items] == [ImportMessage, ImportProblem, ImportMessage], chunk
        assert (
            str(items[1])
            == "test.mbox: message 2 at byte offset 51 (line 6): message larger than 1000 bytes, skipped"
        )
        assert isinstance(items[2], ImportMessage) and items[2].data == b"Subject: 3\r\n\r\nsmall\r\n"
        assert items[2].position.startswith("test.mbox: message 3 ")


def test_last_message_without_final_newline_and_without_separator() -> None:
    (m,) = messages(read_all(b"From a Sat Jan  1 00:00:00 2022\nSubject: x\n\nno newline"))
    assert m.data == b"Subject: x\r\n\r\nno newline"
    (m,) = messages(read_all(b"From a Sat Jan  1 00:00:00 2022\nSubject: x\n\nbody\n\n\n"))
    assert m.data == b"Subject: x\r\n\r\nbody\r\n\r\n"


def test_writer_output() -> None:
    data = b"Subject: x\r\nStatus: O\r\n\r\nFrom me\r\n>From you\r\nlast"
    e = mbox_entry(data, Flags.SEEN | Flags.ANSWERED | Flags.JUNK, ["custom"], JAN1, "a@example.org")
    assert e == (
        b"From a@example.org Sat Jan  1 00:00:00 2022\n"
        b"Status: R\nX-Status: A\nX-Keywords: $Junk,custom\n"
        b"Subject: x\n\n>From me\n>>From you\nlast\n\n"
    )
    assert mbox_entry(b"", Flags.NONE, [], JAN1, "has space") == b"From mox Sat Jan  1 00:00:00 2022\n\n"


flags_st = st.builds(Flags, st.integers(0, 1023))
keywords_st = st.lists(st.text("abcxyz$_-.,", min_size=1, max_size=6), max_size=3).map(
    lambda ks: sorted(
        {k for k in ks if k not in ("$junk", "$forwarded", "$notjunk", "$phishing", "$mdnsent")} - {","}
    )
)


def _line_st() -> st.SearchStrategy[bytes]:
    special = st.sampled_from(
        [b"From x", b">From x", b">>From x", b"From", b"", b"Status: R", b"\r", b"\x00\xff\x80"]
    )
    return st.one_of(special, st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")))


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from([b"Subject: s", b"From: a@b", b"X: y"]), min_size=1, max_size=2),
            st.lists(_line_st(), max_size=6),
            flags_st,
            keywords_st,
            st.integers(0, 2**31),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_export_then_import_gives_back_messages_flags_and_keywords(
    msgs: list[tuple[list[bytes], list[bytes], Flags, list[str], int]],
) -> None:
    stored = []
    mbox = b""
    for head, body, flags, keywords, t in msgs:
        data = b"".join(h + b"\r\n" for h in head) + b"\r\n" + b"".join(line + b"\r\n" for line in body)
        # Keywords with a comma cannot survive X-Keywords (as upstream writes it).
        keywords = [k for k in keywords if "," not in k]
        stored.append((data, flags, keywords, float(t)))
        mbox += mbox_entry(data, flags, keywords, float(t))
    got = messages(read_all(mbox))
    assert [(m.data, m.flags, m.keywords, m.received) for m in got] == stored
    counter = MessageCounter()
    for i in range(0, len(mbox), 5):
        counter.feed(mbox[i : i + 5])
    assert counter.count == len(stored)


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            [
                b"From a Sat Jan  1 00:00:00 2022",
                b"From b",
                b"",
                b"\r",
                b">From x",
                b"Subject: y",
                b"x" * 40,
                b"Status: RO",
            ]
        ),
        max_size=25,
    ),
    st.sampled_from([b"\n", b"\r\n"]),
    st.integers(1, 50),
    st.integers(10, 200),
)
def test_any_chunking_and_size_limit_give_the_same_result(
    lines: list[bytes], nl: bytes, chunk: int, limit: int
) -> None:
    data = b"From first Sat Jan  1 00:00:00 2022" + nl + nl.join(lines)
    whole = [(type(i), str(i)) for i in read_all(data, max_message_size=limit)]
    assert [(type(i), str(i)) for i in read_all(data, chunk, max_message_size=limit)] == whole
    # Every message is accounted for: imported or reported.
    r = MboxReader(max_message_size=limit)
    n = len(r.feed(data) + r.close())
    assert n == r.messages
