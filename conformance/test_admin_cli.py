"""Administration commands (aliases, disabled logins and domains, account passwords) with the real CLI.

Each command runs through a real ``mox serve`` (over its ctl socket) and, where
no server runs, directly on the files, and is checked the way an operator
would: the command's output and exit status, domains.conf afterwards, and the
account database for passwords.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serve_harness import MoxServe, run_mox

from mox.store.password import PasswordSecrets, verify_plain

PASSWORD = "Corr3ct-h0rse-Battery-staple"


def ok(r: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a successful command."""
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout


class Cli:
    """The mox command line on one config (through the server when one runs)."""

    def __init__(self, config: Path, serve: MoxServe | None = None) -> None:
        self.config = config
        self.serve = serve
        self.domains = config.parent / "domains.conf"

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_mox(self.config, *args, input=input)

    def refused(self, *cases: tuple[tuple[str, ...], str]) -> None:
        """Run commands that must fail with a message (in parallel: each is a process) and change nothing."""
        before = self.domains.read_bytes()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda case: self(*case[0]), cases))
        for (args, message), r in zip(cases, results, strict=True):
            assert r.returncode == 1, (args, r.stdout, r.stderr)
            assert message in r.stderr, (args, r.stderr)
        assert self.domains.read_bytes() == before


def check_alias_commands(m: Cli) -> None:
    ok(m("config", "account", "add", "jan", "jan@localhost"))

    assert ok(m("config", "alias", "add", "list@localhost", "mox@localhost", "jan@localhost")) == ""
    assert ok(m("config", "alias", "list", "localhost")).splitlines() == ["list@localhost"]
    assert ok(m("config", "alias", "print", "LIST@localhost")) == (
        "# postpublic true\n# listmembers false\n# allowmsgfrom false\n# members:\nmox@localhost\njan@localhost\n"
    )
    assert "\t\tAliases:\n\t\t\tlist:\n" in m.domains.read_text()

    # Flags before the address (Go style) and after it (as upstream's usage shows).
    ok(m("config", "alias", "update", "-postpublic", "false", "list@localhost"))
    ok(m("config", "alias", "update", "list@localhost", "-listmembers", "true", "-allowmsgfrom=true"))
    assert ok(m("config", "alias", "print", "list@localhost")).splitlines()[:3] == [
        "# postpublic false",
        "# listmembers true",
        "# allowmsgfrom true",
    ]

    ok(m("config", "alias", "rmaddr", "list@localhost", "JAN@localhost"))
    assert "jan@localhost" not in m.domains.read_text().split("Aliases:")[1].split("Accounts:")[0]
    ok(m("config", "alias", "addaddr", "list@localhost", "jan@localhost"))
    assert ok(m("config", "alias", "print", "list@localhost")).splitlines()[4:] == ["mox@localhost", "jan@localhost"]

    m.refused(
        (("config", "alias", "add", "list@localhost", "mox@localhost"), "alias list@localhost already exists"),
        (("config", "alias", "add", "jan@localhost", "mox@localhost"), "already configured for an account"),
        (("config", "alias", "add", "other@localhost", "nobody@localhost"), "is not an address of a local account"),
        (("config", "alias", "add", "x@unknown.example", "mox@localhost"), "domain unknown.example does not exist"),
        (("config", "alias", "addaddr", "list@localhost", "mox@localhost"), "already a member"),
        (("config", "alias", "rmaddr", "list@localhost", "nobody@localhost"), "address not found: nobody@localhost"),
        (("config", "alias", "rmaddr", "list@localhost", "mox@localhost", "jan@localhost"), "remove the alias instead"),
        (("config", "alias", "rm", "other@localhost"), "alias other@localhost does not exist"),
        (("config", "alias", "print", "other@localhost"), "alias other@localhost does not exist"),
        (("config", "alias", "list", "unknown.example"), "domain unknown.example does not exist"),
        (("config", "address", "add", "list@localhost", "jan"), "in use as an alias"),
    )
    r = m("config", "alias", "update", "list@localhost", "-postpublic", "maybe")
    assert r.returncode == 2 and "bad value 'maybe' for postpublic" in r.stderr

    assert ok(m("config", "alias", "rm", "list@localhost")) == ""
    assert ok(m("config", "alias", "list", "localhost")) == ""
    assert "Aliases" not in m.domains.read_text()
    assert ok(run_mox(m.config, "config", "test")).strip() == "config OK"


def check_account_and_domain_commands(m: Cli) -> None:
    ok(m("config", "address", "add", "@localhost", "mox"))
    assert ok(m("config", "account", "addresses", "mox")).splitlines() == ["@localhost", "mox@localhost"]

    assert ok(m("config", "account", "disable", "mox", "moved to another server")).strip() == "account disabled"
    assert "\t\tLoginDisabled: moved to another server\n" in m.domains.read_text()
    m.refused(
        (("config", "account", "disable", "mox", "two\nlines"), "without control characters"),
        (("config", "account", "addresses", "nobody"), "account 'nobody' does not exist"),
        (("config", "account", "disable", "mox", ""), "message must be non-empty"),
        (("config", "account", "disable", "mox", "x" * 257), "at most 256 characters"),
        (("config", "account", "disable", "nobody", "bye"), "account 'nobody' does not exist"),
        (("config", "domain", "disable", "unknown.example"), "domain unknown.example does not exist"),
    )
    assert ok(m("config", "account", "enable", "mox")).strip() == "account enabled"
    assert "LoginDisabled" not in m.domains.read_text()

    assert ok(m("config", "domain", "disable", "localhost")).strip() == "domain disabled"
    assert "\t\tDisabled: true\n" in m.domains.read_text()
    assert ok(m("config", "domain", "enable", "localhost")).strip() == "domain enabled"
    assert "Disabled" not in m.domains.read_text()


