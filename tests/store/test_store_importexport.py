"""Import into and export from an account: batches, skipped messages, failures, and exact round trips."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mox.store import importexport
from mox.store.account import Account, NewMessage, open_account
from mox.store.importexport import (
    ExportError,
    ImportFailed,
    export_account,
    import_maildir_dir,
    import_maildir_records,
    import_mbox,
    import_mbox_file,
)
from mox.store.maildir import iter_records, list_maildir
from mox.store.mbox import ImportProblem
from mox.store.model import Flags

TRICKY_LINES = [
    b"From the start of a line",
    b">From quoted once",
    b">>From quoted twice",
    b"From",
    b"",
    b"8-bit: \xe2\x82\xac \xff\xfe\x80 NUL \x00 done",
    b"ends in CR\r",
    b"bare \r inside",
    b" leading space",
    b"Status: R (in the body)",
    b"x" * 1200,
]


def generated_messages(n: int, seed: int = 1) -> list[NewMessage]:
    """Messages as the store holds them (CRLF), with every awkward line, flag and keyword combination."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        head = [b"From: a@example.org", b"Subject: message %d" % i, b"Message-ID: <m%d@example.org>" % i]
        if i % 3 == 0 and i:
            head[1] = b"Subject: Re: message %d" % (i - 1)
            head.append(b"In-Reply-To: <m%d@example.org>" % (i - 1))
        body = [rnd.choice(TRICKY_LINES) for _ in range(rnd.randrange(0, 8))]
        if i % 7 == 0:
            body = []  # empty body
        data = b"".join(h + b"\r\n" for h in head) + b"\r\n" + b"".join(b + b"\r\n" for b in body)
        if i % 5 == 4:
            data += b"no final newline"
        flags = Flags(rnd.randrange(0, 1024))
        keywords = sorted(
            {rnd.choice(["work", "later", "$label1", "x.y", "todo"]) for _ in range(rnd.randrange(0, 3))}
        )
        out.append(NewMessage(data, flags, keywords, float(1600000000 + i * 3600)))
    return out


def state(msgs: list[tuple[bytes, Flags, list[str], float]]) -> list[tuple[bytes, Flags, list[str], int]]:
    return [(d, f, k, int(r)) for d, f, k, r in msgs]


async def mailbox_state(acc: Account, mailbox: str) -> list[tuple[bytes, Flags, list[str], float]]:
    return [(acc.read_message(m), m.flags, m.keywords, m.received) for m in await acc.messages(mailbox)]


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importexport, "BATCH_MESSAGES", 7)


MBOX = (
    b"From a@example.org Sat Jan  1 00:00:00 2022\n"
    b"Subject: one\nStatus: RO\nX-Keywords: $Junk,custom\n\nbody\n>From quoted\n\n"
    b"From b@example.org Sat Jan  1 00:00:00 2022\n\n"
    b"From c@example.org Sat Jan  1 00:00:00 2022\nSubject: three\nX-Status: F\n\nbody\n"
)


async def test_import_mbox_into_account_with_flags_and_skipped_positions(account: Account) -> None:
    seen: list[tuple[int, int]] = []
    r = await import_mbox(
        account, "inbox", chunks_of(MBOX, 10), name="my.mbox", progress=lambda n, b: seen.append((n, b))
    )
    assert (r.imported, r.skipped) == (2, 1)
    assert [str(p) for p in r.problems] == [
        "my.mbox: message 2 at byte offset 113 (line 9): empty message, skipped"
    ]
    msgs = await account.messages("Inbox")
    assert [account.read_message(m) for m in msgs] == [
        b"Subject: one\r\n\r\nbody\r\nFrom quoted\r\n",
        b"Subject: three\r\n\r\nbody\r\n",
    ]
    assert [(m.flags, m.keywords) for m in msgs] == [
        (Flags.SEEN | Flags.JUNK, ["custom"]),
        (Flags.FLAGGED, []),
    ]
    assert (await account.mailbox("Inbox")).keywords == ["custom"]
    assert seen[-1] == (3, len(MBOX))


async def test_import_creates_mailbox_and_commits_in_batches(account: Account, small_batches: None) -> None:
    msgs = generated_messages(30)
    mbox = b"".join(importexport.mbox_entry(m.data, m.flags, m.keywords, m.received or 0) for m in msgs)
    r = await import_mbox(account, "Archive/2020", chunks_of(mbox, 4096))
    assert r.imported == 30 and r.skipped == 0
    assert len(await account.messages("Archive/2020")) == 30
    # Threading still works across batches: replies found their parents.
    ms = await account.messages("Archive/2020")
    assert ms[3].thread_id == ms[2].thread_id


async def test_not_an_mbox_fails_clearly(account: Account) -> None:
    with pytest.raises(ImportFailed, match="not an mbox file"):
        await import_mbox(account, "Inbox", chunks_of(b"Subject: hi\n\nbody\n", 100))
    assert await account.messages("Inbox") == []


