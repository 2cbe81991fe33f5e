"""The store additions the IMAP server uses: set_flags replace/unchanged_since, messages_light, annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from mox.store.account import ANNOTATIONS_MAX, AnnotationsTooLarge, TooManyAnnotations, open_account
from mox.store.model import Flags, MailboxNotFound

MSG = b"Subject: x\r\n\r\nbody\r\n"


async def test_set_flags_replace_and_unchanged_since(tmp_path: Path) -> None:
    acc = await open_account(tmp_path, "a")
    try:
        m1 = await acc.add_message("Inbox", MSG, flags=Flags.SEEN, keywords=["old"])
        m2 = await acc.add_message("Inbox", MSG)
        changed = await acc.set_flags("Inbox", [1, 2], add=Flags.FLAGGED, add_keywords=["new"], replace=True)
        assert [(m.uid, m.flags, m.keywords) for m in changed] == [(1, Flags.FLAGGED, ["new"]), (2, Flags.FLAGGED, ["new"])]
        modified: list[int] = []
        changed = await acc.set_flags("Inbox", [1, 2], add=Flags.SEEN, unchanged_since=m2.modseq, modified=modified)
        assert modified == [1, 2] and changed == []
        now = max(m.modseq for m in await acc.messages_light("Inbox"))
        changed = await acc.set_flags("Inbox", [1], add=Flags.SEEN, unchanged_since=now, modified=modified)
        assert [m.uid for m in changed] == [1]
        light = await acc.messages_light("Inbox", uids=[2])
        assert [(m.uid, m.flags, m.keywords, m.id) for m in light] == [(2, Flags.FLAGGED, ["new"], m2.id)]
        assert m1.id != m2.id
        with pytest.raises(ValueError):
            await acc.messages_light("Inbox", uids=list(range(1001)))
    finally:
        await acc.close()


async def test_annotations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    acc = await open_account(tmp_path, "a")
    try:
        await acc.set_annotations(None, [("/private/a", b"1"), ("/shared/b", b"\0bin")])
        await acc.set_annotations("Inbox", [("/private/c", b"x")])
        assert await acc.annotations(None) == {"/private/a": b"1", "/shared/b": b"\0bin"}
        assert await acc.annotations("Inbox") == {"/private/c": b"x"}
        await acc.set_annotations(None, [("/private/a", None)])
        assert await acc.annotations(None) == {"/shared/b": b"\0bin"}
        with pytest.raises(MailboxNotFound):
            await acc.annotations("Nope")
        # Deleting a mailbox removes its annotations.
        await acc.mailbox_create("Tmp")
        await acc.set_annotations("Tmp", [("/private/t", b"1")])
        await acc.mailbox_delete("Tmp")
        await acc.mailbox_create("Tmp")
        assert await acc.annotations("Tmp") == {}
        import mox.store.account as account

        monkeypatch.setattr(account, "ANNOTATIONS_MAX", 3)
        with pytest.raises(TooManyAnnotations):
            await acc.set_annotations(None, [("/private/x", b"1"), ("/private/y", b"1")])
        assert await acc.annotations(None) == {"/shared/b": b"\0bin"}  # All or none.
        with pytest.raises(AnnotationsTooLarge):
            await acc.set_annotations(None, [("/private/big", b"x" * (account.ANNOTATIONS_MAX_SIZE + 1))])
        assert ANNOTATIONS_MAX == 1000
    finally:
        await acc.close()
