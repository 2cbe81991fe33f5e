"""Shared parts of the benchmarks in bench/: result output, targets, process measurements, a mox serve.

Output: every benchmark prints one JSON line per result on stdout (what
bench/run.sh collects into bench/results/) and, at the end, the same results
as a Markdown table on stderr (``### title`` then ``| ... |`` lines), readable
in a terminal and copied as is into the results' .md file.

Targets: protocol benchmarks start their own ``mox serve`` (``MoxServe``) unless
given ``--host`` and a port, in which case they talk to that server (mox or
any other SMTP/IMAP server on loopback). Server-side measurements (CPU, memory)
need the server's process id (``--pid``); without it they are reported as
``n/a`` (null in JSON). Memory is the unique set size (private pages) summed
over the process and its descendants, so multi-process servers (Dovecot,
Postfix) are measured as fairly as single-process ones.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import ipaddress
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MAILBENCH = REPO.parent / "shared" / "bench" / "mailbench.py"
DEFAULT_USER = "mox@localhost"
DEFAULT_PASSWORD = "moxmoxmox"

WORDS = (
    "mail server queue message delivery report policy domain thread reply "
    "archive invoice meeting project budget schedule update review draft "
    "quarterly release notes travel lunch coffee contract support ticket"
).split()


# --- output ---------------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == int(v) and abs(v) >= 100:
            return str(int(v))
        return f"{v:g}" if abs(v) < 1e6 else f"{v:.0f}"
    return str(v)


def format_table(title: str, columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table with aligned columns; columns are (key, header) pairs."""
    cells = [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max([len(h), 3, *(len(c[i]) for c in cells)]) for i, (_, h) in enumerate(columns)]

    def line(vals: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)) + " |"

    out = [f"### {title}", "", line([h for _, h in columns]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    return "\n".join(out) + "\n"


class Report:
    """Collects results: each is printed as a JSON line at once; ``table()`` prints them as a table.

    columns: (key, header) pairs for the table; by default every key but "bench".
    """

    def __init__(self, title: str, columns: Sequence[tuple[str, str]] | None = None) -> None:
        self.title = title
        self.columns = list(columns) if columns else None
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        print(json.dumps(row), flush=True)

    def table(self, file: Any = None) -> str:
        """Print the results as a Markdown table on stderr (without columns: one table per "bench")."""
        if self.columns is not None:
            text = format_table(self.title, self.columns, self.rows)
        else:
            groups: dict[str, list[dict[str, Any]]] = {}
            for r in self.rows:
                groups.setdefault(str(r.get("bench", "")), []).append(r)
            parts = []
            for name, rows in groups.items():
                keys: list[str] = []
                for r in rows:
                    keys += [k for k in r if k != "bench" and k not in keys]
                title = f"{self.title}: {name}" if len(groups) > 1 else self.title
                parts.append(format_table(title, [(k, k) for k in keys], rows))
            text = "\n".join(parts)
        print(text, file=file or sys.stderr, flush=True)
        return text


# --- targets --------------------------------------------------------------------------------------


def add_target_args(ap: argparse.ArgumentParser, *ports: str, user: bool = True, rcpt: bool = False) -> None:
    """--host, --pid and one --<name>-port option per name (or --port for a single "").

    Without --host, the benchmark starts its own mox serve and these are ignored.
    """
    g = ap.add_argument_group("target (default: start a fresh mox serve on free loopback ports)")
    g.add_argument("--host", help="address of an already running server to measure instead (loopback only)")
    for name in ports:
        opt = f"--{name}-port" if name else "--port"
        g.add_argument(opt, type=int, help=f"{name or 'the'} port of the server at --host")
    g.add_argument("--pid", type=int, help="process id of the server at --host, for its CPU and memory (else n/a)")
    if user:
        g.add_argument("--user", default=DEFAULT_USER, help="login name (default %(default)s)")
        g.add_argument("--password", default=DEFAULT_PASSWORD, help="password (default %(default)s)")
    if rcpt:
        g.add_argument("--rcpt", default=DEFAULT_USER, help="recipient address for delivered mail (default %(default)s)")
        g.add_argument("--mailfrom", default="", help="envelope sender (default: bench@<the recipient's domain>)")


def check_target(ap: argparse.ArgumentParser, args: argparse.Namespace, *ports: str) -> None:
    """Reject a --host without its ports, ports without --host, and non-loopback hosts."""
    opts = [f"{n}_port" if n else "port" for n in ports]
    given = [o for o in opts if getattr(args, o) is not None]
    if args.host is None:
        if given or args.pid is not None:
            ap.error("--pid and port options need --host (without it a mox serve is started)")
        return
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            ap.error(f"--host {args.host}: benchmarks only talk to loopback addresses")
    except ValueError:
        ap.error(f"--host {args.host}: give an IP address")
    missing = [o for o in opts if getattr(args, o) is None]
    if missing:
        ap.error("with --host, give " + ", ".join("--" + o.replace("_", "-") for o in missing))
    if args.pid is not None and not Path(f"/proc/{args.pid}").exists():
        ap.error(f"--pid {args.pid}: no such process")


class Sources:
    """Loopback source addresses, each in its own /21 (127.A.B.1), for servers that limit per IP.

    Only when the server is on 127.0.0.0/8 (the kernel routes any 127.x source to it); else None.
    """

    def __init__(self, host: str, start: int = 0, enabled: bool = True) -> None:
        self.on = enabled and host.startswith("127.")
        self.k = start
        self.lock = threading.Lock()

    def next(self) -> tuple[str, int] | None:
        if not self.on:
            return None
        with self.lock:
            k = self.k
            self.k += 1
        return (f"127.{1 + (k // 32) % 254}.{(k % 32) * 8}.{1 + (k // 8128) % 254}", 0)


class SrcIMAP4(imaplib.IMAP4):
    """imaplib client connecting from a given source address."""

    def __init__(self, host: str, port: int, src: tuple[str, int] | None, timeout: float = 60) -> None:
        self._src = src
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        s = socket.create_connection((self.host, self.port), timeout, source_address=self._src)
        # imaplib writes a literal and its CRLF separately: without TCP_NODELAY every APPEND waits
        # for the server's delayed ACK (40 ms) before the CRLF goes out.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


def imap_login(host: str, port: int, user: str, password: str, src: tuple[str, int] | None = None) -> SrcIMAP4:
    c = SrcIMAP4(host, port, src)
    c.login(user, password)
    return c


# --- process measurements -------------------------------------------------------------------------


def cpu_s(pid: int | None) -> float | None:
    """User+system CPU seconds of the process tree (None without a pid)."""
    split = cpu_split(pid)
    return None if split is None else split[0] + split[1]


def cpu_split(pid: int | None) -> tuple[float, float] | None:
    """User and system CPU seconds of the process and its descendants, with their reaped children's."""
    if pid is None:
        return None
    user = system = 0
    for p in process_tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(f[11]) + int(f[13])
        system += int(f[12]) + int(f[14])
    tck = os.sysconf("SC_CLK_TCK")
    return user / tck, system / tck


def process_tree(pid: int) -> list[int]:
    """pid and its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int | None) -> int | None:
    """Resident set of the one process (None without a pid)."""
    return None if pid is None else _status_kib(pid, "VmRSS")


def hwm_kib(pid: int | None) -> int | None:
    """Peak resident set of the one process (None without a pid)."""
    return None if pid is None else _status_kib(pid, "VmHWM")


def mem_kib(pid: int | None) -> int | None:
    """Unique set size (private pages: Private_Clean + Private_Dirty) summed over the process tree, in KiB.

    Memory the server would free without the measured connections; unlike RSS or
    PSS it neither counts shared libraries once per forked process nor moves when
    unrelated processes map the same files. None without a pid.
    """
    if pid is None:
        return None
    total = 0
    for p in process_tree(pid):
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(v) for v in re.findall(r"^Private_(?:Clean|Dirty):\s+(\d+)", text, re.M))
    return total


def rnd1(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


def raise_nofile(n: int) -> None:
    """Raise the open-files soft limit to at least n (up to the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n) if hard != resource.RLIM_INFINITY else n, hard))


