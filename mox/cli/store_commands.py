"""Message store subcommands of mox: maintenance of account data, backup and verification."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from mox.cli.commands import run_store_command
from mox.cli.main import CommandError, Flag, Invocation, command
from mox.store import maintenance


@command(
    "recalculatemailboxcounts",
    params="$account",
    nargs=(1, 1),
    help="""Recalculate message counts for all mailboxes in the account, and total size.

Counts (total, deleted, unread, unseen, size) are kept with every change; this
repairs them if they were ever wrong. The mailboxes that were wrong are printed.""",
)
def cmd_recalculatemailboxcounts(inv: Invocation) -> None:
    (account,) = inv.args
    fixed = run_store_command(
        inv, "recalculatemailboxcounts", inv.args, lambda cfg: asyncio.run(maintenance.recalculate_counts(cfg, account))
    )
    for line in fixed:
        print(line)
    print(f"{len(fixed)} mailbox(es) fixed" if fixed else "all mailbox counts were correct")


@command(
    "bumpuidvalidity",
    params="$account [$mailbox]",
    nargs=(1, 2),
    help="""Change the IMAP UID validity of the mailbox, causing IMAP clients to refetch messages.

Without a mailbox, all mailboxes of the account get a new UID validity. Useful
after restoring a backup, when clients may have cached state that no longer
matches.""",
)
def cmd_bumpuidvalidity(inv: Invocation) -> None:
    account = inv.args[0]
    mailbox = inv.args[1] if len(inv.args) > 1 else None
    names = run_store_command(
        inv, "bumpuidvalidity", inv.args, lambda cfg: asyncio.run(maintenance.bump_uidvalidity(cfg, account, mailbox))
    )
    for n in names:
        print(f"uid validity changed for mailbox {n}")


@command(
    "reassignuids",
    params="$account [$mailboxid]",
    nargs=(1, 2),
    help="""Reassign UIDs in one mailbox or all mailboxes in an account and bump UID validity, causing IMAP clients to refetch messages.

Messages keep their order; they are numbered from 1 again.""",
)
def cmd_reassignuids(inv: Invocation) -> None:
    account = inv.args[0]
    try:
        mbid = int(inv.args[1]) if len(inv.args) > 1 else None
    except ValueError:
        raise CommandError(f"mailbox id must be a number, not {inv.args[1]!r}") from None
    names = run_store_command(inv, "reassignuids", inv.args, lambda cfg: asyncio.run(maintenance.reassign_uids(cfg, account, mbid)))
    for n in names:
        print(f"uids reassigned for mailbox {n}")


@command(
    "reassignthreads",
    params="[$account]",
    nargs=(0, 1),
    help="""Reassign message threads.

For all accounts, or only the given account. The base subject and normalized
Message-ID of every message are read again from the message file, then every
message is matched against its parents and ancestors, as on delivery.""",
)
def cmd_reassignthreads(inv: Invocation) -> None:
    def direct(cfg: object) -> dict[str, int]:
        from mox.config.load import Config

        assert isinstance(cfg, Config)
        names = inv.args or sorted(cfg.dynamic.Accounts)
        return {n: asyncio.run(maintenance.reassign_account_threads(cfg, n)) for n in names}

    result = run_store_command(inv, "reassignthreads", inv.args, direct)
    for name, count in sorted(result.items()):
        print(f"account {name}: threads assigned to {count} messages")


@command(
    "backup",
    params="$destdir",
    nargs=(1, 1),
    flags=[Flag("verbose", False, "print progress")],
    help="""Creates a backup of the config and data directory.

The config directory is copied to <destdir>/config. <destdir>/data gets a
consistent snapshot of each account's database with the message files it
references, hard-linked where possible (message files never change), copied
otherwise. Runtime files (the ctl socket, pid file, tmp) are skipped; other
files are copied with a warning. The destination must be empty.

Works while mox runs (through the ctl socket) and when it does not. Check a
backup with "mox verifydata <destdir>/data".""",
)
def cmd_backup(inv: Invocation) -> None:
    dest = Path(inv.args[0]).absolute()
    lines: list[str] = []

    def direct(cfg: object) -> dict[str, list[str]]:
        from mox.config.load import Config

        assert isinstance(cfg, Config)
        warnings = asyncio.run(maintenance.backup(cfg, dest, lines.append))
        return {"log": lines, "warnings": warnings}

    result = run_store_command(inv, "backup", [str(dest)], direct)
    if inv.flags["verbose"]:
        for line in result["log"]:
            print(line)
    for w in result["warnings"]:
        sys.stderr.write(f"mox: warning: {w}\n")


@command(
    "verifydata",
    params="$datadir",
    nargs=(1, 1),
    flags=[
        Flag("fix", False, "move message files not referenced by their database to <datadir>/moved"),
        Flag("skip-size-check", False, "skip the check for message size"),
    ],
    help="""Verify the contents of a data directory, typically of a backup.

Every account database must open and pass SQLite's integrity check, every
message in it must have its file with the right size, message UIDs must be
below the mailbox's UIDNEXT, and there must be no message files that no
database references (moved away with -fix). Problems are printed; the exit
status is 1 if there are any.""",
)
def cmd_verifydata(inv: Invocation) -> int:
    d = Path(inv.args[0])
    if not d.is_dir():
        raise CommandError(f"{d}: not a directory")
    problems = maintenance.verify_data(d, fix=bool(inv.flags["fix"]), check_size=not inv.flags["skip-size-check"])
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"{os.fspath(d)}: ok")
    return 0
