"""IMAP commands of the authenticated state: SELECT/EXAMINE (with CONDSTORE and QRESYNC),
CREATE (with special-use), DELETE, RENAME, (UN)SUBSCRIBE, LIST/LSUB (LIST-EXTENDED,
LIST-STATUS, SPECIAL-USE), STATUS (STATUS=SIZE, HIGHESTMODSEQ, APPENDLIMIT) and
APPEND (MULTIAPPEND, atomic)."""

from __future__ import annotations

import re

from mox.imapproto import parse as p
from mox.imapproto import write as w
from mox.imapproto.numset import NumSet
from mox.store.account import ANNOTATIONS_MAX_SIZE, AnnotationsTooLarge, NewMessage, TooManyAnnotations
from mox.store.deliver import account_quota
from mox.store.model import (
    Flags,
    Mailbox,
    MailboxExists,
    SpecialUse,
    StoreError,
    parse_flag_names,
)

from . import bulk
from .session import APPEND_LIMIT, Bad, No, Result, Session, imap_name, store_name

SYSTEM_FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Forwarded", "$Junk", "$NotJunk", "$Phishing", "$MDNSent"]


async def ensure_condstore(sess: Session) -> None:
    """Turn CONDSTORE on for a CONDSTORE-enabling command (RFC 7162 section 3.1); with a
    mailbox selected, tell the client its HIGHESTMODSEQ (RFC 7162 section 3.1.2.1)."""
    if sess.condstore:
        return
    sess.enabled.add("CONDSTORE")
    if sess.mailbox is not None:
        mb = await sess.acc().mailbox(sess.mailbox)
        sess.send(w.untagged(f"OK [HIGHESTMODSEQ {mb.modseq}] after condstore-enabling command"))


def parse_flags(names: list[str]) -> tuple[Flags, list[str]]:
    """System flags and keywords of STORE and APPEND; unknown system flags (\\Recent too) are BAD."""
    flags, keywords = parse_flag_names(names)
    bad = [k for k in keywords if k.startswith("\\")]
    if bad:
        raise Bad(f"cannot set system flag {bad[0]}")
    return flags, keywords


async def _mailbox(sess: Session, name: str, code: str = "NONEXISTENT") -> Mailbox:
    try:
        return await sess.acc().mailbox(store_name(name))
    except StoreError:
        raise No("no such mailbox", code) from None


