"""The maildir format: reading (import) and writing (export). See https://cr.yp.to/proto/maildir.html.

A maildir is a directory with ``new/``, ``cur/`` and ``tmp/``; each message is
one file. Flags are in the file name after ``:2,``: ``D`` draft, ``F`` flagged,
``P`` passed (no IMAP flag, ignored as upstream), ``R`` replied (answered),
``S`` seen, ``T`` trashed (deleted). Dovecot adds lower-case letters ``a``-``z``
for keywords, numbered in the maildir's ``dovecot-keywords`` file
(``0 $Forwarded`` per line: index, space, keyword).

Decisions, following upstream mox where it decided:

- Import reads ``new/`` and ``cur/`` (upstream reads new/ then cur/; we
  order all messages by the time in their name, then by name, so UIDs follow
  arrival), skipping names starting with a dot (the maildir convention for
  files that are not messages). The received time is the number before the
  first dot of the name (``1700000000.M1P2.host``), else the file's mtime.
- Line endings are converted as for mbox (see :mod:`mox.store.mbox`): bare LF
  becomes CRLF on import, CRLF becomes LF on export (a line whose content
  ends in CR keeps it), so export and import give back the same bytes.
  A maildir file holds exactly one message, so a message without final line
  ending stays that way.
- Export names files ``<received>.<id>.mox:2,<flags>``, in ``cur/`` when
  seen and ``new/`` otherwise (as upstream), with the flag letters in ASCII
  order as the maildir description asks. The well-known flags ($Forwarded,
  $Junk, $NotJunk, $Phishing, $MDNSent) and, unlike upstream, custom
  keywords get dovecot-keywords letters; a maildir has 26 of them, further
  keywords of a mailbox cannot be written and are reported.
- To send a maildir over the ctl socket to a running server, the command
  line flattens it into one stream of records (:func:`encode_record`,
  :class:`RecordReader`): a JSON line ``{"name": "cur/…", "size": N, "mtime": T}``
  followed by N bytes, the dovecot-keywords file first. One flow-controlled
  stream keeps the transfer as fast as an mbox upload; a tar file would do
  the same with more format to parse, and both ends are this program.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mox.store.mbox import (
    FLAG_KEYWORDS,
    KEYWORD_FLAGS,
    MAX_MESSAGE_SIZE,
    ImportMessage,
    ImportProblem,
    to_crlf,
    valid_keyword,
)
from mox.store.model import Flags

DOVECOT_KEYWORDS = "dovecot-keywords"
MAX_KEYWORD_LETTERS = 26
MAX_DOVECOT_KEYWORDS_SIZE = 64 * 1024
"""Larger dovecot-keywords files are not read (26 keywords fit in far less)."""

MAX_RECORD_HEADER = 64 * 1024
"""Longest JSON line of a record in a maildir stream."""

# Standard info flags (maildir description, "Info semantics").
_INFO_FLAGS: dict[str, Flags] = {
    "D": Flags.DRAFT,
    "F": Flags.FLAGGED,
    "R": Flags.ANSWERED,
    "S": Flags.SEEN,
    "T": Flags.DELETED,
}


class MaildirError(Exception):
    """A maildir cannot be read or written as a whole (e.g. it has no cur/ or new/)."""


# dovecot-keywords


def parse_dovecot_keywords(data: bytes) -> tuple[list[str], list[str]]:
    """Parse a dovecot-keywords file, as upstream: best effort.

    Returns:
        The keyword (lower case) for each index ("" where none), and the
        problems found (bad lines are skipped).
    """
    keywords = [""] * MAX_KEYWORD_LETTERS
    problems: list[str] = []
    end = 0
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line:
            continue
        index_s, _, kw = line.partition(" ")
        kw = kw.strip().lower()
        try:
            index = int(index_s)
        except ValueError:
            problems.append(f"bad index in line {raw!r}")
            continue
        if not 0 <= index < MAX_KEYWORD_LETTERS:
            problems.append(f"index out of range in line {raw!r}")
            continue
        if keywords[index]:
            problems.append(f"duplicate index in line {raw!r}")
            continue
        if kw not in KEYWORD_FLAGS and not valid_keyword(kw):
            problems.append(f"invalid keyword in line {raw!r}")
            continue
        keywords[index] = kw
        end = max(end, index + 1)
    return keywords[:end], problems


def format_dovecot_keywords(keywords: list[str]) -> bytes:
    return b"".join(f"{i} {kw}\n".encode() for i, kw in enumerate(keywords))


class KeywordLetters:
    """Letters a-z assigned to keywords in order of first use, for one exported maildir."""

    def __init__(self) -> None:
        self.keywords: list[str] = []
        self._index: dict[str, int] = {}

    def letter(self, keyword: str) -> str | None:
        """The letter for keyword, or None when all 26 are taken."""
        i = self._index.get(keyword)
        if i is None:
            if len(self.keywords) >= MAX_KEYWORD_LETTERS:
                return None
            i = len(self.keywords)
            self._index[keyword] = i
            self.keywords.append(keyword)
        return chr(ord("a") + i)


# File names


def parse_info(filename: str, dovecot_keywords: list[str]) -> tuple[Flags, list[str]]:
    """Flags and keywords from a file name's info part (after ":2,")."""
    _, sep, info = filename.partition(":2,")
    flags = Flags.NONE
    keywords: set[str] = set()
    if not sep:
        return flags, []
    for c in info:
        f = _INFO_FLAGS.get(c)
        if f is not None:
            flags |= f
        elif "a" <= c <= "z":
            i = ord(c) - ord("a")
            if i >= len(dovecot_keywords) or not dovecot_keywords[i]:
                continue
            kw = dovecot_keywords[i]
            kf = KEYWORD_FLAGS.get(kw)
            if kf is not None:
                flags |= kf
            else:
                keywords.add(kw)
    return flags, sorted(keywords)


