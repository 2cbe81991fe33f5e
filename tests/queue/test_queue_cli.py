"""The real ``mox queue ...`` command line, directly on the data directory and through a running ``mox serve``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from queuehelpers import addr, make_config, message

from mox import dsn
from mox.cli.main import main
from mox.config.example import free_local_ports, write_local_config
from mox.config.load import Config, load_config
from mox.queue import HoldRule, NewRecipient
from mox.queue.queue import open_queue
from mox.store import close_all_accounts
from mox.store.deliver import open_config_account


def mox_process(cfg: Config, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line in its own process."""
    return subprocess.run([sys.executable, "-m", "mox", "-config", str(cfg.static_path), *args], capture_output=True, text=True, timeout=60)


def mox(cfg: Config, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line's entry point, in this process (a process per command is slow on a busy machine)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["-config", str(cfg.static_path), *args])
    out.flush()
    return subprocess.CompletedProcess(list(args), rc, out.buffer.getvalue().decode(), err.getvalue())


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout


async def populate(cfg: Config) -> list[int]:
    q = await open_queue(cfg.data_dir, lambda: cfg)
    try:
        # Held, so the server's delivery loop leaves them alone.
        await q.holdrule_add(HoldRule())
        ids = await q.add("mox", addr("mox@localhost"), [addr("a@a.example"), NewRecipient(addr("b@b.example"))], message(subject="one"))
        ids += await q.add("mox", addr("mox@localhost"), [addr("c@a.example")], message(subject="two", body="two body\r\n"))
        return ids
    finally:
        await q.close()


@contextlib.contextmanager
def served(tmp_path: Path) -> Iterator[tuple[Config, list[int]]]:
    make_config(tmp_path)  # copies cached keys
    cfg = load_config(write_local_config(tmp_path, ports=free_local_ports(), ips=["127.0.0.1"]))
    ids = asyncio.run(populate(cfg))
    # Without a server: directly on the queue database.
    out = ok(mox_process(cfg, "queue", "list", "-asc", "-sort", "queued"))
    assert out.startswith("messages:\n") and len(out.splitlines()) == 4
    logf = open(tmp_path / "serve.log", "wb")
    p = subprocess.Popen([sys.executable, "-m", "mox", "-config", str(cfg.static_path), "serve"], stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    try:
        deadline = time.monotonic() + 20
        while 'm="mox started"' not in (tmp_path / "serve.log").read_text():
            assert p.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        yield cfg, ids
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(15)
    assert "account check failed" not in (tmp_path / "serve.log").read_text()


def test_queue_cli(tmp_path: Path) -> None:
    with served(tmp_path) as (cfg, ids):
        check_commands(cfg, ids)
    # After the server stopped: the DSN of "queue fail" is in the sender's Inbox.

    async def inbox() -> list[bytes]:
        acc = await open_config_account(cfg, "mox")
        try:
            return [acc.read_message(m) for m in await acc.messages("Inbox")]
        finally:
            await acc.close()
            await close_all_accounts()

    (data,) = asyncio.run(inbox())
    m = dsn.parse(data)
    assert m.recipients[0].final_recipient == "a@a.example" and m.recipients[0].status_comment == "delivery canceled by admin"


def check_commands(cfg: Config, ids: list[int]) -> None:
    a, b, c = ids
    lines = ok(mox(cfg, "queue", "list", "-to", "@a.example", "-asc")).splitlines()
    assert lines[0] == "messages:" and len(lines) == 3
    assert f"{a:5d} " in lines[1] and "from:mox@localhost to:a@a.example next " in lines[1] and lines[1].endswith('error ""')

    assert ok(mox(cfg, "queue", "hold", "-ids", f"{a},{c}")) == "2 messages changed\n"
    assert len(ok(mox(cfg, "queue", "list", "-hold", "true")).splitlines()) == 4
    assert ok(mox(cfg, "queue", "list", "-hold", "false")) == "messages:\n(none)\n"
    assert ok(mox(cfg, "queue", "schedule", "-ids", str(b), "1h")) == "1 message(s) rescheduled\n"
    assert len(ok(mox(cfg, "queue", "list", "-nextattempt", ">50m")).splitlines()) == 2
    assert ok(mox(cfg, "queue", "schedule", "-now", "0")) == "3 message(s) rescheduled\n"
    assert ok(mox(cfg, "queue", "requiretls", "-ids", str(a), "yes")) == "1 message(s) changed\n"

    dump = subprocess.run([sys.executable, "-m", "mox", "-config", str(cfg.static_path), "queue", "dump", str(c)], capture_output=True, timeout=60)
    assert dump.returncode == 0 and dump.stdout == message(subject="two", body="two body\r\n")

    # Hold rules.
    ok(mox(cfg, "queue", "holdrules", "add", "-recipientdom", "b.example"))
    assert ok(mox(cfg, "queue", "holdrules", "list")) == 'hold rules:\nid 1: all messages\nid 2: recipient domain "b.example"\n'
    ok(mox(cfg, "queue", "holdrules", "remove", "2"))
    assert ok(mox(cfg, "queue", "holdrules", "list")) == "hold rules:\nid 1: all messages\n"

    # Suppression list.
    ok(mox(cfg, "queue", "suppress", "add", "mox", "Some.One+x@remote.example"))
    out = ok(mox(cfg, "queue", "suppress", "list", "-account", "mox")).splitlines()
    assert out[1].startswith('"mox"\t"Some.One+x@remote.example"\tYes\t') and out[1].endswith('"someone@remote.example"\t"added through mox cli"')
    assert ok(mox(cfg, "queue", "suppress", "lookup", "someone@remote.example")).startswith("present\n")
    ok(mox(cfg, "queue", "suppress", "remove", "mox", "someone@remote.example"))
    assert ok(mox(cfg, "queue", "suppress", "lookup", "-account", "mox", "someone@remote.example")) == "not present\n"

    # Fail sends a DSN to the sender's account; drop does not.
    assert ok(mox(cfg, "queue", "fail", "-ids", str(a))) == "1 message(s) marked as failed\n"
    assert ok(mox(cfg, "queue", "drop", "-to", "@b.example")) == "1 message(s) dropped\n"
    retired = ok(mox(cfg, "queue", "retired", "list", "-result", "failure")).splitlines()
    assert retired[0] == "retired messages:" and len(retired) == 3 and " failure from:mox@localhost " in retired[1]
    printed = json.loads(ok(mox(cfg, "queue", "retired", "print", str(a))))
    assert printed["ID"] == a and printed["RecipientAddress"] == "a@a.example" and printed["Success"] is False
    assert printed["Results"][-1]["Error"] == "delivery canceled by admin"
    assert len(ok(mox(cfg, "queue", "list")).splitlines()) == 2

    # Errors: a clear message and a non-zero exit status.
    cases = [
        (("queue", "dump", "999"), 1, "no message with id 999"),
        (("queue", "transport", "nosuch"), 1, "unknown transport"),
        (("queue", "holdrules", "remove", "77"), 1, "no hold rule"),
        (("queue", "suppress", "add", "nosuch", "x@remote.example"), 1, "unknown account"),
        (("queue", "suppress", "add", "mox", "not an address"), 1, "parsing address"),
        (("queue", "list", "-submitted", "1h"), 1, "must start with"),
        (("queue", "list", "-hold", "maybe"), 2, "-hold"),
        (("queue", "requiretls", "perhaps"), 2, "usage"),
        (("queue", "retired", "print", "12345"), 1, "not found"),
    ]
    for (args, code, text), r in zip(cases, [mox(cfg, *case[0]) for case in cases], strict=True):
        assert r.returncode == code and text in r.stderr, (args, r.returncode, r.stderr[:300])
    r = mox_process(cfg, "queue", "dump", "999")
    assert r.returncode == 1 and r.stderr == "mox: no message with id 999 in queue\n"

    # Unhold, with the next attempt far ahead so the server's delivery loop leaves it alone.
    assert ok(mox(cfg, "queue", "schedule", "-ids", str(c), "-now", "24h")) == "1 message(s) rescheduled\n"
    assert ok(mox(cfg, "queue", "unhold", "-account", "mox", "-to", "c@")) == "1 messages changed\n"
    assert ok(mox(cfg, "queue", "list", "-hold", "false")).count("\n") == 2
