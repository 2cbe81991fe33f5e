"""Every ctl command of the ``mox`` command line, run against a live ``mox serve`` in the interop
network (conformance/interop_net.py), with its effect checked through another channel: IMAP logins
and mailbox contents, SMTP replies, deliveries between the instances, the server's log, exported and
backed-up data.

CTL_COMMANDS lists every command the server answers on its ctl socket, the CLI commands that send
it and the test here that checks it; test_ctl_table_complete fails when the server or the command
line gains a ctl command that is not in the table, so each new command gets a test.

The instances are shared with the other interop tests: everything here uses accounts, addresses,
domains and aliases with unique names, removes them at the end, and restores what it changes on the
shared instances (log levels, hold rules). Commands run in the containers as user mox, the user the
server runs as (interop_ctl_helpers).
"""

from __future__ import annotations

import ast
import inspect
import re
import smtplib
import textwrap
from dataclasses import dataclass

import pytest
from interop_ctl_helpers import (
    Account,
    login_refused,
    mox,
    mox_rc,
    quoted,
    rcpt_reply,
    sh,
    unique,
)
from interop_net import MOX2_DOMAIN, Network

# The first interop test of a session also waits for the network (image builds on a cold cache).
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class CtlCase:
    cli: tuple[str, ...]  # the CLI commands that send this ctl command
    test: str  # the test in this module that runs it against a live instance
    effect: str  # what that test checks besides the exit status


