import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.smtp.data import BdatReader, ContentStats, DataReader


def run(
    pieces: list[bytes], max_size: int = 1 << 30, pedantic: bool = False
) -> tuple[bytes, bytes, DataReader]:
    """Feed pieces like a server would; returns (content, bytes after the end, reader)."""
    dr = DataReader(max_size, pedantic)
    buf = b""
    out = []
    for i, p in enumerate(pieces):
        buf += p
        fed = dr.feed(buf)
        out.append(fed.content)
        buf = buf[fed.consumed :]
        if fed.done:
            buf += b"".join(pieces[i + 1 :])
            break
    return b"".join(out), buf, dr


def test_end_detection_and_dot_unstuffing() -> None:
    content, rest, dr = run([b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n"])
    assert content == b"Subject: x\r\n\r\n.leading dot\r\n"
    assert rest == b"QUIT\r\n"
    assert dr.done and dr.error() == ""


def test_empty_message() -> None:
    content, rest, dr = run([b".\r\n"])
    assert content == b"" and rest == b"" and dr.done


def test_dot_only_unstuffed_at_line_start() -> None:
    content, _, _ = run([b"a.b\r\n.\r.\r\n.\r\n"])
    # "\r" bare inside ".\r." marks an error, but the content still flows.
    assert content == b"a.b\r\n\r.\r\n"


def test_dot_line_prefix_is_held_until_decided() -> None:
    dr = DataReader(1000)
    fed = dr.feed(b"abc\r\n.")
    assert (fed.content, fed.consumed, fed.done) == (b"abc\r\n", 5, False)
    fed = dr.feed(b".\r")
    assert fed.consumed == 0
    fed = dr.feed(b".\rx")
    assert fed.content == b"\rx"


@pytest.mark.parametrize(
    "data",
    [
        b"a\rb\r\n.\r\n",  # bare CR
        b"a\r\n.\nb\r\n.\r\n",  # \r\n.\n
        b"a\n.\r\n.\r\n",  # \n.\r\n
        b"a\n.\nb\r\n.\r\n",  # \n.\n
        b"a\r\n.\r\r\n.\r\n",
    ],
)
def test_smuggling_and_bare_cr_refused_in_all_modes(data: bytes) -> None:
    for pedantic in (False, True):
        _, rest, dr = run([data], pedantic=pedantic)
        assert dr.done and rest == b""
        assert "smuggling" in dr.error()


def test_bare_lf_normalised_in_lax_mode_refused_in_pedantic() -> None:
    content, _, dr = run([b"a\nb\r\n.\r\n"])
    assert content == b"a\r\nb\r\n" and dr.error() == "" and dr.stats.bare_lf == 1
    _, _, dr = run([b"a\nb\r\n.\r\n"], pedantic=True)
    assert dr.error() != ""


def test_bare_lf_does_not_end_message() -> None:
    _, _, dr = run([b"a\n.\nb\r\n"])
    assert not dr.done


def test_limit_exceeded_keeps_draining_to_the_end() -> None:
    body = b"x" * 100 + b"\r\n"
    dr = DataReader(250)
    total = b""
    for _ in range(10):
        fed = dr.feed(body)
        total += fed.content
        assert fed.consumed == len(body)
    fed = dr.feed(b".\r\nNOOP\r\n")
    assert fed.done and fed.consumed == 3
    assert dr.stats.too_large and dr.stats.size == 1020
    assert len(total) <= 250


def test_stats_8bit_nul_line_length() -> None:
    _, _, dr = run([b"short\r\n" + b"x" * 1200 + b"\r\n\xc3\xa9\x00\r\n.\r\n"])
    st = dr.stats
    assert st.has_8bit and st.has_nul and st.max_line == 1202


MESSAGES = [
    b"Subject: hi\r\n\r\nbody\r\n..dot\r\n...\r\n.x\r\n",
    b"",
    b".\r\n",  # stuffed dot-line
    b"a\nb\r\r\n\r\n.\n",
    b"\xff\x00\r\n",
]


@pytest.mark.parametrize("wire", [m + b".\r\nNEXT" for m in MESSAGES] + [b"..\r\n.\r\nNEXT"])
def test_every_split_position_gives_same_result(wire: bytes) -> None:
    whole, rest, dr = run([wire])
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            c2, r2, dr2 = run([wire[:i], wire[i:j], wire[j:]])
            assert (c2, r2, dr2.error(), dr2.stats.size) == (whole, rest, dr.error(), dr.stats.size), (i, j)


@settings(max_examples=300)
@given(
    st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\xe9", b"\x00", b".\r\n"]), max_size=40),
    st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_split_feeding_is_equivalent_to_one_feed(parts: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(parts) + b"\r\n.\r\nTAIL"
    whole, rest, dr = run([wire])
    positions = sorted({min(c, len(wire)) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *positions], [*positions, len(wire)], strict=True)]
    c2, r2, dr2 = run(pieces)
    assert dr.done and dr2.done
    assert (c2, r2, dr2.error()) == (whole, rest, dr.error())
    assert dr2.stats.bare_cr == dr.stats.bare_cr and dr2.stats.bare_lf == dr.stats.bare_lf
    assert len(whole) == dr.stats.size


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_dot_stuffed_content_roundtrips(message: bytes) -> None:
    # Make it valid CRLF text as a client would send it, then stuff it.
    lines = message.replace(b"\r", b"").split(b"\n")
    text = b"\r\n".join(lines) + b"\r\n"
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + b"\r\n"
    content, rest, dr = run([stuffed + b".\r\n"])
    assert dr.done and rest == b"" and content == text and dr.error() == ""


def test_bdat_reader_counts_exact_octets() -> None:
    stats = ContentStats(10)
    br = BdatReader(6, stats)
    fed = br.feed(b"abc")
    assert (fed.content, fed.consumed, fed.done) == (b"abc", 3, False)
    fed = br.feed(b"d\r\nQUIT\r\n")
    assert (fed.content, fed.consumed, fed.done) == (b"d\r\n", 3, True)
    br = BdatReader(8, stats)
    fed = br.feed(b"12345678")
    assert fed.content == b"" and fed.done and stats.too_large and stats.size == 14


def test_bdat_bare_counts_across_chunks() -> None:
    stats = ContentStats(100)
    BdatReader(2, stats).feed(b"a\r")
    BdatReader(2, stats).feed(b"\nb")
    assert stats.bare_cr == 0 and stats.bare_lf == 0
    BdatReader(2, stats).feed(b"\r\r")
    stats.finish_bare()
    assert stats.bare_cr == 2
