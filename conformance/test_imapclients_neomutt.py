"""neomutt in a tmux pane against a real ``mox serve`` over STARTTLS (the test certificate trusted through
certificate_file): the index of a six-message Inbox threaded by References/In-Reply-To, a message
opened in the pager, a server-side body search (neomutt's ``=b`` pattern, an IMAP UID SEARCH BODY), a
deletion synced with an EXPUNGE, a message delivered over SMTP appearing while neomutt IDLEs, and the
\\Seen flag of the read message on the server afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclients_helpers import PASSWORD, USER, Msg, TmuxPane, imap_login, prepare_account, server_messages
from serve_harness import MoxServe

# Arrival order interleaves three threads; parent is the index of the message replied to.
MSGS = [
    Msg(0, "Lunch plans", "ann@example.org", "Shall we meet at noon?\n"),
    Msg(1, "Quarterly report", "bob@example.org", "The numbers are in.\n"),
    Msg(2, "Re: Lunch plans", "carl@example.org", "Noon works for me.\n", parent=0),
    Msg(3, "Server upgrade", "dave@example.org", "Downtime on Sunday.\n"),
    Msg(4, "Re: Lunch plans", "ann@example.org", "See you there, bring the pineapple cake.\n", parent=2),
    Msg(5, "Re: Quarterly report", "eve@example.org", "Looks good.\n", parent=1),
]

# The index, threaded (roots by date, replies below their parent): display number, subject with the
# thread tree (ascii_chars), sender.
WANT_INDEX = [
    (1, "Lunch plans", "ann@example.org"),
    (2, "`->Re: Lunch plans", "carl@example.org"),
    (3, "  `->Re: Lunch plans", "ann@example.org"),
    (4, "Quarterly report", "bob@example.org"),
    (5, "`->Re: Quarterly report", "eve@example.org"),
    (6, "Server upgrade", "dave@example.org"),
]

_INDEX_LINE = re.compile(r"^\s*(\d+)\|([^|]*)\|(.*?)\s*\|(.*?)\s*$")


def index_lines(screen: str) -> list[tuple[int, str, str]]:
    """(number, subject with tree, sender) of each index line on the screen (our index_format)."""
    out = []
    for line in screen.splitlines():
        mt = _INDEX_LINE.match(line)
        if mt:
            out.append((int(mt.group(1)), mt.group(4), mt.group(3)))
    return out


def write_muttrc(m: MoxServe, tmp: Path, extra: str = "") -> Path:
    rc = tmp / "muttrc"
    rc.write_text(
        f"""set folder = "imap://localhost:{m.ports.imap}/"
set spoolfile = "+INBOX"
set imap_user = "{USER}"
set imap_pass = "{PASSWORD}"
set ssl_starttls = yes
set ssl_force_tls = yes
set certificate_file = "{m.config.parent / "localhost.crt"}"
set header_cache = ""
set message_cachedir = ""
set imap_check_subscribed = no
set mail_check_stats = no
set sort = threads
set sort_aux = date
set hide_thread_subject = no
set ascii_chars = yes
set index_format = "%4C|%Z|%-24.24f|%s"
set help = no
set wait_key = no
set move = no
set delete = yes
set record = ""
set imap_idle = yes
set mail_check = 1
set timeout = 1
set imap_keepalive = 60
{extra}"""
    )
    return rc


@contextlib.contextmanager
def run_neomutt(tmp: Path, rc: Path, name: str) -> Iterator[tuple[TmuxPane, Path]]:
    """neomutt with config rc in a tmux pane; yields the pane and neomutt's debug log."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    log = tmp / f"{name}.log"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm-256color",
    }
    # -n: no system config; -F: only ours; -d 2 -l: neomutt's own log of the IMAP commands it sends.
    pane = TmuxPane(
        f"moxtest-{name}-{os.getpid()}",
        ["neomutt", "-n", "-F", str(rc), "-d", "2", "-l", str(log)],
        env,
        tmp / f"{name}.status",
    )
    try:
        yield pane, tmp / f"{name}.log0"
    finally:
        pane.kill()