async def select(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Select)
    acc = sess.acc()
    if cmd.qresync is not None and not sess.qresync:
        # RFC 7162 section 3.2.5: QRESYNC parameter without ENABLE QRESYNC.
        raise Bad("QRESYNC not enabled")
    if cmd.qresync is not None and cmd.qresync.seq_match is not None and sess.uidonly:
        raise Bad("sequence match data not allowed with UIDONLY", "UIDREQUIRED")
    if sess.mailbox is not None:
        # RFC 9051 section 6.3.2, RFC 7162 section 3.2.11: the previous mailbox is closed.
        sess.send(w.untagged("OK [CLOSED] previous mailbox closed"))
    sess.mailbox = None
    sess.uids = []
    sess.search_result = []
    mb = await _mailbox(sess, cmd.mailbox)
    if cmd.condstore or cmd.qresync is not None:
        sess.enabled.add("CONDSTORE")
    if sess.sub is not None:
        sess.sub.pending()  # Older changes are part of the state read now.
    qr = cmd.qresync if cmd.qresync is not None and cmd.qresync.uidvalidity == mb.uidvalidity else None
    # Just the UIDs (and the first unseen, and for QRESYNC the changed messages): a large mailbox
    # is selected without reading all its messages.
    mb, uids, unseen_uid, changed = await acc.mailbox_uids(
        mb.name, first_unseen=not sess.rev2, changed_since=qr.modseq if qr is not None else None
    )
    sess.mailbox, sess.mailbox_id, sess.uidvalidity = mb.name, mb.id, mb.uidvalidity
    sess.modseq = mb.modseq
    sess.readonly = cmd.readonly
    sess.uids = uids
    flags = SYSTEM_FLAGS + mb.keywords
    sess.send(w.untagged(b"FLAGS " + w.flag_list(flags)))
    sess.send(w.untagged(f"{len(uids)} EXISTS"))
    if not sess.rev2:
        sess.send(w.untagged("0 RECENT"))
        if unseen_uid:
            sess.send(w.untagged(f"OK [UNSEEN {sess.seq_of(unseen_uid)}] first unseen"))
    sess.send(w.untagged(f"OK [UIDVALIDITY {mb.uidvalidity}] x"))
    sess.send(w.untagged(f"OK [UIDNEXT {mb.uidnext}] x"))
    perm = [] if cmd.readonly else [*flags, "\\*"]
    sess.send(w.untagged(b"OK [PERMANENTFLAGS " + w.flag_list(perm) + b"] x"))
    if sess.rev2:
        # RFC 9051 section 6.3.2: a LIST response with the mailbox name.
        sess.send(b"* LIST () \"/\" " + sess.mailbox_out(mb.name) + b"\r\n")
    if sess.condstore:
        sess.send(w.untagged(f"OK [HIGHESTMODSEQ {mb.modseq}] x"))
    if qr is not None:
        # RFC 7162 section 3.2.5.1: expunged UIDs the client may know, then changed messages.
        known = qr.known_uids
        top = mb.uidnext - 1
        vanished = [r[0] for r in changed if r[7] and (known is None or known.contains(r[0], top))]
        if vanished:
            sess.send(w.vanished(vanished, earlier=True))
        out: list[bytes] = []
        for uid, fl, kwj, _, _, modseq, _, expunged in changed:
            seq = sess.seq_of(uid)
            if expunged or not seq:
                continue
            if sess.uidonly:
                out.append(b"* %d UIDFETCH (FLAGS %s MODSEQ (%d))\r\n" % (uid, bulk.flag_list(fl, kwj), modseq))
            else:
                out.append(b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n" % (seq, uid, bulk.flag_list(fl, kwj), modseq))
            if len(out) >= bulk.WRITE_BATCH:
                sess.send(b"".join(out))
                out.clear()
                await sess.drain()
        sess.send(b"".join(out))
    return ("examine done", "READ-ONLY") if cmd.readonly else ("select done", "READ-WRITE")


_USE_ATTRS = {su.value.upper(): su for su in SpecialUse}


async def create(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Create)
    name = store_name(cmd.mailbox.rstrip("/"))
    if name == "Inbox":
        raise No("cannot create Inbox", "ALREADYEXISTS")
    su: SpecialUse | None = None
    if cmd.special_use:
        # RFC 6154 section 3: one special-use attribute that we support.
        if len(cmd.special_use) > 1:
            raise No("only one special-use attribute per mailbox", "USEATTR")
        su = _USE_ATTRS.get(cmd.special_use[0].upper())
        if su is None:
            raise No(f"special-use attribute {cmd.special_use[0]} not supported", "USEATTR")
    try:
        await sess.acc().mailbox_create(name, special_use=su, source=sess)
    except MailboxExists as x:
        raise No(str(x), "ALREADYEXISTS") from None
    except StoreError as x:
        raise No(str(x), "CANNOT") from None
    return "create done", None


async def delete(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Mailbox)
    name = store_name(cmd.mailbox)
    if name == "Inbox":
        raise No("cannot delete Inbox", "CANNOT")
    names = [m.name for m in await sess.acc().mailboxes()]
    if name not in names:
        raise No("no such mailbox", "NONEXISTENT")
    if any(n.startswith(name + "/") for n in names):
        # RFC 9051 section 6.3.5 would keep it as \Noselect; upstream refuses too.
        raise No("mailbox has children, delete them first", "HASCHILDREN")
    if name == sess.mailbox:
        raise No("cannot delete the selected mailbox", "INUSE")
    await sess.acc().mailbox_delete(name, source=sess)
    return "delete done", None


async def rename(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Rename)
    old, new = store_name(cmd.old), store_name(cmd.new)
    if old == "Inbox" or new == "Inbox":
        raise No("renaming Inbox is not supported", "CANNOT")
    try:
        await sess.acc().mailbox_rename(old, new)
    except MailboxExists as x:
        raise No(str(x), "ALREADYEXISTS") from None
    except StoreError as x:
        raise No(str(x), "NONEXISTENT" if "not exist" in str(x) else "CANNOT") from None
    return "rename done", None


async def subscribe(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Mailbox)
    try:
        await sess.acc().subscribe(store_name(cmd.mailbox), cmd.name == "SUBSCRIBE", source=sess)
    except StoreError as x:
        raise No(str(x), "CANNOT") from None
    return f"{cmd.name.lower()} done", None


def _pattern(ref: str, pat: str) -> re.Pattern[str]:
    # RFC 9051 section 6.3.9: "*" matches anything, "%" anything but the hierarchy delimiter.
    full = store_name(ref + pat) if (ref + pat)[:5].upper() == "INBOX" else ref + pat
    out = ""
    for ch in full:
        out += ".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch)
    return re.compile(out + r"\Z", re.DOTALL)


_SELECTION = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_RETURN = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS", "METADATA"}


async def list_(sess: Session, cmd: p.Command) -> Result:
    """LIST (RFC 9051 section 6.3.9) with RFC 5258 selection/return options, RFC 5819
    RETURN (STATUS ...) and RFC 6154 special-use; LSUB (RFC 3501 section 6.3.9)."""
    assert isinstance(cmd, p.List)
    acc = sess.acc()
    lsub = cmd.name == "LSUB"
    done = f"{cmd.name.lower()} done"
    sel, ret = set(cmd.selection), set(cmd.return_options)
    for o in sel:
        if o not in _SELECTION:
            raise Bad(f"unknown list selection option {o}")
    for o in ret:
        if o not in _RETURN:
            raise Bad(f"unknown list return option {o}")
    if "RECURSIVEMATCH" in sel and not sel & {"SUBSCRIBED", "SPECIAL-USE"}:
        # RFC 5258 section 3.1: RECURSIVEMATCH alone is an error.
        raise Bad("RECURSIVEMATCH needs another selection option")
    if cmd.patterns == [""]:
        # RFC 9051 section 6.3.9: the hierarchy delimiter and root name.
        sess.send(w.list_response(["\\Noselect"], "/", "", lsub=lsub))
        return done, None
    mbs = await acc.mailboxes()
    subs = set(await acc.subscriptions())
    byname = {m.name: m for m in mbs}
    pats = [_pattern(cmd.reference, x) for x in cmd.patterns]
    want_subscribed = "SUBSCRIBED" in sel or "SUBSCRIBED" in ret
    names = set(byname)
    if lsub or "SUBSCRIBED" in sel:
        names |= subs
    recursive = "RECURSIVEMATCH" in sel
    status_items = cmd.return_status or []
    for it in status_items:
        if it not in _STATUS_ITEMS:
            raise Bad(f"unsupported STATUS item {it}")
    if status_items:
        await _maybe_condstore(sess, status_items)
    meta_entries = [_check_entry(e) for e in cmd.return_metadata or []]
    for name in sorted(names):
        if not any(pt.match(name) for pt in pats):
            continue
        m = byname.get(name)
        subscribed = name in subs
        childinfo: list[str] = []
        if lsub and not subscribed:
            continue
        if "SUBSCRIBED" in sel and not subscribed:
            if not (recursive and any(s.startswith(name + "/") for s in subs)):
                continue
            childinfo.append("SUBSCRIBED")
        if "SPECIAL-USE" in sel and (m is None or m.special_use is None):
            if not (recursive and any(n.startswith(name + "/") and x.special_use for n, x in byname.items())):
                continue
            childinfo.append("SPECIAL-USE")
        attrs: list[str] = []
        if m is None:
            attrs.append("\\Noselect" if lsub else "\\NonExistent")
        elif not lsub:
            attrs.append("\\HasChildren" if any(n.startswith(name + "/") for n in byname) else "\\HasNoChildren")
        if want_subscribed and subscribed and not lsub:
            attrs.append("\\Subscribed")
        if m is not None and m.special_use is not None:
            attrs.append(m.special_use.value)
        ext = [b'("CHILDINFO" (' + b" ".join(w.string(c) for c in childinfo) + b"))"] if childinfo else []
        line = b"* LSUB " if lsub else b"* LIST "
        line += w.flag_list(attrs) + b' "/" ' + sess.mailbox_out(name)
        if ext:
            line += b" " + b" ".join(ext)
        sess.send(line + b"\r\n")
        if status_items and m is not None:
            ds = await _deleted_storage(sess, m) if "DELETED-STORAGE" in status_items else 0
            sess.send(w.status_response(imap_name(name), _status_values(sess, m, status_items, ds), sess.utf8))
        if meta_entries and m is not None:
            # RFC 9590 section 3: a METADATA response with the requested entries that are set.
            ann = await acc.annotations(name)
            vals: list[tuple[str, bytes | None]] = [(e, ann[e]) for e in meta_entries if e in ann]
            if vals:
                sess.send(w.metadata(imap_name(name), vals, sess.utf8))
    return done, None


_STATUS_ITEMS = {
    "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT", "HIGHESTMODSEQ", "APPENDLIMIT",
    "DELETED-STORAGE",
}  # fmt: skip


async def _maybe_condstore(sess: Session, items: list[str]) -> None:
    if "HIGHESTMODSEQ" in items:
        # RFC 7162 section 3.1: STATUS HIGHESTMODSEQ is a CONDSTORE-enabling command.
        await ensure_condstore(sess)


async def _deleted_storage(sess: Session, mb: Mailbox) -> int:
    """RFC 9208 section 4.2.1 DELETED-STORAGE: what EXPUNGE would free, in units of 1024 octets
    like the STORAGE resource. Only read (one pass over the mailbox's rows) when asked for."""
    if not mb.counts.deleted:
        return 0
    size = sum(m.size for m in await sess.acc().messages_light(mb.name) if m.flags & Flags.DELETED)
    return (size + 1023) // 1024


def _status_values(sess: Session, mb: Mailbox, items: list[str], deleted_storage: int = 0) -> list[tuple[str, int]]:
    k = mb.counts
    values = {
        "MESSAGES": k.imap_count,
        "UIDNEXT": mb.uidnext,
        "UIDVALIDITY": mb.uidvalidity,
        "UNSEEN": k.unseen,
        "RECENT": 0,
        "DELETED": k.deleted,
        "SIZE": k.size,  # RFC 8438
        "HIGHESTMODSEQ": mb.modseq,
        "APPENDLIMIT": APPEND_LIMIT,  # RFC 7889 section 4
        "DELETED-STORAGE": deleted_storage,
    }
    return [(it, values[it]) for it in items]


async def status(sess: Session, cmd: p.Command) -> Result:
    """STATUS from the mailbox's kept counts: no messages are read."""
    assert isinstance(cmd, p.Status)
    mb = await _mailbox(sess, cmd.mailbox)
    for it in cmd.items:
        if it not in _STATUS_ITEMS:
            raise Bad(f"unsupported STATUS item {it}")
    await _maybe_condstore(sess, cmd.items)
    ds = await _deleted_storage(sess, mb) if "DELETED-STORAGE" in cmd.items else 0
    sess.send(w.status_response(imap_name(mb.name), _status_values(sess, mb, cmd.items, ds), sess.utf8))
    return "status done", None


async def append(sess: Session, cmd: p.Command) -> Result:
    """APPEND of one message, or several (MULTIAPPEND, RFC 3502): all are added or none."""
    assert isinstance(cmd, p.Append)
    acc = sess.acc()
    mb = await _mailbox(sess, cmd.mailbox, "TRYCREATE")
    parsed = [parse_flags(am.flags) for am in cmd.messages]  # All checked before any is added.
    for am in cmd.messages:
        if not am.data:
            raise Bad("empty message")
    if len(cmd.messages) == 1:
        am = cmd.messages[0]
        flags, keywords = parsed[0]
        m = await acc.add_message(
            mb.name, am.data, flags=flags, keywords=keywords,
            received=am.date_time.timestamp() if am.date_time else None, create_mailbox=False,
        )  # fmt: skip
        uids = [m.uid]
    else:
        items = [
            NewMessage(am.data, flags=f, keywords=k, received=am.date_time.timestamp() if am.date_time else None)
            for am, (f, k) in zip(cmd.messages, parsed, strict=True)
        ]
        uids = [m.uid for m in await acc.add_messages(mb.name, items, create_mailbox=False)]
    return "append done", f"APPENDUID {mb.uidvalidity} {NumSet.from_numbers(uids)}"


# QUOTA (RFC 9208): one quota root "" for the whole account, resource STORAGE in KiB.


async def _quota_line(sess: Session) -> bytes | None:
    # The configuration's current quota (an open account keeps the one it was opened with).
    limit = account_quota(sess.cfg, sess.account_name) if sess.account_name in sess.cfg.dynamic.Accounts else 0
    if limit <= 0:
        return None
    used = sum(mb.counts.size for mb in await sess.acc().mailboxes())
    # RFC 9208 section 5.1: units of 1024 octets, rounded up.
    return w.quota("", [("STORAGE", (used + 1023) // 1024, (limit + 1023) // 1024)])


async def getquotaroot(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Mailbox)
    mb = await _mailbox(sess, cmd.mailbox)
    sess.send(w.quotaroot(imap_name(mb.name), [""], sess.utf8))
    line = await _quota_line(sess)
    if line is not None:
        sess.send(line)
    return "getquotaroot done", None


async def getquota(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.GetQuota)
    if cmd.root != "":
        raise No("unknown quota root", "NONEXISTENT")
    line = await _quota_line(sess)
    if line is not None:
        sess.send(line)
    return "getquota done", None


# METADATA (RFC 5464) and LIST-METADATA (RFC 9590). /private/ and /shared/ entries are
# kept alike (one user per account, no ACLs), as upstream.


def _check_entry(name: str) -> str:
    """An entry name of RFC 5464 section 3.2, lower-cased (entry names compare case-insensitively)."""
    low = name.lower()
    if not (low.startswith("/private/") or low.startswith("/shared/")):
        raise No("only /private/* and /shared/* entry names allowed")
    if (
        low.endswith("/") or "//" in low or "*" in low or "%" in low
        or not low.isascii() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in low)
    ):  # fmt: skip
        raise Bad(f"invalid entry name {name!r}")
    parts = low.split("/")
    if parts[2] == "vendor" and len(parts) < 5:
        # RFC 5464 section 3.2: /private/vendor/<vendor-token>/... at least.
        raise No("vendor entry names need a vendor token and a name")
    return low


async def _annotation_mailbox(sess: Session, name: str) -> str | None:
    """None for the server ("" in the command), else the store's mailbox name (which must exist)."""
    if name == "":
        return None
    return (await _mailbox(sess, name)).name


async def getmetadata(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.GetMetadata)
    mbname = await _annotation_mailbox(sess, cmd.mailbox)
    wanted = [_check_entry(e) if e.lower() not in ("/private", "/shared") else e.lower() for e in cmd.entries]
    values = await sess.acc().annotations(mbname)
    depth = cmd.depth or "0"
    out: list[tuple[str, bytes | None]] = []
    longest = -1
    for k, v in values.items():
        ok = False
        for e in wanted:
            if k == e:
                ok = True
            elif depth != "0" and k.startswith(e + "/"):
                # RFC 5464 section 4.2.2: DEPTH 1 is direct children, infinity all below.
                ok = depth == "infinity" or "/" not in k[len(e) + 1 :]
            if ok:
                break
        if not ok:
            continue
        if cmd.maxsize is not None and len(v) > cmd.maxsize:
            # RFC 5464 section 4.2.1: left out, and the largest such size reported.
            longest = max(longest, len(v))
            continue
        out.append((k, v))
    if out:
        sess.send(w.metadata(imap_name(mbname) if mbname else "", out, sess.utf8))
    if longest >= 0:
        return "getmetadata done", f"METADATA LONGENTRIES {longest}"
    return "getmetadata done", None


async def setmetadata(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.SetMetadata)
    mbname = await _annotation_mailbox(sess, cmd.mailbox)
    values = [(_check_entry(k), v) for k, v in cmd.values]
    try:
        await sess.acc().set_annotations(mbname, values, source=sess)
    except TooManyAnnotations as x:
        raise No(str(x), "METADATA TOOMANY") from None
    except AnnotationsTooLarge as x:
        raise No(str(x), f"METADATA MAXSIZE {ANNOTATIONS_MAX_SIZE}") from None
    return "setmetadata done", None