CTL_COMMANDS: dict[str, CtlCase] = {
    # Server.
    "stop": CtlCase(("stop",), "test_ctl_stop", "server process exits, pid file and ctl socket gone, log says stopped"),
    "loglevels": CtlCase(("loglevels",), "test_ctl_loglevels", "lists the levels in effect"),
    "setloglevels": CtlCase(("loglevels",), "test_ctl_loglevels", "smtpserver debug lines stop, and return after removal"),
    # Accounts and addresses.
    "config account list": CtlCase(("config account list",), "test_ctl_accounts_and_addresses", "new account listed, removed one not"),
    "config account add": CtlCase(("config account add",), "test_ctl_accounts_and_addresses", "mail to the address is delivered"),
    "config account rm": CtlCase(("config account rm",), "test_ctl_accounts_and_addresses", "login refused, RCPT refused, data gone"),
    "setaccountpassword": CtlCase(("setaccountpassword",), "test_ctl_accounts_and_addresses", "IMAP login with the new password, not the old"),
    "config account addresses": CtlCase(("config account addresses", "setaccountpassword"), "test_ctl_accounts_and_addresses", "lists added addresses"),
    "config account disable": CtlCase(("config account disable",), "test_ctl_accounts_and_addresses", "IMAP login refused with the message"),
    "config account enable": CtlCase(("config account enable",), "test_ctl_accounts_and_addresses", "IMAP login works again"),
    "config address add": CtlCase(("config address add",), "test_ctl_accounts_and_addresses", "mail to the address lands in the account"),
    "config address rm": CtlCase(("config address rm",), "test_ctl_accounts_and_addresses", "RCPT TO the address refused"),
    # Domains and aliases.
    "config domain add": CtlCase(("config domain add",), "test_ctl_domains_and_aliases", "RCPT for the domain accepted, DKIM keys made"),
    "config domain disable": CtlCase(("config domain disable",), "test_ctl_domains_and_aliases", "RCPT refused temporarily"),
    "config domain enable": CtlCase(("config domain enable",), "test_ctl_domains_and_aliases", "RCPT accepted again"),
    "config domain rm": CtlCase(("config domain rm",), "test_ctl_domains_and_aliases", "RCPT refused: no relaying"),
    "config alias add": CtlCase(("config alias add",), "test_ctl_domains_and_aliases", "mail to the alias reaches the members"),
    "config alias list": CtlCase(("config alias list",), "test_ctl_domains_and_aliases", "lists the alias"),
    "config alias print": CtlCase(("config alias print",), "test_ctl_domains_and_aliases", "shows settings and members"),
    "config alias update": CtlCase(("config alias update",), "test_ctl_domains_and_aliases", "postpublic false: outside mail refused"),
    "config alias addaddr": CtlCase(("config alias addaddr",), "test_ctl_domains_and_aliases", "new member receives alias mail"),
    "config alias rmaddr": CtlCase(("config alias rmaddr",), "test_ctl_domains_and_aliases", "member removed from the alias"),
    "config alias rm": CtlCase(("config alias rm",), "test_ctl_domains_and_aliases", "RCPT TO the alias refused"),
    # Queue.
    "queue holdrules add": CtlCase(("queue holdrules add",), "test_ctl_queue", "submitted messages stay queued on hold"),
    "queue holdrules list": CtlCase(("queue holdrules list",), "test_ctl_queue", "lists the rule"),
    "queue holdrules remove": CtlCase(("queue holdrules remove",), "test_ctl_queue", "next message is delivered at once"),
    "queue list": CtlCase(("queue list",), "test_ctl_queue", "the held messages, filtered"),
    "queue holdset": CtlCase(("queue hold", "queue unhold"), "test_ctl_queue", "unhold: delivered to the other instance"),
    "queue schedule": CtlCase(("queue schedule",), "test_ctl_queue", "next attempt moved as listed"),
    "queue transport": CtlCase(("queue transport",), "test_ctl_queue", "unknown transport refused, default set"),
    "queue requiretls": CtlCase(("queue requiretls",), "test_ctl_queue", "RequireTLS recorded (retired print)"),
    "queue fail": CtlCase(("queue fail",), "test_ctl_queue", "DSN to the sender, retired as failure"),
    "queue drop": CtlCase(("queue drop",), "test_ctl_queue", "gone from the queue without DSN"),
    "queue dump": CtlCase(("queue dump",), "test_ctl_queue", "the message as submitted, DKIM-signed"),
    "queue retired list": CtlCase(("queue retired list",), "test_ctl_queue", "failed, dropped and delivered messages"),
    "queue retired print": CtlCase(("queue retired print",), "test_ctl_queue", "JSON with result and settings"),
    "queue suppress add": CtlCase(("queue suppress add",), "test_ctl_suppressions", "submission to the address refused"),
    "queue suppress list": CtlCase(("queue suppress list",), "test_ctl_suppressions", "lists the address"),
    "queue suppress lookup": CtlCase(("queue suppress lookup",), "test_ctl_suppressions", "present / not present"),
    "queue suppress remove": CtlCase(("queue suppress remove",), "test_ctl_suppressions", "submission accepted and delivered"),
    # Message store.
    "import mbox": CtlCase(("import mbox",), "test_ctl_import_and_store", "messages over IMAP, export matches"),
    "import maildir": CtlCase(("import maildir",), "test_ctl_import_and_store", "messages and flags over IMAP"),
    "recalculatemailboxcounts": CtlCase(("recalculatemailboxcounts",), "test_ctl_import_and_store", "counts agree with IMAP STATUS"),
    "bumpuidvalidity": CtlCase(("bumpuidvalidity",), "test_ctl_import_and_store", "IMAP UIDVALIDITY changes"),
    "reassignuids": CtlCase(("reassignuids",), "test_ctl_import_and_store", "IMAP UIDs renumbered from 1"),
    "reassignthreads": CtlCase(("reassignthreads",), "test_ctl_import_and_store", "reply shares its parent's THREADID"),
    "backup": CtlCase(("backup",), "test_ctl_import_and_store", "backup passes verifydata, its export equals the live one"),
    # Reports.
    "tlsrpt sendreports": CtlCase(("tlsrpt sendreports",), "test_ctl_sendreports", "TLS report arrives at mox1's TLSRPT address"),
    "dmarc sendreports": CtlCase(("dmarc sendreports",), "test_ctl_sendreports", "DMARC report arrives at mox2's DMARC address"),
}


def _server_ctl_commands() -> set[str]:
    """The commands `mox serve` answers on its ctl socket (its own and those of ctlregistry modules)."""
    from mox.serve.server import Server

    server = Server.__new__(Server)  # only the handler table is needed, nothing is started
    return set(server._ctl_handlers())


def _string_constants(fn: object, seen: set[str] | None = None) -> set[str]:
    """String constants in fn's body and in the same module's functions it calls (transitively)."""
    seen = set() if seen is None else seen
    module = inspect.getmodule(fn)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))  # type: ignore[arg-type]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in seen:
            callee = getattr(module, node.func.id, None)
            if inspect.isfunction(callee) and inspect.getmodule(callee) is module:
                seen.add(node.func.id)
                out |= _string_constants(callee, seen)
    return out


