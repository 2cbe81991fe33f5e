"""Benchmark: the outgoing queue delivering to one remote domain (issue 7's target: >= 200 msg/s).

Queues --messages messages of --size octets (each its own submission, one
recipient in example.org) in a fresh queue, then starts the delivery loop with
the real RemoteDeliverer: MX lookup (mock resolver: MX mx.example.org ->
127.0.0.1), opportunistic TLS (the sink offers none), connection reuse, TLS
result recording. The sink (bench/smtpclient_deliver.py's, in its own process)
answers at once and discards data; its own ceiling is measured first with a
raw pipelining client. Prints one JSON line: sink msg/s, queue msg/s,
connections the sink saw, wall seconds.

    .venv/bin/python bench/queue_deliver.py [--messages 2000] [--size 2048] [--domains 1] [--per-domain 2]

With --domains N the recipients are spread over N domains (all pointing at the
sink), showing per-destination concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtpclient_deliver import _sink_process, raw_client

from mox import mlog
from mox.config.example import write_local_config
from mox.config.load import load_config
from mox.dns.mock import MockResolver
from mox.dns.resolver import MX
from mox.queue import NewRecipient, open_queue
from mox.queue.remote import RemoteDeliverer
from mox.smtp.path import parse_mailbox
from mox.tlsrptdb import TLSRPTDB

TIME_LIMIT = 300.0


async def run(port: int, n: int, size: int, domains: int, per_domain: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="moxbench-queue-"))
    cfg = load_config(write_local_config(tmp))
    names = [f"d{i}.example" for i in range(domains)]
    resolver = MockResolver(mx={d: [MX(10, "mx.example.org")] for d in names}, a={"mx.example.org": ["127.0.0.1"]})
    body = b"x" * max(0, size - 100)
    q = await open_queue(tmp / "q", max_concurrent=max(16, 2 * domains), max_per_domain=per_domain)
    db = await TLSRPTDB.open(tmp / "tlsrpt.db")
    sender = parse_mailbox("bench@localhost", True)
    t0 = time.monotonic()
    for i in range(n):
        msg = b"From: bench@localhost\r\nTo: r@x\r\nSubject: bench %d\r\n\r\n" % i + body + b"\r\n"
        await q.add("mox", sender, [NewRecipient(parse_mailbox(f"r{i}@{names[i % domains]}", True))], msg)
    queued = time.monotonic() - t0
    d = RemoteDeliverer(lambda: cfg, resolver=resolver, port=port, tlsrpt_db=db)
    t1 = time.monotonic()
    q.start(d)
    while time.monotonic() - t1 < TIME_LIMIT:
        if not await q.list_messages():
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - t1
    left = len(await q.list_messages())
    await q.close()
    await d.close()
    await db.close()
    return {"queued_s": round(queued, 2), "deliver_s": round(elapsed, 2), "msg_per_s": round((n - left) / elapsed, 1), "left": left}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--domains", type=int, default=1)
    ap.add_argument("--per-domain", type=int, default=2, help="batches in flight per recipient domain (queue default 2)")
    args = ap.parse_args()
    mlog.set_config({"": mlog.Level.ERROR})
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=_sink_process, args=(child, True), daemon=True)
    proc.start()
    port = parent.recv()
    try:
        msg = b"Subject: x\r\n\r\n" + b"x" * args.size + b"\r\n"

        async def both() -> dict[str, object]:
            sink = await raw_client(port, args.messages, msg, True)
            out = await run(port, args.messages, args.size, args.domains, args.per_domain)
            return {"sink_msg_per_s": round(args.messages / sink, 1), **out}

        res = asyncio.run(both())
    finally:
        proc.terminate()
    print(json.dumps({"bench": "queue_deliver", "messages": args.messages, "size": args.size, "domains": args.domains, **res}))


if __name__ == "__main__":
    main()
