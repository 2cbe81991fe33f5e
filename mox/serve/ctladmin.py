"""ctl commands for account, alias and domain administration (see mox.config.edit).

Served by ``mox serve`` for the command line: ``config alias ...``,
``config account disable/enable/addresses``, ``config domain disable/enable``
and ``setaccountpassword``. Changes to domains.conf are made like the
server's own config edits: one at a time under the server's edit lock and the
domains.conf lock file, after which the server uses the new config.

Arguments are plain strings. The exception is the password of
``setaccountpassword``: it is sent in a JSON frame after the request, so it
never appears in the request (which is logged) or on a command line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mox import mlog
from mox.config import edit, model
from mox.config.load import Config
from mox.ctl.server import CtlCommandError
from mox.serve.ctlregistry import ctl_command
from mox.store.deliver import open_config_account
from mox.store.model import StoreError
from mox.store.password import PasswordError, make_secrets

if TYPE_CHECKING:
    from mox.ctl.server import CtlConn
    from mox.serve.server import Server

log = mlog.new("serve")

def _nargs(args: list[str], lo: int, hi: int | None) -> None:
    """Check the number of arguments: at least lo, at most hi (None: no maximum)."""
    if len(args) < lo or (hi is not None and len(args) > hi):
        want = str(lo) if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
        raise CtlCommandError(f"expected {want} arguments, got {len(args)}")


async def apply_edit(server: Server, conn: CtlConn, change: Callable[[Config], Config], args: list[str]) -> None:
    """Run a domains.conf change as the server's own edits do (Server.edit_config)."""
    await server.edit_config(conn, change, args)


def _query(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except edit.EditError as e:
        raise CtlCommandError(str(e)) from None


def parse_bool_option(name: str, value: str) -> bool | None:
    """The value of a "true"/"false" setting; "" (None) leaves the setting unchanged."""
    if value == "":
        return None
    if value in ("true", "false"):
        return value == "true"
    raise edit.EditError(f"bad value {value!r} for {name}, expected true or false")


def alias_to_json(alias: model.Alias) -> dict[str, Any]:
    """An alias as the ctl result of config alias print."""
    return {
        "PostPublic": alias.PostPublic,
        "ListMembers": alias.ListMembers,
        "AllowMsgFrom": alias.AllowMsgFrom,
        "Addresses": list(alias.Addresses),
    }


# Aliases.


@ctl_command("config alias list")
async def alias_list(server: Server, conn: CtlConn, args: list[str]) -> list[str]:
    _nargs(args, 1, 1)
    cfg = server.cfg
    result: list[str] = _query(lambda: edit.alias_list(cfg, args[0]))
    return result


@ctl_command("config alias print")
async def alias_print(server: Server, conn: CtlConn, args: list[str]) -> dict[str, Any]:
    _nargs(args, 1, 1)
    cfg = server.cfg
    return alias_to_json(_query(lambda: edit.alias_get(cfg, args[0])))


@ctl_command("config alias add")
async def alias_add(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 2, None)
    await apply_edit(server, conn, lambda cfg: edit.alias_add(cfg, args[0], args[1:]), args)


@ctl_command("config alias update")
async def alias_update(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 4, 4)

    def change(cfg: Config) -> Config:
        return edit.alias_update(
            cfg,
            args[0],
            post_public=parse_bool_option("postpublic", args[1]),
            list_members=parse_bool_option("listmembers", args[2]),
            allow_msg_from=parse_bool_option("allowmsgfrom", args[3]),
        )

    await apply_edit(server, conn, change, args)


@ctl_command("config alias rm")
async def alias_remove(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 1, 1)
    await apply_edit(server, conn, lambda cfg: edit.alias_remove(cfg, args[0]), args)


@ctl_command("config alias addaddr")
async def alias_addaddr(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 2, None)
    await apply_edit(server, conn, lambda cfg: edit.alias_addresses_add(cfg, args[0], args[1:]), args)


@ctl_command("config alias rmaddr")
async def alias_rmaddr(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 2, None)
    await apply_edit(server, conn, lambda cfg: edit.alias_addresses_remove(cfg, args[0], args[1:]), args)


# Accounts and domains.


@ctl_command("config account addresses")
async def account_addresses(server: Server, conn: CtlConn, args: list[str]) -> list[str]:
    _nargs(args, 1, 1)
    cfg = server.cfg
    result: list[str] = _query(lambda: edit.account_addresses(cfg, args[0]))
    return result


@ctl_command("config account disable")
async def account_disable(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 2, 2)
    if not args[1]:
        raise CtlCommandError("message must be non-empty")
    await apply_edit(server, conn, lambda cfg: edit.account_login_disabled(cfg, args[0], args[1]), args)


@ctl_command("config account enable")
async def account_enable(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 1, 1)
    await apply_edit(server, conn, lambda cfg: edit.account_login_disabled(cfg, args[0], ""), args)


@ctl_command("config domain disable")
async def domain_disable(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 1, 1)
    await apply_edit(server, conn, lambda cfg: edit.domain_disabled(cfg, args[0], True), args)


@ctl_command("config domain enable")
async def domain_enable(server: Server, conn: CtlConn, args: list[str]) -> None:
    _nargs(args, 1, 1)
    await apply_edit(server, conn, lambda cfg: edit.domain_disabled(cfg, args[0], False), args)


# Passwords.


async def set_account_password(cfg: Config, account: str, password: str) -> None:
    """Store secrets derived from password (never the password itself) in the account's database.

    Raises:
        EditError: unknown account.
        PasswordError: the password is refused (e.g. shorter than 8 bytes).
        StoreError: the account database could not be opened or written.
    """
    if account not in cfg.dynamic.Accounts:
        raise edit.EditError(f"account {account!r} does not exist")
    # Deriving the secrets (bcrypt, PBKDF2 for SCRAM) is deliberately slow: off the loop.
    secrets = await asyncio.to_thread(make_secrets, password)
    acc = await open_config_account(cfg, account)
    try:
        await acc.set_password_secrets(secrets.to_json())
    finally:
        await acc.close()


@ctl_command("setaccountpassword")
async def setaccountpassword(server: Server, conn: CtlConn, args: list[str]) -> None:
    """Arguments: the account. Then the client sends ``{"password": "..."}`` as a JSON frame."""
    _nargs(args, 1, 1)
    msg = await conn.recv_json()
    if not isinstance(msg, dict) or not isinstance(msg.get("password"), str):
        raise CtlCommandError('expected a JSON object {"password": "..."}')
    try:
        await set_account_password(server.cfg, args[0], msg["password"])
    except (edit.EditError, PasswordError, StoreError) as e:
        raise CtlCommandError(str(e)) from None
    log.info("account password set through ctl", account=args[0])
