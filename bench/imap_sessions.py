"""Memory per idle, logged-in IMAP session (issue 6 target: at most 30 KiB for plaintext).

A child process serves IMAP on a loopback port (the same server code as
``mox serve``, without the rest of it); the parent opens N connections, logs
each in, selects INBOX and starts IDLE, then reads the child's RSS. The
result is (RSS after - RSS before) / N, with the first session opened before
measuring (the account's store and caches are shared by all sessions).

    .venv/bin/python bench/imap_sessions.py [--n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "imapserver"))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import Report  # noqa: E402
from imaphelpers import PASSWORD, Client, ServerStub, connect  # noqa: E402

from mox.config.example import write_local_config  # noqa: E402
from mox.config.load import load_config  # noqa: E402
from mox.imapserver import server as imapserver  # noqa: E402
from mox.serve.listeners import Endpoint  # noqa: E402
from mox.serve.services import ConnContext  # noqa: E402
from mox.store.deliver import open_config_account  # noqa: E402
from mox.store.password import make_secrets  # noqa: E402


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _serve(confpath: str, q: multiprocessing.Queue[int]) -> None:
    async def main() -> None:
        cfg = load_config(Path(confpath))
        cfg.static.Listeners["local"].IMAP.NoRequireSTARTTLS = True
        # All sessions come from one IP: lift the per-IP connection limits for this measurement.
        imapserver._conn_rate.try_add = lambda *a, **k: None  # type: ignore[method-assign]
        imapserver._conns.acquire = lambda *a, **k: None  # type: ignore[method-assign]
        imapserver._conns.release = lambda *a, **k: None  # type: ignore[method-assign]
        ctx = ConnContext(ServerStub(cfg), Endpoint("local", "IMAP", "127.0.0.1", 0, False), starttls=None)  # type: ignore[arg-type]

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                await imapserver.serve(ctx, r, w)
            finally:
                w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1000)
        q.put(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def _idle_session(port: int) -> Client:
    c = await connect(port)
    await c.cmd("SELECT INBOX")
    c.send(b"i IDLE\r\n")
    line = await c.line()
    assert line.startswith(b"+ "), line
    return c


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        write_local_config(Path(d), ips=["127.0.0.1"], log_level="error")
        conf = Path(d) / "config" / "mox.conf"
        cfg = load_config(conf)
        acc = await open_config_account(cfg, "mox")
        await acc.set_password_secrets(make_secrets(PASSWORD, bcrypt_cost=4).to_json())
        await acc.close()
        q: multiprocessing.Queue[int] = multiprocessing.Queue()
        proc = multiprocessing.Process(target=_serve, args=(str(conf), q), daemon=True)
        proc.start()
        port = q.get(timeout=30)
        assert proc.pid is not None
        clients = [await _idle_session(port)]
        await asyncio.sleep(0.5)
        before = _rss_kib(proc.pid)
        for _ in range(args.n):
            clients.append(await _idle_session(port))
        await asyncio.sleep(0.5)
        after = _rss_kib(proc.pid)
        report = Report("Memory per idle logged-in IMAP session (SELECT, IDLE), in-process server")
        report.add({"bench": "imap_sessions", "sessions": args.n, "rss_kib_before": before, "rss_kib_after": after,
                    "kib_per_session": round((after - before) / args.n, 1)})  # fmt: skip
        report.table()
        for c in clients:
            c.writer.close()
        proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
