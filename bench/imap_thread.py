"""Benchmark: RFC 5256 THREAD and SORT (mox.imapproto.sortthread) on a generated mailbox.

Generates N messages in threads of mixed shapes, as a mailing list archive
looks: thread sizes from 1 to about 60, replies to random earlier messages
of their thread with References (sometimes truncated to the last few ids),
some with only In-Reply-To, some with neither (threaded by subject only),
some whose ancestors are missing (deleted), some without Message-ID, a few
duplicate Message-IDs, list tags and "Re:"/"Fwd:" prefixes. Then measures
(best of --rounds) building the per-message records (base subject, sent
date), THREAD=REFERENCES, THREAD=ORDEREDSUBJECT, writing the response, and
SORT on a few criteria. Prints one JSON line per measurement.

    .venv/bin/python bench/imap_thread.py [--messages 10000] [--rounds 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Report

from mox.imapproto.sortthread import (
    SortMessage,
    format_thread,
    parse_sort_criteria,
    sort_messages,
    thread_orderedsubject,
    thread_references,
)

_WORDS = (
    "meeting invoice release build failure question patch review server mail queue report update plan".split()
)
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _fields(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Header-level data of n messages, in arrival order."""
    out: list[dict[str, Any]] = []
    thread_no = 0
    want = n + n // 20 + 10  # Some are dropped below.
    while len(out) < want:
        thread_no += 1
        size = min(
            want - len(out),
            max(1, int(rng.paretovariate(1.2))) if rng.random() < 0.9 else rng.randint(20, 60),
        )
        topic = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6))) + f" #{thread_no}"
        tag = "[list] " if rng.random() < 0.3 else ""
        ids: list[str] = []
        chains: list[list[str]] = []
        start = rng.randint(0, 10_000_000)
        for k in range(size):
            mid = f"<t{thread_no}.{k}.{rng.getrandbits(32):x}@example.org>"
            if k == 0:
                chain: list[str] = []
                subject = tag + topic
            else:
                p = rng.randrange(len(ids))
                chain = [*chains[p], ids[p]]
                subject = tag + rng.choice(["Re: ", "RE: ", "Re: Re: ", "Fwd: ", "Re: [other] "]) + topic
            refs = ""
            irt = ""
            r = rng.random()
            if chain:
                if r < 0.7:
                    refs = " ".join(chain[-rng.choice([3, 10, 100]) :])
                elif r < 0.85:
                    irt = chain[-1]
                # Else: no references at all, only the subject ties it in.
            date = T0 + dt.timedelta(seconds=start + k * rng.randint(60, 7200))
            f = {
                "mid": "" if rng.random() < 0.01 else (ids[0] if k and rng.random() < 0.002 else mid),
                "refs": refs,
                "irt": irt,
                "subject": subject,
                "date": None if rng.random() < 0.02 else date,
                "from": rng.choice(_WORDS) + str(rng.randint(1, 50)),
                "name": rng.choice(["", "Ann Example", "bob", "Carl"]),
                "size": rng.randint(500, 200_000),
            }
            ids.append(mid)
            chains.append(chain)
            out.append(f)
    # Interleave threads the way a mailbox receives them: by date (internal date near it).
    rng.shuffle(out)
    out.sort(key=lambda f: f["date"] or T0)
    # Some originals were deleted: drop about 3%.
    return [f for f in out if rng.random() >= 0.03][:n]


def _records(fields: list[dict[str, Any]]) -> list[SortMessage]:
    return [
        SortMessage(
            seq=i,
            uid=i + 100,
            internal_date=(f["date"] or T0) + dt.timedelta(seconds=30),
            size=f["size"],
            subject=f["subject"],
            date=f["date"],
            from_mailbox=f["from"],
            from_host="example.org",
            from_name=f["name"],
            message_id=f["mid"],
            references=(f["refs"],) if f["refs"] else (),
            in_reply_to=f["irt"],
        )
        for i, f in enumerate(fields, 1)
    ]


def _best(rounds: int, fn: Callable[[], object]) -> tuple[float, object]:
    best = float("inf")
    result: object = None
    for _ in range(rounds):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    fields = _fields(args.messages, rng)
    n = len(fields)

    report = Report("THREAD and SORT (RFC 5256), best of rounds", [("what", "what"), ("messages", "messages"), ("ms", "ms")])

    def emit(name: str, secs: float, **extra: object) -> None:
        report.add({"bench": "imap_thread", "what": name, "messages": n, "ms": round(secs * 1000, 1), **extra})

    secs, recs = _best(args.rounds, lambda: _records(fields))
    assert isinstance(recs, list)
    emit("records", secs)
    secs, roots = _best(args.rounds, lambda: thread_references(recs))
    assert isinstance(roots, list)
    emit("thread_references", secs, threads=len(roots))
    secs, text = _best(args.rounds, lambda: format_thread(roots, True))
    assert isinstance(text, str)
    emit("format_thread_references", secs, bytes=len(text))
    secs, roots2 = _best(args.rounds, lambda: thread_orderedsubject(recs))
    assert isinstance(roots2, list)
    emit("thread_orderedsubject", secs, threads=len(roots2))
    secs, _ = _best(args.rounds, lambda: format_thread(thread_references(_records(fields)), True))
    emit("records+thread_references+format", secs)
    for spec in ("REVERSE DATE", "SUBJECT", "FROM REVERSE SIZE", "DISPLAYFROM"):
        crit = parse_sort_criteria(spec)
        secs, _ = _best(args.rounds, lambda crit=crit: sort_messages(crit, recs))  # type: ignore[misc]
        emit(f"sort {spec}", secs)
    report.table()


if __name__ == "__main__":
    main()
