"""``mox smtp dial`` against a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from smtpclienthelpers import FakeServer, make_cert, serve, server_context

from mox import mlog
from mox.cli.main import main
from mox.mlog import log as mlog_log


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command sets the process's log format and levels; put them back for the other tests."""
    levels = mlog.get_config()
    logfmt = mlog_log._logfmt
    yield
    mlog.set_config(levels)
    mlog.set_logfmt(logfmt)


async def run_dial(args: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mox",
        "smtp",
        "dial",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_dial_starttls(tmp_path: Path) -> None:
    cert = make_cert(tmp_path, ["mx.example"])
    async with serve(FakeServer(tls=server_context(cert))) as (srv, port):
        rc, out, err = await run_dial(["-remotehostname", "mx.example", f"127.0.0.1:{port}"], b"NOOP\nQUIT\n")
    assert rc == 0, err
    assert b"smtp initialized with tls" in err
    assert out == b"250 2.0.0 ok\r\n221 2.0.0 bye\r\n"
    assert srv.commands[-2:] == ["NOOP", "QUIT"]
    assert "STARTTLS" in srv.commands


async def test_dial_verify_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # In-process (the command fails before reading stdin): a self-signed certificate with -tlsverify.
    cert = make_cert(tmp_path, ["mx.example"])
    async with serve(FakeServer(tls=server_context(cert))) as (_srv, port):
        rc = await asyncio.to_thread(
            main, ["smtp", "dial", "-tlsverify", "-remotehostname", "mx.example", f"127.0.0.1:{port}"]
        )
    assert rc == 1
    assert "certificate" in capsys.readouterr().err


async def test_dial_notls() -> None:
    async with serve(FakeServer()) as (_srv, port):
        rc, out, err = await run_dial(["-notls", f"127.0.0.1:{port}"], b"QUIT\n")
    assert rc == 0, err
    assert b"without tls" in err and out == b"221 2.0.0 bye\r\n"


def test_dial_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["smtp", "dial"]) == 2
    assert main(["smtp", "dial", "-notls", "-forcetls", "127.0.0.1"]) == 1
    assert "cannot have both" in capsys.readouterr().err
