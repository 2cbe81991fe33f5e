"""Import of mbox files and maildirs into an account, and export of an account's mailboxes.

The formats are in :mod:`mox.store.mbox` and :mod:`mox.store.maildir`; this
module moves messages between them and the store. Used by the ctl commands
(``mox import ...`` while the server runs: the command line streams the file
over the ctl socket), and by the command line directly when no server runs.

Import is incremental with bounded memory: the source is parsed as it
arrives, off the event loop, and messages are committed in batches of at
most :data:`BATCH_MESSAGES` messages or :data:`BATCH_BYTES` bytes with
``Account.add_messages`` (one transaction and one file system sync per
batch). While one batch is being committed the next one is parsed, so at
most two batches are in memory. Unlike upstream, which imports in a single
transaction holding the account's write lock throughout, batches commit as
they fill: deliveries to the account continue during a long import, and a
failing import (e.g. over quota) keeps the batches committed before the
failure and says how many those were.

A message that cannot be imported (too large, empty, unreadable file) is
skipped and reported with its position (message number, byte offset and
line in an mbox; the file name in a maildir); the import goes on. At the end
an :class:`ImportResult` says how many were imported and skipped, and why.

Export follows upstream's ``mox export mbox|maildir``: it reads the account
database directly (no running server needed, a running one is not
disturbed), writing one ``<mailbox>.mbox`` file or one maildir per mailbox
under a destination directory, and an ``errors.txt`` there for messages that
could not be exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mox import mlog
from mox.store import account as account_mod
from mox.store.account import Account, NewMessage
from mox.store.maildir import (
    DOVECOT_KEYWORDS,
    KeywordLetters,
    RecordError,
    RecordReader,
    format_dovecot_keywords,
    list_maildir,
    maildir_message,
    message_filename,
    parse_dovecot_keywords,
    read_dovecot_keywords,
    read_message_file,
)
from mox.store.mbox import ImportMessage, ImportProblem, MboxFormatError, MboxReader, mbox_entry, to_lf
from mox.store.model import Flags, Mailbox, Message, StoreError, check_mailbox_name

log = mlog.new("import")

BATCH_MESSAGES = 1000
"""Messages committed together at most (one transaction, one file system sync)."""

BATCH_BYTES = 16 * 1024 * 1024
"""Message bytes committed together at most; bounds memory with BATCH_MESSAGES."""

MAX_REPORTED_PROBLEMS = 1000
"""Skipped messages reported one by one; beyond this only counted (a ctl result is at most 1 MiB)."""

READ_SIZE = 1024 * 1024
"""Bytes read from a local mbox file at a time (direct import)."""

ProgressFn = Callable[[int, int], None]
"""Called for every message read with (messages read so far, source bytes read so far);
messages are committed in batches, so up to two batches later."""


class ImportFailed(StoreError):
    """An import failed as a whole; the message says how far it got."""


@dataclass
class ImportResult:
    imported: int = 0
    skipped: int = 0
    size: int = 0  # bytes of messages stored
    problems: list[ImportProblem] = field(default_factory=list)
    problems_omitted: int = 0

    def add_problem(self, p: ImportProblem) -> None:
        if p.skipped:
            self.skipped += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(p)
        else:
            self.problems_omitted += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "skipped": self.skipped,
            "size": self.size,
            "problems": [[p.position, p.reason, p.skipped] for p in self.problems],
            "problems_omitted": self.problems_omitted,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImportResult:
        return cls(
            imported=int(d["imported"]),
            skipped=int(d["skipped"]),
            size=int(d.get("size", 0)),
            problems=[ImportProblem(str(p[0]), str(p[1]), bool(p[2])) for p in d.get("problems", [])],
            problems_omitted=int(d.get("problems_omitted", 0)),
        )


def normalize_mailbox(name: str) -> str:
    """The mailbox name as the store knows it (NFC, "Inbox" in any case becomes "Inbox"), as upstream.

    Raises:
        StoreError: invalid name.
    """
    return check_mailbox_name(unicodedata.normalize("NFC", name))


_ONLY_LINE_ENDINGS = re.compile(rb"[\r\n]*")


class Importer:
    """Collects messages into batches and commits them to a mailbox, one batch in flight at a time."""

    def __init__(self, acc: Account, mailbox: str, progress: ProgressFn | None = None) -> None:
        self.acc = acc
        self.mailbox = normalize_mailbox(mailbox)
        self.progress = progress
        self.result = ImportResult()
        self.source_bytes = 0  # set by the caller as it reads, for progress
        self.messages_read = 0
        self._batch: list[NewMessage] = []
        self._batch_first = ""  # position of the batch's first message
        self._batch_bytes = 0
        self._inflight: asyncio.Task[None] | None = None

    async def add(self, item: ImportMessage | ImportProblem) -> None:
        self.messages_read += 1
        if self.progress is not None:
            self.progress(self.messages_read, self.source_bytes)
        if isinstance(item, ImportProblem):
            self.result.add_problem(item)
            log.info("import: message skipped", position=item.position, reason=item.reason)
            return
        if _ONLY_LINE_ENDINGS.fullmatch(item.data):
            self.result.add_problem(ImportProblem(item.position, "empty message, skipped"))
            return
        if not self._batch:
            self._batch_first = item.position
        self._batch.append(NewMessage(item.data, item.flags, item.keywords, item.received))
        self._batch_bytes += len(item.data)
        if len(self._batch) >= BATCH_MESSAGES or self._batch_bytes >= BATCH_BYTES:
            await self._flush()

    async def _wait_inflight(self) -> None:
        if self._inflight is not None:
            t, self._inflight = self._inflight, None
            await t

    async def _flush(self) -> None:
        await self._wait_inflight()
        if not self._batch:
            return
        batch, first = self._batch, self._batch_first
        self._batch, self._batch_bytes = [], 0
        self._inflight = asyncio.create_task(self._commit(batch, first))

    async def _commit(self, batch: list[NewMessage], first: str) -> None:
        try:
            await self.acc.add_messages(self.mailbox, batch)
        except StoreError as e:
            raise ImportFailed(
                f"import stopped: {self.result.imported} messages were imported, "
                f"the batch of {len(batch)} starting at {first} was not: {e}"
            ) from None
        except OSError as e:
            raise ImportFailed(
                f"import stopped: {self.result.imported} messages were imported, "
                f"the batch of {len(batch)} starting at {first} was not: {e.strerror or e}"
            ) from None
        self.result.imported += len(batch)
        self.result.size += sum(len(m.data) for m in batch)

    async def finish(self) -> ImportResult:
        """Commit what is left; returns the result. Raises ImportFailed if a batch failed."""
        await self._flush()
        await self._wait_inflight()
        return self.result

    async def abort(self) -> None:
        """Stop: wait for the batch being committed (it may commit), drop the rest."""
        self._batch = []
        with contextlib.suppress(Exception):
            await self._wait_inflight()


async def import_mbox(
    acc: Account,
    mailbox: str,
    chunks: AsyncIterable[bytes | bytearray | memoryview],
    *,
    name: str = "mbox",
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Import an mbox file, given as chunks of its bytes, into mailbox (created if needed).

    Raises:
        ImportFailed: not an mbox, or storing failed (committed batches stay).
        StoreError: bad mailbox name.
    """
    reader = MboxReader(name)
    imp = Importer(acc, mailbox, progress)
    try:
        async for chunk in chunks:
            try:
                items = await asyncio.to_thread(reader.feed, chunk)
            except MboxFormatError as e:
                raise ImportFailed(str(e)) from None
            imp.source_bytes = reader.bytes_read
            for it in items:
                await imp.add(it)
        for it in reader.close():
            await imp.add(it)
        return await imp.finish()
    except BaseException:
        await imp.abort()
        raise


