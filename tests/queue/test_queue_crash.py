"""kill -9 of a process running the queue mid-delivery, then a restart: every message accepted (its add
committed) is delivered at least once. Duplicates are possible only for batches whose delivery was done
but whose outcome was not yet committed (see the mox.queue.queue module docstring)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

CHILD = Path(__file__).parent / "queuecrashchild.py"


def test_kill9_mid_delivery_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    log = tmp_path / "delivered.log"
    p = subprocess.Popen([sys.executable, str(CHILD), str(data), str(log), "150"], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    accepted: list[int] = []
    # Kill once some deliveries happened while more messages are still being added and delivered.
    deadline = time.monotonic() + 30
    for line in p.stdout:
        if line.startswith("added"):
            accepted += [int(x) for x in line.split()[1:]]
        if len(accepted) >= 120 and log.exists() and log.stat().st_size > 0:
            break
        assert time.monotonic() < deadline, "child too slow"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    before = Counter(int(x) for x in log.read_text().split())

    # Restart: interrupted attempts are retried at once, the rest delivered.
    try:
        r = subprocess.run([sys.executable, str(CHILD), str(data), str(log), "0"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired as e:
        import sqlite3

        rows = sqlite3.connect(data / "queue.db").execute("SELECT id, base_id, attempts, next_attempt, results FROM msg").fetchall()
        raise AssertionError(f"restart did not finish: {rows} {e.stderr!r}") from None
    assert r.returncode == 0 and "empty" in r.stdout, r.stderr
    delivered = Counter(int(x) for x in log.read_text().split())
    # The kill came with work left: the restart delivered more.
    assert sum(delivered.values()) > sum(before.values())
    missing = set(accepted) - set(delivered)
    assert not missing, f"accepted but never delivered: {sorted(missing)}"
    duplicates = {i: n for i, n in delivered.items() if n > 1}
    # Only messages of batches in flight at the kill can be duplicated: at most max_concurrent (4) batches of 2.
    assert len(duplicates) <= 8, duplicates
    print(f"accepted {len(accepted)}, delivered before kill {len(before)}, duplicates {len(duplicates)}")
    # Every message file is gone once delivered.
    assert [p for p in (data / "queue").rglob("*") if p.is_file()] == []
