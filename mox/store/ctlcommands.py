"""ctl commands of the message store, served by ``mox serve``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mox.ctl.server import CtlCommandError
from mox.serve.ctlregistry import ctl_command
from mox.store import maintenance
from mox.store.model import StoreError

if TYPE_CHECKING:
    from mox.ctl.server import CtlConn
    from mox.serve.server import Server


def _args(args: list[str], lo: int, hi: int) -> list[str]:
    if not lo <= len(args) <= hi:
        raise CtlCommandError(f"expected {lo} to {hi} arguments, got {len(args)}")
    return args + [""] * (hi - len(args))


@ctl_command("recalculatemailboxcounts")
async def recalculate_mailbox_counts(server: Server, conn: CtlConn, args: list[str]) -> list[str]:
    (account,) = _args(args, 1, 1)
    try:
        return await maintenance.recalculate_counts(server.cfg, account)
    except StoreError as e:
        raise CtlCommandError(str(e)) from None


@ctl_command("bumpuidvalidity")
async def bump_uidvalidity(server: Server, conn: CtlConn, args: list[str]) -> list[str]:
    account, mailbox = _args(args, 1, 2)
    try:
        return await maintenance.bump_uidvalidity(server.cfg, account, mailbox or None)
    except StoreError as e:
        raise CtlCommandError(str(e)) from None


@ctl_command("reassignuids")
async def reassign_uids(server: Server, conn: CtlConn, args: list[str]) -> list[str]:
    account, mbid = _args(args, 1, 2)
    try:
        return await maintenance.reassign_uids(server.cfg, account, int(mbid) if mbid else None)
    except (StoreError, ValueError) as e:
        raise CtlCommandError(str(e)) from None


@ctl_command("reassignthreads")
async def reassign_threads(server: Server, conn: CtlConn, args: list[str]) -> dict[str, int]:
    (account,) = _args(args, 0, 1)
    names = [account] if account else sorted(server.cfg.dynamic.Accounts)
    out = {}
    for name in names:
        try:
            out[name] = await maintenance.reassign_account_threads(server.cfg, name)
        except StoreError as e:
            raise CtlCommandError(str(e)) from None
    return out


@ctl_command("backup")
async def backup(server: Server, conn: CtlConn, args: list[str]) -> dict[str, list[str]]:
    (dest,) = _args(args, 1, 1)
    lines: list[str] = []
    try:
        warnings = await maintenance.backup(server.cfg, Path(dest), lines.append)
    except (StoreError, OSError) as e:
        raise CtlCommandError(f"backup: {e}") from None
    return {"log": lines, "warnings": warnings}
