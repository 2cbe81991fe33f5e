"""Protocol transcripts at the trace levels: commands and responses at trace, what the client sends
before login (credentials) only at traceauth, message data only at tracedata."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from imaphelpers import PASSWORD, append, connect

from mox import mlog
from mox.mlog import Level

BIG = b"Subject: big\r\n\r\n" + b"secret body line\r\n" * 200


@pytest.fixture
def transcript() -> Iterator[io.StringIO]:
    before = mlog.get_config()
    out = io.StringIO()
    mlog.set_output(out)
    yield out
    mlog.set_output(None)
    mlog.set_config(before)


@pytest.mark.parametrize(
    ("level", "password_shown", "data_shown"),
    [(Level.TRACE, False, False), (Level.TRACEAUTH, True, False), (Level.TRACEDATA, True, True)],
)
async def test_imap_transcript_levels(port: int, transcript: io.StringIO, level: Level, password_shown: bool, data_shown: bool) -> None:
    mlog.set_config({"": Level.INFO, "imapserver": level})
    c = await connect(port)
    try:
        await append(c, BIG)
        r = await c.cmd("SELECT INBOX")
        assert b" OK " in r[-1]
        r = await c.cmd("FETCH 1 (BODY.PEEK[])")
        assert b"secret body line" in b"".join(r)
    finally:
        c.writer.close()
    log = transcript.getvalue()
    lines = log.splitlines()
    # Commands after login and the responses are shown at every trace level.
    assert any('m="RC: ' in x and "SELECT INBOX" in x for x in lines), log
    assert any('m="LS: ' in x and "OK [UIDVALIDITY" in x for x in lines), log
    assert (PASSWORD in log) is password_shown, log
    if not password_shown:
        assert 'm="RC: ***"' in log, log
    assert ("secret body line" in log) is data_shown, log
    if not data_shown:
        assert 'm="LS: ..."' in log and 'm="RC: ..."' in log, log


async def test_imap_no_transcript_at_debug(port: int, transcript: io.StringIO) -> None:
    mlog.set_config({"": Level.INFO, "imapserver": Level.DEBUG})
    c = await connect(port)
    try:
        await c.cmd("NOOP")
    finally:
        c.writer.close()
    assert "RC: " not in transcript.getvalue() and "LS: " not in transcript.getvalue()
