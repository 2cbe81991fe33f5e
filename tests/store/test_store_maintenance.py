"""UID validity, UID reassignment, backup and verification of a data directory."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storehelpers import make_message

from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.dns.domain import parse_domain
from mox.queue.queue import open_queue
from mox.smtp.path import Path as SMTPPath
from mox.store import maintenance
from mox.store.account import MessageInfo
from mox.store.deliver import open_config_account
from mox.store.model import Flags
from mox.tlsrptdb import db as tlsrptdb


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return load_config(write_local_config(tmp_path / "mox", ips=["127.0.0.1"]))


async def fill(cfg: Config, n: int = 5) -> None:
    acc = await open_config_account(cfg, "mox")
    try:
        for i in range(n):
            await acc.add_message("Inbox", make_message(f"m{i}"), info=MessageInfo())
        await acc.set_flags("Inbox", [2, 4], add=Flags.DELETED)
        await acc.expunge("Inbox")
    finally:
        await acc.close()


async def test_bump_uidvalidity_and_reassign_uids(cfg: Config) -> None:
    await fill(cfg)
    acc = await open_config_account(cfg, "mox")
    before = await acc.mailbox("Inbox")
    await acc.close()
    assert await maintenance.bump_uidvalidity(cfg, "mox", "Inbox") == ["Inbox"]
    acc = await open_config_account(cfg, "mox")
    try:
        mid = before.id
        assert (await acc.mailbox("Inbox")).uidvalidity > before.uidvalidity
        assert [m.uid for m in await acc.messages("Inbox")] == [1, 3, 5]
    finally:
        await acc.close()
    assert await maintenance.reassign_uids(cfg, "mox", mid) == ["Inbox"]
    acc = await open_config_account(cfg, "mox")
    try:
        mb = await acc.mailbox("Inbox")
        assert [m.uid for m in await acc.messages("Inbox", include_expunged=True)] == [1, 2, 3] and mb.uidnext == 4
        data = [acc.read_message(m) for m in await acc.messages("Inbox")]
        assert data == [make_message("m0"), make_message("m2"), make_message("m4")]
    finally:
        await acc.close()


async def test_backup_is_consistent_and_verifies(cfg: Config, tmp_path: Path) -> None:
    await fill(cfg)
    (cfg.data_dir / "stray.txt").write_text("x")
    dest = tmp_path / "backup"
    log: list[str] = []
    warnings = await maintenance.backup(cfg, dest, log.append)
    assert warnings == ["unrecognized file stray.txt in data directory, copied"]
    assert log and "3 message files linked" in log[0]
    assert (dest / "config" / "mox.conf").read_bytes() == cfg.static_path.read_bytes()
    assert maintenance.verify_data(dest / "data") == []
    with pytest.raises(Exception, match="not empty"):
        await maintenance.backup(cfg, dest, log.append)

    # Damage the backup: a missing file, a wrong size, an unreferenced file.
    msgs = sorted((dest / "data" / "accounts" / "mox" / "msg").rglob("*"))
    files = [p for p in msgs if p.is_file()]
    files[0].unlink()
    files[1].write_bytes(b"short")
    (files[2].parent / "999999").write_bytes(b"orphan")
    problems = maintenance.verify_data(dest / "data", fix=True)
    assert any("missing" in p for p in problems)
    assert any("file size 5" in p for p in problems)
    assert any("unreferenced message file" in p and "moved away" in p for p in problems)
    assert (dest / "data" / "moved" / "mox").exists()
    assert not any("unreferenced" in p for p in maintenance.verify_data(dest / "data", check_size=False))


def test_verify_reports_broken_database(tmp_path: Path) -> None:
    accdir = tmp_path / "accounts" / "x"
    accdir.mkdir(parents=True)
    (accdir / "index.db").write_bytes(b"this is not sqlite" * 100)
    problems = maintenance.verify_data(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("x: ")


async def test_backup_snapshots_global_databases_and_queue(cfg: Config, tmp_path: Path) -> None:
    """queue.db and the report/policy databases are copied through SQLite while open and written (no raw
    -wal/-shm copies, no warnings); queue message files come with their rows, and rows whose file went away
    (delivered meanwhile) are left out of the backup instead of pointing at nothing."""
    def addr(s: str) -> SMTPPath:
        lp, dom = s.rsplit("@", 1)
        return SMTPPath(lp, parse_domain(dom))

    q = await open_queue(cfg.data_dir, lambda: cfg)
    tdb = await tlsrptdb.open_data_dir(cfg.data_dir)
    try:
        kept = await q.add("mox", addr("mox@localhost"), [addr("a@a.example")], b"Subject: kept\r\n\r\nkept\r\n")
        gone = await q.add("mox", addr("mox@localhost"), [addr("b@b.example")], b"Subject: gone\r\n\r\ngone\r\n")
        await tdb.suppress_add(tlsrptdb.SuppressAddress("reports@else.example", until=2e9, comment="bounced"))
        assert (cfg.data_dir / "queue.db-wal").exists()
        (base_gone,) = {m.base_id for m in await q.list_messages() if m.id in gone}
        q.db.message_path(base_gone).unlink()
        dest = tmp_path / "backup"
        log: list[str] = []
        warnings = await maintenance.backup(cfg, dest, log.append)
    finally:
        await tlsrptdb.close_all()
        await q.close()
    assert warnings == []
    assert not list((dest / "data").glob("*-wal")) and not list((dest / "data").glob("*-shm"))
    assert any("queue: database copied, 1 message files, 1 delivered meanwhile left out" in x for x in log), log
    snap = sqlite3.connect(dest / "data" / "queue.db")
    rows = snap.execute("SELECT id, base_id FROM msg").fetchall()
    snap.close()
    assert [r[0] for r in rows] == kept
    f = dest / "data" / "queue" / format(rows[0][1] >> 12, "x") / str(rows[0][1])
    assert f.read_bytes().endswith(b"kept\r\n")
    t = sqlite3.connect(dest / "data" / "tlsrpt.db")
    assert t.execute("SELECT COUNT(*) FROM suppress_address").fetchone() == (1,)
    t.close()
