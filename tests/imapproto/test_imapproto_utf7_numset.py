"""Modified UTF-7 names and sequence sets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mox.imapproto import utf7
from mox.imapproto.numset import NumRange, NumSet


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("a&b", "a&-b"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("😀", "&2D3eAA-"),
    ],
)
def test_utf7_known_encodings(name: str, encoded: str) -> None:
    assert utf7.encode(name) == encoded
    assert utf7.decode(encoded) == name


@pytest.mark.parametrize(
    "bad",
    ["&", "&AGE", "&AGE-", "&U,BTFw-&ZeVnLIqe-", "a\x7fb", "ä", "&2D0-", "&AP-", "&APx-", "&*-"],
)
def test_utf7_invalid_names_refused(bad: str) -> None:
    with pytest.raises(utf7.UTF7Error):
        utf7.decode(bad)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_utf7_round_trip(name: str) -> None:
    enc = utf7.encode(name)
    assert enc.isascii()
    assert utf7.decode(enc) == name


def test_numset_star_not_expanded() -> None:
    s = NumSet((NumRange(1, None),))
    assert s.contains(10**9, 10**9)
    assert list(s.seqs(3)) == [1, 2, 3]
    assert s.uids([5, 9, 2**32 - 1]) == [5, 9, 2**32 - 1]
    assert str(s) == "1:*"


def test_numset_reversed_range_and_star_above_max() -> None:
    s = NumSet((NumRange(None, 3),))
    assert list(s.seqs(5)) == [3, 4, 5]
    # RFC 9051 section 6.4.9: n:* includes the highest UID even when n is larger.
    assert NumSet((NumRange(100, None),)).uids([1, 2, 7]) == [7]
    assert list(NumSet((NumRange(1, None),)).seqs(0)) == []


@given(
    st.lists(st.tuples(st.integers(1, 50) | st.none(), st.integers(1, 50) | st.none()), min_size=1, max_size=6),
    st.lists(st.integers(1, 60), max_size=30),
)
def test_numset_uids_match_membership(ranges: list[tuple[int | None, int | None]], uids: list[int]) -> None:
    s = NumSet(tuple(NumRange(a, b) for a, b in ranges))
    us = sorted(set(uids))
    got = s.uids(us)
    want = [u for u in us if s.contains(u, us[-1])] if us else []
    assert got == want
    count = len(us)
    assert list(s.seqs(count)) == [n for n in range(1, count + 1) if s.contains(n, count)]


@given(st.lists(st.integers(1, 1000), max_size=50))
def test_numset_from_numbers_compact(nums: list[int]) -> None:
    s = NumSet.from_numbers(nums)
    assert s.uids(sorted(set(nums))) == sorted(set(nums))
    assert all(s.contains(n, 0) for n in nums)
