"""NOTIFY (RFC 5465): STATUS for other mailboxes, LIST for mailbox and subscription changes,
SELECTED with FETCH attributes for new messages, NOTIFY NONE, bad event groups."""

from __future__ import annotations

import re

from imaphelpers import SIMPLE_MSG, Client, append, connect

from mox.config.load import Config
from mox.store.deliver import open_config_account
from mox.store.model import Flags


async def test_notify_other_mailboxes(port: int, client: Client, cfg: Config) -> None:
    await client.cmd("CREATE Other")
    await client.cmd("SELECT INBOX")
    r = await client.cmd("NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS BODY.PEEK[HEADER.FIELDS (Subject)]) MessageExpunge)) "
                         "(MAILBOXES Other (MessageNew MessageExpunge FlagChange)) (PERSONAL (MailboxName SubscriptionChange))")
    assert r[0] == b"* STATUS Other (MESSAGES 0 UIDNEXT 1 UIDVALIDITY " + r[0].split(b"UIDVALIDITY ")[1].split(b" ")[0] + b" UNSEEN 0)\r\n"
    assert b" OK " in r[-1]
    acc = await open_config_account(cfg, "mox")
    try:
        await acc.add_message("Other", SIMPLE_MSG)
        await acc.set_flags("Other", [1], add=Flags.SEEN)
        await acc.add_message("Inbox", SIMPLE_MSG)
        await acc.set_flags("Inbox", [1], add=Flags.FLAGGED)  # SELECTED group has no FlagChange.
        await acc.mailbox_create("New")
        await acc.mailbox_rename("New", "Newer")
        await acc.subscribe("New", False)
    finally:
        await acc.close()
    r = await client.cmd("NOOP")
    lines = r[:-1]
    assert b'* LIST () "/" New\r\n' in lines
    assert b'* LIST () "/" Newer ("OLDNAME" (New))\r\n' in lines
    assert b'* LIST (\\Subscribed) "/" New\r\n' in lines and lines.count(b'* LIST () "/" New\r\n') == 2
    assert any(re.fullmatch(rb"\* STATUS Other \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 0\)\r\n", x) for x in lines), lines
    assert b"* 1 EXISTS\r\n" in lines
    assert b"* 1 FETCH (UID 1 FLAGS (\\Flagged) BODY[HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: simple\r\n\r\n)\r\n" in lines
    assert b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n" not in lines
    # NOTIFY NONE: nothing about other mailboxes any more.
    r = await client.cmd("NOTIFY NONE")
    assert b" OK " in r[-1]
    other = await connect(port)
    await append(other, SIMPLE_MSG, mailbox="Other")
    r = await client.cmd("NOOP")
    assert len(r) == 1 and b" OK " in r[0]


async def test_notify_idle_without_selected_mailbox(client: Client, cfg: Config) -> None:
    await client.cmd("NOTIFY SET (INBOXES (MessageNew MessageExpunge))")
    client.send(b"i IDLE\r\n")
    assert (await client.line()).startswith(b"+ ")
    acc = await open_config_account(cfg, "mox")
    try:
        await acc.add_message("Inbox", SIMPLE_MSG)
    finally:
        await acc.close()
    assert (await client.line()).startswith(b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 ")
    client.send(b"DONE\r\n")
    assert await client.line() == b"i OK idle done\r\n"


async def test_notify_bad_groups(client: Client) -> None:
    for bad, what in [
        ("NOTIFY SET (PERSONAL (MessageNew))", b" BAD "),
        ("NOTIFY SET (PERSONAL (FlagChange))", b" BAD "),
        ("NOTIFY SET (PERSONAL (AnnotationChange))", b"NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange)]"),
        ("NOTIFY SET (SELECTED (MailboxName))", b" BAD "),
        ("NOTIFY SET (SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED (MessageNew MessageExpunge))", b" BAD "),
        ("NOTIFY SET (SELECTED (MessageNew (BODY[]) MessageExpunge))", b" BAD "),
        ("NOTIFY SET (BOGUS (MessageNew MessageExpunge))", b" BAD "),
        ("NOTIFY SET (PERSONAL (MessageNew MessageExpunge)", b" BAD "),
    ]:
        r = await client.cmd(bad)
        assert what in r[-1], (bad, r)


async def test_notify_metadata_changes(port: int, client: Client, cfg: Config) -> None:
    """RFC 5465 sections 5.6/5.7: METADATA responses (entry names, no values) for metadata set by
    another session or by the store, per the group's mailbox filter; not for the session's own changes."""
    await client.cmd("CREATE Other")
    await client.cmd("CREATE Ignored")
    r = await client.cmd("NOTIFY SET (MAILBOXES Other (MailboxMetadataChange)) (PERSONAL (ServerMetadataChange))")
    assert b" OK " in r[-1], r
    other = await connect(port)
    r = await other.cmd('SETMETADATA Other (/private/comment "first")')
    assert b" OK " in r[-1], r
    await other.cmd('SETMETADATA Ignored (/private/comment "not reported")')
    await other.cmd('SETMETADATA "" (/private/comment "server wide")')
    acc = await open_config_account(cfg, "mox")
    try:
        await acc.set_annotations("Other", [("/private/comment", None)])
        await acc.set_annotations("Other", [("/private/comment", None)])  # Nothing left to remove: no change.
    finally:
        await acc.close()
    r = await client.cmd("NOOP")
    lines = r[:-1]
    assert lines == [
        b"* METADATA Other /private/comment\r\n",
        b'* METADATA "" /private/comment\r\n',
        b"* METADATA Other /private/comment\r\n",
    ], lines
    # The session's own change is not echoed back.
    r = await client.cmd('SETMETADATA Other (/private/comment "mine")')
    assert r == [r[-1]] and b" OK " in r[-1], r
    r = await client.cmd("NOOP")
    assert len(r) == 1, r
