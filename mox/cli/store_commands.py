"""Message store subcommands of mox: maintenance of account data."""

from __future__ import annotations

import asyncio

from mox.cli.commands import run_store_command
from mox.cli.main import Invocation, command
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
