"""Account, alias and domain administration subcommands of mox.

``config alias ...``, ``config account addresses/disable/enable``,
``config domain disable/enable`` and ``setaccountpassword``, with upstream's
names, arguments and output. Like the other config commands, each goes
through the running server's ctl socket (handlers in mox.serve.ctladmin), or
works on the files directly when no server runs.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import Any

from mox.cli.commands import _ctl_path, _edit, _load, _server_running
from mox.cli.main import CommandError, Flag, Invocation, UsageError, command, parse_flags
from mox.config import edit
from mox.config.load import Config
from mox.ctl.client import CtlClient, CtlConnectError, CtlError

# Aliases.


@command(
    "config alias list",
    params="$domain",
    nargs=(1, 1),
    help="Show aliases (lists) for domain, one address per line.",
)
def cmd_config_alias_list(inv: Invocation) -> None:
    (domain,) = inv.args
    for addr in _edit(inv, "config alias list", inv.args, lambda cfg: edit.alias_list(cfg, domain)):
        print(addr)


def format_alias(alias: dict[str, Any]) -> str:
    """An alias as printed by ``config alias print``: settings as comments, then one member per line."""
    lines = [
        f"# postpublic {str(alias['PostPublic']).lower()}",
        f"# listmembers {str(alias['ListMembers']).lower()}",
        f"# allowmsgfrom {str(alias['AllowMsgFrom']).lower()}",
        "# members:",
        *alias["Addresses"],
    ]
    return "\n".join(lines) + "\n"


@command(
    "config alias print",
    params="$alias",
    nargs=(1, 1),
    help="Print settings and members of alias (list).",
)
def cmd_config_alias_print(inv: Invocation) -> None:
    from mox.serve.ctladmin import alias_to_json

    (address,) = inv.args
    alias = _edit(inv, "config alias print", inv.args, lambda cfg: alias_to_json(edit.alias_get(cfg, address)))
    sys.stdout.write(format_alias(alias))


@command(
    "config alias add",
    params="$alias@domain $rcpt1@domain ...",
    nargs=(2, None),
    help="""Add new alias (list) with one or more addresses and public posting enabled.

An alias is used for delivering incoming email to multiple recipients. If you
want to add an address to an account, don't use an alias, just add the address
to the account.

Members must be addresses of local accounts. The alias address must not be an
account's address.""",
)
def cmd_config_alias_add(inv: Invocation) -> None:
    address, members = inv.args[0], inv.args[1:]
    _edit(inv, "config alias add", inv.args, lambda cfg: edit.alias_add(cfg, address, members))


ALIAS_UPDATE_FLAGS = [
    Flag("postpublic", "", "whether anyone or only list members can post"),
    Flag("listmembers", "", "whether list members can list members"),
    Flag("allowmsgfrom", "", "whether alias address can be used in message from header"),
]


@command(
    "config alias update",
    params="$alias@domain [-postpublic false|true -listmembers false|true -allowmsgfrom false|true]",
    flags=ALIAS_UPDATE_FLAGS,
    nargs=(1, None),
    help="""Update alias (list) configuration.

Settings not given are left as they are. The flags may come before or after
the alias address.""",
)
def cmd_config_alias_update(inv: Invocation) -> None:
    from mox.serve.ctladmin import parse_bool_option

    # Go's flag parsing stops at the first argument, but upstream's usage puts
    # the flags after the alias address: accept them there too.
    later, rest = parse_flags(inv.args[1:], ALIAS_UPDATE_FLAGS)
    if rest:
        raise UsageError(f"unexpected arguments: {' '.join(rest)}")
    values = {name: str(later[name] or inv.flags[name]) for name in ("postpublic", "listmembers", "allowmsgfrom")}
    try:
        settings = {name: parse_bool_option(name, v) for name, v in values.items()}
    except edit.EditError as e:
        raise UsageError(str(e)) from None
    address = inv.args[0]
    args = [address, values["postpublic"], values["listmembers"], values["allowmsgfrom"]]

    def direct(cfg: Config) -> Config:
        return edit.alias_update(
            cfg,
            address,
            post_public=settings["postpublic"],
            list_members=settings["listmembers"],
            allow_msg_from=settings["allowmsgfrom"],
        )

    _edit(inv, "config alias update", args, direct)


@command("config alias rm", params="$alias@domain", nargs=(1, 1), help="Remove alias (list).")
def cmd_config_alias_rm(inv: Invocation) -> None:
    (address,) = inv.args
    _edit(inv, "config alias rm", inv.args, lambda cfg: edit.alias_remove(cfg, address))


@command(
    "config alias addaddr",
    params="$alias@domain $rcpt1@domain ...",
    nargs=(2, None),
    help="Add addresses to alias (list). They must be addresses of local accounts.",
)
def cmd_config_alias_addaddr(inv: Invocation) -> None:
    address, members = inv.args[0], inv.args[1:]
    _edit(inv, "config alias addaddr", inv.args, lambda cfg: edit.alias_addresses_add(cfg, address, members))


@command(
    "config alias rmaddr",
    params="$alias@domain $rcpt1@domain ...",
    nargs=(2, None),
    help="""Remove addresses from alias (list).

An alias keeps at least one member: remove the alias itself instead.""",
)
def cmd_config_alias_rmaddr(inv: Invocation) -> None:
    address, members = inv.args[0], inv.args[1:]
    _edit(inv, "config alias rmaddr", inv.args, lambda cfg: edit.alias_addresses_remove(cfg, address, members))


