"""Every ctl command of the ``mox`` command line, run against a live ``mox serve`` in the interop
network (conformance/interop_net.py), with its effect checked through another channel: IMAP logins
and mailbox contents, SMTP replies, deliveries between the instances, the server's log, exported and
backed-up data.

CTL_COMMANDS lists every command the server answers on its ctl socket, the CLI commands that send
it and the test that checks it (here, or for sending reports in test_interop_reports_ctl.py, which
runs after the other interop modules); test_ctl_table_complete fails when the server or the command
line gains a ctl command that is not in the table, so each new command gets a test. `stop` runs
against an instance of the test's own in the localserve container, never the shared ones.

The instances are shared with the other interop tests: everything here uses accounts, addresses,
domains and aliases with unique names, removes them at the end, and restores what it changes on the
shared instances (log levels, hold rules). Commands run in the containers as user mox, the user the
server runs as (interop_ctl_helpers).
"""

from __future__ import annotations

import ast
import base64
import imaplib
import importlib
import inspect
import json
import re
import shlex
import smtplib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from interop_ctl_helpers import (
    Account,
    account,
    login_refused,
    mox,
    mox_batch,
    mox_fails,
    mox_rc,
    quoted,
    rcpt_reply,
    search,
    sh,
    unique,
    wait_mox1_certificates,
)
from interop_net import MOX2_DOMAIN, REFUSE_TRANSPORT_MESSAGE, Network, wait_for

# The first interop test of a session also waits for the network (image builds on a cold cache).
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class CtlCase:
    cli: tuple[str, ...]  # the CLI commands that send this ctl command
    test: str  # the test that runs it against a live instance: in this module, or "module::test"
    effect: str  # what that test checks besides the exit status


# Report sending runs in a module that sorts after the other interop modules (see its docstring).
REPORTS = "test_interop_reports_ctl"

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
    "queue transport": CtlCase(("queue transport",), "test_ctl_queue", "a Fail transport set: DSN with its text; unknown refused, default set"),
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
    "tlsrpt sendreports": CtlCase(("tlsrpt sendreports",), f"{REPORTS}::test_ctl_sendreports", "TLS report arrives at mox1's TLSRPT address"),
    "dmarc sendreports": CtlCase(("dmarc sendreports",), f"{REPORTS}::test_ctl_sendreports", "DMARC report arrives at mox2's DMARC address"),
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
        module, _, test = case.test.rpartition("::")
        where = vars(importlib.import_module(module)) if module else globals()
        assert callable(where.get(test)) and test.startswith("test_"), f"{name}: no test {case.test}"
    # The CLI side: a command whose code names a ctl command sends it (checked per command).
    for command in main.COMMANDS:
        for ctl_name in _string_constants(command.fn) & served:
            assert command.name in CTL_COMMANDS[ctl_name].cli, f"CLI command {command.name!r} sends {ctl_name!r}: list it in CTL_COMMANDS"


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


def test_ctl_account_add_seen_by_open_connection(interop: Network) -> None:
    """An account added through ctl receives mail on an SMTP connection that was open before, as
    upstream, which looks up the current config for each RCPT (this matters for connections another
    instance's queue keeps open for reuse)."""
    net = interop
    acc = Account(net, "mox2", "ctlopen")
    with smtplib.SMTP(net.ip("mox2"), 25, local_hostname="client.example", timeout=30) as s:
        s.ehlo()
        assert s.mail("sender@postfix.example")[0] == 250
        try:
            acc.create()
            code, text = s.rcpt(acc.address)
        finally:
            acc.remove()
    assert code == 250, (code, text)


# Domains and aliases.


