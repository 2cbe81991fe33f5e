"""IMAP IDLE notification latency, and memory per idle IMAP and SMTP connection, for mox serve or any server.

IDLE latency (issue 6 target: median at most 5 ms): an IMAP session selects
the mailbox and IDLEs; a message is delivered over SMTP (or LMTP with --lmtp)
on one kept-open connection; the latency is from the end of the DATA (the
final dot sent) to the untagged EXISTS on the IDLE session, timestamped by a
reader thread as the line arrives (a server may send EXISTS before its 250
reply; the median time to the 250 reply is reported too). --n deliveries, one
at a time, each bounded by 10 s.

Memory per connection (target at most 30 KiB): --conns logged-in IMAP
connections, then --conns SMTP connections after EHLO, each from its own
127.x source address; the growth of the server's private memory summed over
its process tree (so forking servers count too), divided by the connections.
These are mailbench's ``idle`` and ``conns`` (../shared/bench/mailbench.py).

By default starts ``mox serve`` on a fresh local config with free loopback
ports (DNS answered by an empty loopback test server via MOX_DNS). With
``--host``, ``--smtp-port`` and ``--imap-port`` it measures another server;
its memory needs ``--pid`` (else n/a).

    .venv/bin/python bench/imap_idle.py [--n 100] [--conns 300]
    .venv/bin/python bench/imap_idle.py --host 127.0.0.1 --imap-port 143 --smtp-port 24 --lmtp \\
        --user bench --password bench --rcpt bench@localhost --pid $(pidof dovecot)
"""

from __future__ import annotations

import argparse
import imaplib
import random
import smtplib
import socket
import statistics
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
    imap_login,
    make_message,
    mem_kib,
    raise_nofile,
)


def idle_latency(host: str, smtp_port: int, imap_port: int, args: argparse.Namespace) -> dict[str, object]:
    c = imap_login(host, imap_port, args.user, args.password)
    typ, _ = c.select(args.mailbox)
    if typ != "OK":
        raise SystemExit(f"SELECT {args.mailbox}: {typ}")
    sender = args.mailfrom or "bench@" + args.rcpt.rsplit("@", 1)[-1]
    s: smtplib.SMTP = smtplib.LMTP(host, smtp_port, timeout=30) if args.lmtp else smtplib.SMTP(host, smtp_port, timeout=30)
    if s.sock is not None:
        s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.ehlo("bench.example")
    rnd = random.Random(2)
    lat: list[float] = []
    replies: list[float] = []
    for i in range(args.n):
        tag = c._new_tag().decode()
        c.send(f"{tag} IDLE\r\n".encode())
        line = c.readline()
        if not line.startswith(b"+"):
            raise SystemExit(f"IDLE refused: {line!r}")
        seen: dict[str, float] = {}

        def reader(seen: dict[str, float] = seen) -> None:
            while True:
                ln = c.readline()
                if not ln or b"EXISTS" in ln:
                    seen["t"] = time.perf_counter()
                    return

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        msg = make_message(100000 + i, 1024, rnd, sender, args.rcpt)
        s.mail(sender)
        code, text = s.rcpt(args.rcpt)
        if code != 250:
            raise SystemExit(f"RCPT TO {args.rcpt}: {code} {text!r}")
        s.putcmd("data")
        s.getreply()
        s.send(msg + b".\r\n")
        t0 = time.perf_counter()
        code, text = s.getreply()
        replies.append(time.perf_counter() - t0)
        th.join(10)
        if code != 250 or "t" not in seen:
            raise SystemExit(f"delivery {i}: reply {code} {text!r}, EXISTS seen within 10 s: {'t' in seen}")
        lat.append(max(0.0, seen["t"] - t0))
        c.send(b"DONE\r\n")
        while not c.readline().startswith(tag.encode()):
            pass
    s.quit()
    c.logout()
    lat.sort()
    return {
        "bench": "imap_idle_latency", "n": args.n,
        "median_ms": round(statistics.median(lat) * 1000, 2),
        "p90_ms": round(lat[int(0.9 * len(lat))] * 1000, 2), "max_ms": round(lat[-1] * 1000, 2),
        "reply_median_ms": round(statistics.median(replies) * 1000, 2),
    }  # fmt: skip


