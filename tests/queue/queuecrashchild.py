"""Child process of the queue kill -9 test: drives a real Queue with a deliverer that records deliveries.

Usage: python queuecrashchild.py DATADIR LOGFILE ADD_COUNT

Adds ADD_COUNT messages (when > 0; printing "added <ids>" after each commit),
then delivers until the queue is empty and prints "empty". Each delivery
appends "<id>\\n" to LOGFILE (fsynced) before returning success: the
"remote has accepted" moment. The parent kills this process with SIGKILL
at some point and starts it again with ADD_COUNT 0.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from mox.dns.domain import parse_domain
from mox.queue import MessageSource, Outcome, QueuedMsg
from mox.queue.queue import open_queue
from mox.smtp.path import Path as SMTPPath


async def main(data_dir: Path, logfile: Path, add: int) -> None:
    fd = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def deliver(msgs: list[QueuedMsg], source: MessageSource) -> list[Outcome]:
        await source.read()
        await asyncio.sleep(0.002)
        os.write(fd, "".join(f"{m.id}\n" for m in msgs).encode())
        os.fsync(fd)
        return [Outcome.delivered() for _ in msgs]

    q = await open_queue(data_dir, None, jitter=lambda: 0.0, max_concurrent=4, max_per_domain=2)
    q.start(deliver)
    for i in range(add):
        dom = parse_domain(f"d{i % 5}.example")
        ids = await q.add("", SMTPPath("sender", parse_domain("localhost")), [SMTPPath(f"r{i}", dom), SMTPPath(f"s{i}", dom)],
                          f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())  # fmt: skip
        print("added", *ids, flush=True)
    while await q.count() > 0:
        await asyncio.sleep(0.01)
    print("empty", flush=True)
    await q.close()


if __name__ == "__main__":
    import faulthandler

    # A hang shows where it is (the parent's timeout is longer).
    faulthandler.dump_traceback_later(15, exit=True)
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
