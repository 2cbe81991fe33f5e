"""Account maintenance used by the ctl commands and by the CLI when no server runs:
counts, UID validity and UIDs, threads, backup and verification of a data directory."""

from __future__ import annotations

import contextlib
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


# Files in the data directory that a backup skips: runtime state, not data.
BACKUP_SKIP = {"ctl", "mox.pid", "tmp"}


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