def test_ctl_table_complete() -> None:
    """Every ctl command of the server is in CTL_COMMANDS with existing CLI commands and an existing test;
    every CLI command that names a ctl command is listed for it."""
    from mox.cli import main

    main.load_commands()
    served = _server_ctl_commands()
    assert served - set(CTL_COMMANDS) == set(), "ctl commands without a test here: add them to CTL_COMMANDS"
    assert set(CTL_COMMANDS) - served == set(), "CTL_COMMANDS names commands the server does not have"
    cli = {c.name: c for c in main.COMMANDS}
    for name, case in CTL_COMMANDS.items():
        for c in case.cli:
            assert c in cli, f"{name}: no CLI command {c!r}"
        assert callable(globals().get(case.test)), f"{name}: no test {case.test}"
    # The CLI side: a command whose code names a ctl command sends it (checked per command).
    for c in main.COMMANDS:
        for ctl_name in _string_constants(c.fn) & served:
            assert c.name in CTL_COMMANDS[ctl_name].cli, f"CLI command {c.name!r} sends {ctl_name!r}: list it in CTL_COMMANDS"


# Accounts and addresses.


def test_ctl_accounts_and_addresses(interop: Network) -> None:
    """config account add/list/addresses/disable/enable/rm, setaccountpassword and config address
    add/rm on mox2, each checked over IMAP and SMTP."""
    net = interop
    acc = Account(net, "mox2", "ctlacc")
    try:
        out = mox(net, "mox2", "config", "account", "add", acc.name, acc.address)
        assert "account added" in out, out
        assert acc.name in mox(net, "mox2", "config", "account", "list").split(), "new account not listed"
        # No password yet: no login.
        login_refused(net, "mox2", acc.address, acc.password)
        mox(net, "mox2", "setaccountpassword", acc.name, stdin=acc.password + "\n")
        im = acc.imap()
        im.logout()
        # Mail to its address is delivered (submitted by the account itself, a local delivery).
        subject = unique("ctl account ")
        acc.submit([acc.address], subject)
        acc.wait_message(["SUBJECT", quoted(subject)])
        # A new password replaces the old one.
        old, acc.password = acc.password, acc.password + "-2"
        mox(net, "mox2", "setaccountpassword", acc.name, stdin=acc.password + "\n")
        login_refused(net, "mox2", acc.address, old)
        acc.imap().logout()
        # A password the server refuses leaves the current one.
        code, out = mox_rc(net, "mox2", "setaccountpassword", acc.name, stdin="short\n")
        assert code == 1 and "password" in out, out
        acc.imap().logout()

        # A second address.
        extra = f"{unique('ctladdr')}@{MOX2_DOMAIN}"
        assert rcpt_reply(net, "mox2", extra)[0] == 550
        assert "address added" in mox(net, "mox2", "config", "address", "add", extra, acc.name)
        assert rcpt_reply(net, "mox2", extra)[0] == 250
        assert set(mox(net, "mox2", "config", "account", "addresses", acc.name).split()) == {acc.address, extra}
        subject2 = unique("ctl address ")
        acc.submit([extra], subject2)
        msg = acc.wait_message(["SUBJECT", quoted(subject2)])
        assert extra.encode() in msg, msg
        assert "address removed" in mox(net, "mox2", "config", "address", "rm", extra)
        code, text = rcpt_reply(net, "mox2", extra)
        assert code == 550 and "no such user" in text, (code, text)
        assert mox(net, "mox2", "config", "account", "addresses", acc.name).split() == [acc.address]

        # Disabled: login refused with the message; enabled again: login works.
        reason = "account disabled by ctl test"
        mox(net, "mox2", "config", "account", "disable", acc.name, reason)
        assert reason in login_refused(net, "mox2", acc.address, acc.password)
        mox(net, "mox2", "config", "account", "enable", acc.name)
        acc.imap().logout()

        # Removed: not listed, login refused, mail refused, data directory gone.
        assert "account removed" in mox(net, "mox2", "config", "account", "rm", acc.name)
        assert acc.name not in mox(net, "mox2", "config", "account", "list").split()
        login_refused(net, "mox2", acc.address, acc.password)
        assert rcpt_reply(net, "mox2", acc.address)[0] == 550
        assert sh(net, "mox2", f"test -e data/accounts/{acc.name} && echo present || echo absent").strip() == "absent"
    finally:
        acc.remove()


# Domains and aliases.


def _send_refused(acc: Account, rcpts: list[str], subject: str) -> str:
    """Submission by acc that the server must refuse (at RCPT or DATA); the refusal."""
    try:
        acc.submit(rcpts, subject)
    except smtplib.SMTPRecipientsRefused as e:
        return str(e.recipients)
    except smtplib.SMTPResponseException as e:
        assert 500 <= e.smtp_code < 600, e
        return f"{e.smtp_code} {e.smtp_error.decode(errors='replace')}"
    raise AssertionError(f"submission of {subject!r} by {acc.address} to {rcpts} was accepted")


