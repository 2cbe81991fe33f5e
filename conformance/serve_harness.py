"""Helpers that run real ``mox serve`` processes and the real ``mox`` command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from mox.config.example import LocalPorts, free_local_ports, write_local_config

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
START_TIMEOUT = 20.0


def local_ports() -> LocalPorts:
    return free_local_ports()


def run_mox(config: Path, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real command line, ``python -m mox -config CONFIG ARGS...``."""
    return subprocess.run(
        [sys.executable, "-m", "mox", "-config", str(config), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )


class MoxServe:
    """A ``mox serve`` process on a local config with free ports."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = local_ports()
        self.config = write_local_config(root, ports=self.ports, ips=["127.0.0.1"], log_level="debug")
        self.data = root / "data"
        self.log_path = root / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        offset = len(self.log())
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mox", "-config", str(self.config), "serve"],
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
        logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if 'm="mox started"' in self.log()[offset:]:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"mox serve exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"mox serve did not start within {START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def mox(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_mox(self.config, *args, input=input)

    def wait_log(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # With MOX_TEST_CHECK_COUNTS=1 the server checked every account's counts at close.
        assert "account check failed" not in self.log(), self.log()