@pytest.fixture
def neomutt(mox_serve: MoxServe, tmp_path: Path) -> Iterator[tuple[TmuxPane, Path]]:
    prepare_account(mox_serve, tmp_path, MSGS)
    with run_neomutt(tmp_path, write_muttrc(mox_serve, tmp_path), "neomutt") as x:
        yield x


def test_neomutt_threads_read_search_delete(mox_serve: MoxServe, neomutt: tuple[TmuxPane, Path]) -> None:
    pane, log = neomutt

    # The index, threaded, once neomutt has logged in (STARTTLS) and fetched the headers.
    screen = pane.wait_text("Msgs:6")
    assert index_lines(screen) == WANT_INDEX, screen
    assert "tls_negotiate() SSL/TLS connection using TLS" in log.read_text(errors="replace")

    # Open the second reply of the lunch thread (display number 3) in the pager.
    pane.type("3")
    pane.wait_text("Jump to message:")
    pane.keys("Enter")
    pane.wait(lambda s: "Jump" not in s, "the jump done")
    pane.keys("Enter")
    screen = pane.wait_text("See you there, bring the pineapple cake.")
    assert "Subject: Re: Lunch plans" in screen and "From: ann@example.org" in screen, screen
    assert f"In-Reply-To: {MSGS[2].message_id}" in screen, screen
    pane.keys("q")
    pane.wait_text("Msgs:6")

    # A body search done by the server: only the pineapple message matches.
    pane.keys("l")
    pane.wait_text("Limit to messages matching:")
    pane.type("=b pineapple")
    pane.keys("Enter")
    screen = pane.wait_text("Msgs:1/6")
    # Its thread ancestors are outside the limit: neomutt draws them as "&" (hidden message).
    assert index_lines(screen) == [(3, "&-&->Re: Lunch plans", "ann@example.org")], screen
    assert 'UID SEARCH BODY "pineapple"' in log.read_text(errors="replace")
    pane.keys("l")
    pane.wait_text("Limit to messages matching:")
    pane.type("all")
    pane.keys("Enter")
    screen = pane.wait(lambda s: "Msgs:6 " in s and len(index_lines(s)) == 6, "all six messages again")

    # Delete "Server upgrade" (number 6) and sync: neomutt stores \Deleted and expunges.
    pane.type("6")
    pane.wait_text("Jump to message:")
    pane.keys("Enter")
    pane.wait(lambda s: "Jump" not in s, "the jump done")
    pane.keys("d")
    pane.wait(lambda s: any(n == 6 and "D" in flags for n, flags in _flags(s)), "message 6 marked deleted")
    pane.keys("$")
    screen = pane.wait_text("Msgs:5")
    assert [x[1] for x in index_lines(screen)] == [x[1] for x in WANT_INDEX[:5]], screen

    # New mail delivered over SMTP shows up in the open mailbox (neomutt IDLEs between checks).
    new = b"From: fay@example.org\r\nTo: mox@localhost\r\nSubject: Fresh news\r\nMessage-ID: <fresh@example.org>\r\n\r\nhot off the press\r\n"
    with smtplib.SMTP(
        "127.0.0.1", mox_serve.ports.smtp, local_hostname="client.example.net", timeout=20
    ) as smtp:
        assert smtp.sendmail("fay@example.org", [USER], new) == {}
    screen = pane.wait(lambda s: "Msgs:6 " in s and len(index_lines(s)) == 6, "the new message")
    assert index_lines(screen)[-1] == (6, "Fresh news", "fay@example.org"), screen
    assert " IDLE" in log.read_text(errors="replace")

    # Quit: neomutt ends cleanly, and the server has what neomutt did.
    pane.keys("q")
    assert pane.wait_exit() == 0
    server = server_messages(mox_serve)
    assert [s.message_id for s in server] == [
        *(MSGS[i].message_id for i in (0, 1, 2, 4, 5)),
        "<fresh@example.org>",
    ]
    seen = {s.message_id for s in server if "\\Seen" in s.flags}
    assert seen == {MSGS[4].message_id}, [(s.message_id, s.flags) for s in server]


