"""Benchmarks of the message store's delivery path.

1. group commit: C concurrent deliverers of 2 KiB messages through
   Account.add_message, fsync included: messages per second.
2. per-delivery CPU: 10 KiB messages delivered one at a time through the full
   deliver path (header parse, thread match, file write, insert, event), CPU
   seconds of the process per message (includes the store's threads, excludes
   time waiting for fsync), first with an empty account, then with N messages
   already in it.
3. thread upgrade: reassign threads of an account with M messages, and the
   latency of a delivery and a mailbox read while it runs.

Prints one JSON line per measurement. Sizes are flags; the defaults are the
issue's targets' sizes and take a minute or two.

    .venv/bin/python bench/store_deliver.py [--concurrency 16] [--n 2000] [--existing 10000] [--threads 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Report

from mox.store import account as account_mod
from mox.store.account import NewMessage, open_account
from mox.store.deliver import message_info
from mox.store.threads import reassign_threads

WORDS = "the quick brown fox jumps over lazy dogs invoice meeting report plans budget travel".split()


def make(n: int, size: int, rnd: random.Random, reply_to: int | None = None) -> bytes:
    subject = f"topic {n % 997}"
    head = f"From: sender{n % 50}@example.org\r\nTo: mox@localhost\r\nSubject: {'Re: ' if reply_to is not None else ''}{subject}\r\n"
    head += f"Message-ID: <{n}@bench.example>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\n"
    if reply_to is not None:
        head += f"In-Reply-To: <{reply_to}@bench.example>\r\nReferences: <{reply_to}@bench.example>\r\n"
    head += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    body = []
    total = len(head)
    while total < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(12)) + "\r\n"
        body.append(line)
        total += len(line)
    return (head + "".join(body)).encode()


async def group_commit(root: Path, concurrency: int, n: int) -> dict[str, object]:
    acc = await open_account(root, "gc")
    rnd = random.Random(1)
    msgs = [make(i, 2048, rnd) for i in range(n)]
    infos = [message_info(m) for m in msgs]
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await acc.add_message("Inbox", msgs[i], info=infos[i])

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    dt = time.perf_counter() - t0
    await acc.close()
    return {"bench": "store_group_commit", "concurrency": concurrency, "messages": n, "size": 2048, "msgs_per_s": round(n / dt)}


async def deliver_cpu(root: Path, existing: int, n: int) -> list[dict[str, object]]:
    acc = await open_account(root, "cpu")
    rnd = random.Random(2)
    out = []

    async def measure(label: str, start: int) -> None:
        cpu = []
        for i in range(start, start + n):
            data = make(i, 10 * 1024, rnd, reply_to=i - 1 if i % 5 == 0 else None)
            c0 = time.process_time()
            info = message_info(data)
            await acc.add_message("Inbox", data, info=info)
            cpu.append(time.process_time() - c0)
        out.append(
            {
                "bench": "store_deliver_cpu",
                "existing": label,
                "messages": n,
                "size": 10240,
                "cpu_ms_median": round(statistics.median(cpu) * 1000, 3),
                "cpu_ms_p90": round(sorted(cpu)[int(len(cpu) * 0.9)] * 1000, 3),
            }
        )

    await measure("0", 0)
    # Fill up with bulk adds (fast), then measure again.
    base = 1_000_000
    for s in range(0, existing, 1000):
        batch = [NewMessage(make(base + i, 10 * 1024, rnd)) for i in range(s, min(existing, s + 1000))]
        await acc.add_messages("Inbox", batch)
    # Let the kernel write back the bulk-added files first, so their flush is not billed to the deliveries measured.
    os.sync()
    await asyncio.sleep(1)
    await measure(str(existing + n), base * 2)
    await acc.close()
    return out


async def thread_upgrade(root: Path, count: int) -> dict[str, object]:
    acc = await open_account(root, "threads")
    rnd = random.Random(3)
    for s in range(0, count, 2000):
        batch = [NewMessage(make(i, 1500, rnd, reply_to=i - 3 if i % 3 == 0 and i > 3 else None)) for i in range(s, min(count, s + 2000))]
        await acc.add_messages("Inbox", batch)
    latencies: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            await acc.mailbox("Inbox")
            await acc.add_message("Inbox", make(10_000_000 + i, 2048, rnd))
            latencies.append(time.perf_counter() - t0)
            i += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(probe())
    t0 = time.perf_counter()
    done = await reassign_threads(acc, message_info)
    dt = time.perf_counter() - t0
    stop.set()
    await task
    await acc.close()
    return {
        "bench": "store_thread_upgrade",
        "messages": done,
        "seconds": round(dt, 1),
        "probe_ms_max": round(max(latencies) * 1000, 1) if latencies else None,
        "probe_ms_median": round(statistics.median(latencies) * 1000, 1) if latencies else None,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--existing", type=int, default=10000)
    ap.add_argument("--cpu-n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=100000)
    ap.add_argument("--dir", default="", help="data directory (default: a temporary directory on /tmp's file system)")
    args = ap.parse_args()
    report = Report("Message store delivery")
    account_mod.CHECK_ON_CLOSE = False
    with tempfile.TemporaryDirectory(dir=args.dir or None) as tmp:
        root = Path(tmp)
        report.add(await group_commit(root, args.concurrency, args.n))
        for r in await deliver_cpu(root, args.existing, args.cpu_n):
            report.add(r)
        if args.threads:
            report.add(await thread_upgrade(root, args.threads))
    report.table()


if __name__ == "__main__":
    asyncio.run(main())
