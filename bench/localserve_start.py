"""Benchmark: ``mox localserve`` from the command to the first successful IMAP LOGIN on a fresh -dir.

Runs the real command line (``.venv/bin/mox localserve -dir NEW``) on its fixed
ports (1025, 1143, ...; they must be free: stop any other localserve first),
which writes the config, makes the keys, certificate and password hashes, and
starts every listener. An IMAP client polls 127.0.0.1:1143 with LOGIN until it
succeeds. Then, 2 s later, the server's resident memory is read from /proc.
No DNS query leaves the machine (localserve's local-only resolver; MOX_DNS is
removed from the environment). Prints one JSON line per run and a table.

Other servers: ``--command`` runs any command that stays in the foreground
(``{dir}`` in it is replaced by a fresh directory), and ``--host``/``--port``/
``--probe`` say when it is up: ``imap-login`` (LOGIN as --user succeeds, the
default), ``imap-greeting`` or ``smtp-greeting`` (the first line arrives).
Memory is then the private memory of the command's process tree.

    .venv/bin/python bench/localserve_start.py [--runs 5]
    .venv/bin/python bench/localserve_start.py --command "dovecot -F -c {dir}/../dovecot.conf" \
        --port 10143 --user bench --password bench

Targets (issue 8): under 2 s to the first login, aim 0.5 s (upstream 0.23 s);
RSS 2 s after the login at most 60 MB (upstream 34 MB).
"""

from __future__ import annotations

import argparse
import imaplib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Report, mem_kib

IMAP_PORT = 1143
DEADLINE = 30.0
MOX_PORTS = (1025, 1143, 1587, 1465, 1993, 1080, 1443, 1081)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def try_login(host: str = "127.0.0.1", port: int = IMAP_PORT, user: str = "mox@localhost", password: str = "moxmoxmox") -> bool:
    try:
        c = imaplib.IMAP4(host, port, timeout=2)
    except OSError:
        return False
    try:
        typ, _ = c.login(user, password)
        return typ == "OK"
    except (imaplib.IMAP4.error, OSError):
        return False
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def try_greeting(host: str, port: int, prefix: bytes) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            return s.recv(512).startswith(prefix)
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def one_run(args: argparse.Namespace) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="localserve-bench-"))
    root = tmp / "dir"
    env = {k: v for k, v in os.environ.items() if k != "MOX_DNS"}
    if args.command:
        cmd = [a.replace("{dir}", str(root)) for a in shlex.split(args.command)]
        root.mkdir()
    else:
        cmd = [args.mox, "localserve", "-dir", str(root)]
    if args.probe == "imap-login":

        def up() -> bool:
            return try_login(args.host, args.port, args.user, args.password)
    else:
        prefix = b"* OK" if args.probe == "imap-greeting" else b"220"

        def up() -> bool:
            return try_greeting(args.host, args.port, prefix)

    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            while not up():
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
                if time.perf_counter() - t0 > DEADLINE:
                    raise RuntimeError(f"no {args.probe} on {args.host}:{args.port} within {DEADLINE} s")
                time.sleep(0.005)
            first_login = time.perf_counter() - t0
            time.sleep(2)
            rss = rss_mb(proc.pid)
            uss = mem_kib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return {
            "bench": "localserve_start",
            "command": "mox localserve" if not args.command else args.command,
            "probe": args.probe,
            "first_login_s": round(first_login, 3),
            "rss_mb_2s_after": round(rss, 1),
            "uss_mb_2s_after": None if uss is None else round(uss / 1024, 1),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mox", default=str(Path(sys.executable).parent / "mox"), help="the mox command to run")
    ap.add_argument("--command", help="start this server instead of mox localserve ({dir}: a fresh directory)")
    ap.add_argument("--host", default="127.0.0.1", help="where to probe (default %(default)s)")
    ap.add_argument("--port", type=int, default=IMAP_PORT, help="port to probe (default %(default)s)")
    ap.add_argument("--probe", choices=["imap-login", "imap-greeting", "smtp-greeting"], default="imap-login")
    ap.add_argument("--user", default="mox@localhost")
    ap.add_argument("--password", default="moxmoxmox")
    args = ap.parse_args()
    for port in MOX_PORTS if not args.command else (args.port,):
        if not port_free(port):
            sys.exit(f"port {port} is in use: stop the other localserve first")
    report = Report(
        "Start-up: command to first successful probe, memory 2 s later",
        [("command", "command"), ("probe", "until"), ("first_login_s", "seconds"),
         ("rss_mb_2s_after", "RSS MB"), ("uss_mb_2s_after", "private MB (process tree)")],
    )  # fmt: skip
    for _ in range(args.runs):
        report.add(one_run(args))
    report.table()


if __name__ == "__main__":
    main()
