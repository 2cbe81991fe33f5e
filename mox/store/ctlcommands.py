"""ctl commands of the message store, served by ``mox serve``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mox.ctl.server import CtlCommandError
from mox.serve.ctlregistry import ctl_command
from mox.store import maintenance
from mox.store.model import StoreError

if TYPE_CHECKING:
    from mox.ctl.server import CtlConn
    from mox.serve.server import Server


@ctl_command("recalculatemailboxcounts")
async def recalculate_mailbox_counts(server: Server, conn: CtlConn, args: list[str]) -> list[str]:
    if len(args) != 1:
        raise CtlCommandError("expected one account name")
    try:
        return await maintenance.recalculate_counts(server.cfg, args[0])
    except StoreError as e:
        raise CtlCommandError(str(e)) from None