def test_ctl_domains_and_aliases(interop: Network) -> None:
    """config domain add/disable/enable/rm and config alias add/list/print/update/addaddr/rmaddr/rm on
    mox2, checked with SMTP replies and deliveries (the new domain needs no DNS: mail stays local)."""
    net = interop
    dom = f"{unique('ctldom')}.{MOX2_DOMAIN}"
    owner = Account(net, "mox2", "ctldomacc")  # made by config domain add, with its first address
    owner.address = f"{owner.name}@{dom}"
    other = Account(net, "mox2", "ctlmember")
    alias = f"{unique('ctlalias')}@{dom}"
    try:
        assert rcpt_reply(net, "mox2", owner.address)[0] == 550
        mox(net, "mox2", "config", "domain", "add", dom, owner.name, owner.name)
        assert owner.name in mox(net, "mox2", "config", "account", "list").split()
        assert rcpt_reply(net, "mox2", owner.address)[0] == 250
        # The domain's DKIM keys were made, and sign its submissions.
        assert f"._domainkey.{dom}." in sh(net, "mox2", "ls config/dkim")
        mox(net, "mox2", "setaccountpassword", owner.name, stdin=owner.password + "\n")
        other.create()
        subject = unique("ctl domain ")
        owner.submit([other.address], subject)
        msg = other.wait_message(["SUBJECT", quoted(subject)])
        assert re.search(rb"DKIM-Signature:[^\n]*(\n[ \t][^\n]*)*d=" + re.escape(dom.encode()), msg), msg

        mox(net, "mox2", "config", "domain", "disable", dom)
        code, text = rcpt_reply(net, "mox2", owner.address)
        assert code == 450 and "disabled" in text, (code, text)
        mox(net, "mox2", "config", "domain", "enable", dom)
        assert rcpt_reply(net, "mox2", owner.address)[0] == 250

        # An alias with the owner as member: mail to it reaches the owner.
        assert rcpt_reply(net, "mox2", alias)[0] == 550
        mox(net, "mox2", "config", "alias", "add", alias, owner.address)
        assert mox(net, "mox2", "config", "alias", "list", dom).split() == [alias]
        printed = mox(net, "mox2", "config", "alias", "print", alias)
        assert "# postpublic true" in printed and printed.splitlines()[-1] == owner.address, printed
        assert rcpt_reply(net, "mox2", alias)[0] == 250
        subject = unique("ctl alias ")
        other.submit([alias], subject)
        owner.wait_message(["SUBJECT", quoted(subject)])
        # A second member gets alias mail too (a member posting gets no copy of its own, as upstream).
        mox(net, "mox2", "config", "alias", "addaddr", alias, other.address)
        assert mox(net, "mox2", "config", "alias", "print", alias).splitlines()[-2:] == [owner.address, other.address]
        subject = unique("ctl alias member ")
        owner.submit([alias], subject)
        other.wait_message(["SUBJECT", quoted(subject)])
        # Members only: members still post, others are refused.
        mox(net, "mox2", "config", "alias", "update", alias, "-postpublic", "false")
        assert "# postpublic false" in mox(net, "mox2", "config", "alias", "print", alias)
        subject = unique("ctl alias closed member ")
        owner.submit([alias], subject)
        other.wait_message(["SUBJECT", quoted(subject)])
        mox(net, "mox2", "config", "alias", "rmaddr", alias, other.address)
        assert mox(net, "mox2", "config", "alias", "print", alias).splitlines()[-1] == owner.address
        refusal = _send_refused(other, [alias], unique("ctl alias closed "))
        assert "only members" in refusal, refusal

        mox(net, "mox2", "config", "alias", "rm", alias)
        assert mox(net, "mox2", "config", "alias", "list", dom).strip() == ""
        assert rcpt_reply(net, "mox2", alias)[0] == 550

        # The domain goes once no account has an address in it; its account receives its reports, so
        # the account goes after it.
        mox(net, "mox2", "config", "address", "rm", owner.address)
        mox(net, "mox2", "config", "domain", "rm", dom)
        code, text = rcpt_reply(net, "mox2", owner.address)
        assert code == 550 and "relaying" in text, (code, text)
    finally:
        mox_rc(net, "mox2", "config", "alias", "rm", alias)
        mox_rc(net, "mox2", "config", "address", "rm", owner.address)
        mox_rc(net, "mox2", "config", "domain", "rm", dom)
        owner.remove()
        other.remove()
        # config domain rm keeps the DKIM keys renamed (as upstream); these are the test's own.
        sh(net, "mox2", f"rm -f config/dkim/*._domainkey.{dom}.*", check=False)