def _send_refused(acc: Account, rcpts: list[str], subject: str) -> str:
    """Submission by acc that the server must refuse (at RCPT or DATA); the refusal."""
    try:
        acc.submit(rcpts, subject)
    except smtplib.SMTPRecipientsRefused as e:
        return str(e.recipients)
    except smtplib.SMTPResponseException as e:
        assert 500 <= e.smtp_code < 600, e
        err = e.smtp_error
        return f"{e.smtp_code} {err.decode(errors='replace') if isinstance(err, bytes) else err}"
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
        (code, out), (_, listed), (_, printed) = mox_batch(net, "mox2", [
            ["config", "alias", "add", alias, owner.address],
            ["config", "alias", "list", dom],
            ["config", "alias", "print", alias],
        ])  # fmt: skip
        assert code == 0, out
        assert listed.split() == [alias], listed
        assert "# postpublic true" in printed and printed.splitlines()[-1] == owner.address, printed
        assert rcpt_reply(net, "mox2", alias)[0] == 250
        subject = unique("ctl alias ")
        other.submit([alias], subject)
        owner.wait_message(["SUBJECT", quoted(subject)])
        # A second member gets alias mail too (a member posting gets no copy of its own, as upstream).
        (code, out), (_, printed) = mox_batch(net, "mox2", [["config", "alias", "addaddr", alias, other.address], ["config", "alias", "print", alias]])
        assert code == 0 and printed.splitlines()[-2:] == [owner.address, other.address], (out, printed)
        subject = unique("ctl alias member ")
        owner.submit([alias], subject)
        other.wait_message(["SUBJECT", quoted(subject)])
        # Members only: members still post, others are refused.
        (code, out), (_, printed) = mox_batch(net, "mox2", [["config", "alias", "update", alias, "-postpublic", "false"], ["config", "alias", "print", alias]])
        assert code == 0 and "# postpublic false" in printed, (out, printed)
        subject = unique("ctl alias closed member ")
        owner.submit([alias], subject)
        other.wait_message(["SUBJECT", quoted(subject)])
        (code, out), (_, printed) = mox_batch(net, "mox2", [["config", "alias", "rmaddr", alias, other.address], ["config", "alias", "print", alias]])
        assert code == 0 and printed.splitlines()[-1] == owner.address, (out, printed)
        refusal = _send_refused(other, [alias], unique("ctl alias closed "))
        assert "only members" in refusal, refusal

        (code, out), (_, listed) = mox_batch(net, "mox2", [["config", "alias", "rm", alias], ["config", "alias", "list", dom]])
        assert code == 0 and listed.strip() == "", (out, listed)
        assert rcpt_reply(net, "mox2", alias)[0] == 550

        # The domain goes once no account has an address in it; its account receives its reports, so
        # the account goes after it.
        mox(net, "mox2", "config", "address", "rm", owner.address)
        mox(net, "mox2", "config", "domain", "rm", dom)
        code, text = rcpt_reply(net, "mox2", owner.address)
        assert code == 550 and "relaying" in text, (code, text)
    finally:
        # Whatever is left after a failure (commands for things already gone fail harmlessly).
        mox_batch(net, "mox2", [
            ["config", "alias", "rm", alias],
            ["config", "address", "rm", owner.address],
            ["config", "domain", "rm", dom],
            ["config", "account", "rm", owner.name],
            ["config", "account", "rm", other.name],
        ])  # fmt: skip
        # config domain rm keeps the DKIM keys renamed (as upstream); these are the test's own.
        sh(net, "mox2", f"rm -f config/dkim/*._domainkey.{dom}.*", check=False)


# Queue.


def _queue_ids(listing: str) -> list[int]:
    """Message IDs in the output of queue list or queue retired list."""
    return [int(line.split()[0]) for line in listing.splitlines()[1:] if line.strip() and line.split()[0].isdigit()]


def _reload_count(net: Network, host: str) -> int:
    return net.hosts[host].logs().count('m="domains.conf reloaded"')


