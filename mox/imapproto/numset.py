"""Sequence sets and UID sets (RFC 9051 section 9 sequence-set, RFC 5182 "$").

A :class:`NumSet` keeps the ranges as written; ``*`` is ``None`` and is only
resolved when evaluated, so ``1:*`` is never expanded into a list. RFC 9051
section 9: "n:m" and "m:n" are the same range, and ``*`` is the largest number
in use (highest sequence number, or highest UID).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["NumRange", "NumSet"]


@dataclass(frozen=True, slots=True)
class NumRange:
    """One element: ``first`` alone (``last`` equal) or a range. ``None`` is ``*``."""

    first: int | None
    last: int | None

    def resolve(self, star: int) -> tuple[int, int]:
        """Return (low, high) with ``*`` replaced by ``star``."""
        a = star if self.first is None else self.first
        b = star if self.last is None else self.last
        return (a, b) if a <= b else (b, a)

    def __str__(self) -> str:
        a = "*" if self.first is None else str(self.first)
        if self.first == self.last:
            return a
        b = "*" if self.last is None else str(self.last)
        return f"{a}:{b}"


@dataclass(frozen=True, slots=True)
class NumSet:
    """A sequence-set, or ``$`` (the saved search result, RFC 5182) when ``search_result``."""

    ranges: tuple[NumRange, ...] = field(default=())
    search_result: bool = False

    def __str__(self) -> str:
        if self.search_result:
            return "$"
        return ",".join(str(r) for r in self.ranges)

    def contains(self, n: int, star: int) -> bool:
        """Whether n is in the set, with ``*`` being ``star``. Not for ``$``."""
        for r in self.ranges:
            lo, hi = r.resolve(star)
            if lo <= n <= hi:
                return True
        return False

    def resolve(self, star: int) -> list[tuple[int, int]]:
        """Merged, sorted, non-overlapping (low, high) ranges with ``*`` = ``star``."""
        rs = sorted(r.resolve(star) for r in self.ranges)
        out: list[tuple[int, int]] = []
        for lo, hi in rs:
            if out and lo <= out[-1][1] + 1:
                if hi > out[-1][1]:
                    out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        return out

    def seqs(self, count: int) -> Iterator[int]:
        """Message sequence numbers 1..count in the set, ascending, each once.

        With no messages, ``*`` has no value and nothing matches. Numbers
        above ``count`` are left out (the server decides whether that is an
        error: RFC 9051 section 6.4.6 says BAD for invalid sequence numbers).
        """
        if count <= 0:
            return
        for lo, hi in self.resolve(count):
            yield from range(max(lo, 1), min(hi, count) + 1)

    def max_seq(self, count: int) -> int:
        """Largest number named (``*`` as ``count``), to check against ``count``."""
        m = 0
        for r in self.ranges:
            m = max(m, r.resolve(count)[1])
        return m

    def uids(self, uids: Sequence[int]) -> list[int]:
        """The members of ``uids`` (ascending) that are in the set.

        ``*`` is the highest UID in ``uids``; RFC 9051 section 6.4.9 says
        ``n:*`` matches the highest UID even when n is larger.
        """
        if not uids:
            return []
        out: list[int] = []
        seen_hi = 0
        for lo, hi in self.resolve(uids[-1]):
            i = bisect.bisect_left(uids, max(lo, seen_hi + 1))
            j = bisect.bisect_right(uids, hi)
            out.extend(uids[i:j])
            seen_hi = hi
        return out

    def is_static(self) -> bool:
        """Whether no ``*`` and no ``$`` appear."""
        return not self.search_result and all(r.first is not None and r.last is not None for r in self.ranges)

    @staticmethod
    def from_numbers(nums: Sequence[int]) -> NumSet:
        """Compact set for the given numbers (e.g. for COPYUID, ESEARCH ALL)."""
        out: list[NumRange] = []
        for n in sorted(set(nums)):
            if out and out[-1].last is not None and out[-1].last + 1 == n:
                out[-1] = NumRange(out[-1].first, n)
            else:
                out.append(NumRange(n, n))
        return NumSet(tuple(out))
