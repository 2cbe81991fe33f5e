"""Benchmark: kill -9 of `mox serve` while its queue delivers; after a restart, every accepted
message must arrive at least once. Reports duplicates and losses.

Runs as root (the sink listens on port 25 of 127.0.0.5, where the test DNS points
example.org's MX). Submits up to --messages messages over SMTP submission to
r<i>@example.org while the queue delivers them; when a third of --messages
arrived at the sink, SIGKILLs the server (which also ends the submission),
starts it again, waits until every acknowledged message arrived, then counts
Message-IDs at the sink: duplicates (delivered twice) and losses (acknowledged
but never delivered). Prints one JSON line.

    sudo .venv/bin/python bench/queue_kill.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "conformance"))
sys.path.insert(0, str(REPO / "bench"))
from benchlib import Report  # noqa: E402
from serve_harness import MoxServe  # noqa: E402
from test_smtp_delivery import set_password  # noqa: E402

from mox.config import model, sconf  # noqa: E402
from mox.config.load import parse_dynamic  # noqa: E402
from mox.dns.testserver import DNSTestServer  # noqa: E402

SINK_IP = "127.0.0.5"
TIME_LIMIT = 600.0
MSGID = re.compile(rb"^Message-ID: *(<[^>]+>)", re.I | re.M)


class Sink:
    """A minimal SMTP sink recording Message-IDs (PIPELINING, no TLS)."""

    def __init__(self) -> None:
        self.ids: list[bytes] = []
        self.lock = threading.Lock()

    async def session(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 sink ESMTP\r\n")
        try:
            while line := await r.readline():
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    w.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n")
                elif cmd == b"DATA":
                    w.write(b"354 go\r\n")
                    await w.drain()
                    data = bytearray()
                    while (ln := await r.readline()) not in (b".\r\n", b""):
                        data += ln
                    m = MSGID.search(bytes(data))
                    with self.lock:
                        self.ids.append(m.group(1) if m else b"?")
                    w.write(b"250 2.0.0 ok\r\n")
                elif cmd == b"QUIT":
                    w.write(b"221 bye\r\n")
                    await w.drain()
                    break
                else:
                    w.write(b"250 ok\r\n")
                await w.drain()
        except ConnectionError:
            pass
        w.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (sink on port 25)")
    sink = Sink()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run_sink() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.start_server(sink.session, SINK_IP, 25))
        started.set()
        loop.run_forever()

    threading.Thread(target=run_sink, daemon=True).start()
    started.wait(5)
    tmp = Path(tempfile.mkdtemp(prefix="moxbench-kill-"))
    with DNSTestServer() as dns:
        dns.add("example.org", "MX", "10 mx.example.org.")
        dns.add_ip("mx.example.org", SINK_IP)
        os.environ["MOX_DNS"] = dns.address
        m = MoxServe(tmp)
        dyn, _ = parse_dynamic(m.config.parent / "domains.conf")
        acc = dyn.Accounts["mox"]
        acc.MaxOutgoingMessagesPerDay = acc.MaxFirstTimeRecipientsPerDay = 10 * args.messages
        (m.config.parent / "domains.conf").write_text(sconf.write(dyn, header=model.DYNAMIC_HEADER))
        m.start()
        set_password(m, "moxmoxmox")
        accepted: set[bytes] = set()
        t0 = time.monotonic()

        def submit() -> None:
            # Submission goes on while the queue delivers; the kill ends it.
            try:
                with smtplib.SMTP("127.0.0.1", m.ports.submission, timeout=30) as s:
                    s.login("mox@localhost", "moxmoxmox")
                    for i in range(args.messages):
                        mid = f"<bench-{i}@localhost>"
                        msg = f"From: mox@localhost\r\nTo: r{i}@example.org\r\nMessage-ID: {mid}\r\nSubject: {i}\r\n\r\nbody {i}\r\n"
                        s.sendmail("mox@localhost", [f"r{i}@example.org"], msg.encode())
                        accepted.add(mid.encode())
            except (smtplib.SMTPException, OSError):
                pass

        sub = threading.Thread(target=submit)
        sub.start()
        while len(sink.ids) < args.messages // 3 and time.monotonic() - t0 < TIME_LIMIT:
            time.sleep(0.005)
        assert m.proc is not None
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait()
        sub.join()
        submit_s = time.monotonic() - t0
        killed_at = len(sink.ids)
        m.start()
        while not accepted <= set(sink.ids) and time.monotonic() - t0 < TIME_LIMIT:
            time.sleep(0.1)
        time.sleep(2)  # late duplicates, if any
        total = time.monotonic() - t0
        m.stop()
    unique = set(sink.ids)
    report = Report("kill -9 of mox serve during queue delivery")
    report.add({
        "bench": "queue_kill", "submitted": args.messages, "accepted": len(accepted), "delivered_before_kill": killed_at,
        "received": len(sink.ids), "unique": len(unique), "duplicates": len(sink.ids) - len(unique),
        "lost": len(accepted - unique), "submit_s": round(submit_s, 1), "total_s": round(total, 1),
    })  # fmt: skip
    report.table()


if __name__ == "__main__":
    main()
