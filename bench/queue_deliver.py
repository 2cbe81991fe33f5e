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

Another receiving server: ``--host``/``--port`` make the MX point there
instead of the sink (the sink's ceiling is then n/a), and ``--rcpt ADDR``
sends every message to that one address (e.g. a local user of a Postfix on
loopback), its domain's MX pointing at --host. Prints one JSON line and a table.

    .venv/bin/python bench/queue_deliver.py --host 127.0.0.1 --port 2525 --rcpt bench@localhost --messages 500
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Report, check_target
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


async def run(port: int, n: int, size: int, domains: int, per_domain: int, host: str = "127.0.0.1",
              rcpt: str = "") -> dict[str, object]:  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="moxbench-queue-"))
    cfg = load_config(write_local_config(tmp))
    names = [rcpt.rsplit("@", 1)[1]] if rcpt else [f"d{i}.example" for i in range(domains)]
    domains = len(names)
    ip6 = ":" in host
    resolver = MockResolver(
        mx={d: [MX(10, "mx.example.org")] for d in names},
        a={} if ip6 else {"mx.example.org": [host]},
        aaaa={"mx.example.org": [host]} if ip6 else {},
    )
    body = b"x" * max(0, size - 100)
    q = await open_queue(tmp / "q", max_concurrent=max(16, 2 * domains), max_per_domain=per_domain)
    db = await TLSRPTDB.open(tmp / "tlsrpt.db")
    sender = parse_mailbox("bench@localhost", True)
    t0 = time.monotonic()
    for i in range(n):
        msg = b"From: bench@localhost\r\nTo: r@x\r\nSubject: bench %d\r\n\r\n" % i + body + b"\r\n"
        to = rcpt or f"r{i}@{names[i % domains]}"
        await q.add("mox", sender, [NewRecipient(parse_mailbox(to, True))], msg)
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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--domains", type=int, default=1)
    ap.add_argument("--per-domain", type=int, default=2, help="batches in flight per recipient domain (queue default 2)")
    g = ap.add_argument_group("receiving server (default: a sink in another process)")
    g.add_argument("--host", help="address of a running SMTP server to deliver to instead (loopback only)")
    g.add_argument("--port", type=int, help="its SMTP port")
    g.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    g.add_argument("--rcpt", default="", help="deliver every message to this address (its domain's MX is --host)")
    args = ap.parse_args()
    check_target(ap, args, "")
    mlog.set_config({"": mlog.Level.ERROR})
    report = Report(
        "Queue delivery throughput (queue + remote deliverer)",
        [("target", "receiver"), ("messages", "messages"), ("size", "size (B)"), ("domains", "domains"),
         ("sink_msg_per_s", "receiver alone msg/s"), ("msg_per_s", "queue msg/s"), ("deliver_s", "seconds"),
         ("left", "undelivered")],
    )  # fmt: skip
    row: dict[str, object] = {"bench": "queue_deliver", "messages": args.messages, "size": args.size}
    if args.host is not None:
        res = asyncio.run(run(args.port, args.messages, args.size, args.domains, args.per_domain, args.host, args.rcpt))
        row |= {"domains": 1 if args.rcpt else args.domains, "target": f"{args.host}:{args.port}", "sink_msg_per_s": None, **res}
    else:
        parent, child = multiprocessing.Pipe()
        proc = multiprocessing.Process(target=_sink_process, args=(child, True), daemon=True)
        proc.start()
        port = parent.recv()
        try:
            msg = b"Subject: x\r\n\r\n" + b"x" * args.size + b"\r\n"

            async def both() -> dict[str, object]:
                sink = await raw_client(port, args.messages, msg, True)
                out = await run(port, args.messages, args.size, args.domains, args.per_domain, rcpt=args.rcpt)
                return {"sink_msg_per_s": round(args.messages / sink, 1), **out}

            res = asyncio.run(both())
        finally:
            proc.terminate()
        row |= {"domains": 1 if args.rcpt else args.domains, "target": "sink", **res}
    report.add(row)
    report.table()


if __name__ == "__main__":
    main()
