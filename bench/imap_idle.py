"""IMAP IDLE latency and memory per idle connection against a real ``mox serve``.

Runs ``../shared/bench/mailbench.py idle`` (from the end of an SMTP DATA to the
untagged EXISTS on an IDLE session; issue 6 target: median at most 5 ms) and
``mailbench.py conns`` (RSS per idle IMAP connection; target at most 30 KiB)
against ``mox serve`` on a fresh local config with free loopback ports. DNS is
answered by an empty loopback test server (MOX_DNS), so the SMTP checks
(SPF, iprev, DMARC) get quick answers and nothing leaves the machine.

    .venv/bin/python bench/imap_idle.py [--n 100] [--conns 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mox.config.example import free_local_ports, write_local_config
from mox.config.load import load_config
from mox.dns.testserver import DNSTestServer
from mox.store.deliver import open_config_account
from mox.store.password import make_secrets

MAILBENCH = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "mailbench.py"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--conns", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, DNSTestServer() as dns:
        ports = free_local_ports()
        conf = write_local_config(tmp, ports=ports, ips=["127.0.0.1"], log_level="error")

        async def set_password() -> None:
            acc = await open_config_account(load_config(conf), "mox")
            try:
                await acc.set_password_secrets(make_secrets("moxmoxmox").to_json())
            finally:
                await acc.close()

        asyncio.run(set_password())
        env = {**os.environ, "MOX_DNS": dns.address}
        proc = subprocess.Popen([sys.executable, "-m", "mox", "-config", str(conf), "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.time() + 30
            for port in (ports.smtp, ports.imap):
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        if time.time() > deadline or proc.poll() is not None:
                            raise SystemExit("server did not start") from None
                        time.sleep(0.1)
            common = ["--smtp", str(ports.smtp), "--imap", str(ports.imap), "--pid", str(proc.pid), "--src-rotate", "50"]
            for cmd in (["idle", "--n", str(args.n)], ["conns", "--n", str(args.conns)]):
                subprocess.run([sys.executable, str(MAILBENCH), *cmd, *common], check=True, timeout=600)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