def _keep_retired(net: Network, host: str, account_name: str) -> None:
    """Keep the account's retired messages for a day (KeepRetiredMessagePeriod; no ctl command sets
    account settings, as upstream): domains.conf edited in the container with the project's config
    code under the domains.conf lock, then wait for the server to reload it."""
    before = _reload_count(net, host)
    script = textwrap.dedent(f"""
        from mox.config import edit, model
        from mox.config.load import load_config
        cfg = load_config("config/mox.conf")
        def change(d):
            d.Accounts[{account_name!r}].KeepRetiredMessagePeriod = model.Duration(24 * 3600 * 10**9)
        with edit.domains_lock(cfg):
            edit.apply(cfg, change)
    """)
    sh(net, host, f"/opt/moxmail/bin/python -c {shlex.quote(script)}")
    wait_for(f"{host}: domains.conf reloaded", lambda: _reload_count(net, host) > before, 30, net.hosts[host].logs)


@pytest.fixture(scope="module")
def mox1_rcpt(interop: Network) -> Iterator[Account]:
    """An account on mox1 (made through mox1's ctl) that receives the queue tests' deliveries from mox2,
    once mox1 can be reached as the other tests expect (its ACME certificates obtained)."""
    wait_mox1_certificates(interop)
    with account(interop, "mox1", "ctlrcpt") as acc:
        yield acc