def received_from_filename(filename: str) -> float | None:
    """The delivery time at the start of a maildir file name ("1700000000.M1P2.host"), if any."""
    t = filename.split(".", 2)
    if len(t) == 3 and t[0].isascii() and t[0].isdigit():
        return float(int(t[0]))
    return None


def message_filename(
    received: float, message_id: int, flags: Flags, keywords: list[str], letters: KeywordLetters
) -> tuple[str, list[str]]:
    """The exported file name, and the keywords that got no letter."""
    chars = [c for c, f in _INFO_FLAGS.items() if flags & f]
    lost = []
    for kw in [name for f, name in FLAG_KEYWORDS if flags & f] + keywords:
        letter = letters.letter(kw)
        if letter is None:
            lost.append(kw)
        else:
            chars.append(letter)
    return f"{int(received)}.{message_id}.mox:2,{''.join(sorted(chars))}", lost


def maildir_message(
    name: str, data: bytes, mtime: float, dovecot_keywords: list[str], position: str
) -> ImportMessage:
    """A message file (name relative to the maildir, e.g. "cur/…") as a message for the store."""
    base = name.rsplit("/", 1)[-1]
    flags, keywords = parse_info(base, dovecot_keywords)
    received = received_from_filename(base)
    if received is None:
        received = mtime
    return ImportMessage(to_crlf(data), flags, keywords, received, position)


# Reading a maildir from disk.


@dataclass
class MaildirListing:
    keywords_file: Path | None
    messages: list[tuple[str, Path]]  # (name relative to the maildir, path)
    problems: list[ImportProblem]


def _sort_key(item: tuple[str, Path]) -> tuple[float, list[tuple[int, str]]]:
    """By the time in the name, then naturally ("2.x" before "10.x"), so messages are imported in arrival order."""
    base = item[0].rsplit("/", 1)[-1]
    t = received_from_filename(base)
    natural = [(int(p), "") if p.isdigit() else (0, p) for p in re.split(r"(\d+)", base) if p]
    return (t if t is not None else float("inf"), natural)


def list_maildir(path: Path) -> MaildirListing:
    """The files of a maildir to import.

    Raises:
        MaildirError: path has neither cur/ nor new/.
    """
    subdirs = [d for d in ("new", "cur") if (path / d).is_dir()]
    if not subdirs:
        raise MaildirError(f"{path}: not a maildir: no cur/ or new/ directory")
    messages: list[tuple[str, Path]] = []
    problems: list[ImportProblem] = []
    for d in subdirs:
        try:
            entries = list(os.scandir(path / d))
        except OSError as e:
            raise MaildirError(f"{path / d}: {e.strerror or e}") from None
        for ent in entries:
            if ent.name.startswith("."):
                continue
            name = f"{d}/{ent.name}"
            try:
                regular = ent.is_file()
            except OSError:
                regular = False
            if not regular:
                problems.append(ImportProblem(f"{path}/{name}", "not a regular file, skipped"))
                continue
            messages.append((name, Path(ent.path)))
    messages.sort(key=_sort_key)
    kf = path / DOVECOT_KEYWORDS
    return MaildirListing(kf if kf.is_file() else None, messages, problems)


