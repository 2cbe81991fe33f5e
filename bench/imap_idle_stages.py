"""Where the IDLE latency goes: per-stage timestamps of the SMTP DATA path up to the untagged EXISTS.

Starts ``mox serve`` (fresh local config, free loopback ports, empty loopback DNS
test server as in bench/imap_idle.py) with timing wrappers around the stages of
incoming delivery: the server reading the final dot, the iprev/SPF/DKIM/DMARC
checks, the store's preparation, file and directory fsyncs, SQLite BEGIN and
COMMIT, the change bus, and the IDLE session writing EXISTS. A client delivers
--n messages one at a time on one SMTP connection while an IMAP session IDLEs
(as mailbench's ``idle``) and records when it sent the dot and saw EXISTS.
Server and client share CLOCK_MONOTONIC (time.perf_counter on Linux), so the
table gives every stage in ms after the server read the final dot (median and
p90 over the deliveries, the first 3 left out as warm-up), plus the three legs
client dot -> server read, server read -> EXISTS written, written -> client saw it.

The wrappers add a little time of their own (a few microseconds per stage);
compare the total with bench/imap_idle.py. Stages a code path skipped are
missing (e.g. no syncfs for small groups).

    .venv/bin/python bench/imap_idle_stages.py [--n 100]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import functools
import json
import os
import random
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WARMUP = 3


# --- server side: run mox with timing wrappers ----------------------------------------------------


def _instrumented_serve(out: str, argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    import atexit

    import mox.imapserver.session as isess
    import mox.smtp.server as sm
    import mox.smtpserver.server as ss
    import mox.store.account as acc
    import mox.store.deliver as sdeliver
    import mox.store.events as ev
    from mox import dkim, dmarc
    from mox.cli.main import main

    marks: list[tuple[str, float]] = []
    pc = time.perf_counter

    def wrap(obj: Any, attr: str, name: str) -> None:
        f = getattr(obj, attr, None)
        if f is None:
            print(f"imap_idle_stages: {obj.__name__}.{attr} not found, stage {name!r} not measured", file=sys.stderr)
            return
        if asyncio.iscoroutinefunction(f):

            @functools.wraps(f)
            async def aw(*a: Any, **k: Any) -> Any:
                marks.append((name + " start", pc()))
                try:
                    return await f(*a, **k)
                finally:
                    marks.append((name + " end", pc()))

            setattr(obj, attr, aw)
        else:

            @functools.wraps(f)
            def sw(*a: Any, **k: Any) -> Any:
                marks.append((name + " start", pc()))
                try:
                    return f(*a, **k)
                finally:
                    marks.append((name + " end", pc()))

            setattr(obj, attr, sw)

    receive = sm.Connection.receive_data

    def receive_data(self: Any, data: bytes) -> Any:
        if data.endswith(b"\r\n.\r\n"):
            marks.append(("smtp: final dot read", pc()))
        return receive(self, data)

    sm.Connection.receive_data = receive_data  # type: ignore[method-assign]
    for obj, attr, name in [
        (ss, "_incoming", "smtp: incoming"),
        (ss, "_from_address", "check: parse From"),
        (ss, "_checks_iprev", "check: iprev"),
        (ss, "_checks_spf", "check: spf"),
        (dkim, "verify", "check: dkim"),
        (ss, "_dmarc_lookup", "check: dmarc lookup"),
        (dmarc, "verify", "check: dmarc evaluate"),
        (ss, "_deliver_all", "smtp: deliver"),
        (ss, "open_config_account", "store: open account"),
        (acc.Account, "add_message", "store: add_message"),
        (acc.Account, "_prepare_commit", "store: db thread (parse, write, commit)"),
        (sdeliver, "message_info", "store: parse message"),
        (acc.Account, "_write_file", "store: write file"),
        (acc, "_fsync_file", "store: fsync file"),
        (acc, "_syncfs", "store: syncfs"),
        (acc, "_fsync_dir", "store: fsync dir"),
    ]:
        wrap(obj, attr, name)

    @contextlib.contextmanager
    def tx(self: Any) -> Iterator[Any]:
        c = self.conn
        marks.append(("store: BEGIN", pc()))
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        marks.append(("store: COMMIT start", pc()))
        c.execute("COMMIT")
        marks.append(("store: COMMIT end", pc()))

    acc.Account._tx = tx  # type: ignore[method-assign,assignment]
    publish = ev.ChangeBus.publish

    def pub(self: Any, batch: Any) -> None:
        marks.append(("events: publish", pc()))
        publish(self, batch)

    ev.ChangeBus.publish = pub  # type: ignore[method-assign]
    deliver = ev.Subscription._deliver

    def dlv(self: Any, item: Any) -> None:
        marks.append(("imap: session woken", pc()))
        deliver(self, item)

    ev.Subscription._deliver = dlv  # type: ignore[method-assign]
    send = isess.Session.send

    def snd(self: Any, data: Any) -> None:
        if b" EXISTS" in bytes(data):
            marks.append(("imap: EXISTS written", pc()))
        send(self, data)

    isess.Session.send = snd  # type: ignore[method-assign]

    def dump() -> None:
        with open(out, "w") as f:
            json.dump(marks, f)

    atexit.register(dump)
    return int(main(argv) or 0)


# --- client side ----------------------------------------------------------------------------------


def _message(i: int, rnd: random.Random) -> bytes:
    body = "\r\n".join(" ".join(rnd.choice(("mail", "idle", "exists", "latency", "stage")) for _ in range(12)) for _ in range(16))
    return (
        f"From: Sender <sender{i % 97}@example.org>\r\nTo: mox@localhost\r\nSubject: stage {i}\r\n"
        f"Message-ID: <stage{i}.{rnd.randrange(1 << 30)}@example.org>\r\n\r\n{body}\r\n"
    ).encode()


def _deliveries(smtp_port: int, imap_port: int, password: str, n: int) -> list[tuple[float, float]]:
    import imaplib

    c = imaplib.IMAP4("127.0.0.1", imap_port)
    c.login("mox@localhost", password)
    c.select("INBOX")
    s = smtplib.SMTP("127.0.0.1", smtp_port, timeout=30)
    assert s.sock is not None
    s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.ehlo("bench.example")
    rnd = random.Random(3)
    out = []
    for i in range(n):
        tag = c._new_tag().decode()
        c.send(f"{tag} IDLE\r\n".encode())
        if not c.readline().startswith(b"+"):
            raise SystemExit("IDLE refused")
        seen: dict[str, float] = {}

        def reader(seen: dict[str, float] = seen) -> None:
            while True:
                line = c.readline()
                if not line or b"EXISTS" in line:
                    seen["t"] = time.perf_counter()
                    return

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        s.mail("sender@example.org")
        s.rcpt("mox@localhost")
        s.putcmd("data")
        s.getreply()
        s.send(_message(i, rnd) + b".\r\n")
        t0 = time.perf_counter()
        code, _ = s.getreply()
        th.join(10)
        if code != 250 or "t" not in seen:
            raise SystemExit(f"delivery {i}: reply {code}, EXISTS seen: {'t' in seen}")
        out.append((t0, seen["t"]))
        c.send(b"DONE\r\n")
        while not c.readline().startswith(tag.encode()):
            pass
    s.quit()
    c.logout()
    return out


def _ms(v: list[float]) -> tuple[float, float]:
    v = sorted(v)
    return round(statistics.median(v) * 1000, 3), round(v[int(0.9 * len(v))] * 1000, 3)


def _report(marks: list[tuple[str, float]], client: list[tuple[float, float]]) -> list[dict[str, Any]]:
    dots = [t for name, t in marks if name == "smtp: final dot read"]
    if len(dots) != len(client):
        raise SystemExit(f"{len(dots)} final dots seen by the server, {len(client)} deliveries sent")
    starts = [*dots, float("inf")]
    stages: dict[str, list[float]] = {}
    first_seen: dict[str, float] = {}
    for name, t in marks:
        i = bisect.bisect_right(starts, t) - 1
        if i < WARMUP or i >= len(dots):
            continue
        stages.setdefault(name, [])
        key = f"{i}:{name}"
        if key not in first_seen:  # the first occurrence per delivery
            first_seen[key] = t
            stages[name].append(t - dots[i])
    rows = []
    for name, v in sorted(stages.items(), key=lambda kv: statistics.median(kv[1])):
        med, p90 = _ms(v)
        rows.append({"bench": "imap_idle_stages", "stage": name, "median_ms": med, "p90_ms": p90, "n": len(v)})
    exists = [t for name, t in marks if name == "imap: EXISTS written"]
    legs: dict[str, list[float]] = {"client dot sent -> server read dot": [], "server read dot -> EXISTS written": [],
                                    "EXISTS written -> client read it": [], "total (client)": []}  # fmt: skip
    for i, ((sent, saw), dot) in enumerate(zip(client, dots, strict=True)):
        if i < WARMUP:
            continue
        j = bisect.bisect_left(exists, dot)
        if j == len(exists):
            continue
        legs["client dot sent -> server read dot"].append(dot - sent)
        legs["server read dot -> EXISTS written"].append(exists[j] - dot)
        legs["EXISTS written -> client read it"].append(saw - exists[j])
        legs["total (client)"].append(saw - sent)
    for name, v in legs.items():
        med, p90 = _ms(v)
        rows.append({"bench": "imap_idle_legs", "stage": name, "median_ms": med, "p90_ms": p90, "n": len(v)})
    return rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-instrumented":
        sys.exit(_instrumented_serve(sys.argv[2], sys.argv[3:]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="deliveries (default %(default)s)")
    args = ap.parse_args()
    if args.n <= WARMUP:
        ap.error(f"--n must be more than {WARMUP}")
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from benchlib import DEFAULT_PASSWORD, Report, wait_port

    from mox.config.example import free_local_ports, write_local_config
    from mox.config.load import load_config
    from mox.dns.testserver import DNSTestServer
    from mox.store.deliver import open_config_account
    from mox.store.password import make_secrets

    with tempfile.TemporaryDirectory(prefix="moxbench-") as tmp, DNSTestServer() as dns:
        ports = free_local_ports()
        conf = write_local_config(Path(tmp), ports=ports, ips=["127.0.0.1"], log_level="error")

        async def set_password() -> None:
            a = await open_config_account(load_config(conf), "mox")
            try:
                await a.set_password_secrets(make_secrets(DEFAULT_PASSWORD, bcrypt_cost=4).to_json())
            finally:
                await a.close()

        asyncio.run(set_password())
        trace = Path(tmp) / "stages.json"
        log = Path(tmp) / "serve.log"
        cmd = [sys.executable, __file__, "--serve-instrumented", str(trace), "-config", str(conf), "serve"]
        with open(log, "ab") as logf:
            proc = subprocess.Popen(cmd, env={**os.environ, "MOX_DNS": dns.address}, stdout=logf, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            for port in (ports.smtp, ports.imap):
                wait_port("127.0.0.1", port, deadline, proc, log)
            client = _deliveries(ports.smtp, ports.imap, DEFAULT_PASSWORD, args.n)
        finally:
            proc.terminate()
            proc.wait(30)
        marks = json.loads(trace.read_text())
    rep = Report(
        f"IDLE latency per stage (ms after the server read the final dot; {args.n - WARMUP} deliveries)",
        [("stage", "stage"), ("median_ms", "median ms"), ("p90_ms", "p90 ms"), ("n", "n")],
    )
    for row in _report(marks, client):
        rep.add(row)
    rep.table()


if __name__ == "__main__":
    main()
