"""Account maintenance used by the ctl commands and by the CLI when no server runs:
counts, UID validity and UIDs, threads, backup and verification of a data directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from mox.config.load import Config
from mox.store import account as account_mod
from mox.store.deliver import message_info, open_config_account
from mox.store.model import StoreError
from mox.store.threads import reassign_threads


async def recalculate_counts(cfg: Config, account: str) -> list[str]:
    """Recompute every mailbox's counts of an account from its messages; returns what was fixed."""
    acc = await open_config_account(cfg, account)
    try:
        return await acc.recalculate_counts()
    finally:
        await acc.close()


async def bump_uidvalidity(cfg: Config, account: str, mailbox: str | None) -> list[str]:
    """Give the mailbox (or all mailboxes) a new UIDVALIDITY, so IMAP clients fetch everything again."""
    acc = await open_config_account(cfg, account)
    try:
        return await acc._db(account_mod._bump_uidvalidity_sync, acc, mailbox)
    finally:
        await acc.close()


async def reassign_uids(cfg: Config, account: str, mailbox_id: int | None) -> list[str]:
    """Number the messages of the mailbox (or all mailboxes) 1, 2, ... again, with a new UIDVALIDITY."""
    acc = await open_config_account(cfg, account)
    try:
        return await acc._db(account_mod._reassign_uids_sync, acc, mailbox_id)
    finally:
        await acc.close()


async def reassign_account_threads(cfg: Config, account: str, progress: Callable[[int, int], None] | None = None) -> int:
    acc = await open_config_account(cfg, account)
    try:
        return await reassign_threads(acc, message_info, progress=progress)
    finally:
        await acc.close()


# Files in the data directory that a backup skips: runtime state, not data. SQLite's -wal and -shm
# files are part of their database, which is copied consistently through SQLite instead.
BACKUP_SKIP = {"ctl", "mox.pid", "tmp"}

# The data directory's global databases, copied as consistent snapshots with SQLite's backup API
# while the server keeps writing them (a raw copy of a WAL database can be torn).
BACKUP_DATABASES = ("queue.db", "dmarceval.db", "dmarcrpt.db", "tlsrpt.db", "mtasts.db")

# Directories copied (files hard-linked where possible) as they are.
BACKUP_DIRS = ("acme", "moved")


def _backup_database(src: Path, dst: Path) -> sqlite3.Connection:
    """A consistent snapshot of the SQLite database src at dst; returns the open snapshot."""
    source = sqlite3.connect(src, timeout=30)
    try:
        target = sqlite3.connect(dst)
        source.backup(target)
    finally:
        source.close()
    return target