def _flags(screen: str) -> list[tuple[int, str]]:
    """(number, flag column) of each index line."""
    out = []
    for line in screen.splitlines():
        mt = _INDEX_LINE.match(line)
        if mt:
            out.append((int(mt.group(1)), mt.group(2)))
    return out


def test_neomutt_header_cache_condstore_qresync(mox_serve: MoxServe, tmp_path: Path) -> None:
    """neomutt with a header cache and CONDSTORE/QRESYNC enabled: reopening the mailbox after
    changes made elsewhere asks only for what changed (UID FETCH ... CHANGEDSINCE with VANISHED)
    and shows the new flags and the new message; after an expunge elsewhere it shows the right
    messages again (neomutt falls back to a full flag fetch when a message vanished in the middle
    of its cached UIDs, its own limitation)."""
    m = mox_serve
    prepare_account(m, tmp_path, MSGS)
    (tmp_path / "hcache").mkdir()
    rc = write_muttrc(
        m,
        tmp_path,
        f'set header_cache = "{tmp_path / "hcache"}/"\nset imap_condstore = yes\nset imap_qresync = yes\n',
    )

    def session(name: str, want: str) -> str:
        with run_neomutt(tmp_path, rc, name) as (pane, _):
            screen = pane.wait(lambda s: want in s and "Reading" not in s and "Fetching" not in s, want)
            pane.keys("q")
            assert pane.wait_exit() == 0
            return screen

    session("first", "Msgs:6 ")
    first_log = (tmp_path / "first.log0").read_text(errors="replace")
    assert "ENABLE QRESYNC" in first_log and 'SELECT "INBOX" (CONDSTORE)' in first_log, first_log

    # Elsewhere: a flag on two messages, a new message.
    im = imap_login(m)
    try:
        im.select("INBOX")
        assert im.uid("STORE", "2,6", "+FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
        new = (
            b"From: fay@example.org\r\nSubject: Fresh news\r\nMessage-ID: <fresh@example.org>\r\n\r\nnews\r\n"
        )
        assert im.append("INBOX", None, None, new)[0] == "OK"
    finally:
        im.logout()
    screen = session("second", "Msgs:7 ")
    log = (tmp_path / "second.log0").read_text(errors="replace")
    assert re.search(r"UID FETCH 1:6 \(FLAGS\) \(CHANGEDSINCE \d+ VANISHED\)", log), log
    assert "QRESYNC failed" not in log, log
    flags = dict(_flags(screen))
    lines = index_lines(screen)
    flagged = sorted(_bare(subject) for n, subject, _ in lines if "!" in flags[n])
    assert flagged == ["Quarterly report", "Re: Quarterly report"], screen
    assert lines[-1] == (7, "Fresh news", "fay@example.org"), screen

    # Elsewhere: the first message of the lunch thread expunged.
    im = imap_login(m)
    try:
        im.select("INBOX")
        assert im.uid("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        assert im.expunge()[1] == [b"1"]
    finally:
        im.logout()
    screen = session("third", "Msgs:6 ")
    subjects = sorted(_bare(subject) for _, subject, _ in index_lines(screen))
    assert subjects == sorted(
        [
            "Re: Lunch plans",
            "Quarterly report",
            "Re: Lunch plans",
            "Server upgrade",
            "Re: Quarterly report",
            "Fresh news",
        ]
    ), screen


def _bare(subject: str) -> str:
    """A subject without the thread tree drawn before it."""
    return re.sub(r"^[ `|&*>-]+", "", subject)
