"""Shared pieces of the real-IMAP-client tests (mbsync, neomutt) against a real ``mox serve``:
a generated mbox with reply threads, its import through the running server, the server's view of a
mailbox over imaplib, and a Maildir's view of the same messages."""

from __future__ import annotations

import email.parser
import email.policy
import imaplib
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from serve_harness import MoxServe
from test_smtp_delivery import set_password

USER = "mox@localhost"
PASSWORD = "moxmoxmox"


@dataclass(frozen=True)
class Msg:
    """One generated message; parent is the index of the message it replies to, or None."""

    index: int
    subject: str
    sender: str
    body: str
    parent: int | None = None

    @property
    def message_id(self) -> str:
        return f"<m{self.index}.gen@example.org>"


def threaded_messages(n: int, thread_len: int = 5) -> list[Msg]:
    """n messages in threads of thread_len: each thread starts with a new topic, every following
    message replies to the one before it."""
    out: list[Msg] = []
    for i in range(n):
        topic, pos = divmod(i, thread_len)
        subject = f"topic {topic}" if pos == 0 else f"Re: topic {topic}"
        out.append(
            Msg(
                i,
                subject,
                f"user{i % 7}@example.org",
                f"body of message {i}\nsecond line\n",
                i - 1 if pos else None,
            )
        )
    return out


def message_bytes(msg: Msg, msgs: Sequence[Msg]) -> bytes:
    """The message as CRLF text, with In-Reply-To and References to its ancestors."""
    chain: list[str] = []
    p = msg.parent
    while p is not None:
        chain.insert(0, msgs[p].message_id)
        p = msgs[p].parent
    head = [
        f"From: {msg.sender}",
        f"To: {USER}",
        f"Subject: {msg.subject}",
        f"Message-ID: {msg.message_id}",
        f"Date: Sat, 01 Jan 2022 {msg.index // 3600 % 24:02d}:{msg.index // 60 % 60:02d}:{msg.index % 60:02d} +0000",
    ]
    if chain:
        head += [f"In-Reply-To: {chain[-1]}", "References: " + " ".join(chain)]
    text = "\r\n".join(head) + "\r\n\r\n" + msg.body.replace("\n", "\r\n")
    return text.encode()


def write_mbox(path: Path, msgs: Sequence[Msg]) -> None:
    with open(path, "wb") as f:
        for m in msgs:
            data = message_bytes(m, msgs).replace(b"\r\n", b"\n")
            data = re.sub(rb"(?m)^(>*From )", rb">\1", data)
            f.write(b"From sender@example.org Sat Jan  1 00:00:00 2022\n" + data + b"\n")


def prepare_account(m: MoxServe, tmp: Path, msgs: Sequence[Msg]) -> None:
    """Set the account's password and import msgs into its Inbox with the real ``mox import mbox``."""
    set_password(m, PASSWORD)
    mbox = tmp / "import.mbox"
    write_mbox(mbox, msgs)
    r = m.mox("import", "mbox", "mox", "Inbox", str(mbox))
    assert r.returncode == 0 and f"imported {len(msgs)} messages" in r.stderr, r.stderr


def imap_login(m: MoxServe) -> imaplib.IMAP4:
    im = imaplib.IMAP4("127.0.0.1", m.ports.imap, timeout=20)
    im.login(USER, PASSWORD)
    return im


_FETCH_RE = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)")


@dataclass(frozen=True)
class ServerMsg:
    uid: int
    flags: frozenset[str]
    message_id: str
    data: bytes


def server_messages(m: MoxServe, mailbox: str = "INBOX") -> list[ServerMsg]:
    """Every message of mailbox as the server shows it over IMAP, in UID order (nothing is changed:
    the mailbox is EXAMINEd and bodies fetched with BODY.PEEK)."""
    im = imap_login(m)
    try:
        typ, data = im.select(mailbox, readonly=True)
        assert typ == "OK", data
        if data == [b"0"]:
            return []
        typ, data = im.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        assert typ == "OK", data
        out: list[ServerMsg] = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            mt = _FETCH_RE.search(item[0])
            assert mt is not None, item[0]
            body = item[1]
            out.append(
                ServerMsg(
                    int(mt.group(1)), frozenset(mt.group(2).decode().split()), message_id_of(body), body
                )
            )
        return sorted(out, key=lambda x: x.uid)
    finally:
        im.logout()


