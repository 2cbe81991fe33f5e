"""Delivering to local recipients: destination precedence, catchalls, separators, case, aliases, rulesets, quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from mox.config import model
from mox.config.example import write_local_config
from mox.config.load import Config, load_config, reload_dynamic
from mox.smtp.address import parse_address
from mox.store.deliver import (
    AliasPostRefused,
    UnknownRecipient,
    apply_config_to_open_accounts,
    deliver,
    message_info,
    open_config_account,
    resolve_recipient,
    ruleset_mailbox,
)
from mox.store.model import QuotaExceeded, SMTPContext

DOMAINS_EXTRA = """
	example.org:
		LocalpartCatchallSeparators:
			- +
			- -
		Aliases:
			team:
				Addresses:
					- jan@example.org
					- piet@example.org
			open:
				Addresses:
					- jan@example.org
				PostPublic: true
	strict.example:
		LocalpartCaseSensitive: true
"""

ACCOUNTS_EXTRA = """
	jan:
		Domain: example.org
		Destinations:
			jan@example.org:
				Rulesets:
					-
						SMTPMailFromRegexp: ^list-bounces@lists\\.example$
						Mailbox: Lists
					-
						VerifiedDomain: bank.example
						Mailbox: Bank
					-
						HeadersRegexp:
							^list-id$: <dev\\.lists\\.example>
						Mailbox: Lists/dev
			Jan@strict.example: nil
		QuotaMessageSize: 3000
	piet:
		Domain: example.org
		Destinations:
			piet@example.org: nil
			@example.org:
				Mailbox: Catchall
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    conf = write_local_config(tmp_path, ips=["127.0.0.1"])
    d = conf.parent / "domains.conf"
    text = d.read_text()
    text = text.replace("Domains:\n", "Domains:\n" + DOMAINS_EXTRA.lstrip("\n"), 1)
    text = text.replace("Accounts:\n", "Accounts:\n" + ACCOUNTS_EXTRA.lstrip("\n"), 1)
    d.write_text(text)
    return load_config(conf)


def accounts(cfg: Config, addr: str, msg_from: str = "") -> list[str]:
    return [r.account for r in resolve_recipient(cfg, parse_address(addr), msg_from=msg_from)]


def test_destination_precedence_catchall_separators_and_case(cfg: Config) -> None:
    assert accounts(cfg, "jan@example.org") == ["jan"]
    assert accounts(cfg, "JAN+news@Example.org") == ["jan"]  # case-insensitive, separator +
    assert accounts(cfg, "jan-work@example.org") == ["jan"]  # second separator
    assert accounts(cfg, "piet@example.org") == ["piet"]
    assert accounts(cfg, "nobody@example.org") == ["piet"]  # catchall only when nothing else matches
    assert accounts(cfg, "Jan@strict.example") == ["jan"]
    with pytest.raises(UnknownRecipient):
        accounts(cfg, "jan@strict.example")  # LocalpartCaseSensitive
    with pytest.raises(UnknownRecipient):
        accounts(cfg, "x@elsewhere.example")


def test_alias_expansion_membership_and_sender_exclusion(cfg: Config) -> None:
    assert accounts(cfg, "team@example.org", msg_from="jan@example.org") == ["piet"]  # sender gets no copy
    with pytest.raises(AliasPostRefused):
        accounts(cfg, "team@example.org", msg_from="stranger@else.example")
    assert accounts(cfg, "open@example.org", msg_from="stranger@else.example") == ["jan"]


def test_rulesets_choose_mailbox(cfg: Config) -> None:
    dest = cfg.dynamic.Accounts["jan"].Destinations["jan@example.org"]
    plain = b"Subject: x\r\n\r\nbody\r\n"
    assert ruleset_mailbox(dest, plain, SMTPContext(mail_from="list-bounces@lists.example")) == "Lists"
    assert ruleset_mailbox(dest, plain, SMTPContext(mail_from="a@x.example", dkim_domains=["mail.bank.example"])) == "Bank"
    assert ruleset_mailbox(dest, plain, SMTPContext(mail_from="a@bank.example", spf="pass")) == "Bank"
    assert ruleset_mailbox(dest, plain, SMTPContext(mail_from="a@bank.example", spf="fail")) == "Inbox"
    listmsg = b"List-Id: Dev list <dev.lists.example>\r\nSubject: x\r\n\r\nbody\r\n"
    assert ruleset_mailbox(dest, listmsg, SMTPContext()) == "Lists/dev"
    assert ruleset_mailbox(model.Destination(Mailbox="Other"), plain, SMTPContext()) == "Other"


