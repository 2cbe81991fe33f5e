"""Run every benchmark of bench/ and write bench/results/<UTC date>-<time>.jsonl and .md.

Each benchmark runs as its own process with bounded sizes and a time limit;
its JSON lines go to the .jsonl file (with "run" and "mode" added), its tables
(printed on stderr) to the .md file and the terminal. A benchmark that fails
or runs out of time is recorded as such and the others still run.

    bash bench/run.sh                 # full sizes (the issues' figures), about 10 minutes
    bash bench/run.sh --quick         # small counts, a few minutes: does everything still work
    bash bench/run.sh --only smtp_2k_16,imap_idle
    bash bench/run.sh --list

Against another server on loopback (only the protocol benchmarks run; what the
server does not have a port for is left out), e.g. the Postfix and Dovecot of
bench/other_servers.py:

    bash bench/run.sh --host 127.0.0.1 --smtp-port 10026 --imap-port 10143 \\
        --user bench@localhost --password bench --rcpt bench@localhost --pid DOVECOTPID --smtp-pid POSTFIXPID
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


@dataclass
class Bench:
    name: str
    script: str
    full: list[str]
    quick: list[str]
    what: str
    # Which target options it takes against another server; None: only runs on its own.
    external: list[str] | None = None
    needs: list[str] = field(default_factory=list)  # run_all options that must be given for external runs


BENCHES = [
    Bench("smtp_2k_16", "smtp_deliver.py", ["--n", "2000", "--conc", "16"], ["--n", "100", "--conc", "4"],
          "SMTP delivery, 2 KiB, 16 connections", ["host", "smtp:port", "smtppid", "rcpt"], ["smtp_port"]),
    Bench("smtp_2k_1", "smtp_deliver.py", ["--n", "500", "--conc", "1"], ["--n", "50", "--conc", "1"],
          "SMTP delivery, 2 KiB, 1 connection", ["host", "smtp:port", "smtppid", "rcpt"], ["smtp_port"]),
    Bench("smtp_100k_16", "smtp_deliver.py", ["--n", "400", "--conc", "16", "--size", "102400"],
          ["--n", "40", "--conc", "4", "--size", "102400"],
          "SMTP delivery, 100 KiB, 16 connections", ["host", "smtp:port", "smtppid", "rcpt"], ["smtp_port"]),
    Bench("smtp_100k_1", "smtp_deliver.py", ["--n", "100", "--conc", "1", "--size", "102400"],
          ["--n", "10", "--conc", "1", "--size", "102400"],
          "SMTP delivery, 100 KiB, 1 connection", ["host", "smtp:port", "smtppid", "rcpt"], ["smtp_port"]),
    Bench("submit_2k_8", "smtp_deliver.py", ["--mode", "submit", "--n", "1000", "--conc", "8"],
          ["--mode", "submit", "--n", "100", "--conc", "4"],
          "submission, AUTH PLAIN, 2 KiB, 8 connections", ["host", "submission:port", "smtppid", "user", "rcpt"],
          ["submission_port"]),
    Bench("smtp_conns", "smtp_conns.py", ["--n", "1000"], ["--n", "50"],
          "memory per idle SMTP connection, plaintext and TLS", ["host", "smtp:port", "smtppid"], ["smtp_port"]),
    Bench("imap_idle", "imap_idle.py", ["--n", "100", "--conns", "300"], ["--n", "10", "--conns", "30"],
          "IDLE latency (end of DATA to EXISTS), memory per idle IMAP and SMTP connection",
          ["host", "smtp:smtp-port", "imap:imap-port", "pid", "smtppid:smtp-pid", "user", "rcpt", "mailbox", "lmtp"],
          ["smtp_port", "imap_port"]),
    Bench("import_mbox", "import_mbox.py", ["--n", "10000"], ["--n", "500"],
          "mbox import (mox import mbox; IMAP APPEND for other servers)",
          ["host", "imap:port", "pid", "user", "mailbox", "append"], ["imap_port"]),
    Bench("imap_fetch", "imap_fetch.py", ["--n", "10000"], ["--n", "500"],
          "IMAP FETCH/SEARCH/STORE on a 10,000-message mailbox",
          ["host", "imap:port", "pid", "user", "mailbox", "fill"], ["imap_port"]),
    Bench("queue_deliver", "queue_deliver.py", ["--messages", "2000"], ["--messages", "200"],
          "outgoing queue delivery throughput (to a sink, or to the server)", ["host", "smtp:port", "rcpt"],
          ["smtp_port"]),
    Bench("startup", "localserve_start.py", ["--runs", "3"], ["--runs", "1"],
          "start-up time to the first IMAP login, memory 2 s later", ["start"], ["start_command"]),
    Bench("smtpclient", "smtpclient_deliver.py", ["--messages", "2000"], ["--messages", "200"],
          "mox.smtpclient to a loopback sink"),
    Bench("store", "store_deliver.py", ["--threads", "100000"],
          ["--n", "200", "--existing", "500", "--cpu-n", "50", "--threads", "2000"],
          "message store: group commit, CPU per delivery, thread reassignment"),
    Bench("message_parse", "message_parse.py", [], ["--messages", "100", "--rounds", "2"], "MIME parsing"),
    Bench("imap_thread", "imap_thread.py", [], ["--messages", "1000", "--rounds", "2"], "THREAD and SORT"),
    Bench("config_load", "config_load.py", ["--accounts", "2000", "--domains", "20"],
          ["--accounts", "200", "--domains", "5", "--rounds", "2"], "config parse/validate/reload/write"),
    Bench("ctl_stream", "ctl_stream.py", ["--size-mb", "200"], ["--size-mb", "20"], "ctl socket streams"),
]  # fmt: skip


def external_args(b: Bench, a: argparse.Namespace) -> list[str] | None:
    """Command line options of b against the server given to run_all; None if b cannot run against it."""
    if b.external is None or any(getattr(a, n) is None for n in b.needs):
        return None
    if a.lmtp and "smtp_port" in b.needs and "lmtp" not in b.external:
        return None  # The port speaks LMTP: only the IDLE benchmark can use it.
    out: list[str] = []
    for spec in b.external:
        key, _, opt = spec.partition(":")
        if key == "host":
            out += ["--host", a.host]
        elif key in ("smtp", "submission", "imap"):
            out += [f"--{opt}", str(getattr(a, f"{key}_port"))]
        elif key == "pid" and a.pid is not None:
            out += ["--pid", str(a.pid)]
        elif key == "smtppid" and (a.smtp_pid or a.pid) is not None:
            out += [f"--{opt or 'pid'}", str(a.smtp_pid or a.pid)]
        elif key == "user":
            out += ["--user", a.user, "--password", a.password]
        elif key == "rcpt" and a.rcpt:
            out += ["--rcpt", a.rcpt]
        elif key == "mailbox":
            out += ["--mailbox", a.mailbox]
        elif key == "lmtp" and a.lmtp:
            out += ["--lmtp"]
        elif key == "append":
            out += ["--method", "append"]
        elif key == "fill":
            out += ["--fill"]
        elif key == "start":
            out += ["--command", a.start_command, "--port", str(a.start_port or a.imap_port or 143),
                    "--probe", a.start_probe, "--user", a.user, "--password", a.password]  # fmt: skip
    return out


def run_one(b: Bench, args: list[str], timeout: float) -> tuple[int | str, list[str], list[str], float]:
    """Run one benchmark; returns (exit code or "timeout"), JSON lines, stderr lines, seconds."""
    cmd = [sys.executable, str(BENCH / b.script), *args]
    print(f"\n## {b.name}: {b.what}\n$ {shlex.join(['python', 'bench/' + b.script, *args])}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []

    def pump_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line.rstrip("\n"))

    def pump_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line.rstrip("\n"))
            sys.stderr.write(line)
            sys.stderr.flush()

    threads = [threading.Thread(target=pump_out), threading.Thread(target=pump_err)]
    for t in threads:
        t.start()
    rc: int | str
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = "timeout"
    for t in threads:
        t.join(10)
    return rc, [ln for ln in out if ln.startswith("{")], err, time.monotonic() - t0


def tables_of(err: list[str]) -> list[str]:
    """The Markdown tables a benchmark printed (heading, blank line and | lines)."""
    keep: list[str] = []
    for ln in err:
        if ln.startswith("### ") or ln.startswith("|"):
            keep.append(ln)
        elif ln == "" and keep and (keep[-1].startswith("### ") or keep[-1].startswith("|")):
            keep.append("")
    return keep


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts: checks that every benchmark works, in a few minutes")
    ap.add_argument("--only", default="", help="comma-separated benchmark names (see --list)")
    ap.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--out-dir", type=Path, default=BENCH / "results")
    ap.add_argument("--timeout", type=float, help="seconds per benchmark (default 900, quick 180)")
    g = ap.add_argument_group("another server on loopback (only the protocol benchmarks run)")
    g.add_argument("--host")
    g.add_argument("--smtp-port", type=int)
    g.add_argument("--submission-port", type=int)
    g.add_argument("--imap-port", type=int)
    g.add_argument("--lmtp", action="store_true", help="--smtp-port speaks LMTP (IDLE latency and connections only)")
    g.add_argument("--user", default="mox@localhost")
    g.add_argument("--password", default="moxmoxmox")
    g.add_argument("--rcpt", default="", help="recipient of delivered mail (default mox@localhost)")
    g.add_argument("--mailbox", default="INBOX")
    g.add_argument("--pid", type=int, help="the server's process, for its CPU and memory")
    g.add_argument("--smtp-pid", type=int, help="the SMTP server's process if it is another one (default --pid)")
    g.add_argument("--start-command", help="start-up benchmark: command starting the server in the foreground")
    g.add_argument("--start-port", type=int, help="start-up benchmark: port to probe (default --imap-port)")
    g.add_argument("--start-probe", default="imap-login", choices=["imap-login", "imap-greeting", "smtp-greeting"])
    a = ap.parse_args()
    if a.list:
        for b in BENCHES:
            ext = "any server" if b.external else "mox only"
            print(f"{b.name:15} {ext:11} {b.what}")
        return
    names = {b.name for b in BENCHES}
    only = [n for n in a.only.split(",") if n]
    skip = [n for n in a.skip.split(",") if n]
    for n in only + skip:
        if n not in names:
            ap.error(f"unknown benchmark {n!r}; see --list")
    if a.host is not None and a.host.split(".")[0] != "127" and a.host != "::1":
        ap.error("--host must be a loopback address")
    if a.host is None and (a.smtp_port or a.imap_port or a.submission_port or a.pid or a.smtp_pid or a.start_command):
        ap.error("port, --pid and --start-command options need --host")
    mode = "quick" if a.quick else "full"
    timeout = a.timeout or (180.0 if a.quick else 900.0)
    now = dt.datetime.now(dt.UTC)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    stem = a.out_dir / now.strftime("%Y-%m-%d-%H%M%S")
    jsonl, md = stem.with_suffix(".jsonl"), stem.with_suffix(".md")
    target = (f"{a.host}, SMTP port {a.smtp_port} (pid {a.smtp_pid or a.pid or 'n/a'}), IMAP port {a.imap_port} (pid {a.pid or 'n/a'})"
              if a.host else "mox serve started by each benchmark")  # fmt: skip
    load = os.getloadavg()
    head = [
        f"# Benchmarks {now.strftime('%Y-%m-%d %H:%M:%S')} UTC, {mode} mode",
        "",
        f"- commit {git_rev()}, target: {target}",
        f"- {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start",
        "",
    ]
    summary: list[tuple[str, str, float]] = []
    body: list[str] = []
    t_all = time.monotonic()
    with open(jsonl, "w") as jf:
        for b in BENCHES:
            if (only and b.name not in only) or b.name in skip:
                continue
            sizes = b.quick if a.quick else b.full
            if a.host is not None:
                ext_args = external_args(b, a)
                if ext_args is None:
                    continue
                args = sizes + ext_args
            else:
                args = sizes
            rc, lines, err, secs = run_one(b, args, timeout)
            status = "ok" if rc == 0 and lines else ("timeout" if rc == "timeout" else f"failed ({rc})")
            for ln in lines:
                try:
                    obj = json.loads(ln)
                except ValueError:
                    continue
                jf.write(json.dumps({"run": b.name, "mode": mode, **obj}) + "\n")
            if status != "ok":
                jf.write(json.dumps({"run": b.name, "mode": mode, "error": status, "stderr": "\n".join(err[-20:])}) + "\n")
            jf.flush()
            what = b.what + (" (quick mode: smaller counts, see the command)" if a.quick else "")
            body += [f"## {b.name}: {what}", "", f"`python {shlex.join(['bench/' + b.script, *args])}`, {secs:.1f} s", ""]
            body += tables_of(err) or ["(no table)", ""]
            if status != "ok":
                body += ["```", *err[-20:], "```", ""]
            summary.append((b.name, status, secs))
    total = time.monotonic() - t_all
    sumtab = ["| benchmark | status | seconds |", "|---|---|---|"]
    sumtab += [f"| {n} | {s} | {t:.1f} |" for n, s, t in summary]
    md.write_text("\n".join([*head, *sumtab, "", f"Total {total:.0f} s.", "", *body]) + "\n")
    print("\n" + "\n".join(sumtab), file=sys.stderr)
    print(f"\ntotal {total:.0f} s; results in {jsonl} and {md}", file=sys.stderr)
    if any(s != "ok" for _, s, _ in summary):
        sys.exit(1)


if __name__ == "__main__":
    main()