async def test_failure_keeps_committed_batches_and_says_how_many(tmp_path: Path, small_batches: None) -> None:
    msgs = generated_messages(20)
    mbox = b"".join(importexport.mbox_entry(m.data, m.flags, m.keywords, m.received or 0) for m in msgs)
    acc = await open_account(tmp_path, "q", quota=len(mbox) // 2)
    try:
        with pytest.raises(
            ImportFailed,
            match=r"import stopped: \d+ messages were imported, the batch of 7 starting at mbox: message \d+ .* quota",
        ):
            await import_mbox(acc, "Inbox", chunks_of(mbox, 1000))
        n = len(await acc.messages("Inbox"))
        assert n > 0 and n % 7 == 0
    finally:
        await acc.close()


@pytest.mark.parametrize("fmt", ["mbox", "maildir", "maildir-stream"])
async def test_export_then_import_preserves_every_byte_flag_and_keyword(
    tmp_path: Path, account: Account, fmt: str, small_batches: None
) -> None:
    msgs = generated_messages(60)
    await account.add_messages("Inbox", msgs)
    await account.add_messages("Inbox/Sub", msgs[:5])
    before = await mailbox_state(account, "Inbox")
    dest = tmp_path / "export"
    maildir = fmt != "mbox"
    result = export_account(account.dir, dest, maildir=maildir)
    assert result.messages == 65 and result.errors == []
    if fmt == "mbox":
        assert (dest / "Inbox.mbox").is_file() and (dest / "Inbox" / "Sub.mbox").is_file()
        r = await import_mbox_file(account, "Again", dest / "Inbox.mbox")
    elif fmt == "maildir":
        assert (dest / "Inbox" / "cur").is_dir() and (dest / "Inbox" / "Sub" / "new").is_dir()
        r = await import_maildir_dir(account, "Again", dest / "Inbox")
    else:
        problems: list[ImportProblem] = []
        stream = b"".join(iter_records(list_maildir(dest / "Inbox"), problems))
        assert problems == []
        r = await import_maildir_records(account, "Again", chunks_of(stream, 3000))
    assert (r.imported, r.skipped, r.problems) == (60, 0, [])
    after = await mailbox_state(account, "Again")
    if fmt == "mbox":
        # The one thing mbox cannot keep: a message without final line ending gets one.
        before = [(d if d.endswith(b"\r\n") else d + b"\r\n", f, k, t) for d, f, k, t in before]
    assert state(after) == state(before)


async def test_maildir_export_layout_and_dovecot_keywords(tmp_path: Path, account: Account) -> None:
    await account.add_messages(
        "Inbox",
        [
            NewMessage(b"Subject: a\r\n\r\na\r\n", Flags.SEEN | Flags.FORWARDED, ["work"], 1700000000.5),
            NewMessage(b"Subject: b\r\n\r\nb\r\n", Flags.NONE, [], 1700000001),
        ],
    )
    export_account(account.dir, tmp_path / "e", maildir=True, mailbox="inbox", recursive=False)
    md = tmp_path / "e" / "Inbox"
    cur, new = os.listdir(md / "cur"), os.listdir(md / "new")
    assert len(cur) == 1 and cur[0].startswith("1700000000.") and cur[0].endswith(".mox:2,Sab")
    assert len(new) == 1 and new[0].endswith(".mox:2,")
    assert (md / "cur" / cur[0]).read_bytes() == b"Subject: a\n\na\n"
    assert os.stat(md / "cur" / cur[0]).st_mtime == 1700000000.5
    assert (md / "dovecot-keywords").read_bytes() == b"0 $Forwarded\n1 work\n"


async def test_export_of_one_mailbox_with_or_without_children(tmp_path: Path, account: Account) -> None:
    m = NewMessage(b"Subject: x\r\n\r\nx\r\n")
    for name in ("Lists", "Lists/a", "Lists/a/deep", "Listsx"):
        await account.add_messages(name, [m])
    r = export_account(account.dir, tmp_path / "all", maildir=False, mailbox="Lists/a")
    assert r.mailboxes == 2
    assert sorted(str(p.relative_to(tmp_path / "all")) for p in (tmp_path / "all").rglob("*.mbox")) == [
        "a.mbox",
        "a/deep.mbox",
    ]
    r = export_account(account.dir, tmp_path / "one", maildir=False, mailbox="Lists", recursive=False)
    assert r.mailboxes == 1 and (tmp_path / "one" / "Lists.mbox").is_file()
    with pytest.raises(ExportError, match="already exists"):
        export_account(account.dir, tmp_path / "one", maildir=False, mailbox="Lists", recursive=False)
    with pytest.raises(ExportError, match="not found"):
        export_account(account.dir, tmp_path / "x", maildir=True, mailbox="Nope")
    with pytest.raises(ExportError, match="not an account directory"):
        export_account(tmp_path, tmp_path / "x", maildir=True)


async def test_export_skips_missing_files_and_writes_errors_txt(tmp_path: Path, account: Account) -> None:
    ms = await account.add_messages(
        "Inbox", [NewMessage(b"Subject: a\r\n\r\na\r\n"), NewMessage(b"Subject: b\r\n\r\nb\r\n")]
    )
    account.message_path(ms[0].id).rename(tmp_path / "moved-away")
    r = export_account(account.dir, tmp_path / "e", maildir=False, mailbox="Inbox")
    assert r.messages == 1 and len(r.errors) == 1 and "message skipped" in r.errors[0]
    assert (tmp_path / "e" / "errors.txt").read_text() == r.errors[0] + "\n"
    (tmp_path / "moved-away").rename(account.message_path(ms[0].id))  # for the consistency check at close


async def test_maildir_import_reports_unreadable_and_empty_files(tmp_path: Path, account: Account) -> None:
    md = tmp_path / "md"
    for d in ("new", "cur"):
        (md / d).mkdir(parents=True)
    (md / "cur" / "1.a.h:2,S").write_bytes(b"Subject: a\n\na\n")
    (md / "cur" / "2.b.h:2,").write_bytes(b"")
    (md / "cur" / "3.c.h").mkdir()
    (md / "dovecot-keywords").write_bytes(b"zero junk\n")
    r = await import_maildir_dir(account, "Inbox", md)
    assert (r.imported, r.skipped) == (1, 2)
    reasons = sorted(p.reason for p in r.problems)
    assert reasons == [
        "bad index in line 'zero junk'",
        "empty message, skipped",
        "not a regular file, skipped",
    ]
