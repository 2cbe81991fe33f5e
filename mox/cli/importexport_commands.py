"""The import and export subcommands of mox: ``import mbox``, ``import maildir``, ``export mbox``, ``export maildir``.

Import goes through the running server when there is one (the file is
streamed over the ctl socket, see mox.store.importexport_ctl), and works on
the account's files directly otherwise. Export always reads the account
directory directly, as upstream.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from mox.cli.commands import _ctl_path, _load, _server_running
from mox.cli.main import CommandError, Flag, Invocation, command
from mox.ctl.client import CtlClient, CtlConnectError
from mox.ctl.protocol import DEFAULT_CHUNK_SIZE, CtlError, StreamAborted
from mox.store.importexport import (
    ExportResult,
    ImportResult,
    describe_result,
    export_account,
    import_maildir_dir,
    import_mbox_file,
)
from mox.store.maildir import MaildirError, iter_records, list_maildir
from mox.store.mbox import ImportProblem, MessageCounter
from mox.store.model import StoreError

PROGRESS_TTY_INTERVAL = 0.2
"""Seconds between updates of the progress line on a terminal."""

PROGRESS_LINE_INTERVAL = 5.0
PROGRESS_LINE_MESSAGES = 1000
"""Without a terminal, a progress line every 1000 messages or 5 seconds, whichever comes first."""

_IMPORT_HELP = """
The command line reads the {what} and sends it to the running mox over its
control socket, so the mox process does not need access to the files. When
mox is not running, the account's files are changed directly.

The mailbox is created if it does not exist. Messages are imported even if they
are already present: importing twice gives duplicates. Messages are stored with
CRLF line endings (bare LF becomes CRLF).

Messages that cannot be imported (larger than 100 MB, empty, unreadable) are
skipped and listed with their position; the others are imported. A progress
line is shown while importing, and a summary at the end. Messages are committed
in batches: if the import fails halfway (e.g. the account is over its quota),
the batches committed before stay, and the error says how many messages those
were.
"""


class Progress:
    """Progress of an import on stderr: one line updated in place on a terminal, periodic lines otherwise."""

    def __init__(
        self, total_bytes: int | None = None, total_messages: int | None = None, out: IO[str] | None = None
    ) -> None:
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty()
        self.total_bytes = total_bytes
        self.total_messages = total_messages
        self.start = time.monotonic()
        self._last_time = 0.0
        self._last_messages = 0
        self._shown = False
        self._complete_shown = False
        self.messages = 0
        self.nbytes = 0

    def _complete(self) -> bool:
        """Everything was read; the last batches are still being stored."""
        if self.total_bytes:
            return self.nbytes >= self.total_bytes
        return bool(self.total_messages) and self.messages >= (self.total_messages or 0)

    def _line(self, final: bool = False) -> str:
        s = f"importing: {self.messages} messages"
        if self.total_messages:
            s += f" of {self.total_messages}"
        mb = self.nbytes / 1e6
        if self.total_bytes:
            s += (
                f", {mb:.1f} of {self.total_bytes / 1e6:.1f} MB ({100 * self.nbytes / self.total_bytes:.0f}%)"
            )
        elif self.nbytes:
            s += f", {mb:.1f} MB"
        elapsed = time.monotonic() - self.start
        if elapsed > 0.5 and self.nbytes:
            s += f", {mb / elapsed:.1f} MB/s"
        if not final and self._complete():
            s += ", storing the last messages..."
        return s

    def update(self, messages: int, nbytes: int) -> None:
        """Messages and bytes read so far (messages are stored in batches, somewhat later)."""
        self.messages, self.nbytes = messages, nbytes
        now = time.monotonic()
        if self.tty:
            complete = self._complete()
            if now - self._last_time >= PROGRESS_TTY_INTERVAL or (complete and not self._complete_shown):
                self._last_time = now
                self._complete_shown = complete
                self.out.write("\r" + self._line() + "\x1b[K")
                self.out.flush()
                self._shown = True
        elif (
            now - self._last_time >= PROGRESS_LINE_INTERVAL
            or messages - self._last_messages >= PROGRESS_LINE_MESSAGES
        ):
            if self._last_time == 0.0 and messages < PROGRESS_LINE_MESSAGES:
                # First call: start the clock, no line for nothing yet.
                self._last_time = now
                return
            self._last_time = now
            self._last_messages = messages - messages % PROGRESS_LINE_MESSAGES
            self.out.write(self._line() + "\n")
            self.out.flush()

    def done(self) -> None:
        """End the in-place line (the summary follows on lines of its own)."""
        if self.tty and self._shown:
            self.out.write("\r" + self._line(final=True) + "\x1b[K\n")
            self.out.flush()


class _MboxSource:
    """The mbox file as a stream source for the ctl client, counting messages for progress."""

    def __init__(self, f: IO[bytes], progress: Progress) -> None:
        self.f = f
        self.progress = progress
        self.counter = MessageCounter()
        self.sent = 0

    def readinto(self, buf: memoryview) -> int:
        n = self.f.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self.sent += n
            self.progress.update(self.counter.feed(buf[:n]), self.sent)
        return int(n or 0)


def _coalesce(chunks: Iterable[bytes], size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Join small pieces into chunks of about size bytes: fewer frames and acknowledgements."""
    buf: list[bytes] = []
    n = 0
    for c in chunks:
        buf.append(c)
        n += len(c)
        if n >= size:
            yield b"".join(buf)
            buf, n = [], 0
    if buf:
        yield b"".join(buf)