# Accounts and domains.


@command(
    "config account addresses",
    params="$account",
    nargs=(1, 1),
    help="""List all addresses for an account.

Each address is printed on a line.
An address starting with an "@" indicate it is a catchall address for the domain.

Does not check whether account is disabled.""",
)
def cmd_config_account_addresses(inv: Invocation) -> None:
    (account,) = inv.args
    for addr in _edit(inv, "config account addresses", inv.args, lambda cfg: edit.account_addresses(cfg, account)):
        print(addr)


@command(
    "config account disable",
    params="$account $message",
    nargs=(2, 2),
    help="""Disable login for an account, showing message to users when they try to login.

Incoming email will still be accepted for the account, and queued email from the
account will still be delivered. No new login sessions are possible.

Message must be non-empty, ascii-only without control characters including
newline, and maximum 256 characters because it is used in SMTP/IMAP.""",
)
def cmd_config_account_disable(inv: Invocation) -> None:
    account, message = inv.args
    try:
        edit.check_login_disabled_message(message)
    except edit.EditError as e:
        raise CommandError(str(e)) from None
    _edit(inv, "config account disable", inv.args, lambda cfg: edit.account_login_disabled(cfg, account, message))
    print("account disabled")


@command(
    "config account enable",
    params="$account",
    nargs=(1, 1),
    help="""Enable login again for an account.

Login attempts by the user no long result in an error message.""",
)
def cmd_config_account_enable(inv: Invocation) -> None:
    (account,) = inv.args
    _edit(inv, "config account enable", inv.args, lambda cfg: edit.account_login_disabled(cfg, account, ""))
    print("account enabled")


@command(
    "config domain disable",
    params="$domain",
    nargs=(1, 1),
    help="""Disable a domain and reload the configuration.

This is a dangerous operation. Incoming/outgoing messages involving this domain
will be rejected.""",
)
def cmd_config_domain_disable(inv: Invocation) -> None:
    (domain,) = inv.args
    _edit(inv, "config domain disable", inv.args, lambda cfg: edit.domain_disabled(cfg, domain, True))
    print("domain disabled")


@command(
    "config domain enable",
    params="$domain",
    nargs=(1, 1),
    help="""Enable a domain and reload the configuration.

Incoming/outgoing messages involving this domain will be accepted again.""",
)
def cmd_config_domain_enable(inv: Invocation) -> None:
    (domain,) = inv.args
    _edit(inv, "config domain enable", inv.args, lambda cfg: edit.domain_disabled(cfg, domain, False))
    print("domain enabled")


# Passwords.

PASSWORD_WARNING = """\
Type the new password twice; it is not shown.

WARNING: Bots will try to guess your password. Connections with failed
authentication attempts are rate limited, but attackers WILL find passwords
reused at other services and weak passwords. If your account is compromised,
spammers are likely to abuse your system, spamming your address and the wider
internet in your name. So please pick a random, unguessable password, preferably
at least 12 characters.

"""


def read_password() -> str:
    """The new password: typed twice on the terminal, or one line from stdin when it is not a terminal."""
    if sys.stdin.isatty():
        sys.stderr.write(PASSWORD_WARNING)
        try:
            password = getpass.getpass("password: ")
            again = getpass.getpass("repeat password: ")
        except EOFError:
            raise CommandError("no password given") from None
        if password != again:
            raise CommandError("passwords do not match")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise CommandError("password must be non-empty")
    return password


@command(
    "setaccountpassword",
    params="$account",
    nargs=(1, 1),
    help="""Set new password an account.

The password is read from the terminal, twice, without echo; or, when stdin is
not a terminal, as one line from stdin. Secrets derived from the password, but
not the password itself, are stored in the account database. The stored secrets
are for authentication with: scram-sha-256, scram-sha-1, cram-md5, plain text
(bcrypt hash). The password must be at least 8 bytes long.

The parameter is an account name, as configured under Accounts in domains.conf
and as present in the data/accounts/ directory, not a configured email address
for an account.""",
)
def cmd_setaccountpassword(inv: Invocation) -> None:
    (account,) = inv.args
    # Refuse an unknown account before asking for a password: ask the server
    # when one runs (it has the current config), else the config files.
    try:
        probe = CtlClient.connect(_ctl_path(inv))
    except CtlConnectError as e:
        if _server_running(e):
            raise CommandError(str(e)) from None
        through_server = False
        if account not in _load(inv).dynamic.Accounts:
            raise CommandError(f"account {account!r} does not exist") from None
    else:
        through_server = True
        try:
            probe.call("config account addresses", [account])
        except CtlError as e:
            raise CommandError(str(e)) from None
    password = read_password()
    if not through_server:
        _set_password_direct(_load(inv), account, password)
        return
    # A new connection after the prompt: the server closes idle ones. The
    # password goes in a JSON frame after the request, as requests are logged.
    try:
        client = CtlClient.connect(_ctl_path(inv))
        client.start("setaccountpassword", [account])
        client.send_json({"password": password})
        client.finish()
    except CtlError as e:
        raise CommandError(str(e)) from None


def _set_password_direct(cfg: Config, account: str, password: str) -> None:
    from mox.serve.ctladmin import set_account_password
    from mox.store.model import StoreError
    from mox.store.password import PasswordError

    try:
        asyncio.run(set_account_password(cfg, account, password))
    except (edit.EditError, PasswordError, StoreError) as e:
        raise CommandError(str(e)) from None
