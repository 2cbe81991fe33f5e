"""``mox serve`` started as root binds a privileged port, then runs as user mox; data files are the mox user's.

Needs root: it creates the system user mox when missing (and removes it again)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mox.config.example import free_local_ports, write_local_config
from mox.privileges import searchable_by

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starting as root and switching to user mox needs root")


@pytest.fixture
def mox_user() -> Iterator[pwd.struct_passwd]:
    created = False
    try:
        pw = pwd.getpwnam("mox")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "mox"], check=True, timeout=60)
        created = True
        pw = pwd.getpwnam("mox")
    try:
        yield pw
    finally:
        if created:
            subprocess.run(["userdel", "mox"], check=False, timeout=60)


@pytest.fixture
def searchable_checkout(mox_user: pwd.struct_passwd) -> Iterator[None]:
    """The checkout (and its .venv) must be enterable by user mox, who runs the server's code. A clone
    in a directory made by ``mktemp -d`` (mode 0700) is not: for this test, directories on the way to it
    that root owns get the search bit for others (not read: nothing can be listed), restored afterwards."""
    changed: list[tuple[Path, int]] = []
    try:
        while (d := searchable_by(REPO, mox_user.pw_uid, mox_user.pw_gid)) is not None:
            st = os.stat(d)
            if st.st_uid != 0 or st.st_mode & stat.S_IXOTH:
                break  # Not ours to change, or the bit does not help: _interpreter says what is wrong.
            os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            changed.append((d, stat.S_IMODE(st.st_mode)))
        yield
    finally:
        for d, mode in reversed(changed):
            os.chmod(d, mode)


def _interpreter(pw: pwd.struct_passwd) -> tuple[list[str], dict[str, str]]:
    """A Python the mox user can read: ours, or the system's of the same version with our packages on its path."""
    import mox

    env = dict(os.environ)
    ours = [Path(os.__file__).parent, Path(mox.__file__).parent, Path(sys.executable).resolve().parent]
    if all(searchable_by(p, pw.pw_uid, pw.pw_gid) is None for p in ours):
        return [sys.executable], env
    site = next((p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)), "")
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.path.exists(cand) or not site:
            continue
        v = subprocess.run([cand, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, timeout=60)
        if v.stdout.strip() != str(sys.version_info[:2]):
            continue
        if all(searchable_by(Path(p), pw.pw_uid, pw.pw_gid) is None for p in (site, str(REPO), cand)):
            env["PYTHONPATH"] = os.pathsep.join([str(REPO), site])
            return [cand], env
    raise AssertionError(
        f"no Python installation readable by user mox (ours is in {sys.base_prefix}); "
        "ci/debian-packages.txt installs Debian's python3 for this"
    )


def _free_privileged_port() -> int:
    for port in range(700, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port between 700 and 999 on 127.0.0.1")


def _status_ids(pid: int) -> tuple[list[int], list[int]]:
    text = Path(f"/proc/{pid}/status").read_text()
    uid = re.search(r"^Uid:\s+(.*)$", text, re.M)
    gid = re.search(r"^Gid:\s+(.*)$", text, re.M)
    assert uid and gid
    return [int(x) for x in uid.group(1).split()], [int(x) for x in gid.group(1).split()]


def test_serve_as_root_switches_to_mox(mox_user: pwd.struct_passwd, searchable_checkout: None) -> None:
    argv, env = _interpreter(mox_user)
    # Not pytest's tmp_path: its parents are private to root, the mox user could not enter.
    root = Path(tempfile.mkdtemp(prefix="mox-privileges-"))
    os.chmod(root, 0o755)
    proc = None
    try:
        ports = free_local_ports()
        ports.smtp = _free_privileged_port()
        conf = write_local_config(root, ports=ports, ips=["127.0.0.1"], log_level="debug")
        text = conf.read_text()
        conf.write_text(re.sub(r"^User: .*$", "User: mox", text, flags=re.M))
        log_path = root / "serve.log"
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen([*argv, "-m", "mox", "-config", str(conf), "serve"], stdout=logf, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while 'm="mox started"' not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        log = log_path.read_text()
        uids, gids = _status_ids(proc.pid)
        assert uids == [mox_user.pw_uid] * 4 and gids == [mox_user.pw_gid] * 4
        assert "switched to unprivileged user" in log and "fixed owner" in log
        # The privileged port answers, and a delivery writes files as mox.
        with smtplib.SMTP("127.0.0.1", ports.smtp, timeout=30) as s:
            s.sendmail("someone@localhost", ["mox@localhost"], b"From: someone@localhost\r\nSubject: hi\r\n\r\nhi\r\n")
        data = root / "data"
        files = [p for p in data.rglob("*")]
        assert any(p.parent.name != "data" and p.is_file() for p in files)
        for p in [data, *files]:
            st = os.lstat(p)
            assert st.st_uid == mox_user.pw_uid, (p, st.st_uid)
        for p in (root / "config").rglob("*"):
            assert os.lstat(p).st_uid == mox_user.pw_uid, p
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
