"""IMAP command timings in-process, with an optional cProfile of one command: for finding where time goes.

Imports mailbench's 10,000-message mbox (``/tmp/mb10k.mbox``, made by
``../shared/bench/mailbench.py mbox --n 10000 --out /tmp/mb10k.mbox``) once
into an account under ``--dir`` (kept between runs), serves IMAP in this
process on a loopback port and runs the commands of mailbench's ``fetch``
with a minimal client, printing the wall time of each and the CPU time of this
process (server and client together, all threads; less sensitive to a busy machine). ``--profile NAME``
(with ``--inline-db`` to include the database thread's work) profiles the server side of that command (NAME as printed) and prints the top
functions. Numbers are for comparison between versions of this code; the
figures in bench/README.md are from ``imap_fetch.sh`` against ``mox serve``.

    .venv/bin/python bench/imap_profile.py [--dir /tmp/imapprof] [--mbox /tmp/mb10k.mbox] [--profile select]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "imapserver"))

from imaphelpers import PASSWORD, Client, ServerStub, connect  # noqa: E402

from mox.config.example import write_local_config  # noqa: E402
from mox.config.load import load_config  # noqa: E402
from mox.imapserver import server as imapserver  # noqa: E402
from mox.serve.listeners import Endpoint  # noqa: E402
from mox.serve.services import ConnContext  # noqa: E402
from mox.store.account import Account  # noqa: E402
from mox.store.deliver import open_config_account  # noqa: E402
from mox.store.importexport import import_mbox_file  # noqa: E402
from mox.store.password import make_secrets  # noqa: E402

COMMANDS = [
    ("select", "SELECT INBOX"),
    ("uid fetch flags", "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)"),
    ("uid fetch envelope bodystructure", "UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)"),
    ("fetch 1000 body.peek", "FETCH 9001:10000 BODY.PEEK[]"),
    ("uid search text", 'UID SEARCH TEXT "invoice"'),
    ("uid search subject", 'UID SEARCH SUBJECT "meeting"'),
    ("store +flags seen", "STORE 1:* +FLAGS (\\Seen)"),
    ("store -flags seen", "STORE 1:* -FLAGS.SILENT (\\Seen)"),
    ("uid sort date", "UID SORT (DATE) UTF-8 ALL"),
    ("uid thread references", "UID THREAD REFERENCES UTF-8 ALL"),
    ("status", "STATUS INBOX (MESSAGES UNSEEN SIZE HIGHESTMODSEQ)"),
]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/imapprof")
    ap.add_argument("--mbox", default="/tmp/mb10k.mbox")
    ap.add_argument("--profile", default="")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated command names to run (default all)")
    ap.add_argument(
        "--inline-db", action="store_true",
        help="run the store's database work on the event loop thread, so --profile sees it (timings change)",
    )  # fmt: skip
    args = ap.parse_args()
    d = Path(args.dir)
    fresh = not (d / "config" / "mox.conf").exists()
    if fresh:
        d.mkdir(parents=True, exist_ok=True)
        write_local_config(d, ips=["127.0.0.1"], log_level="error")
    cfg = load_config(d / "config" / "mox.conf")
    cfg.static.Listeners["local"].IMAP.NoRequireSTARTTLS = True
    if fresh:
        acc = await open_config_account(cfg, "mox")
        try:
            await acc.set_password_secrets(make_secrets(PASSWORD, bcrypt_cost=4).to_json())
            res = await import_mbox_file(acc, "Inbox", Path(args.mbox))
            print("imported", res, file=sys.stderr)
        finally:
            await acc.close()
    if args.inline_db:

        async def inline(self: Account, fn: Callable[..., Any], *a: Any) -> Any:
            return fn(*a)

        Account._db = inline  # type: ignore[method-assign]
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    ctx = ConnContext(ServerStub(cfg), Endpoint("local", "IMAP", "127.0.0.1", 0, False), starttls=None)  # type: ignore[arg-type]

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await imapserver.serve(ctx, r, w)
        finally:
            w.close()

    Client.timeout = 300
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c = await connect(port)
    try:
        for _ in range(args.runs):
            for name, cmd in COMMANDS:
                if only and name not in only and name != "select":
                    continue
                prof = cProfile.Profile() if name == args.profile else None
                t0, c0 = time.perf_counter(), time.process_time()
                if prof:
                    prof.enable()
                r = await c.cmd(cmd)
                if prof:
                    prof.disable()
                ms = (time.perf_counter() - t0) * 1000
                cpu = (time.process_time() - c0) * 1000
                assert b" OK " in r[-1], r[-1]
                print(f"{name:40s} {ms:9.1f} ms wall {cpu:9.1f} ms cpu  {len(r) - 1} untagged")
                if prof:
                    pstats.Stats(prof).sort_stats(os.environ.get("SORT", "cumulative")).print_stats(25)
    finally:
        c.writer.close()
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
