"""Crash safety: kill -9 during bulk delivery and import; every acknowledged message survives intact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crashload import body

from mox.store.account import open_account

HERE = Path(__file__).parent


def run_and_kill(data_dir: Path, mode: str, delay: float) -> dict[int, int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "crashload.py"), str(data_dir), mode],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"READY"
    deadline = time.monotonic() + delay
    acked: dict[int, int] = {}
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read()
    buf += rest or b""
    for line in buf.split(b"\n"):
        parts = line.split()
        if len(parts) == 3 and parts[0] == b"ACK":
            acked[int(parts[1])] = int(parts[2])
    return acked


@pytest.mark.parametrize(("mode", "seed"), [("deliver", 1), ("deliver", 2), ("import", 3), ("import", 4)])
async def test_kill9_keeps_every_acknowledged_message(tmp_path: Path, mode: str, seed: int) -> None:
    rnd = random.Random(seed)
    total_acked: dict[int, int] = {}
    for _ in range(2):  # kill twice on the same data, at random points
        total_acked.update(run_and_kill(tmp_path, mode, rnd.uniform(0.3, 1.2)))
    assert len(total_acked) > 20, "the load process made no progress"
    acc = await open_account(tmp_path, "crash")  # orphan cleanup runs here
    try:
        await acc.check_consistency()  # counts match messages, every file present
        present = {}
        for mb in ("Inbox", "Imported"):
            try:
                for m in await acc.messages(mb):
                    present[m.id] = m
            except Exception:
                continue
        for mid, n in total_acked.items():
            assert mid in present, f"acknowledged message {mid} lost"
            assert acc.read_message(present[mid]) == body(n)
        # Nothing half-visible: every file in msg/ belongs to a message row, tmp/ is empty.
        files = {int(p.name) for p in (acc.dir / "msg").rglob("*") if p.is_file()}
        assert files == set(present)
        assert list((acc.dir / "tmp").iterdir()) == []
    finally:
        await acc.close()