# --- messages -------------------------------------------------------------------------------------


def make_message(i: int, size: int, rnd: random.Random, sender: str = "sender@bench.example", to: str = DEFAULT_USER) -> bytes:
    """A plain text message of about size bytes (CRLF), mailbench-like: words, a subject, a thread every 5th."""
    subj = " ".join(rnd.choice(WORDS) for _ in range(4))
    hdr = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {'Re: ' if i % 5 == 0 and i else ''}bench {i} {subj}",
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(1.7e9 + i * 60))}",
        f"Message-ID: <bench{i}.{rnd.randrange(1 << 30)}@bench.example>",
    ]
    body: list[str] = []
    n = sum(len(h) + 2 for h in hdr) + 2
    while n < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(12))
        body.append(line)
        n += len(line) + 2
    return ("\r\n".join(hdr) + "\r\n\r\n" + "".join(b + "\r\n" for b in body)).encode()


def ensure_mbox(n: int, path: Path | None, timeout: float = 300) -> Path:
    """mailbench's corpus of n messages (98 MB for 10,000), made once per n under $TMPDIR unless path is given."""
    if path is not None:
        return path
    out = Path(tempfile.gettempdir()) / f"moxbench-mailbench-{n}.mbox"
    if not out.exists():
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        subprocess.run([sys.executable, str(MAILBENCH), "mbox", "--n", str(n), "--out", str(tmp)],
                       check=True, stdout=subprocess.DEVNULL, timeout=timeout)  # fmt: skip
        tmp.replace(out)
    return out


