"""Import of a large mbox through a running server: ``mox import mbox`` as a user runs it.

Makes (or takes) the 10,000-message, 98 MB mbox of ../shared/bench/mailbench.py
(``mailbench.py mbox --n 10000 --out FILE``), starts a real ``mox serve`` on a
local config with free loopback ports (DNS answered by an empty loopback test
server), runs ``python -m mox -config ... import mbox mox Inbox FILE`` and
prints one JSON line per run: wall time of the command, MB/s, messages/s,
the server's user and system CPU seconds during the import, its peak RSS
(VmHWM) and RSS before the import.

Creating a file (allocating an inode) on the shared machine's ext4 varies
from ~25 to ~900 microseconds of system CPU from one minute to the next, and
an import creates one file per message; each line also has
``file_create_us`` and ``file_create_us_after``, the cost of creating a 10 kB
file measured just before and after the run in the same directory, so runs
can be compared. The temporary directory is $TMPDIR's (default /tmp).

    .venv/bin/python bench/import_mbox.py [--n 10000] [--mbox FILE] [--runs 1]

Bounded: the import must finish within --timeout seconds (default 300); the
server is stopped and its directory removed afterwards.

Other servers have their own import tools; what every IMAP server does is
APPEND. ``--method append`` imports the same mbox with one IMAP APPEND per
message (into the own mox serve's Inbox, or, with ``--host``/``--port``/
``--user``/``--password``/``--mailbox``, into any running server; its CPU and
memory need ``--pid``). Prints one JSON line per run and a table.

    .venv/bin/python bench/import_mbox.py --method append --host 127.0.0.1 --port 143 --user bench --password bench
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (
    MoxServe,
    Report,
    add_target_args,
    check_target,
    cpu_split,
    hwm_kib,
    imap_login,
    mbox_messages,
    mem_kib,
)

from mox.dns.testserver import isolated_default_dns

REPO = Path(__file__).resolve().parent.parent
MAILBENCH = REPO.parent / "shared" / "bench" / "mailbench.py"



def proc_status(pid: int, field: str) -> int:
    """A kB value from /proc/PID/status (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def file_create_us(d: Path, n: int = 2000) -> float:
    """Microseconds to create (and write 10 kB to) a file in the new directory d, now.

    The files stay until the run's directory is removed: deleting many files
    makes ext4 skip their inodes for a while, which would slow the import.
    """
    d.mkdir()
    data = b"x" * 10000
    t = time.perf_counter()
    for i in range(n):
        fd = os.open(d / str(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.close(fd)
    return (time.perf_counter() - t) / n * 1e6


def run_once(mbox: Path, n: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        root = Path(tmp)
        probe = file_create_us(root / "probe-before")
        server = MoxServe(log_level="info").start()
        pid = server.pid
        try:
            rss_before = proc_status(pid, "VmRSS")
            peak = [proc_status(pid, "VmHWM")]
            done = threading.Event()

            def poll() -> None:
                # VmHWM is the true peak; VmRSS polling is a cross-check.
                while not done.wait(0.05):
                    try:
                        peak.append(proc_status(pid, "VmRSS"))
                    except OSError:
                        return

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            cpu0 = cpu_seconds(pid)
            t0 = time.monotonic()
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mox",
                    "-config",
                    str(server.config),
                    "import",
                    "mbox",
                    "mox",
                    "Inbox",
                    str(mbox),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            wall = time.monotonic() - t0
            cpu1 = cpu_seconds(pid)
            user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
            done.set()
            poller.join()
            hwm = proc_status(pid, "VmHWM")
            if r.returncode != 0 or f"imported {n} messages" not in r.stderr:
                raise SystemExit(f"import failed ({r.returncode}):\n{r.stderr}")
            server_line = next(
                (line for line in server.log_path.read_text().splitlines() if 'm="imported messages"' in line), ""
            )
        finally:
            server.close()
        probe_after = file_create_us(root / "probe-after")
    size = mbox.stat().st_size
    return {
        "bench": "import_mbox",
        "method": "mox import mbox",
        "target": "mox serve",
        "messages": n,
        "mbox_mb": round(size / 1e6, 1),
        "wall_s": round(wall, 2),
        "mb_per_s": round(size / 1e6 / wall, 1),
        "msgs_per_s": round(n / wall),
        "server_user_s": round(user, 2),
        "server_sys_s": round(system, 2),
        "server_peak_rss_mb": round(max(hwm, *peak) / 1024, 1),
        "server_rss_before_mb": round(rss_before / 1024, 1),
        "server_import_duration": server_line.rsplit("duration=", 1)[-1] if server_line else "",
        "file_create_us": round(probe),
        "file_create_us_after": round(probe_after),
        "cpus": os.cpu_count(),
    }


def run_append(mbox: Path, n: int, host: str, port: int, user: str, password: str, mailbox: str,
               pid: int | None, target: str, timeout: float) -> dict[str, Any]:  # fmt: skip
    """APPEND every message of mbox, one command at a time, as an IMAP client would import."""
    c = imap_login(host, port, user, password)
    cpu0 = cpu_split(pid)
    mem0 = mem_kib(pid)
    deadline = time.monotonic() + timeout
    count = 0
    t0 = time.monotonic()
    for msg in mbox_messages(mbox, n):
        if time.monotonic() > deadline:
            raise SystemExit(f"APPEND: {count} of {n} messages within --timeout {timeout} s")
        typ, data = c.append(mailbox, None, None, msg)
        if typ != "OK":
            raise SystemExit(f"APPEND to {mailbox}: {typ} {data!r}")
        count += 1
    wall = time.monotonic() - t0
    cpu1 = cpu_split(pid)
    mem1 = mem_kib(pid)
    c.logout()
    size = mbox.stat().st_size
    return {
        "bench": "import_mbox",
        "method": "imap append",
        "target": target,
        "messages": count,
        "mbox_mb": round(size / 1e6, 1),
        "wall_s": round(wall, 2),
        "mb_per_s": round(size / 1e6 / wall, 1),
        "msgs_per_s": round(count / wall),
        "server_user_s": None if cpu0 is None or cpu1 is None else round(cpu1[0] - cpu0[0], 2),
        "server_sys_s": None if cpu0 is None or cpu1 is None else round(cpu1[1] - cpu0[1], 2),
        "server_peak_rss_mb": None if target != "mox serve" else round((hwm_kib(pid) or 0) / 1024, 1),
        "server_mem_growth_mb": None if mem0 is None or mem1 is None else round((mem1 - mem0) / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="messages in the generated mbox")
    ap.add_argument("--mbox", type=Path, help="use this mbox instead of generating one (give --n to match)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--method", choices=["cli", "append"], default="cli",
                    help="mox import mbox through the running server (default), or IMAP APPEND")  # fmt: skip
    add_target_args(ap, "")
    ap.add_argument("--mailbox", default="INBOX", help="with --method append: mailbox to append to")
    a = ap.parse_args()
    check_target(ap, a, "")
    if a.host is not None and a.method != "append":
        ap.error("--host needs --method append (mox import mbox works only with our own server)")
    report = Report(
        "mbox import",
        [("target", "server"), ("method", "method"), ("messages", "messages"), ("mbox_mb", "MB"),
         ("wall_s", "seconds"), ("msgs_per_s", "msg/s"), ("server_user_s", "server user s"),
         ("server_sys_s", "server sys s"), ("server_peak_rss_mb", "server peak RSS MB")],
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-mbox-") as tmp, isolated_default_dns():
        mbox = a.mbox
        if mbox is None:
            mbox = Path(tmp) / "bench.mbox"
            subprocess.run(
                [sys.executable, str(MAILBENCH), "mbox", "--n", str(a.n), "--out", str(mbox)],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=a.timeout,
            )
        for _ in range(a.runs):
            if a.method == "cli":
                report.add(run_once(mbox, a.n, a.timeout))
            elif a.host is not None:
                report.add(run_append(mbox, a.n, a.host, a.port, a.user, a.password, a.mailbox, a.pid,
                                      f"{a.host}:{a.port}", a.timeout))  # fmt: skip
            else:
                with MoxServe() as m:
                    report.add(run_append(mbox, a.n, m.host, m.ports.imap, a.user, a.password, a.mailbox, m.pid,
                                          "mox serve", a.timeout))  # fmt: skip
    report.table()


if __name__ == "__main__":
    main()