def test_ctl_queue(interop: Network, mox1_rcpt: Account) -> None:
    """Hold rules, queue list/hold/unhold/schedule/transport/requiretls/fail/drop/dump and the
    retired messages on mox2, with messages from a new account to a new account on mox1: held
    messages stay, released ones arrive at mox1, failed ones give a DSN, dropped ones vanish."""
    net = interop
    rcpt = mox1_rcpt.address
    with account(net, "mox2", "ctlq") as q:
        _keep_retired(net, "mox2", q.name)
        mox(net, "mox2", "queue", "holdrules", "add", "-account", q.name)
        rules = mox(net, "mox2", "queue", "holdrules", "list")
        m = re.search(rf'^id (\d+): account "{q.name}"$', rules, re.M)
        assert m, rules
        rule_id = m.group(1)
        try:
            subjects = {k: unique(f"ctl queue {k} ") for k in ("fail", "drop", "release", "transport")}
            for s in subjects.values():
                q.submit([rcpt], s)
            listing = mox(net, "mox2", "queue", "list", "-account", q.name)
            ids = _queue_ids(listing)
            assert len(ids) == 4 and listing.count(f"to:{rcpt}") == 4, listing
            assert sorted(_queue_ids(mox(net, "mox2", "queue", "list", "-account", q.name, "-hold", "true"))) == sorted(ids)
            assert _queue_ids(mox(net, "mox2", "queue", "list", "-account", q.name, "-hold", "false")) == []
            # Which is which: queue dump gives the message as queued, DKIM-signed by mox2.
            by_subject: dict[str, int] = {}
            for i in ids:
                dump = mox(net, "mox2", "queue", "dump", str(i))
                assert "DKIM-Signature:" in dump and f"From: <{q.address}>" in dump, dump
                for k, s in subjects.items():
                    if f"Subject: {s}" in dump:
                        by_subject[k] = i
            assert set(by_subject) == set(subjects), by_subject
            fail_id, drop_id, release_id, transport_id = (str(by_subject[k]) for k in ("fail", "drop", "release", "transport"))

            # Schedule: the next attempt as listed.
            assert "1 message(s) rescheduled" in mox(net, "mox2", "queue", "schedule", "-ids", release_id, "-now", "2h")
            line = mox(net, "mox2", "queue", "list", "-ids", release_id).splitlines()[1]
            assert re.search(r" next (1h59m\d+s|2h0m0s) ", line), line
            # Off hold but scheduled later: stays queued; on hold again.
            mox(net, "mox2", "queue", "unhold", "-ids", release_id)
            assert _queue_ids(mox(net, "mox2", "queue", "list", "-ids", release_id, "-hold", "false")) == [int(release_id)]
            assert "1 messages changed" in mox(net, "mox2", "queue", "hold", "-ids", release_id)
            assert _queue_ids(mox(net, "mox2", "queue", "list", "-ids", release_id, "-hold", "true")) == [int(release_id)]
            mox(net, "mox2", "queue", "schedule", "-ids", release_id, "-now", "0s")

            # Transport: only configured ones. "refuse" (a Fail transport in mox.conf) fails the attempt
            # at once: a DSN with its text, retired with the transport; "" is the default again.
            assert "unknown transport" in mox_fails(net, "mox2", "queue", "transport", "-ids", transport_id, "nosuch")
            assert "1 message(s) changed" in mox(net, "mox2", "queue", "transport", "-ids", transport_id, "refuse")
            mox(net, "mox2", "queue", "unhold", "-ids", transport_id)
            dsn = q.wait_message(["TEXT", quoted(subjects["transport"]), "TEXT", quoted(REFUSE_TRANSPORT_MESSAGE)])
            assert b"554" in dsn, dsn
            info = json.loads(mox(net, "mox2", "queue", "retired", "print", transport_id))
            assert info["Success"] is False and info["Transport"] == "refuse", info
            assert "1 message(s) changed" in mox(net, "mox2", "queue", "transport", "-ids", fail_id, "refuse")
            assert "1 message(s) changed" in mox(net, "mox2", "queue", "transport", "-ids", fail_id, "")
            assert "1 message(s) changed" in mox(net, "mox2", "queue", "requiretls", "-ids", fail_id, "yes")

            # Fail: a DSN to the sender, retired as a failure with the settings made above.
            assert "1 message(s) marked as failed" in mox(net, "mox2", "queue", "fail", "-ids", fail_id)
            q.wait_message(["TEXT", quoted(subjects["fail"])])
            retired = mox(net, "mox2", "queue", "retired", "list", "-result", "failure", "-account", q.name)
            assert sorted(_queue_ids(retired)) == sorted([int(fail_id), int(transport_id)]), retired
            info = json.loads(mox(net, "mox2", "queue", "retired", "print", fail_id))
            assert info["Success"] is False and info["RequireTLS"] is True and info["Transport"] == "", info
            assert info["RecipientAddress"] == rcpt and info["Subject"] == subjects["fail"], info

            # Drop: gone, retired, no DSN.
            assert "1 message(s) dropped" in mox(net, "mox2", "queue", "drop", "-ids", drop_id)
            assert sorted(_queue_ids(mox(net, "mox2", "queue", "list", "-account", q.name))) == [int(release_id)]
            assert int(drop_id) in _queue_ids(mox(net, "mox2", "queue", "retired", "list", "-account", q.name))

            # Released: delivered to mox1.
            mox(net, "mox2", "queue", "unhold", "-ids", release_id)
            mox1_rcpt.wait_exported(f"Subject: {subjects['release']}")
            wait_for(
                "mox2: released message retired as delivered",
                lambda: int(release_id) in _queue_ids(mox(net, "mox2", "queue", "retired", "list", "-result", "success", "-account", q.name)),
                30,
                net.hosts["mox2"].logs,
            )
            assert json.loads(mox(net, "mox2", "queue", "retired", "print", release_id))["Success"] is True

            # Without the hold rule, the next message goes out at once.
            mox(net, "mox2", "queue", "holdrules", "remove", rule_id)
            assert f'account "{q.name}"' not in mox(net, "mox2", "queue", "holdrules", "list")
            subject = unique("ctl queue unheld ")
            q.submit([rcpt], subject)
            mox1_rcpt.wait_exported(f"Subject: {subject}")
            # The dropped message never produced a DSN; the failed one did (once).
            im = q.imap()
            try:
                assert search(im, "INBOX", "TEXT", quoted(subjects["drop"])) == []
                assert len(search(im, "INBOX", "TEXT", quoted(subjects["fail"]))) == 1
            finally:
                im.logout()
        finally:
            mox_rc(net, "mox2", "queue", "holdrules", "remove", rule_id)
            mox_rc(net, "mox2", "queue", "drop", "-account", q.name)


