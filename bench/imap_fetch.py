"""IMAP FETCH/SEARCH/STORE timings on a large mailbox (10,000 messages by default), for mox serve or any server.

The commands of mailbench's ``fetch`` (../shared/bench/mailbench.py, the tool
of the upstream figures): SELECT, UID FETCH 1:* (UID FLAGS RFC822.SIZE
INTERNALDATE), UID FETCH 1:* (ENVELOPE BODYSTRUCTURE), BODY.PEEK[] of the last
1,000 messages, UID SEARCH TEXT "invoice" and SUBJECT "quarterly", STORE
+FLAGS/-FLAGS \\Seen on all. Wall-clock ms per command as the client sees it
(plaintext IMAP), and the server's CPU ms when its process is known.

By default starts ``mox serve`` on a fresh local config and imports mailbench's
corpus of --n messages (made once under $TMPDIR, or --mbox) with ``mox import
mbox``. With ``--host``/``--port`` it measures the mailbox of an already running
server as it is; ``--fill`` first APPENDs the corpus' messages to it when it
has fewer than --n (timed and reported as a row of its own).
(bench/imap_fetch.sh runs mailbench itself on fixed ports.)

    .venv/bin/python bench/imap_fetch.py [--n 10000]
    .venv/bin/python bench/imap_fetch.py --host 127.0.0.1 --port 143 --user bench --password bench --fill --pid PID
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (
    MoxServe,
    Report,
    SrcIMAP4,
    add_target_args,
    check_target,
    cpu_s,
    ensure_mbox,
    imap_login,
    mbox_messages,
)


def append_messages(c: SrcIMAP4, mailbox: str, mbox: Path, n: int, deadline: float) -> int:
    """APPEND the first n messages of mbox to mailbox, one command each; returns how many."""
    count = 0
    for msg in mbox_messages(mbox, n):
        if time.monotonic() > deadline:
            raise SystemExit(f"APPEND: {count} of {n} messages within the time limit")
        typ, data = c.append(mailbox, None, None, msg)
        if typ != "OK":
            raise SystemExit(f"APPEND {mailbox}: {typ} {data!r}")
        count += 1
    return count


def run_commands(c: SrcIMAP4, mailbox: str, pid: int | None, target: str, report: Report) -> None:
    def timed(name: str, f: Callable[[], tuple[str, Any]]) -> Any:
        c0, t0 = cpu_s(pid), time.perf_counter()
        typ, data = f()
        dt, c1 = time.perf_counter() - t0, cpu_s(pid)
        if typ != "OK":
            raise SystemExit(f"{name}: {typ} {data!r}")
        report.add({"bench": "imap_fetch", "target": target, "command": name, "messages": n[0],
                    "ms": round(dt * 1000, 1),
                    "server_cpu_ms": None if c0 is None or c1 is None else round((c1 - c0) * 1000, 1)})  # fmt: skip
        return data

    n = [0]
    c0, t0 = cpu_s(pid), time.perf_counter()
    typ, data = c.select(mailbox)
    dt, c1 = time.perf_counter() - t0, cpu_s(pid)
    if typ != "OK":
        raise SystemExit(f"SELECT {mailbox}: {typ} {data!r}")
    n[0] = int(data[0] or 0)
    if n[0] == 0:
        raise SystemExit(f"{mailbox} is empty: fill it first (--fill)")
    report.add({"bench": "imap_fetch", "target": target, "command": "select", "messages": n[0],
                "ms": round(dt * 1000, 1),
                "server_cpu_ms": None if c0 is None or c1 is None else round((c1 - c0) * 1000, 1)})  # fmt: skip
    timed("uid fetch 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)",
          lambda: c.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)"))  # fmt: skip
    timed("uid fetch 1:* (ENVELOPE BODYSTRUCTURE)", lambda: c.uid("FETCH", "1:*", "(ENVELOPE BODYSTRUCTURE)"))
    lo = max(1, n[0] - 999)
    timed(f"fetch {lo}:{n[0]} BODY.PEEK[]", lambda: c.fetch(f"{lo}:{n[0]}", "(BODY.PEEK[])"))
    timed('uid search text "invoice"', lambda: c.uid("SEARCH", "TEXT", '"invoice"'))
    timed('uid search subject "quarterly"', lambda: c.uid("SEARCH", "SUBJECT", '"quarterly"'))
    timed("store +flags.silent \\Seen 1:*", lambda: c.store("1:*", "+FLAGS.SILENT", "(\\Seen)"))
    timed("store -flags.silent \\Seen 1:*", lambda: c.store("1:*", "-FLAGS.SILENT", "(\\Seen)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="messages in the mailbox (own server, --fill)")
    ap.add_argument("--mbox", type=Path, help="corpus to import (default: mailbench's, generated once)")
    ap.add_argument("--timeout", type=float, default=600, help="bound for the import or APPENDs, in seconds")
    add_target_args(ap, "")
    ap.add_argument("--mailbox", default="INBOX", help="mailbox to measure (default %(default)s)")
    ap.add_argument("--fill", action="store_true", help="with --host: APPEND the corpus to the mailbox if it has fewer than --n messages")
    args = ap.parse_args()
    check_target(ap, args, "")
    report = Report(
        "IMAP commands on a large mailbox (wall ms as the client sees it)",
        [("target", "server"), ("command", "command"), ("messages", "messages"), ("ms", "ms"), ("server_cpu_ms", "server CPU ms")],
    )
    deadline = time.monotonic() + args.timeout
    if args.host is not None:
        target = f"{args.host}:{args.port}"
        c = imap_login(args.host, args.port, args.user, args.password)
        if args.fill:
            typ, data = c.status(args.mailbox, "(MESSAGES)")
            have = int(data[0].split(b"MESSAGES ")[1].split(b")")[0]) if typ == "OK" else 0
            if have < args.n:
                mbox = ensure_mbox(args.n, args.mbox)
                t0 = time.perf_counter()
                added = append_messages(c, args.mailbox, mbox, args.n - have, deadline)
                dt = time.perf_counter() - t0
                report.add({"bench": "imap_fetch", "target": target, "command": f"append {added} messages",
                            "messages": added, "ms": round(dt * 1000, 1), "server_cpu_ms": None})  # fmt: skip
        run_commands(c, args.mailbox, args.pid, target, report)
        c.logout()
    else:
        mbox = ensure_mbox(args.n, args.mbox)
        with MoxServe() as m:
            r = subprocess.run([sys.executable, "-m", "mox", "-config", str(m.config), "import", "mbox", "mox", "Inbox", str(mbox)],
                               capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()))  # fmt: skip
            if r.returncode != 0:
                raise SystemExit(f"mox import mbox failed:\n{r.stderr}")
            c = imap_login(m.host, m.ports.imap, args.user, args.password)
            run_commands(c, args.mailbox, m.pid, "mox serve", report)
            c.logout()
    report.table()


if __name__ == "__main__":
    main()
