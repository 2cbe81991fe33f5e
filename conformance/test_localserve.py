"""``mox localserve`` and the README's run command (ci/serve-example.sh): SMTP in, submission, IMAP read."""

from __future__ import annotations

import asyncio
import imaplib
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_harness import REPO, local_ports, run_mox

from mox.config.example import LocalPorts
from mox.localserve import write_config

START_TIMEOUT = 20.0


class Localserve:
    def __init__(self, root: Path, ports: LocalPorts, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.root, self.ports, self.proc, self.log_path = root, ports, proc, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if "serving from" in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"localserve exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"localserve did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start(
    tmp_path: Path, argv: list[str], root: Path, ports: LocalPorts, env: dict[str, str] | None = None
) -> Localserve:
    log_path = tmp_path / "localserve.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    ls = Localserve(root, ports, proc, log_path)
    ls.wait_started()
    return ls


@pytest.fixture
def readme_localserve(tmp_path: Path) -> Iterator[Localserve]:
    """The README's command, on a directory initialised with free ports (the fixed ones may be taken)."""
    root = tmp_path / "local"
    ports = local_ports()
    asyncio.run(write_config(root, ip="127.0.0.1", ports=ports))
    env = dict(
        os.environ,
        MOX_LOCAL_DIR=str(root),
        MOX_VENV=str(Path(sys.executable).parent.parent),
        MOX_SKIP_INSTALL="1",
    )
    ls = _start(tmp_path, ["bash", str(REPO / "ci" / "serve-example.sh")], root, ports, env)
    try:
        yield ls
    finally:
        ls.stop()


MESSAGE = "From: {frm}\r\nTo: mox@localhost\r\nSubject: {subject}\r\n\r\nhello\r\n"


def test_readme_command_serves_smtp_submission_imap(readme_localserve: Localserve) -> None:
    ls = readme_localserve
    assert "account: mox@localhost, password moxmoxmox" in ls.log()
    assert f"imap://mox%40localhost:moxmoxmox@localhost:{ls.ports.imap}" in ls.log()
    with smtplib.SMTP("127.0.0.1", ls.ports.smtp) as s:
        s.sendmail(
            "script@localhost", ["mox@localhost"], MESSAGE.format(frm="script@localhost", subject="incoming")
        )
    with smtplib.SMTP("127.0.0.1", ls.ports.submission) as s:
        s.login("mox@localhost", "moxmoxmox")
        s.sendmail("mox@localhost", ["mox@localhost"], MESSAGE.format(frm="mox@localhost", subject="submitted"))
        # Outgoing mail does not leave the machine: it is delivered to the local account.
        s.sendmail("mox@localhost", ["someone@example.com"], MESSAGE.format(frm="mox@localhost", subject="outgoing"))
    with imaplib.IMAP4("127.0.0.1", ls.ports.imap) as c:
        c.login("mox@localhost", "moxmoxmox")
        deadline = time.monotonic() + 15
        while True:
            c.select("Inbox")
            typ, data = c.search(None, "ALL")
            assert typ == "OK"
            if len(data[0].split()) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(data[0].split()) == 3, ls.log()
        typ, fetched = c.fetch("1:3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = b"".join(part[1] for part in fetched if isinstance(part, tuple))
        assert b"incoming" in subjects and b"submitted" in subjects and b"outgoing" in subjects
    # The CLI reaches the server through the ctl socket in the directory.
    r = run_mox(ls.root / "mox.conf", "stop")
    assert r.returncode == 0, r.stderr
    ls.proc.wait(10)
    assert ls.proc.returncode == 0


def test_fresh_directory_is_created_and_served(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    ports = local_ports()
    code = f"from mox.localserve import run; from mox.config.example import LocalPorts; import sys; sys.exit(run({str(root)!r}, ip='127.0.0.1', ports=LocalPorts(*{list(vars(ports).values())!r})))"
    ls = _start(tmp_path, [sys.executable, "-c", code], root, ports)
    try:
        assert "serving from new directory" in ls.log()
        with imaplib.IMAP4("127.0.0.1", ports.imap) as c:
            typ, _ = c.login("mox@localhost", "moxmoxmox")
            assert typ == "OK"
    finally:
        ls.stop()
    assert (root / "mox.conf").is_file() and (root / "accounts" / "mox").is_dir()


def test_initonly_and_flag_errors(tmp_path: Path) -> None:
    root = tmp_path / "init"
    r = subprocess.run(
        [sys.executable, "-m", "mox", "localserve", "-dir", str(root), "-initonly"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    conf = (root / "mox.conf").read_text()
    assert "Port: 1025" in conf and "Port: 1143" in conf and "Hostname: localhost" in conf
    assert run_mox(root / "mox.conf", "config", "test").returncode == 0
    # -ip only applies when a new directory is written.
    r = subprocess.run(
        [sys.executable, "-m", "mox", "localserve", "-dir", str(root), "-ip", "127.0.0.2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "can only use -ip when writing a new config" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "mox", "localserve", "-ip", "nonsense", "-dir", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "not an IP address" in r.stderr
    # A broken config says how to start afresh.
    (root / "domains.conf").write_text("Domains: nonsense\n")
    r = subprocess.run(
        [sys.executable, "-m", "mox", "localserve", "-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "remove the directory" in r.stderr
