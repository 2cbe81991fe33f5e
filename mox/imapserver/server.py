"""The IMAP server driver: IMAP4rev1 (RFC 3501) over mox.imapproto and mox.store.

A first subset, advertising only what works: LITERAL+ (RFC 7888), IDLE
(RFC 2177), UNSELECT (RFC 3691), UIDPLUS (RFC 4315), MOVE (RFC 6851),
SASL-IR (RFC 4959) and AUTH=PLAIN.

The session keeps its own list of UIDs for the selected mailbox, changed only
when it tells the client (RFC 3501 section 7.4.1): changes from the account's
change bus are reported at the end of commands, except after non-UID FETCH,
STORE and SEARCH, where sequence numbers must not shift under the client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import datetime
import ipaddress
import re
import ssl
from dataclasses import dataclass, field

from mox import mlog
from mox.config.load import Config
from mox.imapproto import parse as p
from mox.imapproto import write as w
from mox.imapproto.numset import NumSet
from mox.imapproto.reader import CommandReader, CommandReceived, NeedContinuation, ParseFailed, RawLine
from mox.message.encodedword import decode_words
from mox.message.envelope import Envelope, parse_date
from mox.message.headers import unfold
from mox.message.part import Part
from mox.ratelimit import connection_rate_limiter, connections_limiter, failed_auth_limiter
from mox.serve.services import ConnContext
from mox.store import events as ev
from mox.store.account import Account
from mox.store.auth import LoginDisabled, LoginFailed, authenticate_plain
from mox.store.deliver import open_config_account
from mox.store.model import Flags, Message, QuotaExceeded, StoreError, flag_names, parse_flag_names

log = mlog.new("imapserver")

IDLE_TIMEOUT = 30 * 60.0
"""RFC 3501 section 5.4: an autologout timer of at least 30 minutes."""

READ_SIZE = 64 * 1024

_conn_rate = connection_rate_limiter()
_conns = connections_limiter()
_auth_fail = failed_auth_limiter()

_SYSTEM_FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Forwarded", "$Junk", "$NotJunk", "$Phishing", "$MDNSent"]


class _Bad(Exception):
    """Reply BAD with this text."""


class _No(Exception):
    """Reply NO with this text (and optional response code)."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.code = code


class _Closed(Exception):
    """The connection ends (LOGOUT, timeout, EOF)."""


@dataclass
class _Session:
    ctx: ConnContext
    cfg: Config
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    remote_ip: str
    slog: mlog.Log
    tls: bool
    creader: CommandReader = field(default_factory=CommandReader)
    account: Account | None = None
    sub: ev.Subscription | None = None
    mailbox: str | None = None
    mailbox_id: int = 0
    uidvalidity: int = 0
    readonly: bool = False
    uids: list[int] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_more(self) -> None:
        try:
            data = await asyncio.wait_for(self.reader.read(READ_SIZE), IDLE_TIMEOUT)
        except TimeoutError:
            self.send(w.untagged("BYE autologout: idle too long"))
            raise _Closed() from None
        if not data:
            raise _Closed()
        self.creader.receive_data(data)

    async def next_event(self) -> CommandReceived | NeedContinuation | RawLine | ParseFailed:
        while True:
            e = self.creader.next_event()
            if e is not None:
                return e
            await self.writer.drain()
            await self.read_more()