def check_setaccountpassword(m: Cli, root: Path) -> None:
    with ThreadPoolExecutor(3) as pool:
        short = pool.submit(m, "setaccountpassword", "mox", input="short\n")
        empty = pool.submit(m, "setaccountpassword", "mox", input="")
        unknown = pool.submit(m, "setaccountpassword", "nobody", input=PASSWORD + "\n")
    assert short.result().returncode == 1 and "password must be at least 8 bytes" in short.result().stderr
    assert empty.result().returncode == 1 and "password must be non-empty" in empty.result().stderr
    assert unknown.result().returncode == 1 and "account 'nobody' does not exist" in unknown.result().stderr
    assert not stored_secrets(root, "mox")

    assert ok(m("setaccountpassword", "mox", input=PASSWORD + "\n")) == ""
    secrets = PasswordSecrets.from_json(stored_secrets(root, "mox"))
    assert verify_plain(secrets, PASSWORD)
    assert not verify_plain(secrets, PASSWORD + "x")
    assert_password_nowhere(root)


def stored_secrets(root: Path, account: str) -> str:
    db = root / "data" / "accounts" / account / "index.db"
    if not db.exists():
        return ""
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT secrets FROM password WHERE id = 1").fetchone()
    return str(row[0]) if row else ""


def assert_password_nowhere(root: Path) -> None:
    """Not in the data directory (databases, WAL files), the config, nor the server's log."""
    needle = PASSWORD.encode()
    for p in root.rglob("*"):
        if p.is_file() and not p.is_socket():
            assert needle not in p.read_bytes(), p


def test_admin_commands_through_server(mox_serve: MoxServe) -> None:
    m = Cli(mox_serve.config, mox_serve)
    check_alias_commands(m)
    check_account_and_domain_commands(m)
    check_setaccountpassword(m, mox_serve.root)
    log = mox_serve.log()
    for cmd in ("config alias add", "config alias rmaddr", "config account disable", "config domain enable"):
        assert f'cmd="{cmd}"' in log, cmd
    assert "account password set through ctl" in log and 'cmd=setaccountpassword' in log
    assert PASSWORD not in log


def test_admin_commands_without_server(local_config: Path, tmp_path: Path) -> None:
    m = Cli(local_config)
    assert not (tmp_path / "data" / "ctl").exists()
    check_alias_commands(m)
    check_account_and_domain_commands(m)
    check_setaccountpassword(m, tmp_path)


def test_help_lists_admin_commands(local_config: Path) -> None:
    out = ok(run_mox(local_config, "help", "config", "alias"))
    for name in ("list", "print", "add", "update", "rm", "addaddr", "rmaddr"):
        assert f"mox config alias {name}\n" in out, name
    out = ok(run_mox(local_config, "help", "config", "alias", "update"))
    assert "-postpublic string" in out and "-allowmsgfrom string" in out
    r = run_mox(local_config, "config", "alias", "add", "list@localhost")
    assert r.returncode == 2 and "usage: mox config alias add $alias@domain $rcpt1@domain ..." in r.stderr


def run_on_terminal(config: Path, args: list[str], answers: list[str], timeout: float = 30) -> tuple[int, str]:
    """Run mox with a pseudo-terminal as its controlling terminal, answering prompts in order."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, [sys.executable, "-m", "mox", "-config", str(config), *args])
    out = b""
    answered = 0  # Output up to here was answered: wait for the next prompt after it.
    deadline = time.monotonic() + timeout
    try:
        while True:
            if answers and out[answered:].rstrip().endswith(b"password:"):
                os.write(fd, answers.pop(0).encode() + b"\n")
                answered = len(out)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"no exit within {timeout}s: {out!r}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal.
                break
            if not data:
                break
            out += data
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_setaccountpassword_on_terminal_asks_twice(local_config: Path, tmp_path: Path) -> None:
    code, out = run_on_terminal(local_config, ["setaccountpassword", "mox"], [PASSWORD, PASSWORD + "x"])
    assert code == 1 and "passwords do not match" in out, out
    assert not stored_secrets(tmp_path, "mox")

    code, out = run_on_terminal(local_config, ["setaccountpassword", "mox"], [PASSWORD, PASSWORD])
    assert code == 0, out
    assert "repeat password:" in out and PASSWORD not in out  # not echoed
    assert verify_plain(PasswordSecrets.from_json(stored_secrets(tmp_path, "mox")), PASSWORD)
    assert_password_nowhere(tmp_path)