def test_ctl_suppressions(interop: Network, mox1_rcpt: Account) -> None:
    """queue suppress add/list/lookup/remove on mox2: a submission to a suppressed address is refused,
    after removal it is accepted and delivered to mox1."""
    net = interop
    rcpt = mox1_rcpt.address
    with account(net, "mox2", "ctlsup") as acc:
        assert mox(net, "mox2", "queue", "suppress", "lookup", "-account", acc.name, rcpt).startswith("not present")
        mox(net, "mox2", "queue", "suppress", "add", acc.name, rcpt)
        listed = mox(net, "mox2", "queue", "suppress", "list", "-account", acc.name)
        assert f'"{acc.name}"\t"{rcpt}"\tYes' in listed, listed
        assert mox(net, "mox2", "queue", "suppress", "lookup", "-account", acc.name, rcpt).startswith("present\n")
        refusal = _send_refused(acc, [rcpt], unique("ctl suppressed "))
        assert "suppress" in refusal, refusal
        mox(net, "mox2", "queue", "suppress", "remove", acc.name, rcpt)
        assert mox(net, "mox2", "queue", "suppress", "lookup", "-account", acc.name, rcpt).startswith("not present")
        assert "(none)" in mox(net, "mox2", "queue", "suppress", "list", "-account", acc.name)
        subject = unique("ctl unsuppressed ")
        acc.submit([rcpt], subject)
        mox1_rcpt.wait_exported(f"Subject: {subject}")


# Log levels.


def _smtp_connect(net: Network, host: str) -> None:
    with smtplib.SMTP(net.ip(host), 25, local_hostname="client.example", timeout=20) as s:
        s.noop()


def test_ctl_loglevels(interop: Network) -> None:
    """loglevels lists the levels; a level for smtpserver (info) silences its debug lines for a
    connection made meanwhile, and removing it brings them back. The shared level is restored."""
    net = interop
    assert "(default): debug" in mox(net, "mox2", "loglevels")
    try:
        mox(net, "mox2", "loglevels", "info", "smtpserver")
        assert "smtpserver: info" in mox(net, "mox2", "loglevels").splitlines()
        _smtp_connect(net, "mox2")  # logged (or not) before the greeting it waits for
    finally:
        mox(net, "mox2", "loglevels", "", "smtpserver")
    assert "smtpserver" not in mox(net, "mox2", "loglevels")
    _smtp_connect(net, "mox2")
    logs = net.hosts["mox2"].logs()
    start = logs.rindex('m="log level changed" pkg=serve package=smtpserver level=info')
    end = logs.index('m="log level changed" pkg=serve package=smtpserver level=(removed)', start)
    assert 'm="smtp connection"' not in logs[start:end], logs[start:end]
    wait_for("mox2: smtpserver debug line after the level was removed", lambda: 'm="smtp connection"' in net.hosts["mox2"].logs()[end:], 10)


# Import and message store maintenance.


def _mbox(tag: str) -> bytes:
    return (
        f"From a@example.org Sat Jan  1 00:00:00 2022\n"
        f"Subject: ctl one {tag}\nMessage-ID: <one.{tag}@example.org>\n\nbody one\n>From quoted\n\n"
        f"From b@example.org Sat Jan  1 00:00:01 2022\n"
        f"Subject: ctl two {tag}\nMessage-ID: <two.{tag}@example.org>\n\nbody two\n\n"
        f"From c@example.org Sat Jan  1 00:00:02 2022\n"
        f"Subject: Re: ctl one {tag}\nMessage-ID: <three.{tag}@example.org>\nIn-Reply-To: <one.{tag}@example.org>\n\nreply\n"
    ).encode()


def _put_file(net: Network, host: str, path: str, data: bytes) -> None:
    sh(net, host, f"mkdir -p \"$(dirname {shlex.quote(path)})\" && echo {base64.b64encode(data).decode()} | base64 -d >{shlex.quote(path)}")