def message_id_of(data: bytes) -> str:
    h = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    return str(h.get("Message-ID", "")).strip()


@dataclass(frozen=True)
class MaildirMsg:
    path: Path
    uid: int | None  # mbsync's ",U=" in the file name: the server's UID once synced.
    flags: str  # The letters after ":2,".
    message_id: str


def maildir_messages(md: Path) -> list[MaildirMsg]:
    out: list[MaildirMsg] = []
    for sub in ("new", "cur"):
        for p in sorted((md / sub).iterdir()):
            name = p.name
            base, _, info = name.partition(":2,")
            mu = re.search(r",U=(\d+)", base)
            out.append(MaildirMsg(p, int(mu.group(1)) if mu else None, info, message_id_of(p.read_bytes())))
    return out


# Maildir info letters and the IMAP system flags mbsync maps them to.
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


def imap_flags_of(letters: str) -> frozenset[str]:
    return frozenset(MAILDIR_FLAGS[c] for c in letters if c in MAILDIR_FLAGS)


def set_maildir_flags(msg: MaildirMsg, letters: str) -> Path:
    """Give a Maildir message new flags as a mail reader does: rename it into cur/ with a new info."""
    base = msg.path.name.partition(":2,")[0]
    new = msg.path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(letters))}"
    msg.path.rename(new)
    return new


class TmuxPane:
    """A program in a detached tmux session on a private tmux server (its own socket name), driven
    with send-keys and read with capture-pane. Its exit status goes to status_file, and the pane
    stays after it exits; kill() ends the tmux server and whatever still runs in it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        status_file: Path,
        width: int = 120,
        height: int = 30,
    ) -> None:
        self.status_file = status_file
        self.socket = name
        self.target = name
        self.env = env
        # remain-on-exit is set globally before the session starts: a program that exits at once
        # still leaves its screen.
        r = subprocess.run(
            [
                *self._tmux(),
                *("start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";"),
                *("new-session", "-d", "-s", self.target, "-x", str(width), "-y", str(height)),
                f"{shlex.join(argv)}; echo $? >{shlex.quote(str(status_file))}",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=20,
        )
        assert r.returncode == 0, r.stderr

    def _tmux(self) -> list[str]:
        return ["tmux", "-L", self.socket, "-f", "/dev/null"]

    def _run(self, *args: str) -> str:
        r = subprocess.run([*self._tmux(), *args], capture_output=True, text=True, env=self.env, timeout=20)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", self.target)

    def keys(self, *keys: str) -> None:
        """Send key names (Enter, Escape, C-l, ...) or single characters."""
        self._run("send-keys", "-t", self.target, *keys)

    def type(self, text: str) -> None:
        """Send text literally."""
        self._run("send-keys", "-t", self.target, "-l", text)

    def wait(self, check: Callable[[str], bool], what: str, timeout: float = 20) -> str:
        """Poll the screen until check(screen) holds; the screen at that moment."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if check(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError(f"screen did not show {what} within {timeout}s:\n{s}")
            time.sleep(0.1)

    def wait_text(self, text: str, timeout: float = 20) -> str:
        return self.wait(lambda s: text in s, repr(text), timeout)

    def exit_status(self) -> int | None:
        """The program's exit status once it ended, else None.

        A shell around the program writes the status to a file: tmux's own pane_dead_status is
        not reliable, as tmux can mark the pane dead at the end of the terminal's output before it
        reaps the process, and then leave the status empty."""
        text = self.status_file.read_text() if self.status_file.exists() else ""
        return int(text) if text.endswith("\n") else None

    def wait_exit(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while (st := self.exit_status()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"program did not exit within {timeout}s:\n{self.screen()}")
            time.sleep(0.1)
        return st

    def kill(self) -> None:
        subprocess.run([*self._tmux(), "kill-server"], capture_output=True, env=self.env, timeout=20)
