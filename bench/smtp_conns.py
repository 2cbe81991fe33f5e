"""Memory per idle SMTP connection: opens N connections (each from its own 127.x source address,
as the per-IP limits require), waits for each greeting, and reports the server's RSS growth per
connection, for plaintext SMTP and for implicit TLS (submissions). One JSON line per kind.

    .venv/bin/python bench/smtp_conns.py --n 1000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mox.config.example import free_local_ports, write_local_config
from mox.dns.testserver import DNSTestServer


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def src(k: int) -> tuple[str, int]:
    return (f"127.{1 + (k // 32) % 254}.{(k % 32) * 8}.{1 + (k // 8128) % 254}", 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.n + 256)), hard))
    with tempfile.TemporaryDirectory() as tmp, DNSTestServer() as dns:
        ports = free_local_ports()
        conf = write_local_config(tmp, ports=ports, ips=["127.0.0.1"], log_level="error")
        env = {**os.environ, "MOX_DNS": dns.address}
        proc = subprocess.Popen([sys.executable, "-m", "mox", "-config", str(conf), "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", ports.smtp), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            ctx = ssl.create_default_context(cafile=str(conf.parent / "localhost.crt"))
            for kind, port in (("plain", ports.smtp), ("tls", ports.submissions)):
                time.sleep(1)
                before = rss_kib(proc.pid)
                conns = []
                for k in range(args.n):
                    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=src(k + (0 if kind == "plain" else 5000)))
                    if kind == "tls":
                        s = ctx.wrap_socket(s, server_hostname="localhost")
                    assert s.recv(100).startswith(b"220")
                    conns.append(s)
                time.sleep(1)
                after = rss_kib(proc.pid)
                print(json.dumps({"bench": "smtp_idle_conns", "kind": kind, "n": args.n,
                                  "rss_kib_per_conn": round((after - before) / args.n, 1), "rss_mb": round(after / 1024, 1)}))  # fmt: skip
                for s in conns:
                    s.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