def _select(im: imaplib.IMAP4, mailbox: str) -> tuple[int, int, list[int]]:
    """(message count, UIDVALIDITY, UIDs) of mailbox, selected read-write."""
    typ, data = im.select(mailbox)
    assert typ == "OK", data
    n = int(data[0] or b"0")
    _typ, uv = im.response("UIDVALIDITY")
    typ, data = im.uid("SEARCH", "ALL")
    assert typ == "OK", data
    uids = [int(x) for x in (data[0] or b"").split()]
    return n, int(uv[0] or b"0"), uids


def _subjects(im: imaplib.IMAP4) -> list[str]:
    typ, data = im.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    return [bytes(x[1]).decode().strip().removeprefix("Subject: ") for x in data if isinstance(x, tuple)]


def test_ctl_import_and_store(interop: Network) -> None:
    """import mbox/maildir into a new account on mox2 (read back over IMAP and with export), then
    recalculatemailboxcounts, bumpuidvalidity, reassignuids, reassignthreads, and a backup that
    verifydata accepts and whose export equals the live account's."""
    net = interop
    tag = unique("")
    tmp = f"/tmp/ctlstore-{tag}"
    with account(net, "mox2", "ctlstore") as acc:
        try:
            _put_file(net, "mox2", f"{tmp}/in.mbox", _mbox(tag))
            _put_file(net, "mox2", f"{tmp}/md/cur/1700000000.a.host:2,S", f"Subject: ctl md1 {tag}\n\nseen\n".encode())
            _put_file(net, "mox2", f"{tmp}/md/new/1700000001.b.host", f"Subject: ctl md2 {tag}\n\nnew\n".encode())
            sh(net, "mox2", f"mkdir -p {tmp}/md/tmp")
            mox(net, "mox2", "import", "mbox", acc.name, "Inbox", f"{tmp}/in.mbox")
            mox(net, "mox2", "import", "maildir", acc.name, "Archive", f"{tmp}/md")
            im = acc.imap()
            try:
                n, uidvalidity, uids = _select(im, "INBOX")
                assert n == 3 and _subjects(im) == [f"ctl one {tag}", f"ctl two {tag}", f"Re: ctl one {tag}"]
                typ, data = im.fetch("1", "(BODY.PEEK[TEXT])")
                assert typ == "OK" and isinstance(data[0], tuple) and data[0][1] == b"body one\r\nFrom quoted\r\n", data
                assert _select(im, "Archive")[0] == 2
                assert sorted(_subjects(im)) == [f"ctl md1 {tag}", f"ctl md2 {tag}"]
                assert len(search(im, "Archive", "SEEN")) == 1

                # Counts as kept by the server are right; IMAP STATUS agrees.
                assert "all mailbox counts were correct" in mox(net, "mox2", "recalculatemailboxcounts", acc.name)
                typ, data = im.status("INBOX", "(MESSAGES UNSEEN)")
                status = data[0]
                assert typ == "OK" and isinstance(status, bytes) and b"MESSAGES 3" in status and b"UNSEEN 3" in status, data

                # A new UIDVALIDITY for the Inbox.
                assert "Inbox" in mox(net, "mox2", "bumpuidvalidity", acc.name, "Inbox")
                n, uidvalidity2, uids2 = _select(im, "INBOX")
                assert uidvalidity2 != uidvalidity and uids2 == uids

                # UIDs renumbered from 1 after an expunge left a gap.
                im.store("2", "+FLAGS", "(\\Deleted)")
                im.expunge()
                assert _select(im, "INBOX")[2] == [uids[0], uids[2]]
                im.logout()
                mox(net, "mox2", "reassignuids", acc.name)
                im = acc.imap()
                n, uidvalidity3, uids3 = _select(im, "INBOX")
                assert uids3 == [1, 2] and uidvalidity3 != uidvalidity2, (uids3, uidvalidity3)
            finally:
                im.logout()

            # Threads: the reply belongs to its parent's thread, the rest are their own.
            out = mox(net, "mox2", "reassignthreads", acc.name)
            assert f"account {acc.name}: threads assigned to 4 messages" in out, out
            query = (
                "import sqlite3,json,sys; c=sqlite3.connect(sys.argv[1], uri=True); "
                "print(json.dumps(c.execute('select id, subject_base, thread_id from message where expunged=0 order by id').fetchall()))"
            )
            rows = json.loads(sh(net, "mox2", f"/opt/moxmail/bin/python -c {shlex.quote(query)} 'file:data/accounts/{acc.name}/index.db?mode=ro'"))
            # Rows in id order: the parent first, then its reply (same base subject), then the maildir's.
            one = f"ctl one {tag}"
            assert [(subject, tid) for (_id, subject, tid) in rows] == [
                (one, rows[0][0]), (one, rows[0][0]), (f"ctl md1 {tag}", rows[2][0]), (f"ctl md2 {tag}", rows[3][0])
            ], rows

            # Backup: verifydata accepts it, and the account in it exports as the live one.
            out = mox(net, "mox2", "backup", "-verbose", f"{tmp}/backup")
            assert f"account {acc.name}: database copied" in out, out
            assert sh(net, "mox2", f"test -f {tmp}/backup/data/accounts/{acc.name}/index.db && test -f {tmp}/backup/config/domains.conf && echo ok").strip() == "ok"
            mox(net, "mox2", "verifydata", f"{tmp}/backup/data")
            mox(net, "mox2", "export", "mbox", f"{tmp}/live", f"data/accounts/{acc.name}")
            mox(net, "mox2", "export", "mbox", f"{tmp}/restored", f"{tmp}/backup/data/accounts/{acc.name}")
            live = sh(net, "mox2", f"cat {tmp}/live/Inbox.mbox {tmp}/live/Archive.mbox")
            assert f"Subject: Re: ctl one {tag}" in live and f"Subject: ctl two {tag}" not in live, live
            assert f"Subject: ctl md1 {tag}" in live and ">From quoted" in live, live
            assert sh(net, "mox2", f"diff -r {tmp}/live {tmp}/restored && echo same").strip().endswith("same")
        finally:
            sh(net, "mox2", f"rm -rf {tmp}", check=False)


