"""ctl commands for mbox/maildir import (see mox.store.importexport), served by ``mox serve``.

Exchange, after the request ``{"cmd": "import mbox", "args": [account, mailbox, source]}``
(or ``"import maildir"``; source is the file or directory name, only used in
messages):

1. The server checks the account and mailbox name and answers with a JSON
   value ``{"mailbox": name}`` (or fails the command, before any data is sent).
2. The client sends the mbox file, or the maildir as a record stream (see
   mox.store.maildir), as one data stream. The server parses and commits it
   as it arrives; the stream's flow control keeps memory bounded.
3. The result is :meth:`ImportResult.to_json`: counts and skipped messages.

Unlike upstream, where the server opens the file by name (so it must be able
to read it), the command line reads the file and streams it: no need to put
files where the server process can reach them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mox import mlog
from mox.ctl.server import CtlCommandError
from mox.serve.ctlregistry import ctl_command
from mox.store.deliver import open_config_account
from mox.store.importexport import (
    ImportFailed,
    ImportResult,
    import_maildir_records,
    import_mbox,
    normalize_mailbox,
)
from mox.store.model import StoreError

if TYPE_CHECKING:
    from mox.ctl.server import CtlConn
    from mox.serve.server import Server

log = mlog.new("import")

PROGRESS_LOG_INTERVAL = 5.0
"""Seconds between progress lines in the server log during an import."""


async def _import(server: Server, conn: CtlConn, args: list[str], kind: str) -> dict[str, Any]:
    if len(args) != 3:
        raise CtlCommandError("expected account, mailbox and source name")
    account, mailbox, source = args
    try:
        mailbox = normalize_mailbox(mailbox)
        acc = await open_config_account(server.cfg, account)
    except StoreError as e:
        raise CtlCommandError(str(e)) from None
    log.info("importing messages", kind=kind, account=account, mailbox=mailbox, source=source)
    start = last = time.monotonic()

    def progress(messages: int, nbytes: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_LOG_INTERVAL:
            last = now
            log.info("import progress", account=account, mailbox=mailbox, messages=messages, bytes=nbytes)

    try:
        await conn.send_json({"mailbox": mailbox})
        stream = conn.recv_stream()
        result: ImportResult
        if kind == "mbox":
            result = await import_mbox(acc, mailbox, stream, name=source, progress=progress)
        else:
            result = await import_maildir_records(acc, mailbox, stream, name=source, progress=progress)
    except ImportFailed as e:
        log.info("import failed", account=account, mailbox=mailbox, err=str(e))
        raise CtlCommandError(str(e)) from None
    except StoreError as e:
        raise CtlCommandError(str(e)) from None
    finally:
        await acc.close()
    log.info(
        "imported messages",
        kind=kind,
        account=account,
        mailbox=mailbox,
        imported=result.imported,
        skipped=result.skipped,
        bytes=result.size,
        duration=f"{time.monotonic() - start:.3f}s",
    )
    return result.to_json()


@ctl_command("import mbox")
async def ctl_import_mbox(server: Server, conn: CtlConn, args: list[str]) -> dict[str, Any]:
    return await _import(server, conn, args, "mbox")


@ctl_command("import maildir")
async def ctl_import_maildir(server: Server, conn: CtlConn, args: list[str]) -> dict[str, Any]:
    return await _import(server, conn, args, "maildir")