def _print_result(result: ImportResult, local_problems: list[ImportProblem] | None = None) -> None:
    for p in local_problems or []:
        print(str(p), file=sys.stderr)
    for line in describe_result(result):
        print(line, file=sys.stderr)


def _via_ctl(client: CtlClient, cmd: str, args: list[str], source: Any) -> ImportResult:
    try:
        client.start(cmd, args)
        client.recv_json()  # the server is ready: account and mailbox are fine
        try:
            client.send_stream(source)
        except StreamAborted:
            # The server stopped reading; its error status says why.
            client.finish()
            raise
        return ImportResult.from_json(client.finish())
    except CtlError as e:
        raise CommandError(str(e)) from None
    finally:
        client.close()


def _connect_or_none(inv: Invocation) -> CtlClient | None:
    """A ctl connection to the running server, or None when no server runs."""
    try:
        return CtlClient.connect(_ctl_path(inv))
    except CtlConnectError as e:
        if _server_running(e):
            raise CommandError(str(e)) from None
        return None


def _import_mbox(inv: Invocation) -> None:
    account, mailbox, src = inv.args
    path = Path(src)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CommandError(f"opening mbox {path}: {e.strerror or e}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        progress = Progress(total_bytes=size or None)
        client = _connect_or_none(inv)
        try:
            if client is not None:
                result = _via_ctl(
                    client, "import mbox", [account, mailbox, str(path)], _MboxSource(f, progress)
                )
            else:
                result = _direct(
                    inv, lambda acc: import_mbox_file(acc, mailbox, path, progress=progress.update)
                )
        finally:
            progress.done()
    _print_result(result)


def _import_maildir(inv: Invocation) -> None:
    account, mailbox, src = inv.args
    path = Path(src)
    try:
        listing = list_maildir(path)
    except MaildirError as e:
        raise CommandError(str(e)) from None
    progress = Progress(total_messages=len(listing.messages))
    client = _connect_or_none(inv)
    if client is None:
        try:
            result = _direct(
                inv, lambda acc: import_maildir_dir(acc, mailbox, path, progress=progress.update)
            )
        finally:
            progress.done()
        _print_result(result)
        return
    local: list[ImportProblem] = []
    records = iter_records(listing, local, progress.update)
    try:
        result = _via_ctl(client, "import maildir", [account, mailbox, str(path)], _coalesce(records))
    finally:
        progress.done()
    # Files the command line could not read count as skipped too.
    result.skipped += sum(1 for p in local if p.skipped)
    _print_result(result, local)


def _direct(inv: Invocation, fn: Any) -> ImportResult:
    """Run an import on the account's files (no server running)."""
    from mox.store.deliver import open_config_account

    cfg = _load(inv)
    account = inv.args[0]

    async def run() -> ImportResult:
        acc = await open_config_account(cfg, account)
        try:
            r: ImportResult = await fn(acc)
            return r
        finally:
            await acc.close()

    try:
        return asyncio.run(run())
    except (StoreError, MaildirError) as e:
        raise CommandError(str(e)) from None


@command(
    "import maildir",
    params="$accountname $mailboxname $maildir",
    nargs=(3, 3),
    help="""Import a maildir into an account.
"""
    + _IMPORT_HELP.format(what="maildir's files")
    + """
Maildir flags (seen, answered, flagged, draft, deleted) are imported from the
file names. Keywords and the flags Forwarded, Junk, NotJunk, Phishing and
MDNSent are imported through a dovecot-keywords file in the maildir, if present.
The received time is taken from the file name, or else the file's modification
time.""",
)
def cmd_import_maildir(inv: Invocation) -> None:
    _import_maildir(inv)


@command(
    "import mbox",
    params="$accountname $mailboxname $mbox",
    nargs=(3, 3),
    help="""Import an mbox into an account.

Using mbox is not recommended, maildir is a better defined format.
"""
    + _IMPORT_HELP.format(what="mbox file")
    + """
The mbox is read as "mboxrd": a message starts at a line beginning with "From "
after an empty line, and one ">" is removed from lines matching ">From ",
">>From ", etc. Flags are taken from the Status, X-Status and X-Keywords header
fields, which are then removed from the message. The received time is the date
in the "From " line, or else the message's Date header.""",
)
def cmd_import_mbox(inv: Invocation) -> None:
    _import_mbox(inv)


_EXPORT_HELP = """
Export bypasses a running mox: it reads the account's database and message
files directly (without disturbing a running mox). The account directory is
<datadir>/accounts/<account>. The destination directory is created if needed;
existing files in it are not overwritten (the export fails instead).

Without a mailbox, all mailboxes are exported. With a mailbox, that mailbox and
its child mailboxes are exported, named without the mailbox's parents; with
-single only the mailbox itself. Messages that cannot be read are skipped and
listed in errors.txt in the destination directory.
"""


def _export(inv: Invocation, maildir: bool) -> None:
    dest, accountdir = Path(inv.args[0]), Path(inv.args[1])
    mailbox = inv.args[2] if len(inv.args) > 2 else ""
    single = bool(inv.flags["single"]) and bool(mailbox)
    try:
        result: ExportResult = export_account(
            accountdir, dest, maildir=maildir, mailbox=mailbox, recursive=not single
        )
    except StoreError as e:
        raise CommandError(str(e)) from None
    except OSError as e:
        raise CommandError(f"exporting: {e.strerror or e}: {e.filename or ''}") from None
    kind = "maildirs" if maildir else "mbox files"
    print(f"exported {result.messages} messages in {result.mailboxes} {kind} to {dest}")
    if result.errors:
        print(f"{len(result.errors)} problems, see {dest / 'errors.txt'}", file=sys.stderr)


_SINGLE = Flag(
    "single", False, "export single mailbox, without any children. disabled if mailbox isn't specified."
)


@command(
    "export maildir",
    params="[-single] $dstdir $accountpath [$mailbox]",
    flags=[_SINGLE],
    nargs=(2, 3),
    help="""Export one or all mailboxes from an account in maildir format.
"""
    + _EXPORT_HELP
    + """
Each mailbox becomes a maildir (new/, cur/, tmp/) named after it; a child
mailbox's maildir is inside its parent's. Flags are in the file names;
keywords and the flags Forwarded, Junk, NotJunk, Phishing and MDNSent are
listed in a dovecot-keywords file (26 at most per mailbox). Files get the
message's received time as name prefix and modification time, and LF line
endings.""",
)
def cmd_export_maildir(inv: Invocation) -> None:
    _export(inv, maildir=True)


@command(
    "export mbox",
    params="[-single] $dstdir $accountpath [$mailbox]",
    flags=[_SINGLE],
    nargs=(2, 3),
    help="""Export messages from one or all mailboxes in an account in mbox format.

Using mbox is not recommended. Maildir is a better format.
"""
    + _EXPORT_HELP
    + """
Each mailbox becomes a file <mailbox>.mbox. The format is "mboxrd": lines
matching "From ", ">From ", ">>From ", etc. get one more ">", so the original
can be reconstructed exactly. Flags and keywords are written in Status,
X-Status and X-Keywords header fields; line endings are LF.""",
)
def cmd_export_mbox(inv: Invocation) -> None:
    _export(inv, maildir=False)