# Stopping: on an instance of the test's own, not the shared ones.


def test_ctl_stop(interop: Network) -> None:
    """mox stop ends a `mox serve` started for this test in the localserve container (a config made
    by mox.config.example on 127.0.0.1): the server exits 0 after saying so, its pid file and ctl
    socket are gone, and ctl commands fail afterwards. The shared instances keep running."""
    net = interop
    d = f"/tmp/{unique('ctlstop')}"
    script = textwrap.dedent(f"""
        set -e
        /opt/moxmail/bin/python -m mox.config.example {d} >/dev/null
        cd {d}
        mox -config config/mox.conf serve >serve.log 2>&1 &
        pid=$!
        # Not left running when a step fails.
        trap 'kill $pid 2>/dev/null || true' EXIT
        for i in $(seq 1 200); do grep -q 'm="mox started"' serve.log && break; sleep 0.05; done
        test -f data/mox.pid && test -S data/ctl
        mox -config config/mox.conf loglevels
        mox -config config/mox.conf stop
        rc=0; wait $pid || rc=$?
        echo "serve exit $rc"
        test -e data/mox.pid || echo "pid file gone"
        test -e data/ctl || echo "ctl socket gone"
        mox -config config/mox.conf loglevels || echo "loglevels exit $?"
        tail -n 1 serve.log
    """)
    try:
        out = sh(net, "localserve", script)
    finally:
        sh(net, "localserve", f"rm -rf {d}", check=False)
    lines = out.splitlines()
    assert "(default): info" in lines and "mox stopped" in lines, out
    for want in ("serve exit 0", "pid file gone", "ctl socket gone", "loglevels exit 1"):
        assert want in lines, out
    assert 'm="mox stopped"' in lines[-1], out