async def test_deliver_end_to_end_with_quota(cfg: Config) -> None:
    data = b"From: a@else.example\r\nSubject: Re: hello\r\nMessage-ID: <One@X.example>\r\n\r\nhi\r\n"
    got = await deliver(cfg, parse_address("nobody@example.org"), data)
    assert [(d.account, d.mailbox) for d in got] == [("piet", "Catchall")]
    assert got[0].message.message_id == "one@x.example" and got[0].message.subject_base == "hello"
    got = await deliver(cfg, parse_address("jan@example.org"), b"List-Id: <dev.lists.example>\r\n\r\n" + b"x" * 1000)
    assert got[0].mailbox == "Lists/dev"
    with pytest.raises(QuotaExceeded):
        await deliver(cfg, parse_address("jan@example.org"), b"Subject: big\r\n\r\n" + b"x" * 2500)
    acc = await open_config_account(cfg, "jan")
    try:
        assert {m.name for m in await acc.mailboxes()} >= {"Inbox", "Sent", "Lists", "Lists/dev"}
        await acc.check_consistency()
    finally:
        await acc.close()


def test_message_info_uses_headers() -> None:
    data = b"Subject: =?utf-8?q?Re=3A_Caf=C3=A9?=\r\nMessage-ID: <a@B.example>\r\nReferences: <r1@x> <r2@x>\r\nIn-Reply-To: <r2@x>\r\n\r\nbody"
    info = message_info(data)
    assert info.message_id == "a@b.example"
    assert info.subject_base == "café" and info.is_response
    assert info.referenced_ids[-1] == "r2@x"
    assert info.parsed_json


def test_disabled_domain_refuses_temporarily(cfg: Config) -> None:
    from mox.config import edit
    from mox.store.deliver import DomainDisabled

    cfg = edit.domain_disabled(cfg, "example.org", True)
    with pytest.raises(DomainDisabled, match="temporarily disabled"):
        accounts(cfg, "jan@example.org")


def test_postmaster_addresses_reach_the_postmaster(cfg: Config) -> None:
    from mox.store.deliver import postmaster_recipient

    pm = postmaster_recipient(cfg)
    assert (pm.account, pm.destination.Mailbox) == ("mox", "Inbox")
    # A domain without its own postmaster address: the global postmaster, not the catchall.
    assert accounts(cfg, "postmaster@example.org") == ["mox"]
    assert accounts(cfg, "PostMaster@strict.example") == ["mox"]
    assert accounts(cfg, "postmaster@localhost") == ["mox"]  # the host name


async def test_concurrent_deliveries_opening_and_closing_the_account(cfg: Config) -> None:
    """Each delivery opens and closes the account; a close must never overlap a new open (orphan cleanup)."""
    import asyncio

    data = [f"Subject: m{i}\r\nMessage-ID: <{i}@x>\r\n\r\nbody {i}\r\n".encode() for i in range(60)]
    results = await asyncio.gather(*(deliver(cfg, parse_address("piet@example.org"), d) for d in data))
    assert len(results) == 60
    acc = await open_config_account(cfg, "piet")
    try:
        msgs = await acc.messages("Inbox")
        assert sorted(acc.read_message(m) for m in msgs) == sorted(data)
    finally:
        await acc.close()


async def test_open_account_takes_changed_quota(cfg: Config, tmp_path: Path) -> None:
    """An account held open (an IMAP session) enforces the quota of the current configuration: a reload
    applies it at once, and so does the next delivery's open."""
    held = await open_config_account(cfg, "jan")
    try:
        assert held.quota == 3000
        big = b"Subject: big\r\n\r\n" + b"x" * 2500
        with pytest.raises(QuotaExceeded):
            await deliver(cfg, parse_address("jan@example.org"), big + big)
        d = tmp_path / "config" / "domains.conf"
        d.write_text(d.read_text().replace("QuotaMessageSize: 3000", "QuotaMessageSize: 100000"))
        new = reload_dynamic(cfg)
        apply_config_to_open_accounts(new)
        assert held.quota == 100000
        await held.add_message("Inbox", big + big)
        d.write_text(d.read_text().replace("QuotaMessageSize: 100000", "QuotaMessageSize: 20"))
        newer = reload_dynamic(new)
        # No explicit apply: opening for the delivery takes the configured quota.
        with pytest.raises(QuotaExceeded):
            await deliver(newer, parse_address("jan@example.org"), b"Subject: small\r\n\r\nhi\r\n")
        assert held.quota == 20
    finally:
        await held.close()


def test_host_tlsrpt_address_at_unconfigured_host_name(tmp_path: Path) -> None:
    """The HostTLSRPT address is at the host name, which is usually not a configured domain (mail.example.org
    for example.org): it resolves to its account and mailbox; other addresses at the host name stay unknown."""
    conf = write_local_config(tmp_path, ips=["127.0.0.1"])
    text = conf.read_text().replace("Hostname: localhost", "Hostname: mail.example.net")
    text += "HostTLSRPT:\n\tAccount: mox\n\tMailbox: TLSRPT\n\tLocalpart: tls-reports\n"
    conf.write_text(text)
    cfg = load_config(conf)
    assert "mail.example.net" not in cfg.dynamic.Domains
    got = resolve_recipient(cfg, parse_address("TLS-Reports@mail.example.net"))
    assert [(r.account, r.destination.Mailbox, r.address) for r in got] == [("mox", "TLSRPT", "tls-reports@mail.example.net")]
    with pytest.raises(UnknownRecipient):
        resolve_recipient(cfg, parse_address("other@mail.example.net"))
