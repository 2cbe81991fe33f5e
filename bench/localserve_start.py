"""Benchmark: ``mox localserve`` from the command to the first successful IMAP LOGIN on a fresh -dir.

Runs the real command line (``.venv/bin/mox localserve -dir NEW``) on its fixed
ports (1025, 1143, ...; they must be free: stop any other localserve first),
which writes the config, makes the keys, certificate and password hashes, and
starts every listener. An IMAP client polls 127.0.0.1:1143 with LOGIN until it
succeeds. Then, 2 s later, the server's resident memory is read from /proc.
No DNS query leaves the machine (localserve's local-only resolver; MOX_DNS is
removed from the environment). Prints one JSON line per run.

    .venv/bin/python bench/localserve_start.py [--runs 5]

Targets (issue 8): under 2 s to the first login, aim 0.5 s (upstream 0.23 s);
RSS 2 s after the login at most 60 MB (upstream 34 MB).
"""

from __future__ import annotations

import argparse
import imaplib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAP_PORT = 1143
DEADLINE = 30.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def try_login() -> bool:
    try:
        c = imaplib.IMAP4("127.0.0.1", IMAP_PORT, timeout=2)
    except OSError:
        return False
    try:
        typ, _ = c.login("mox@localhost", "moxmoxmox")
        return typ == "OK"
    except (imaplib.IMAP4.error, OSError):
        return False
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def one_run(mox: str) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="localserve-bench-"))
    root = tmp / "dir"
    env = {k: v for k, v in os.environ.items() if k != "MOX_DNS"}
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [mox, "localserve", "-dir", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            while not try_login():
                if proc.poll() is not None:
                    raise RuntimeError(f"localserve exited with {proc.returncode}")
                if time.perf_counter() - t0 > DEADLINE:
                    raise RuntimeError("no login within the deadline")
                time.sleep(0.005)
            first_login = time.perf_counter() - t0
            time.sleep(2)
            rss = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
        return {
            "bench": "localserve_start",
            "first_login_s": round(first_login, 3),
            "rss_mb_2s_after": round(rss, 1),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mox", default=str(Path(sys.executable).parent / "mox"), help="the mox command to run")
    args = ap.parse_args()
    for port in (1025, 1143, 1587, 1465, 1993, 1080, 1443, 1081):
        if not port_free(port):
            sys.exit(f"port {port} is in use: stop the other localserve first")
    for _ in range(args.runs):
        print(json.dumps(one_run(args.mox)), flush=True)


if __name__ == "__main__":
    main()
