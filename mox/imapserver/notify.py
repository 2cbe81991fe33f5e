"""NOTIFY (RFC 5465): which changes of which mailboxes a session is told about, unasked.

Without NOTIFY, a session hears only about its selected mailbox. After
``NOTIFY SET``, changes in other mailboxes matching an event group are
reported as STATUS responses (MessageNew, MessageExpunge, FlagChange), LIST
responses (MailboxName, SubscriptionChange), METADATA responses with the entry
name (MailboxMetadataChange, ServerMetadataChange); for the selected mailbox, a
group with filter SELECTED decides whether flag changes are sent and which
FETCH attributes accompany new messages. ``NOTIFY NONE`` stops reports about
other mailboxes (the selected mailbox keeps its EXISTS/EXPUNGE, which IMAP
requires). A subscriber that fell behind gets ``OK [NOTIFICATIONOVERFLOW]``
and notifications stop (RFC 5465 section 5.8).

The events of the selected mailbox themselves are reported by
:func:`mox.imapserver.server.flush`; this module handles the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mox.imapproto import parse as p
from mox.imapproto import write as w
from mox.store import events as ev
from mox.store.model import Mailbox

from .session import Bad, No, Result, Session, imap_name, store_name

MESSAGE_EVENTS = {"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE"}
MAILBOX_EVENTS = {"MAILBOXNAME", "SUBSCRIPTIONCHANGE", "MAILBOXMETADATACHANGE", "SERVERMETADATACHANGE"}
# AnnotationChange (message annotations, RFC 5257) is not supported, as upstream.
_BADEVENT = (
    "BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange)"
)


@dataclass
class NotifyState:
    groups: list[p.NotifyGroup]
    subscribed: set[str] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)
    """Mailbox names by id, for events that only carry the id."""

    def selected_group(self) -> p.NotifyGroup | None:
        return next((g for g in self.groups if g.filter in ("SELECTED", "SELECTED-DELAYED")), None)

    def server_event(self, event: str) -> bool:
        """Whether a server-wide event (ServerMetadataChange) is to be reported: it concerns no
        mailbox, so any non-SELECTED group asking for it counts, whatever its mailbox filter."""
        return any(
            g.filter not in ("SELECTED", "SELECTED-DELAYED") and g.events is not None and event in g.events for g in self.groups
        )

    def matches(self, sess: Session, name: str, event: str) -> bool:
        """Whether event in mailbox name (store name) is to be reported, for a non-selected mailbox."""
        if name == sess.mailbox and self.selected_group() is not None:
            return False  # The SELECTED group is the one for the selected mailbox.
        for g in self.groups:
            if g.filter in ("SELECTED", "SELECTED-DELAYED"):
                continue
            if _filter_matches(self, g, name):
                # The first matching group decides (RFC 5465 section 6).
                return g.events is not None and event in g.events
        return False


def _filter_matches(st: NotifyState, g: p.NotifyGroup, name: str) -> bool:
    if g.filter == "PERSONAL":
        return True
    if g.filter == "INBOXES":
        return name == "Inbox" or name.startswith("Inbox/")
    if g.filter == "SUBSCRIBED":
        return name in st.subscribed
    targets = [store_name(n) for n in g.mailboxes]
    if g.filter == "SUBTREE":
        return any(name == t or name.startswith(t + "/") for t in targets)
    return name in targets  # MAILBOXES


def _check(cmd: p.Notify) -> None:
    assert cmd.groups is not None
    selected = 0
    for g in cmd.groups:
        events = set(g.events or [])
        bad = events - MESSAGE_EVENTS - MAILBOX_EVENTS
        if bad:
            # RFC 5465 section 3.1: NO [BADEVENT] lists what we support.
            raise No(f"unsupported event {sorted(bad)[0]}", _BADEVENT)
        # RFC 5465 section 5: MessageNew and MessageExpunge go together; FlagChange needs both.
        if ("MESSAGENEW" in events) != ("MESSAGEEXPUNGE" in events):
            raise Bad("MessageNew and MessageExpunge must be given together")
        if "FLAGCHANGE" in events and "MESSAGENEW" not in events:
            raise Bad("FlagChange needs MessageNew and MessageExpunge")
        if g.filter in ("SELECTED", "SELECTED-DELAYED"):
            selected += 1
            if events - MESSAGE_EVENTS:
                raise Bad("SELECTED takes only message events")
        for a in g.fetch_atts:
            if a.name in ("RFC822", "RFC822.TEXT") or (a.name in ("BODY", "BINARY") and a.section is not None and not a.peek):
                # RFC 5465 section 5.1: the fetch attributes must not change \Seen.
                raise Bad("fetch attributes of MessageNew must not set \\Seen")
    if selected > 1:
        raise Bad("only one SELECTED or SELECTED-DELAYED group")


def _status_line(sess: Session, mb: Mailbox) -> bytes:
    k = mb.counts
    items = [("MESSAGES", k.imap_count), ("UIDNEXT", mb.uidnext), ("UIDVALIDITY", mb.uidvalidity), ("UNSEEN", k.unseen)]
    if sess.condstore:
        items.append(("HIGHESTMODSEQ", mb.modseq))
    return w.status_response(imap_name(mb.name), items, sess.utf8)


async def notify(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Notify)
    if cmd.groups is None:
        sess.notify = None
        return "notify done", None
    _check(cmd)
    acc = sess.acc()
    st = NotifyState(cmd.groups, set(await acc.subscriptions()))
    mbs = await acc.mailboxes()
    st.names = {m.id: m.name for m in mbs}
    sess.notify = st
    if cmd.status:
        # RFC 5465 section 3.1: the current STATUS of mailboxes with message events.
        for mb in mbs:
            if mb.name != sess.mailbox and st.matches(sess, mb.name, "MESSAGENEW"):
                sess.send(_status_line(sess, mb))
    return "notify done", None


async def report(sess: Session, batches: list[ev.Batch]) -> None:
    """Report changes of non-selected mailboxes (and mailbox/subscription changes) per NOTIFY."""
    st = sess.notify
    if st is None:
        return
    acc = sess.acc()
    status_ids: dict[int, None] = {}
    lines: list[bytes] = []
    for b in batches:
        for c in b.changes:
            if isinstance(c, ev.MailboxAdded):
                st.names[c.mailbox_id] = c.name
                if st.matches(sess, c.name, "MAILBOXNAME"):
                    lines.append(b"* LIST () \"/\" " + sess.mailbox_out(c.name) + b"\r\n")
            elif isinstance(c, ev.MailboxRemoved):
                st.names.pop(c.mailbox_id, None)
                if st.matches(sess, c.name, "MAILBOXNAME"):
                    lines.append(b"* LIST (\\NonExistent) \"/\" " + sess.mailbox_out(c.name) + b"\r\n")
            elif isinstance(c, ev.MailboxRenamed):
                st.names[c.mailbox_id] = c.new_name
                if st.matches(sess, c.new_name, "MAILBOXNAME") or st.matches(sess, c.old_name, "MAILBOXNAME"):
                    # RFC 5465 section 5.4: LIST with OLDNAME.
                    old = w.mailbox(imap_name(c.old_name), sess.utf8)
                    lines.append(b"* LIST () \"/\" " + sess.mailbox_out(c.new_name) + b' ("OLDNAME" (' + old + b"))\r\n")
            elif isinstance(c, ev.SubscriptionAdded | ev.SubscriptionRemoved):
                added = isinstance(c, ev.SubscriptionAdded)
                if added:
                    st.subscribed.add(c.name)
                else:
                    st.subscribed.discard(c.name)
                if st.matches(sess, c.name, "SUBSCRIPTIONCHANGE"):
                    attrs = b"(\\Subscribed)" if added else b"()"
                    lines.append(b"* LIST " + attrs + b' "/" ' + sess.mailbox_out(c.name) + b"\r\n")
            elif isinstance(c, ev.AnnotationChanged):
                # RFC 5465 sections 5.6 and 5.7: an unsolicited METADATA response naming the entry,
                # without its value (RFC 5464 section 4.4.2), whether or not METADATA was used.
                if c.mailbox_id == 0:
                    ok = st.server_event("SERVERMETADATACHANGE")
                else:
                    ok = st.matches(sess, c.name, "MAILBOXMETADATACHANGE")
                if ok:
                    mbox = sess.mailbox_out(c.name) if c.mailbox_id else b'""'
                    lines.append(b"* METADATA " + mbox + b" " + w.astring(c.key) + b"\r\n")
            elif isinstance(c, ev.MessageAdded | ev.MessagesRemoved | ev.FlagsChanged):
                if c.mailbox_id == sess.mailbox_id and sess.mailbox is not None:
                    continue
                name = st.names.get(c.mailbox_id)
                if name is None:
                    st.names = {m.id: m.name for m in await acc.mailboxes()}
                    name = st.names.get(c.mailbox_id)
                if name is None:
                    continue
                event = "FLAGCHANGE" if isinstance(c, ev.FlagsChanged) else "MESSAGENEW"
                if st.matches(sess, name, event):
                    status_ids[c.mailbox_id] = None
    for line in lines:
        sess.send(line)
    if status_ids:
        byid = {m.id: m for m in await acc.mailboxes()}
        for mid in status_ids:
            mb = byid.get(mid)
            if mb is not None:
                sess.send(_status_line(sess, mb))


def overflow(sess: Session) -> None:
    """RFC 5465 section 5.8: we lost track; say so and stop notifying."""
    if sess.notify is not None:
        sess.notify = None
        sess.send(w.untagged("OK [NOTIFICATIONOVERFLOW] too many changes, notifications stopped"))