async def serve(ctx: ConnContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one IMAP connection (the handler of IMAP and IMAPS endpoints)."""
    peer = writer.get_extra_info("peername")
    remote_ip = str(peer[0]) if peer else "0.0.0.0"
    slog = log.with_fields(cid=format(mlog.new_cid(), "x"), remote=remote_ip, listener=ctx.endpoint.listener, kind=ctx.endpoint.kind)
    ip = ipaddress.ip_address(remote_ip)
    refusal = _conn_rate.try_add(ip)
    acquired = False
    if refusal is None:
        refusal = _conns.acquire(ip)
        acquired = refusal is None
    tls = ctx.endpoint.kind == "IMAPS"
    sess = _Session(ctx, ctx.server.cfg, reader, writer, remote_ip, slog, tls)
    try:
        if refusal is not None or ctx.server.shutting_down:
            writer.write(w.untagged("BYE [UNAVAILABLE] too many connections or shutting down, try again later"))
            await writer.drain()
            return
        writer.write(w.untagged(f"OK [CAPABILITY {' '.join(_capabilities(sess))}] mox imap ready"))
        await _serve(sess)
    except (_Closed, ConnectionError, ssl.SSLError):
        pass
    except asyncio.CancelledError:
        # mox serve cancels connections still open after its shutdown grace period.
        writer.write(w.untagged("BYE shutting down"))
        raise
    finally:
        if acquired:
            _conns.release(ip)
        if sess.sub is not None:
            sess.sub.close()
        if sess.account is not None:
            await sess.account.close()
        try:
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass


def _login_allowed(sess: _Session) -> bool:
    lst = sess.cfg.static.Listeners[sess.ctx.endpoint.listener]
    return sess.tls or lst.IMAP.NoRequireSTARTTLS


def _capabilities(sess: _Session) -> list[str]:
    caps = ["IMAP4rev1", "LITERAL+", "IDLE", "UNSELECT", "UIDPLUS", "MOVE", "SASL-IR"]
    if not sess.tls and sess.ctx.starttls is not None:
        caps.append("STARTTLS")
    if _login_allowed(sess):
        caps.append("AUTH=PLAIN")
    else:
        caps.append("LOGINDISABLED")
    return caps


async def _serve(sess: _Session) -> None:
    while True:
        e = await sess.next_event()
        if isinstance(e, NeedContinuation):
            sess.send(w.continuation("ready"))
            continue
        if isinstance(e, ParseFailed):
            if e.fatal:
                sess.send(w.untagged(f"BYE {e.text}"))
                return
            sess.send(w.tagged(e.tag, "BAD", e.text, e.code) if e.tag else w.untagged(f"BAD {e.text}"))
            continue
        if isinstance(e, RawLine):
            sess.send(w.untagged("BAD unexpected line"))
            continue
        cmd = e.command
        try:
            done = await _command(sess, cmd)
        except _Bad as x:
            sess.send(w.tagged(cmd.tag, "BAD", str(x)))
            continue
        except _No as x:
            sess.send(w.tagged(cmd.tag, "NO", str(x), x.code))
            continue
        except QuotaExceeded as x:
            sess.send(w.tagged(cmd.tag, "NO", str(x), "OVERQUOTA"))
            continue
        except StoreError as x:
            sess.send(w.tagged(cmd.tag, "NO", str(x)))
            continue
        except (_Closed, ConnectionError, ssl.SSLError):
            raise
        except Exception as x:
            # A bug: this command fails, the session (and its sequence numbers) go on.
            sess.slog.error("imap command failed", command=cmd.name, err=repr(x))
            sess.send(w.tagged(cmd.tag, "NO", "internal error", "SERVERBUG"))
            continue
        if done is not None:
            sess.send(w.tagged(cmd.tag, "OK", done[0], done[1]))
        if cmd.name == "LOGOUT":
            return
        if cmd.name == "STARTTLS":
            await sess.writer.drain()
            assert sess.ctx.starttls is not None
            await sess.writer.start_tls(sess.ctx.starttls)
            sess.tls = True
            sess.creader = CommandReader()


_NOT_AUTH = {"LOGIN", "AUTHENTICATE", "STARTTLS"}
_ANY = {"CAPABILITY", "NOOP", "LOGOUT"}
_SELECTED = {"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE", "CLOSE", "UNSELECT", "CHECK"}
_AUTH = {"SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "IDLE"}
_DEFER = {"FETCH", "STORE", "SEARCH"}  # RFC 3501 section 7.4.1: no EXPUNGE responses for these (non-UID)


async def _command(sess: _Session, cmd: p.Command) -> tuple[str, str | None] | None:
    name = cmd.name.removeprefix("UID ")
    if name in _NOT_AUTH:
        if sess.account is not None:
            raise _Bad("already authenticated")
    elif name in _AUTH:
        if sess.account is None:
            raise _Bad("not authenticated")
    elif name in _SELECTED:
        if sess.mailbox is None:
            raise _Bad("no mailbox selected")
    elif name not in _ANY:
        raise _Bad(f"unknown or unsupported command {name}")
    handler = _HANDLERS[name]
    res = await handler(sess, cmd)
    uid = bool(getattr(cmd, "uid", False)) or (isinstance(cmd, p.Expunge) and cmd.uids is not None)
    if sess.mailbox is not None and not (name in _DEFER and not uid):
        await _flush(sess)
    return res


async def _flush(sess: _Session) -> None:
    """Report queued changes of the selected mailbox, updating the session's UID list.

    New messages are announced with one EXISTS at the end; a message added
    and removed before it was announced is never mentioned.
    """
    if sess.sub is None or sess.account is None:
        return
    if sess.mailbox is None:
        sess.sub.pending()  # Nothing to report without a selected mailbox; SELECT reads afresh.
        return
    fresh: list[int] = []

    def announce() -> None:
        if fresh:
            sess.uids.extend(fresh)
            fresh.clear()
            sess.send(w.untagged(f"{len(sess.uids)} EXISTS"))

    for item in sess.sub.pending():
        if isinstance(item, ev.Resync):
            announce()
            await _resync(sess)
            continue
        if item.source is sess:
            continue
        for c in item.changes:
            if getattr(c, "mailbox_id", None) != sess.mailbox_id:
                continue
            if isinstance(c, ev.MessageAdded):
                last = fresh[-1] if fresh else sess.uids[-1] if sess.uids else 0
                if c.uid > last:
                    fresh.append(c.uid)
            elif isinstance(c, ev.MessagesRemoved):
                gone = set(c.uids)
                fresh[:] = [u for u in fresh if u not in gone]
                _report_expunged(sess, c.uids)
            elif isinstance(c, ev.FlagsChanged):
                # Not yet announced messages need no FETCH: the client asks for their flags.
                i = bisect.bisect_left(sess.uids, c.uid)
                if i < len(sess.uids) and sess.uids[i] == c.uid:
                    names = flag_names(c.flags) + list(c.keywords)
                    sess.send(w.untagged(b"%d FETCH (UID %d FLAGS %s)" % (i + 1, c.uid, w.flag_list(names))))
            elif isinstance(c, ev.MailboxRenamed):
                sess.mailbox = c.new_name
    announce()


def _report_expunged(sess: _Session, uids: tuple[int, ...] | list[int]) -> None:
    # Highest first: each EXPUNGE shifts the sequence numbers above it (RFC 3501 section 7.4.1).
    for uid in sorted(uids, reverse=True):
        i = bisect.bisect_left(sess.uids, uid)
        if i < len(sess.uids) and sess.uids[i] == uid:
            del sess.uids[i]
            sess.send(w.untagged(f"{i + 1} EXPUNGE"))


async def _resync(sess: _Session) -> None:
    assert sess.account is not None and sess.mailbox is not None
    current = [m.uid for m in await sess.account.messages(sess.mailbox)]
    cur = set(current)
    _report_expunged(sess, [u for u in sess.uids if u not in cur])
    last = sess.uids[-1] if sess.uids else 0
    sess.uids.extend(u for u in current if u > last)


# Commands in any state.


async def _capability(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    sess.send(w.untagged("CAPABILITY " + " ".join(_capabilities(sess))))
    return "capability done", None


async def _noop(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    return "noop done", None


async def _logout(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    sess.send(w.untagged("BYE logging out"))
    return "logout done", None


# Not authenticated.


async def _starttls(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    if sess.tls or sess.ctx.starttls is None:
        raise _Bad("STARTTLS not available")
    return "begin TLS now", None


async def _login_as(sess: _Session, username: str, password: str) -> None:
    ip = ipaddress.ip_address(sess.remote_ip)
    if not _login_allowed(sess):
        raise _No("login only after STARTTLS", "PRIVACYREQUIRED")
    if not _auth_fail.can_add(ip):
        raise _No("too many failed logins, try again later", "UNAVAILABLE")
    try:
        account = await authenticate_plain(sess.cfg, username, password)
    except LoginDisabled as x:
        raise _No(f"login disabled: {x}", "UNAVAILABLE") from None
    except LoginFailed:
        _auth_fail.add(ip)
        sess.slog.info("imap login failed", username=username)
        raise _No("invalid credentials", "AUTHENTICATIONFAILED") from None
    sess.account = await open_config_account(sess.cfg, account)
    sess.sub = sess.account.bus.subscribe()
    sess.slog.info("imap login", account=account)


async def _login(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Login)
    await _login_as(sess, cmd.username, cmd.password)
    return "login done", "CAPABILITY " + " ".join(_capabilities(sess))


async def _authenticate(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Authenticate)
    if cmd.mechanism.upper() != "PLAIN":
        raise _No("unsupported mechanism", "CANNOT")
    if not _login_allowed(sess):
        raise _No("authentication only after STARTTLS", "PRIVACYREQUIRED")
    data = cmd.initial_response
    if data is None:
        sess.send(w.continuation(""))
        sess.creader.expect_line()
        e = await sess.next_event()
        if not isinstance(e, RawLine):
            raise _Bad("expected a SASL response line")
        if e.line.strip() == b"*":
            raise _Bad("authentication aborted")
        try:
            data = base64.b64decode(e.line.strip(), validate=True)
        except binascii.Error:
            raise _Bad("malformed base64") from None
    parts = data.split(b"\0")
    if len(parts) != 3:
        raise _Bad("malformed PLAIN response")
    authz, user, password = (x.decode("utf-8", "replace") for x in parts)
    if authz and authz != user:
        raise _No("authorization identity must be empty or the login name", "AUTHORIZATIONFAILED")
    await _login_as(sess, user, password)
    return "authenticate done", "CAPABILITY " + " ".join(_capabilities(sess))


# Authenticated.


def _acc(sess: _Session) -> Account:
    assert sess.account is not None
    return sess.account


def _mailbox_name(name: str) -> str:
    return "Inbox" if name.upper() == "INBOX" else name


async def _select(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Select)
    acc = _acc(sess)
    sess.mailbox = None
    name = _mailbox_name(cmd.mailbox)
    try:
        mb = await acc.mailbox(name)
    except StoreError:
        raise _No("no such mailbox", "NONEXISTENT") from None
    if sess.sub is not None:
        sess.sub.pending()  # Older changes are part of the state read now.
    msgs = await acc.messages(mb.name)
    sess.mailbox, sess.mailbox_id, sess.uidvalidity = mb.name, mb.id, mb.uidvalidity
    sess.readonly = cmd.readonly
    sess.uids = [m.uid for m in msgs]
    flags = _SYSTEM_FLAGS + mb.keywords
    sess.send(w.untagged(b"FLAGS " + w.flag_list(flags)))
    sess.send(w.untagged(f"{len(msgs)} EXISTS"))
    sess.send(w.untagged("0 RECENT"))
    unseen = next((i + 1 for i, m in enumerate(msgs) if not m.flags & Flags.SEEN), None)
    if unseen is not None:
        sess.send(w.untagged(f"OK [UNSEEN {unseen}] first unseen"))
    sess.send(w.untagged(f"OK [UIDVALIDITY {mb.uidvalidity}] x"))
    sess.send(w.untagged(f"OK [UIDNEXT {mb.uidnext}] x"))
    perm = [] if cmd.readonly else [*flags, "\\*"]
    sess.send(w.untagged(b"OK [PERMANENTFLAGS " + w.flag_list(perm) + b"] x"))
    return ("examine done", "READ-ONLY") if cmd.readonly else ("select done", "READ-WRITE")


async def _create(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Create)
    name = _mailbox_name(cmd.mailbox.rstrip("/"))
    if name == "Inbox":
        raise _No("cannot create Inbox", "ALREADYEXISTS")
    try:
        await _acc(sess).mailbox_create(name)
    except StoreError as x:
        code = "ALREADYEXISTS" if "exist" in str(x) else "CANNOT"
        raise _No(str(x), code) from None
    return "create done", None


async def _delete(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Mailbox)
    name = _mailbox_name(cmd.mailbox)
    if name == "Inbox":
        raise _No("cannot delete Inbox", "CANNOT")
    names = [m.name for m in await _acc(sess).mailboxes()]
    if name not in names:
        raise _No("no such mailbox", "NONEXISTENT")
    if any(n.startswith(name + "/") for n in names):
        # RFC 3501 section 6.3.4 would keep it as \Noselect; upstream refuses too.
        raise _No("mailbox has children, delete them first", "HASCHILDREN")
    await _acc(sess).mailbox_delete(name)
    return "delete done", None


async def _rename(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Rename)
    old, new = _mailbox_name(cmd.old), _mailbox_name(cmd.new)
    if old == "Inbox" or new == "Inbox":
        raise _No("renaming Inbox is not supported", "CANNOT")
    try:
        await _acc(sess).mailbox_rename(old, new)
    except StoreError as x:
        raise _No(str(x), "NONEXISTENT" if "not exist" in str(x) else "CANNOT") from None
    return "rename done", None


async def _subscribe(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Mailbox)
    await _acc(sess).subscribe(_mailbox_name(cmd.mailbox), cmd.name == "SUBSCRIBE")
    return f"{cmd.name.lower()} done", None


def _pattern(ref: str, pat: str) -> re.Pattern[str]:
    out = ""
    for ch in ref + pat:
        out += ".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch)
    return re.compile(out + r"\Z", re.IGNORECASE if (ref + pat).upper().startswith("INBOX") else 0)


async def _list(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.List)
    acc = _acc(sess)
    lsub = cmd.name == "LSUB"
    if len(cmd.patterns) == 1 and cmd.patterns[0] == "":
        sess.send(w.list_response(["\\Noselect"], "/", "", lsub=lsub))
        return f"{cmd.name.lower()} done", None
    mbs = await acc.mailboxes()
    subs = set(await acc.subscriptions())
    names = {m.name for m in mbs}
    pats = [_pattern(cmd.reference, x) for x in cmd.patterns]
    for m in sorted(mbs, key=lambda m: m.name):
        if not any(pt.match(m.name) for pt in pats):
            continue
        if lsub and m.name not in subs:
            continue
        attrs = ["\\HasChildren" if any(n.startswith(m.name + "/") for n in names) else "\\HasNoChildren"]
        if m.special_use is not None:
            attrs.append(m.special_use.value)
        sess.send(w.list_response(attrs, "/", "INBOX" if m.name == "Inbox" else m.name, lsub=lsub))
    return f"{cmd.name.lower()} done", None


async def _status(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Status)
    acc = _acc(sess)
    try:
        mb = await acc.mailbox(_mailbox_name(cmd.mailbox))
    except StoreError:
        raise _No("no such mailbox", "NONEXISTENT") from None
    msgs = await acc.messages(mb.name)
    values = {
        "MESSAGES": len(msgs),
        "UIDNEXT": mb.uidnext,
        "UIDVALIDITY": mb.uidvalidity,
        "UNSEEN": sum(1 for m in msgs if not m.flags & Flags.SEEN),
        "RECENT": 0,
        "DELETED": sum(1 for m in msgs if m.flags & Flags.DELETED),
    }
    items = []
    for it in cmd.items:
        if it not in values:
            raise _Bad(f"unsupported STATUS item {it}")
        items.append((it, values[it]))
    sess.send(w.status_response(cmd.mailbox, items))
    return "status done", None


async def _append(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Append)
    acc = _acc(sess)
    name = _mailbox_name(cmd.mailbox)
    try:
        mb = await acc.mailbox(name)
    except StoreError:
        raise _No("no such mailbox", "TRYCREATE") from None
    parsed = [_parse_flags(am.flags) for am in cmd.messages]  # All checked before any is added.
    uids = []
    for am, (flags, keywords) in zip(cmd.messages, parsed, strict=True):
        received = am.date_time.timestamp() if am.date_time else None
        m = await acc.add_message(mb.name, am.data, flags=flags, keywords=keywords, received=received, create_mailbox=False)
        uids.append(m.uid)
    return "append done", f"APPENDUID {mb.uidvalidity} {','.join(str(u) for u in uids)}"


def _parse_flags(names: list[str]) -> tuple[Flags, list[str]]:
    """System flags and keywords of STORE and APPEND; unknown system flags (\\Recent too) are BAD."""
    flags, keywords = parse_flag_names(names)
    bad = [k for k in keywords if k.startswith("\\")]
    if bad:
        raise _Bad(f"cannot set system flag {bad[0]}")
    return flags, keywords


async def _idle(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    """RFC 2177: report changes as they happen until the client sends DONE."""
    sess.send(w.continuation("idling"))
    sess.creader.expect_line()
    assert sess.sub is not None
    # One read at a time, never cancelled: a cancelled read could lose the bytes it got.
    read: asyncio.Future[None] | None = None
    change = asyncio.ensure_future(_wait_change(sess.sub))
    try:
        while True:
            await _flush(sess)
            await sess.writer.drain()
            line = sess.creader.next_event()
            if line is not None:
                if isinstance(line, RawLine) and line.line.upper() == b"DONE":
                    return "idle done", None
                raise _Bad("expected DONE")
            if read is None:
                read = asyncio.ensure_future(sess.read_more())
            if change.done():
                change = asyncio.ensure_future(_wait_change(sess.sub))
            await asyncio.wait([read, change], return_when=asyncio.FIRST_COMPLETED)
            if read.done():
                read.result()
                read = None
    finally:
        change.cancel()
        if read is not None:
            read.cancel()


async def _wait_change(sub: ev.Subscription) -> None:
    while not sub.queue:
        sub.waiter = sub.loop.create_future()
        try:
            await sub.waiter
        finally:
            sub.waiter = None


# Selected.


def _msg_index(sess: _Session, uid: bool, nums: NumSet) -> list[tuple[int, int]]:
    """(sequence number, uid) pairs addressed by a sequence or UID set."""
    if uid:
        return [(bisect.bisect_left(sess.uids, u) + 1, u) for u in nums.uids(sess.uids)]
    if nums.search_result:
        raise _Bad("saved search results ($) not supported")
    if nums.max_seq(len(sess.uids)) > len(sess.uids):
        # RFC 3501 section 9 (seq-number): a number above the count is invalid.
        raise _Bad(f"message sequence number out of range, mailbox has {len(sess.uids)} messages")
    return [(s, sess.uids[s - 1]) for s in nums.seqs(len(sess.uids))]


async def _messages_by_uid(sess: _Session) -> dict[int, Message]:
    assert sess.mailbox is not None
    return {m.uid: m for m in await _acc(sess).messages(sess.mailbox, include_expunged=True)}


async def _close(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    if cmd.name == "CLOSE" and not sess.readonly:
        assert sess.mailbox is not None
        await _acc(sess).expunge(sess.mailbox, list(sess.uids), source=sess)
    sess.mailbox = None
    sess.uids = []
    return f"{cmd.name.lower()} done", None


async def _check(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    return "check done", None


async def _expunge(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Expunge) and sess.mailbox is not None
    if sess.readonly:
        raise _No("mailbox is read-only", "READ-ONLY")
    uids = cmd.uids.uids(sess.uids) if cmd.uids is not None else list(sess.uids)
    # Reported with the change bus at command completion (EXPUNGE responses).
    await _acc(sess).expunge(sess.mailbox, uids)
    return "expunge done", None


async def _store(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Store) and sess.mailbox is not None
    if sess.readonly:
        raise _No("mailbox is read-only", "READ-ONLY")
    targets = _msg_index(sess, cmd.uid, cmd.nums)
    flags, keywords = _parse_flags(cmd.flags)
    acc = _acc(sess)
    uids = [u for _, u in targets]
    if cmd.mode == "+":
        await acc.set_flags(sess.mailbox, uids, add=flags, add_keywords=keywords, source=sess)
    elif cmd.mode == "-":
        await acc.set_flags(sess.mailbox, uids, remove=flags, remove_keywords=keywords, source=sess)
    else:
        msgs0 = await _messages_by_uid(sess)
        for u in uids:
            m = msgs0.get(u)
            if m is None:
                continue
            await acc.set_flags(
                sess.mailbox, [u], add=flags, remove=Flags(~flags & 0x3FF),
                add_keywords=keywords, remove_keywords=[k for k in m.keywords if k not in keywords], source=sess,
            )
    if not cmd.silent:
        msgs = await _messages_by_uid(sess)
        for seq, u in targets:
            m = msgs.get(u)
            if m is None:
                continue
            names = flag_names(m.flags) + m.keywords
            uidpart = b"UID %d " % u if cmd.uid else b""
            sess.send(w.untagged(b"%d FETCH (%sFLAGS %s)" % (seq, uidpart, w.flag_list(names))))
    return "store done", None


async def _copy(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Copy) and sess.mailbox is not None
    move = cmd.name.endswith("MOVE")
    if move and sess.readonly:
        raise _No("mailbox is read-only", "READ-ONLY")
    targets = _msg_index(sess, cmd.uid, cmd.nums)
    acc = _acc(sess)
    dst = _mailbox_name(cmd.mailbox)
    try:
        dmb = await acc.mailbox(dst)
    except StoreError:
        raise _No("no such mailbox", "TRYCREATE") from None
    if move and dmb.name == sess.mailbox:
        raise _No("cannot move to the selected mailbox", "CANNOT")
    pairs = await acc.copy_messages(sess.mailbox, [u for _, u in targets], dmb.name, move=move)
    if not pairs:
        return "done", None
    code = w.copyuid(dmb.uidvalidity, [a for a, _ in pairs], [b for _, b in pairs])
    if move:
        # RFC 6851 section 4.3: COPYUID in an untagged OK before the EXPUNGEs.
        sess.send(w.untagged(f"OK [{code}] moved"))
        return "move done", None
    return "copy done", code


# FETCH.


def _section_bytes(part: Part, raw: bytes, sec: p.Section) -> bytes:
    found = part.section(raw, sec.part)
    if found is None:
        return b""
    sp, src = found
    if sec.text is None:
        if not sec.part:
            return raw
        return sp.body_bytes(src)
    if sec.text == "MIME":
        return sp.header_bytes(src)
    msgp = sp
    if sec.part:
        if sp.message is None:
            return b""
        src = sp.message_source(src)
        msgp = sp.message
    if sec.text == "TEXT":
        return msgp.body_bytes(src)
    header = msgp.header_bytes(src)
    if sec.text == "HEADER":
        return header
    return _header_fields(header, sec.fields, sec.text == "HEADER.FIELDS.NOT")


def _header_fields(header: bytes, names: list[str], exclude: bool) -> bytes:
    wanted = {n.upper() for n in names}
    out: list[bytes] = []
    keep = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        fname = line.split(b":", 1)[0].strip().decode("ascii", "replace").upper()
        keep = (fname in wanted) != exclude
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


def _section_name(sec: p.Section) -> str:
    s = ".".join(str(n) for n in sec.part)
    if sec.text:
        s = f"{s}.{sec.text}" if s else sec.text
        if sec.text.startswith("HEADER.FIELDS"):
            s += " (" + " ".join(sec.fields) + ")"
    return s


async def _fetch(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Fetch) and sess.mailbox is not None
    acc = _acc(sess)
    targets = _msg_index(sess, cmd.uid, cmd.nums)
    atts = list(cmd.atts)
    if cmd.uid and not any(a.name == "UID" for a in atts):
        atts.insert(0, p.FetchAtt("UID"))
    sets_seen = not sess.readonly and any(
        (a.name == "BODY" and a.section is not None and not a.peek) or a.name in ("RFC822", "RFC822.TEXT") for a in atts
    )
    msgs = await _messages_by_uid(sess)
    if sets_seen:
        unseen = [u for _, u in targets if u in msgs and not msgs[u].flags & Flags.SEEN]
        if unseen:
            for changed in await acc.set_flags(sess.mailbox, unseen, add=Flags.SEEN, source=sess):
                msgs[changed.uid] = changed
        else:
            sets_seen = False
    # ENVELOPE and BODYSTRUCTURE come from the parsed-part cache, fetched for many messages at once;
    # the message file is read only for body contents.
    need_part = any(a.name in ("ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.HEADER", "RFC822.TEXT") for a in atts)
    need_raw = any(a.name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT") or (a.name == "BODY" and a.section is not None) for a in atts)
    parts: dict[int, Part] = {}
    for seq, u in targets:
        m = msgs.get(u)
        if m is None:
            continue
        if need_part and m.id not in parts:
            batch = [msgs[x] for _, x in targets[targets.index((seq, u)) :][:500] if x in msgs]
            parts.update(await acc.parsed_many(batch))
        r = w.FetchResponse(seq)
        raw: bytes | None = None
        part: Part | None = parts.pop(m.id, None)
        flags_sent = False
        if need_raw:
            try:
                raw = await asyncio.to_thread(acc.read_message, m)
            except OSError:
                raise _No("message was expunged", "EXPUNGEISSUED") from None
        for a in atts:
            if a.name == "UID":
                r.add(b"UID", b"%d" % u)
            elif a.name == "FLAGS":
                r.add(b"FLAGS", w.flag_list(flag_names(m.flags) + m.keywords))
                flags_sent = True
            elif a.name == "RFC822.SIZE":
                r.add(b"RFC822.SIZE", b"%d" % m.size)
            elif a.name == "INTERNALDATE":
                r.add(b"INTERNALDATE", w.date_time(datetime.datetime.fromtimestamp(m.received, datetime.UTC)))
            elif a.name == "ENVELOPE":
                assert part is not None
                r.add(b"ENVELOPE", w.envelope(part.envelope or Envelope()))
            elif a.name == "BODYSTRUCTURE" or (a.name == "BODY" and a.section is None):
                assert part is not None
                r.add(a.name.encode(), w.body_structure(part, a.name == "BODYSTRUCTURE"))
            elif a.name == "RFC822":
                assert raw is not None
                r.add_literal(b"RFC822", raw)
            elif a.name in ("RFC822.HEADER", "RFC822.TEXT"):
                assert raw is not None and part is not None
                r.add_literal(a.name.encode(), part.header_bytes(raw) if a.name == "RFC822.HEADER" else part.body_bytes(raw))
            elif a.name == "BODY":
                assert raw is not None and part is not None and a.section is not None
                data = _section_bytes(part, raw, a.section)
                label = f"BODY[{_section_name(a.section)}]"
                if a.partial is not None:
                    off, n = a.partial
                    data = data[off : off + n]
                    label += f"<{off}>"
                r.add_literal(label.encode(), data)
            else:
                raise _Bad(f"unsupported fetch attribute {a.name}")
        if sets_seen and not flags_sent and u in unseen:
            r.add(b"FLAGS", w.flag_list(flag_names(m.flags) + m.keywords))
        sess.writer.writelines(r.chunks())
        await sess.writer.drain()
    return "fetch done", None


# SEARCH.


_FLAG_KEYS = {
    "SEEN": (Flags.SEEN, True), "UNSEEN": (Flags.SEEN, False), "DELETED": (Flags.DELETED, True),
    "UNDELETED": (Flags.DELETED, False), "FLAGGED": (Flags.FLAGGED, True), "UNFLAGGED": (Flags.FLAGGED, False),
    "ANSWERED": (Flags.ANSWERED, True), "UNANSWERED": (Flags.ANSWERED, False), "DRAFT": (Flags.DRAFT, True),
    "UNDRAFT": (Flags.DRAFT, False),
}
_HEADER_KEYS = {"SUBJECT", "FROM", "TO", "CC", "BCC", "HEADER"}
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}


def _date_matches(op: str, day: datetime.date, want: datetime.date) -> bool:
    # RFC 3501 section 6.4.4: dates compare without time and timezone.
    if op.endswith("BEFORE"):
        return day < want
    if op.endswith("ON"):
        return day == want
    return day >= want


@dataclass
class _Candidate:
    seq: int
    msg: Message
    part: Part | None = None
    raw: bytes | None = None


def _check_key(k: p.SearchKey) -> None:
    if k.op in ("AND", "OR", "NOT"):
        for c in k.keys:
            _check_key(c)
    elif k.op not in _FLAG_KEYS and k.op not in _HEADER_KEYS and k.op not in (
        "ALL", "KEYWORD", "UNKEYWORD", "UID", "SEQ", "LARGER", "SMALLER", "BODY", "TEXT", "NEW", "OLD", "RECENT",
        *_DATE_KEYS,
    ):
        raise _Bad(f"search key {k.op} not supported")


async def _matches(sess: _Session, c: _Candidate, k: p.SearchKey) -> bool:
    op = k.op
    m = c.msg
    if op == "AND":
        for sub in k.keys:
            if not await _matches(sess, c, sub):
                return False
        return True
    if op == "OR":
        return await _matches(sess, c, k.keys[0]) or await _matches(sess, c, k.keys[1])
    if op == "NOT":
        return not await _matches(sess, c, k.keys[0])
    if op in ("ALL", "OLD"):
        return True
    if op in ("NEW", "RECENT"):
        return False
    if op in _FLAG_KEYS:
        f, want = _FLAG_KEYS[op]
        return bool(m.flags & f) == want
    if op in ("KEYWORD", "UNKEYWORD"):
        fl, kws = parse_flag_names([k.text or ""])
        has = bool(m.flags & fl) if fl else bool(kws) and kws[0] in m.keywords
        return has == (op == "KEYWORD")
    if op == "UID":
        assert k.nums is not None
        return k.nums.contains(m.uid, sess.uids[-1] if sess.uids else 0)
    if op == "SEQ":
        assert k.nums is not None
        return k.nums.contains(c.seq, len(sess.uids))
    if op == "LARGER":
        return m.size > (k.number or 0)
    if op == "SMALLER":
        return m.size < (k.number or 0)
    if op in ("BEFORE", "ON", "SINCE"):
        assert k.date is not None
        # The internal date as a day in UTC.
        return _date_matches(op, datetime.datetime.fromtimestamp(m.received, datetime.UTC).date(), k.date)
    acc = _acc(sess)
    if c.part is None:
        try:
            c.raw = await asyncio.to_thread(acc.read_message, m)
        except OSError:
            return False
        c.part = await acc.parsed(m)
    assert c.raw is not None
    if op in _DATE_KEYS:
        assert k.date is not None
        sent = parse_date(c.part.envelope.date) if c.part.envelope and c.part.envelope.date else None
        # The Date header's own day, in the zone it was written in.
        return sent is not None and _date_matches(op, sent.date(), k.date)
    needle = (k.text or "").lower()
    if op in _HEADER_KEYS:
        fname = k.field if op == "HEADER" else op
        values = [_header_text(v) for n, v in c.part.headers(c.raw) if n.upper() == (fname or "").upper()]
        return any(needle in v.lower() for v in values) if values or needle else False
    if op == "BODY" or op == "TEXT":
        if op == "TEXT":
            for _n, v in c.part.headers(c.raw):
                if needle in _header_text(v).lower():
                    return True
        for sp in c.part.walk():
            if not sp.is_multipart and sp.media_type == "TEXT" and needle in sp.text(c.raw).lower():
                return True
        return False
    raise _Bad(f"search key {op} not supported")


def _header_text(value: bytes) -> str:
    """A header value unfolded with RFC 2047 encoded-words decoded, for substring search."""
    return decode_words(unfold(value))


async def _search(sess: _Session, cmd: p.Command) -> tuple[str, str | None]:
    assert isinstance(cmd, p.Search)
    if cmd.charset is not None and cmd.charset.upper() not in ("US-ASCII", "UTF-8"):
        raise _No("only US-ASCII and UTF-8 supported", "BADCHARSET (US-ASCII UTF-8)")
    if cmd.return_options is not None:
        raise _Bad("SEARCH RETURN (ESEARCH) not supported")
    _check_key(cmd.key)
    msgs = await _messages_by_uid(sess)
    out = []
    for i, u in enumerate(sess.uids):
        m = msgs.get(u)
        if m is None:
            continue
        if await _matches(sess, _Candidate(i + 1, m), cmd.key):
            out.append(u if cmd.uid else i + 1)
    sess.send(w.search(out))
    return "search done", None


_HANDLERS = {
    "CAPABILITY": _capability,
    "NOOP": _noop,
    "CHECK": _check,
    "LOGOUT": _logout,
    "STARTTLS": _starttls,
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _delete,
    "RENAME": _rename,
    "SUBSCRIBE": _subscribe,
    "UNSUBSCRIBE": _subscribe,
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    "IDLE": _idle,
    "CLOSE": _close,
    "UNSELECT": _close,
    "EXPUNGE": _expunge,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "FETCH": _fetch,
    "SEARCH": _search,
}


def register() -> None:
    """Install this server as the handler of the IMAP and IMAPS endpoints."""
    from mox.serve import services

    for kind in ("IMAP", "IMAPS"):
        services.HANDLERS[kind] = serve
