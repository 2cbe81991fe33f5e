"""Memory per idle SMTP connection, plaintext and implicit TLS, for mox serve or any server.

Opens N connections (each from its own 127.x source address, as per-IP limits
require), waits for each greeting, and reports the server's memory growth per
connection: private memory (USS) summed over the server's process tree (so a server that forks
per connection is measured too), for plaintext SMTP and for implicit TLS
(submissions). One JSON line per kind and a table.

By default starts its own ``mox serve``; ``--host``/``--port`` (plaintext SMTP)
and optionally ``--tls-port`` (implicit TLS; certificate not verified unless
--cafile) measure another server, whose memory needs ``--pid`` (else n/a).

    .venv/bin/python bench/smtp_conns.py --n 1000
    .venv/bin/python bench/smtp_conns.py --host 127.0.0.1 --port 25 --pid $(pidof master) --n 300
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import MoxServe, Report, Sources, add_target_args, check_target, mem_kib, raise_nofile


def measure(host: str, kind: str, port: int, n: int, pid: int | None, ctx: ssl.SSLContext | None,
            src: Sources, timeout: float, settle: float = 1.0) -> dict[str, object]:  # fmt: skip
    time.sleep(settle)
    before = mem_kib(pid)
    conns: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(n):
            if time.monotonic() > deadline:
                raise SystemExit(f"{kind}: {len(conns)} of {n} connections within --timeout {timeout} s")
            s = socket.create_connection((host, port), timeout=30, source_address=src.next())
            if ctx is not None:
                s = ctx.wrap_socket(s, server_hostname="localhost")
            try:
                greeting = s.recv(512)
            except TimeoutError:
                raise SystemExit(f"{kind}: connection {len(conns) + 1}: no greeting within 30 s (a server process limit?)") from None
            if not greeting.startswith(b"220"):
                raise SystemExit(f"{kind}: connection {len(conns)}: no 220 greeting: {greeting!r}")
            conns.append(s)
        time.sleep(settle)
        after = mem_kib(pid)
    finally:
        for s in conns:
            s.close()
    return {
        "bench": "smtp_idle_conns", "kind": kind, "n": n,
        "rss_kib_per_conn": None if before is None or after is None else round((after - before) / n, 1),
        "rss_mb": None if after is None else round(after / 1024, 1),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="connections of each kind")
    ap.add_argument("--timeout", type=float, default=300, help="give up after this many seconds per kind")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each memory reading")
    add_target_args(ap, "", user=False)
    ap.add_argument("--tls-port", type=int, help="implicit TLS port of the server at --host (default: plaintext only)")
    ap.add_argument("--cafile", help="verify the --tls-port certificate with this CA file (else unverified)")
    args = ap.parse_args()
    check_target(ap, args, "")
    raise_nofile(4 * args.n + 256)
    report = Report(
        "Memory per idle SMTP connection (server private memory growth / connections)",
        [("target", "server"), ("kind", "kind"), ("n", "connections"), ("rss_kib_per_conn", "KiB/conn"), ("rss_mb", "server MB after")],
    )
    if args.host is not None:
        ctx = None
        if args.tls_port:
            ctx = ssl.create_default_context(cafile=args.cafile)
            if not args.cafile:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        src = Sources(args.host)
        kinds = [("plain", args.port, None)] + ([("tls", args.tls_port, ctx)] if args.tls_port else [])
        for kind, port, c in kinds:
            report.add({**measure(args.host, kind, port, args.n, args.pid, c, src, args.timeout, args.settle), "target": f"{args.host}:{port}"})
    else:
        with MoxServe() as m:
            ctx = ssl.create_default_context(cafile=str(m.config.parent / "localhost.crt"))
            src = Sources(m.host)
            for kind, port, c in (("plain", m.ports.smtp, None), ("tls", m.ports.submissions, ctx)):
                report.add({**measure(m.host, kind, port, args.n, m.pid, c, src, args.timeout, args.settle), "target": "mox serve"})
    report.table()


if __name__ == "__main__":
    main()