def conns_memory(host: str, smtp_port: int, imap_port: int, pid: int | None, smtp_pid: int | None,
                 args: argparse.Namespace) -> list[dict[str, object]]:  # fmt: skip
    src = Sources(host)
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + args.timeout
    time.sleep(args.settle)
    before = mem_kib(pid)
    imaps = []
    try:
        for _ in range(args.conns):
            if time.monotonic() > deadline:
                raise SystemExit(f"IMAP connections: not done within --timeout {args.timeout} s")
            try:
                imaps.append(imap_login(host, imap_port, args.user, args.password, src.next()))
            except (TimeoutError, imaplib.IMAP4.error) as e:
                raise SystemExit(f"IMAP connection {len(imaps) + 1}: {e!r} (a server process limit?)") from None
        time.sleep(args.settle)
        after = mem_kib(pid)
    finally:
        for c in imaps:
            c.shutdown()
    out.append({"bench": "imap_idle_conns", "kind": "imap", "n": args.conns,
                "kib_per_conn": None if before is None or after is None else round((after - before) / args.conns, 1)})  # fmt: skip
    time.sleep(args.settle)
    before = mem_kib(smtp_pid)
    smtps: list[smtplib.SMTP] = []
    try:
        for _ in range(args.conns):
            if time.monotonic() > deadline:
                raise SystemExit(f"SMTP connections: not done within --timeout {args.timeout} s")
            cls = smtplib.LMTP if args.lmtp else smtplib.SMTP
            try:
                s = cls(host, smtp_port, timeout=30, source_address=src.next())
                s.ehlo("bench.example")
            except (TimeoutError, smtplib.SMTPException) as e:
                raise SystemExit(f"SMTP connection {len(smtps) + 1}: {e!r} (a server process limit?)") from None
            smtps.append(s)
        time.sleep(args.settle)
        after = mem_kib(smtp_pid)
    finally:
        for s in smtps:
            s.close()
    out.append({"bench": "imap_idle_conns", "kind": "lmtp" if args.lmtp else "smtp", "n": args.conns,
                "kib_per_conn": None if before is None or after is None else round((after - before) / args.conns, 1)})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="deliveries for the IDLE latency (0: skip)")
    ap.add_argument("--conns", type=int, default=300, help="idle connections of each kind for memory (0: skip)")
    ap.add_argument("--timeout", type=float, default=300, help="bound for opening the connections")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before each memory reading")
    add_target_args(ap, "smtp", "imap", rcpt=True)
    ap.add_argument("--mailbox", default="INBOX", help="mailbox --rcpt's mail arrives in (default %(default)s)")
    ap.add_argument("--lmtp", action="store_true", help="--smtp-port speaks LMTP (e.g. Dovecot's lmtp service)")
    ap.add_argument("--smtp-pid", type=int, help="process of the server at --smtp-port if not --pid's (e.g. Postfix)")
    args = ap.parse_args()
    check_target(ap, args, "smtp", "imap")
    if args.host is None and args.smtp_pid is not None:
        ap.error("--smtp-pid needs --host")
    raise_nofile(4 * args.conns + 256)
    lat = Report(
        "IMAP IDLE latency, end of SMTP DATA to untagged EXISTS",
        [("target", "server"), ("n", "deliveries"), ("median_ms", "median ms"), ("p90_ms", "p90 ms"), ("max_ms", "max ms"),
         ("reply_median_ms", "median ms to the 250 reply")],
    )
    mem = Report(
        "Memory per idle connection (server private memory growth / connections)",
        [("target", "server"), ("kind", "kind"), ("n", "connections"), ("kib_per_conn", "KiB/conn")],
    )

    def both(host: str, smtp: int, imap: int, pid: int | None, smtp_pid: int | None, target: str) -> None:
        if args.n > 0:
            lat.add({**idle_latency(host, smtp, imap, args), "target": target})
        if args.conns > 0:
            for r in conns_memory(host, smtp, imap, pid, smtp_pid, args):
                mem.add({**r, "target": target})

    if args.host is not None:
        smtp_pid = args.smtp_pid if args.smtp_pid is not None else args.pid
        both(args.host, args.smtp_port, args.imap_port, args.pid, smtp_pid, f"{args.host}:{args.imap_port}")
    else:
        if args.lmtp:
            ap.error("--lmtp needs --host (mox serve has no LMTP)")
        with MoxServe() as m:
            both(m.host, m.ports.smtp, m.ports.imap, m.pid, m.pid, "mox serve")
    if lat.rows:
        lat.table()
    if mem.rows:
        mem.table()


if __name__ == "__main__":
    main()
