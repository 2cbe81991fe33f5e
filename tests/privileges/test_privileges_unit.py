"""Privileges: permission fixing, the readability check, the systemd unit (the root-only parts skip otherwise)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mox.privileges import DIR_MODE, FILE_MODE, fix_permissions, searchable_by, service_unit

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners and switching users needs root")


@root_only
def test_fix_permissions(tmp_path: Path) -> None:
    config, data = tmp_path / "config", tmp_path / "data"
    (config / "dkim").mkdir(parents=True)
    data.mkdir(mode=0o700)
    (config / "mox.conf").write_text("x")
    os.chmod(config / "mox.conf", 0o666)
    (config / "dkim" / "key.pem").write_text("k")
    (data / "accounts").mkdir()
    (data / "accounts" / "db").write_text("d")
    changes = fix_permissions(config, data, NOBODY)
    for p in (config, config / "dkim", data, data / "accounts"):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (NOBODY, 0, DIR_MODE), p
    for p in (config / "mox.conf", config / "dkim" / "key.pem", data / "accounts" / "db"):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (NOBODY, 0, FILE_MODE), p
    assert any(c.path == str(config / "mox.conf") and c.what == "mode" and c.old == "0666" for c in changes)
    # Already right: the trees are not walked again and nothing changes.
    assert fix_permissions(config, data, NOBODY) == []


def test_searchable_by(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    d.mkdir(parents=True)
    os.chmod(tmp_path / "a", 0o700)
    other = os.geteuid() + 12345
    assert searchable_by(d, other, other) in (tmp_path / "a", *tmp_path.parents, tmp_path)
    os.chmod(tmp_path / "a", 0o755)
    blocked = searchable_by(d, other, other)
    # Above tmp_path pytest's own directories may be private; below it nothing is in the way now.
    assert blocked is None or blocked not in (tmp_path / "a", d)
    assert searchable_by(d, os.geteuid(), os.getegid()) is None or os.geteuid() != 0


@root_only
def test_drop_privileges_in_child() -> None:
    code = (
        "import os; from mox.privileges import drop_privileges; drop_privileges(65534, 65534); "
        "print(os.getresuid(), os.getresgid(), os.getgroups(), oct(os.umask(0)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(65534, 65534, 65534) (65534, 65534, 65534) [65534] 0o7"


def test_service_unit() -> None:
    unit = service_unit("/home/mox/", "/home/mox/venv/bin/mox")
    assert "WorkingDirectory=/home/mox\n" in unit
    assert "ExecStart=/home/mox/venv/bin/mox -config /home/mox/config/mox.conf serve\n" in unit
    assert "ReadWritePaths=/home/mox/config /home/mox/data\n" in unit
    assert "CAP_NET_BIND_SERVICE" in unit and "NoNewPrivileges=yes" in unit
    assert stat.S_ISGID & DIR_MODE