def read_dovecot_keywords(path: Path) -> tuple[list[str], list[str]]:
    """Read and parse a dovecot-keywords file; unreadable or too large is a problem, not an error."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DOVECOT_KEYWORDS_SIZE + 1)
    except OSError as e:
        return [], [f"{e.strerror or e}, keywords not used"]
    if len(data) > MAX_DOVECOT_KEYWORDS_SIZE:
        return [], [f"larger than {MAX_DOVECOT_KEYWORDS_SIZE} bytes, keywords not used"]
    return parse_dovecot_keywords(data)


def read_message_file(path: Path, max_size: int = MAX_MESSAGE_SIZE) -> tuple[bytes, float]:
    """The bytes and mtime of a message file.

    Raises:
        OSError: unreadable.
        ValueError: larger than max_size.
    """
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_size > max_size:
            raise ValueError(f"message larger than {max_size} bytes")
        data = f.read(max_size + 1)
    if len(data) > max_size:
        raise ValueError(f"message larger than {max_size} bytes")
    return data, st.st_mtime


# The record stream (maildir over the ctl socket).


@dataclass
class Record:
    name: str  # "dovecot-keywords", or "new/…" / "cur/…"
    data: bytes
    mtime: float


class RecordError(Exception):
    """The maildir stream is malformed."""


def encode_record(name: str, data: bytes, mtime: float) -> bytes:
    """The header line of a record; the data follows it."""
    return json.dumps({"name": name, "size": len(data), "mtime": mtime}).encode() + b"\n"


def iter_records(
    listing: MaildirListing,
    problems: list[ImportProblem],
    progress: Callable[[int, int], None] | None = None,
    max_size: int = MAX_MESSAGE_SIZE,
) -> Iterator[bytes]:
    """The record stream of a listed maildir, in pieces.

    Files that cannot be read are added to problems; progress is called with
    (messages, bytes) after each message.
    """
    problems.extend(listing.problems)
    if listing.keywords_file is not None:
        try:
            with open(listing.keywords_file, "rb") as f:
                kdata = f.read(MAX_DOVECOT_KEYWORDS_SIZE + 1)
        except OSError as e:
            problems.append(
                ImportProblem(
                    str(listing.keywords_file), f"{e.strerror or e}, keywords not used", skipped=False
                )
            )
        else:
            if len(kdata) <= MAX_DOVECOT_KEYWORDS_SIZE:
                yield encode_record(DOVECOT_KEYWORDS, kdata, 0)
                yield kdata
            else:
                problems.append(
                    ImportProblem(
                        str(listing.keywords_file), "file too large, keywords not used", skipped=False
                    )
                )
    n = nbytes = 0
    for name, p in listing.messages:
        n += 1
        try:
            data, mtime = read_message_file(p, max_size)
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            problems.append(ImportProblem(str(p), f"{reason}, skipped"))
            continue
        yield encode_record(name, data, mtime)
        yield data
        nbytes += len(data)
        if progress is not None:
            progress(n, nbytes)


class RecordReader:
    """Incremental parser of the record stream; feed it chunks, get complete records."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._pending: tuple[str, int, float] | None = None  # header of the record being read

    def feed(self, data: bytes | bytearray | memoryview) -> list[Record]:
        """Add bytes; returns the records they completed.

        Raises:
            RecordError: malformed header or a record beyond the size limit.
        """
        self._buf += data
        buf = self._buf
        out: list[Record] = []
        pos = 0
        while True:
            if self._pending is None:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if len(buf) - pos > MAX_RECORD_HEADER:
                        raise RecordError("maildir stream: record header too long")
                    break
                self._pending = self._header(bytes(buf[pos:nl]))
                pos = nl + 1
            name, size, mtime = self._pending
            if len(buf) - pos < size:
                break
            out.append(Record(name, bytes(buf[pos : pos + size]), mtime))
            pos += size
            self._pending = None
        del buf[:pos]
        return out

    def close(self) -> None:
        """End of stream; raises RecordError if a record is incomplete."""
        if self._pending is not None or self._buf:
            raise RecordError("maildir stream ends in the middle of a record")

    def _header(self, line: bytes) -> tuple[str, int, float]:
        try:
            h = json.loads(line)
            name, size, mtime = h["name"], h["size"], h["mtime"]
        except (ValueError, KeyError, TypeError):
            raise RecordError("maildir stream: malformed record header") from None
        if not isinstance(name, str) or not isinstance(size, int) or not isinstance(mtime, int | float):
            raise RecordError("maildir stream: malformed record header")
        if not 0 <= size <= self.max_size:
            raise RecordError(f"maildir stream: record {name!r} of {size} bytes exceeds the limit")
        return name, size, float(mtime)