def _backup_database_closed(src: Path, dst: Path) -> None:
    _backup_database(src, dst).close()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(mode=0o770, parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_or_copy_fn(src: str, dst: str) -> None:
    _link_or_copy(Path(src), Path(dst))


def _backup_queue(data: Path, dest: Path, log: Callable[[str], None]) -> None:
    """queue.db as a snapshot, then the message files its rows refer to. A file removed between the
    snapshot and the copy belonged to a message delivered or dropped meanwhile: its rows are removed
    from the snapshot, so the backup never refers to a missing file."""
    snap = _backup_database(data / "queue.db", dest / "queue.db")
    try:
        gone: list[int] = []
        bases = [r[0] for r in snap.execute("SELECT DISTINCT base_id FROM msg")]
        for base in bases:
            rel = Path(format(base >> 12, "x")) / str(base)
            try:
                _link_or_copy(data / "queue" / rel, dest / "queue" / rel)
            except FileNotFoundError:
                gone.append(base)
        if gone:
            with snap:
                snap.executemany("DELETE FROM msg WHERE base_id = ?", [(b,) for b in gone])
        (dest / "queue").mkdir(mode=0o770, exist_ok=True)
        log(f"queue: database copied, {len(bases) - len(gone)} message files" + (f", {len(gone)} delivered meanwhile left out" if gone else ""))
    finally:
        snap.close()


async def backup(cfg: Config, dest: Path, log: Callable[[str], None]) -> list[str]:
    """Copy config and data to dest/config and dest/data, with consistent account snapshots.

    Returns warnings (unrecognised files that were copied).
    """
    if dest.exists() and any(dest.iterdir()):
        raise StoreError(f"backup destination {dest} is not empty; remove its files first")
    warnings: list[str] = []
    shutil.copytree(cfg.config_dir, dest / "config", symlinks=True, ignore=shutil.ignore_patterns(".domains.conf.lock", ".*.tmp*"))
    data = cfg.data_dir
    (dest / "data").mkdir(parents=True, exist_ok=True)
    for entry in sorted(data.iterdir()) if data.exists() else []:
        if entry.name in BACKUP_SKIP:
            continue
        if entry.name == "accounts" and entry.is_dir():
            for accdir in sorted(entry.iterdir()):
                if accdir.name not in cfg.dynamic.Accounts:
                    warnings.append(f"account directory {accdir.name} is not a configured account, copied as is")
                    shutil.copytree(accdir, dest / "data" / "accounts" / accdir.name, symlinks=True)
                    continue
                acc = await open_config_account(cfg, accdir.name)
                try:
                    linked, copied = await acc._db(account_mod._backup_sync, acc, dest / "data" / "accounts" / accdir.name)
                finally:
                    await acc.close()
                log(f"account {accdir.name}: database copied, {linked} message files linked, {copied} copied")
            continue
        if entry.name == "queue.db":
            await asyncio.to_thread(_backup_queue, data, dest / "data", log)
            continue
        if entry.name in BACKUP_DATABASES:
            await asyncio.to_thread(_backup_database_closed, entry, dest / "data" / entry.name)
            log(f"{entry.name}: database copied")
            continue
        if entry.name == "queue" or (entry.name.endswith(("-wal", "-shm")) and entry.name.rsplit("-", 1)[0] in BACKUP_DATABASES):
            continue  # With queue.db; the WAL files are in the snapshots.
        if entry.name in BACKUP_DIRS and entry.is_dir():
            shutil.copytree(entry, dest / "data" / entry.name, symlinks=True, copy_function=_link_or_copy_fn)
            continue
        warnings.append(f"unrecognized file {entry.name} in data directory, copied")
        if entry.is_dir():
            shutil.copytree(entry, dest / "data" / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, dest / "data" / entry.name)
    return warnings


def verify_data(data_dir: Path, *, fix: bool = False, check_size: bool = True) -> list[str]:
    """Check a data directory (typically a backup): every account database opens and passes
    SQLite's integrity check, every message has its file with the right size, no unreferenced
    message files (moved to <datadir>/moved with fix), UIDs below UIDNEXT. Returns problems."""
    problems: list[str] = []
    accounts = data_dir / "accounts"
    if not accounts.is_dir():
        return [f"{accounts}: no accounts directory"]
    for accdir in sorted(p for p in accounts.iterdir() if p.is_dir()):
        db = accdir / "index.db"
        if not db.exists():
            problems.append(f"{accdir.name}: missing index.db")
            continue
        try:
            c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            (ok,) = c.execute("PRAGMA integrity_check").fetchone()
            if ok != "ok":
                problems.append(f"{accdir.name}: database integrity: {ok}")
                continue
            rows = c.execute("SELECT id, size FROM message WHERE expunged = 0").fetchall()
            for name, uidnext, mbid in c.execute("SELECT name, uidnext, id FROM mailbox"):
                (maxuid,) = c.execute("SELECT COALESCE(MAX(uid), 0) FROM message WHERE mailbox_id = ?", (mbid,)).fetchone()
                if maxuid >= uidnext:
                    problems.append(f"{accdir.name}: mailbox {name}: uid {maxuid} not below uidnext {uidnext}")
            c.close()
        except sqlite3.Error as e:
            problems.append(f"{accdir.name}: opening database: {e}")
            continue
        known: set[int] = set()
        for mid, size in rows:
            known.add(mid)
            p = accdir / "msg" / format(mid >> 12, "x") / str(mid)
            try:
                st = p.stat()
            except FileNotFoundError:
                problems.append(f"{accdir.name}: message {mid}: file {p} missing")
                continue
            if check_size and st.st_size != size:
                problems.append(f"{accdir.name}: message {mid}: file size {st.st_size}, database says {size}")
        msgdir = accdir / "msg"
        for d in sorted(msgdir.iterdir()) if msgdir.is_dir() else []:
            for f in sorted(d.iterdir()):
                with contextlib.suppress(ValueError):
                    if int(f.name) in known:
                        continue
                problems.append(f"{accdir.name}: unreferenced message file {f}" + (" (moved away)" if fix else ""))
                if fix:
                    target = data_dir / "moved" / accdir.name / d.name / f.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    f.rename(target)
    return problems

