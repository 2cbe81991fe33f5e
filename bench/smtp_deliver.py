"""SMTP delivery and submission throughput against a real `mox serve`, with mailbench's load shape.

Starts `mox serve` on a fresh local config (free loopback ports, DNS answered
by an empty loopback test server through MOX_DNS, so SPF/DMARC lookups get
fast NXDOMAIN answers), then sends N messages of SIZE bytes over CONC
connections from rotating 127.A.B.1 source addresses (each its own /21, at
most ROTATE messages per connection), to mox@localhost. Our 250 reply comes
only after the message is committed, so "accepted" is "stored"; the count is
checked in the store afterwards. Prints one JSON line per run with msg/s,
MB/s, server CPU ms per message and peak RSS.

(../shared/bench/mailbench.py measures the same through IMAP STATUS, which
needs the IMAP server; until then this is the comparable figure.)

    .venv/bin/python bench/smtp_deliver.py --mode smtp --n 2000 --conc 16 --size 2048
    .venv/bin/python bench/smtp_deliver.py --mode submit --n 1000 --conc 8 --size 2048
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mox.config.example import free_local_ports, write_local_config
from mox.config.load import load_config
from mox.dns.testserver import DNSTestServer
from mox.store import account as account_mod
from mox.store.deliver import open_config_account
from mox.store.password import make_secrets

WORDS = "mail server queue message delivery report policy domain thread reply archive invoice meeting".split()



def make_message(i: int, size: int, rnd: random.Random, sender: str) -> bytes:
    head = (
        f"From: {sender}\r\nTo: mox@localhost\r\nSubject: bench {i} {rnd.choice(WORDS)}\r\n"
        f"Message-ID: <{i}.{rnd.random()}@bench.example>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\n\r\n"
    )
    body = []
    n = len(head)
    while n < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(10)) + "\r\n"
        body.append(line)
        n += len(line)
    return (head + "".join(body)).encode()


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Source:
    def __init__(self) -> None:
        self.k = 0
        self.lock = threading.Lock()

    def next(self) -> tuple[str, int]:
        with self.lock:
            k = self.k
            self.k += 1
        return (f"127.{1 + (k // 32) % 254}.{(k % 32) * 8}.{1 + (k // 8128) % 254}", 0)


def stored_count(conf: Path) -> int:
    async def run() -> int:
        cfg = load_config(conf)
        acc = await account_mod.open_account(cfg.data_dir, "mox")
        try:
            return (await acc.mailbox("Inbox")).counts.total
        finally:
            await acc.close()

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["smtp", "submit"], default="smtp")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--conc", type=int, default=16)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--rotate", type=int, default=400, help="messages per connection before a new source address")
    args = ap.parse_args()
    account_mod.CHECK_ON_CLOSE = False
    with tempfile.TemporaryDirectory() as tmp, DNSTestServer() as dns:
        ports = free_local_ports()
        conf = write_local_config(tmp, ports=ports, ips=["127.0.0.1"], log_level="error")
        password = "moxmoxmox"

        async def set_password() -> None:
            acc = await open_config_account(load_config(conf), "mox")
            try:
                await acc.set_password_secrets(make_secrets(password).to_json())
            finally:
                await acc.close()

        asyncio.run(set_password())
        env = {**os.environ, "MOX_DNS": dns.address}
        proc = subprocess.Popen([sys.executable, "-m", "mox", "-config", str(conf), "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", ports.smtp), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise SystemExit("server did not start") from None
                    time.sleep(0.1)
            rnd = random.Random(1)
            auth = args.mode == "submit"
            sender = "mox@localhost" if auth else "sender@bench.example"
            msgs = [make_message(i, args.size, rnd, sender) for i in range(args.n)]
            per = [msgs[k :: args.conc] for k in range(args.conc)]
            src = Source()
            errors: list[str] = []
            port = ports.submission if auth else ports.smtp

            def worker(batch: list[bytes]) -> None:
                try:
                    for k in range(0, len(batch), args.rotate):
                        s = smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=src.next())
                        s.ehlo("bench.example")
                        if auth:
                            s.login("mox@localhost", password)
                        for m in batch[k : k + args.rotate]:
                            s.sendmail(sender, ["mox@localhost"], m)
                        s.quit()
                except Exception as e:
                    errors.append(repr(e))

            c0, t0 = cpu_s(proc.pid), time.perf_counter()
            threads = [threading.Thread(target=worker, args=(b,)) for b in per]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            dt, dc = time.perf_counter() - t0, cpu_s(proc.pid) - c0
            rss = hwm_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        stored = stored_count(conf)
        print(json.dumps({
            "bench": f"smtp_{args.mode}", "n": args.n, "conc": args.conc, "size": args.size,
            "msgs_per_s": round(args.n / dt, 1), "mb_per_s": round(args.n * args.size / dt / 1e6, 2),
            "server_cpu_ms_per_msg": round(dc / args.n * 1000, 2), "server_peak_rss_mb": round(rss, 1),
            "stored": stored, "errors": len(errors), "first_error": errors[0] if errors else "",
        }))  # fmt: skip


if __name__ == "__main__":
    main()
