"""SMTP delivery and submission throughput, with mailbench's load shape, against mox serve or any server.

By default starts ``mox serve`` on a fresh local config (free loopback ports,
DNS answered by an empty loopback test server through MOX_DNS, so SPF/DMARC
lookups get fast NXDOMAIN answers). With ``--host``/``--port`` it measures an
already running server instead (SMTP port for ``--mode smtp``, submission port
for ``--mode submit``, which authenticates with AUTH PLAIN as --user).

Sends N messages of SIZE bytes over CONC connections from rotating 127.A.B.1
source addresses (each its own /21, at most ROTATE messages per connection;
servers limit messages and connections per IP), to --rcpt. Our 250 reply comes
only after the message is committed, so "accepted" is "stored"; for our own
server the count is checked in the store afterwards (n/a for other servers).
Server CPU and peak memory need the server's process (own server, or --pid).

    .venv/bin/python bench/smtp_deliver.py --mode smtp --n 2000 --conc 16 --size 2048
    .venv/bin/python bench/smtp_deliver.py --mode submit --n 1000 --conc 8 --size 2048
    .venv/bin/python bench/smtp_deliver.py --host 127.0.0.1 --port 2525 --rcpt bench@localhost --n 500
"""

from __future__ import annotations

import argparse
import random
import smtplib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (
    MoxServe,
    Report,
    Sources,
    add_target_args,
    check_target,
    cpu_s,
    hwm_kib,
    make_message,
    mem_kib,
)


def run(args: argparse.Namespace, host: str, port: int, pid: int | None) -> dict[str, object]:
    auth = args.mode == "submit"
    sender = args.mailfrom or (args.user if auth else "bench@" + args.rcpt.rsplit("@", 1)[-1])
    rnd = random.Random(1)
    msgs = [make_message(i, args.size, rnd, sender, args.rcpt) for i in range(args.n)]
    per = [msgs[k :: args.conc] for k in range(args.conc)]
    src = Sources(host, enabled=args.rotate > 0)
    step = args.rotate if args.rotate > 0 else args.n
    errors: list[str] = []
    deadline = time.monotonic() + args.timeout

    def worker(batch: list[bytes]) -> None:
        try:
            for k in range(0, len(batch), step):
                s = smtplib.SMTP(host, port, timeout=60, source_address=src.next())
                s.ehlo("bench.example")
                if auth:
                    s.login(args.user, args.password)
                for m in batch[k : k + step]:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not done within --timeout {args.timeout} s")
                    s.sendmail(sender, [args.rcpt], m)
                s.quit()
        except Exception as e:
            errors.append(repr(e))

    c0, m0, t0 = cpu_s(pid), mem_kib(pid), time.perf_counter()
    threads = [threading.Thread(target=worker, args=(b,)) for b in per]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    c1, m1 = cpu_s(pid), mem_kib(pid)
    return {
        "msgs_per_s": round(args.n / dt, 1),
        "mb_per_s": round(args.n * args.size / dt / 1e6, 2),
        "server_cpu_ms_per_msg": None if c0 is None or c1 is None else round((c1 - c0) / args.n * 1000, 2),
        "server_mem_mb": None if m1 is None else round(m1 / 1024, 1),
        "server_mem_growth_mb": None if m0 is None or m1 is None else round((m1 - m0) / 1024, 1),
        "seconds": round(dt, 2),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["smtp", "submit"], default="smtp")
    ap.add_argument("--n", type=int, default=2000, help="messages")
    ap.add_argument("--conc", type=int, default=16, help="connections in parallel")
    ap.add_argument("--size", type=int, default=2048, help="message size in bytes")
    ap.add_argument("--rotate", type=int, default=400, help="messages per connection before a new source address (0: one connection, one address)")
    ap.add_argument("--timeout", type=float, default=300, help="give up after this many seconds")
    add_target_args(ap, "", rcpt=True)
    args = ap.parse_args()
    check_target(ap, args, "")
    report = Report(
        f"SMTP {'submission (AUTH PLAIN)' if args.mode == 'submit' else 'delivery'} throughput",
        [("target", "server"), ("conc", "conns"), ("size", "size (B)"), ("n", "messages"),
         ("msgs_per_s", "msg/s"), ("mb_per_s", "MB/s"), ("server_cpu_ms_per_msg", "server CPU ms/msg"),
         ("server_peak_rss_mb", "server peak RSS MB"), ("server_mem_mb", "server USS MB"),
         ("stored", "stored"), ("errors", "errors")],
    )  # fmt: skip
    row: dict[str, object] = {"bench": f"smtp_{args.mode}", "n": args.n, "conc": args.conc, "size": args.size}
    if args.host is not None:
        res = run(args, args.host, args.port, args.pid)
        row |= {"target": f"{args.host}:{args.port}", **res, "stored": None, "server_peak_rss_mb": None}
    else:
        from mox.store import account as account_mod

        account_mod.CHECK_ON_CLOSE = False
        with MoxServe() as m:
            port = m.ports.submission if args.mode == "submit" else m.ports.smtp
            res = run(args, m.host, port, m.pid)
            peak = round((hwm_kib(m.pid) or 0) / 1024, 1)
            m.stop()
            stored = m.inbox_count()
        row |= {"target": "mox serve", **res, "stored": stored, "server_peak_rss_mb": peak}
    report.add(row)
    report.table()
    if row["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