def mbox_messages(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """Messages of an mboxrd file (mailbench's), with CRLF line ends and ">From " unquoted."""
    cur: list[bytes] = []
    count = 0
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b"From "):
                if cur:
                    yield _mbox_message(cur)
                    count += 1
                    if limit is not None and count >= limit:
                        return
                cur = []
                continue
            cur.append(line)
    if cur and (limit is None or count < limit):
        yield _mbox_message(cur)


def _mbox_message(lines: list[bytes]) -> bytes:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    out = []
    for ln in lines:
        ln = ln.rstrip(b"\r\n")
        if re.match(rb">+From ", ln):
            ln = ln[1:]
        out.append(ln + b"\r\n")
    return b"".join(out)


# --- a mox serve to measure -----------------------------------------------------------------------


class MoxServe:
    """``mox serve`` on a fresh local config in a temporary directory, free loopback ports.

    DNS is answered by an empty loopback test server (MOX_DNS), so SPF/DMARC/iprev
    lookups get quick NXDOMAIN answers and nothing leaves the machine. The
    account "mox" (mox@localhost) gets the password DEFAULT_PASSWORD.
    """

    host = "127.0.0.1"

    def __init__(self, log_level: str = "error", start_timeout: float = 30) -> None:
        self.log_level = log_level
        self.start_timeout = start_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MoxServe:
        from mox.config.example import free_local_ports, write_local_config
        from mox.dns.testserver import DNSTestServer

        self._tmp = tempfile.TemporaryDirectory(prefix="moxbench-")
        self.root = Path(self._tmp.name)
        self.ports = free_local_ports()
        self.config = write_local_config(self.root, ports=self.ports, ips=["127.0.0.1"], log_level=self.log_level)
        self.log_path = self.root / "serve.log"
        self._dns = DNSTestServer()
        self._dns.__enter__()
        try:
            self.set_password(DEFAULT_PASSWORD)
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "mox", "-config", str(self.config), "serve"],
                    env={**os.environ, "MOX_DNS": self._dns.address},
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + self.start_timeout
            for port in (self.ports.smtp, self.ports.submission, self.ports.imap):
                wait_port(self.host, port, deadline, self.proc, self.log_path)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self) -> MoxServe:
        """Start outside a with statement; :meth:`close` ends it."""
        return self.__enter__()

    def close(self) -> None:
        self.__exit__(None, None, None)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def set_password(self, password: str) -> None:
        from mox.config.load import load_config
        from mox.store.deliver import open_config_account
        from mox.store.password import make_secrets

        async def run() -> None:
            acc = await open_config_account(load_config(self.config), "mox")
            try:
                await acc.set_password_secrets(make_secrets(password, bcrypt_cost=4).to_json())
            finally:
                await acc.close()

        asyncio.run(run())

    def inbox_count(self) -> int:
        """Messages in the account's Inbox (read from the store; call after the server stopped)."""
        from mox.config.load import load_config
        from mox.store import account as account_mod

        async def run() -> int:
            acc = await account_mod.open_account(load_config(self.config).data_dir, "mox")
            try:
                return (await acc.mailbox("Inbox")).counts.total
            finally:
                await acc.close()

        return asyncio.run(run())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        self._dns.__exit__(None, None, None)
        if self._tmp is not None:
            self._tmp.cleanup()


def wait_port(host: str, port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> None:  # fmt: skip
    """Wait until host:port accepts connections; clear error at the deadline (time.monotonic())."""
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise SystemExit(f"server exited with {proc.returncode} before listening on {host}:{port}\n{tail}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timeout waiting for {host}:{port} to accept connections")
        time.sleep(0.05)