async def import_mbox_file(
    acc: Account, mailbox: str, path: Path, *, progress: ProgressFn | None = None
) -> ImportResult:
    """Import a local mbox file (the command line without a running server)."""
    f = await asyncio.to_thread(open, path, "rb")
    try:

        async def chunks() -> AsyncIterator[bytes]:
            while data := await asyncio.to_thread(f.read, READ_SIZE):
                yield data

        return await import_mbox(acc, mailbox, chunks(), name=str(path), progress=progress)
    finally:
        f.close()


async def import_maildir_records(
    acc: Account,
    mailbox: str,
    chunks: AsyncIterable[bytes | bytearray | memoryview],
    *,
    name: str = "maildir",
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Import a maildir sent as a record stream (see mox.store.maildir) into mailbox.

    Raises:
        ImportFailed: malformed stream, or storing failed (committed batches stay).
    """
    reader = RecordReader()
    imp = Importer(acc, mailbox, progress)
    keywords: list[str] = []
    received = 0

    def parse(chunk: bytes | bytearray | memoryview) -> list[ImportMessage]:
        nonlocal keywords
        out: list[ImportMessage] = []
        for r in reader.feed(chunk):
            if r.name == DOVECOT_KEYWORDS:
                keywords, problems = parse_dovecot_keywords(r.data)
                for p in problems:
                    imp.result.add_problem(ImportProblem(f"{name}/{DOVECOT_KEYWORDS}", p, skipped=False))
            else:
                out.append(maildir_message(r.name, r.data, r.mtime, keywords, f"{name}/{r.name}"))
        return out

    try:
        async for chunk in chunks:
            received += len(chunk)
            try:
                items = await asyncio.to_thread(parse, chunk)
            except RecordError as e:
                raise ImportFailed(str(e)) from None
            imp.source_bytes = received
            for it in items:
                await imp.add(it)
        try:
            reader.close()
        except RecordError as e:
            raise ImportFailed(str(e)) from None
        return await imp.finish()
    except BaseException:
        await imp.abort()
        raise


async def import_maildir_dir(
    acc: Account, mailbox: str, path: Path, *, progress: ProgressFn | None = None
) -> ImportResult:
    """Import a local maildir (the command line without a running server).

    Raises:
        MaildirError: not a maildir.
        ImportFailed: storing failed (committed batches stay).
    """
    listing = await asyncio.to_thread(list_maildir, path)
    imp = Importer(acc, mailbox, progress)
    for problem in listing.problems:
        await imp.add(problem)
    keywords: list[str] = []
    if listing.keywords_file is not None:
        keywords, kproblems = await asyncio.to_thread(read_dovecot_keywords, listing.keywords_file)
        for kp in kproblems:
            imp.result.add_problem(ImportProblem(str(listing.keywords_file), kp, skipped=False))

    def load(name: str, p: Path) -> ImportMessage | ImportProblem:
        try:
            data, mtime = read_message_file(p)
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            return ImportProblem(str(p), f"{reason}, skipped")
        imp.source_bytes += len(data)
        return maildir_message(name, data, mtime, keywords, str(p))

    try:
        for name, p in listing.messages:
            await imp.add(await asyncio.to_thread(load, name, p))
        return await imp.finish()
    except BaseException:
        await imp.abort()
        raise


# Export.


@dataclass
class ExportResult:
    mailboxes: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)


class ExportError(StoreError):
    """An export could not be done (no such account directory or mailbox, destination exists)."""


def _select_mailboxes(mailboxes: list[Mailbox], mailbox: str, recursive: bool) -> list[tuple[Mailbox, str]]:
    """The mailboxes to export with the name each gets in the export, parents first."""
    if not mailbox:
        return [(mb, mb.name) for mb in sorted(mailboxes, key=lambda m: m.name)]
    if not any(mb.name == mailbox for mb in mailboxes):
        raise ExportError(f"mailbox {mailbox!r} not found")
    parent = mailbox.rsplit("/", 1)[0] + "/" if "/" in mailbox else ""
    out = []
    for mb in sorted(mailboxes, key=lambda m: m.name):
        if mb.name == mailbox or (recursive and mb.name.startswith(mailbox + "/")):
            # As upstream, a given mailbox is exported without its parents' names.
            out.append((mb, mb.name[len(parent) :]))
    return out


def _open_db(account_dir: Path) -> sqlite3.Connection:
    db = account_dir / "index.db"
    if not db.is_file():
        raise ExportError(f"{account_dir}: not an account directory (no index.db)")
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
        c.execute("PRAGMA query_only=1")
        # One read transaction: the export sees one consistent state of the account.
        c.execute("BEGIN")
        c.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
    except sqlite3.Error as e:
        raise ExportError(f"{db}: opening database: {e}") from None
    return c


def _message_path(account_dir: Path, message_id: int) -> Path:
    return account_dir / "msg" / format(message_id >> 12, "x") / str(message_id)


def _mkdir_new(p: Path) -> None:
    try:
        p.mkdir(mode=0o770, parents=True)
    except FileExistsError:
        raise ExportError(f"{p} already exists") from None


def export_account(
    account_dir: Path,
    dest: Path,
    *,
    maildir: bool,
    mailbox: str = "",
    recursive: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> ExportResult:
    """Export mailboxes of the account in account_dir (``<datadir>/accounts/<name>``) to dest.

    All mailboxes, or mailbox and (when recursive) its children. mbox: one
    ``<name>.mbox`` per mailbox; maildir: one maildir ``<name>/`` per mailbox.
    Existing files are not overwritten (ExportError). Messages that cannot be
    read are skipped and listed in ``dest/errors.txt`` and the result.
    """
    if mailbox:
        mailbox = normalize_mailbox(mailbox)
    c = _open_db(account_dir)
    result = ExportResult()
    try:
        mailboxes = [
            account_mod._mailbox_from_row(r)
            for r in c.execute(f"SELECT {account_mod._MAILBOX_COLUMNS} FROM mailbox")
        ]
        selected = _select_mailboxes(mailboxes, mailbox, recursive)
        dest.mkdir(mode=0o770, parents=True, exist_ok=True)
        for mb, name in selected:
            q = (
                f"SELECT {account_mod._MESSAGE_COLUMNS} FROM message WHERE mailbox_id = ? AND expunged = 0 "
                "ORDER BY received, id"
            )
            msgs = (account_mod._message_from_row(r) for r in c.execute(q, (mb.id,)))
            if maildir:
                _export_maildir(account_dir, dest, name, msgs, result)
            else:
                _export_mbox(account_dir, dest, name, msgs, result)
            result.mailboxes += 1
            if progress is not None:
                progress(name, result.messages)
    finally:
        c.close()
    if result.errors:
        with open(dest / "errors.txt", "x", encoding="utf-8") as f:
            f.write("".join(e + "\n" for e in result.errors))
    return result


def _read_stored(account_dir: Path, m: Message, result: ExportResult) -> bytes | None:
    p = _message_path(account_dir, m.id)
    try:
        data = p.read_bytes()
    except OSError as e:
        result.errors.append(f"message id {m.id}, file {p}: {e.strerror or e} (message skipped)")
        return None
    if len(data) != m.size:
        result.errors.append(
            f"message id {m.id}: size in database {m.size}, file has {len(data)} (file exported)"
        )
    return data


def _export_mbox(account_dir: Path, dest: Path, name: str, msgs: Any, result: ExportResult) -> None:
    path = dest / (name + ".mbox")
    path.parent.mkdir(mode=0o770, parents=True, exist_ok=True)
    try:
        f = open(path, "xb", buffering=1024 * 1024)
    except FileExistsError:
        raise ExportError(f"{path} already exists") from None
    with f:
        for m in msgs:
            data = _read_stored(account_dir, m, result)
            if data is None:
                continue
            f.write(mbox_entry(data, m.flags, m.keywords, m.received, m.smtp.mail_from or "mox"))
            result.messages += 1


def _export_maildir(account_dir: Path, dest: Path, name: str, msgs: Any, result: ExportResult) -> None:
    base = dest / name
    _mkdir_new(base / "new")
    _mkdir_new(base / "cur")
    _mkdir_new(base / "tmp")
    letters = KeywordLetters()
    lost: set[str] = set()
    for m in msgs:
        data = _read_stored(account_dir, m, result)
        if data is None:
            continue
        fname, nolet = message_filename(m.received, m.id, m.flags, m.keywords, letters)
        lost.update(nolet)
        p = base / ("cur" if m.flags & Flags.SEEN else "new") / fname
        with open(p, "xb") as f:
            f.write(to_lf(data))
        with contextlib.suppress(OSError, OverflowError):
            os.utime(p, (m.received, m.received))
        result.messages += 1
    if letters.keywords:
        with open(base / DOVECOT_KEYWORDS, "xb") as f:
            f.write(format_dovecot_keywords(letters.keywords))
    for kw in sorted(lost):
        result.errors.append(
            f"mailbox {name}: keyword {kw!r} not exported, a maildir has letters for 26 keywords only"
        )


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    if n < 1000_000:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.1f} MB"


def describe_result(r: ImportResult) -> list[str]:
    """Lines for the user: each problem, then the summary."""
    lines = [str(p) for p in r.problems]
    if r.problems_omitted:
        lines.append(f"... and {r.problems_omitted} more problems (see the server log)")
    summary = f"imported {r.imported} message{'s' if r.imported != 1 else ''} ({_size(r.size)})"
    if r.skipped:
        summary += f", skipped {r.skipped}"
    lines.append(summary)
    return lines
