"""The IMAP server driver: IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) over mox.imapproto and mox.store.

A session starts as IMAP4rev1; ENABLE IMAP4rev2 (RFC 5161) switches it to
rev2 behaviour (RFC 9051 appendix E): UTF-8 mailbox names, ESEARCH replies
to SEARCH, no RECENT and no UNSEEN response code. Capabilities are only
advertised once implemented (:func:`capabilities`).

The session keeps its own list of UIDs for the selected mailbox, changed only
when it tells the client (RFC 9051 section 7.5.1): changes from the account's
change bus are reported at the end of commands, except after non-UID FETCH,
STORE and SEARCH, where sequence numbers must not shift under the client.
With QRESYNC, expunges are reported as VANISHED (RFC 7162 section 3.2.10).

Commands are in :mod:`.mailboxes` (authenticated state), :mod:`.messages`
(FETCH, STORE, COPY, MOVE, EXPUNGE, REPLACE) and :mod:`.search`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import Awaitable, Callable

from mox import mlog, sasl
from mox.imapproto import parse as p
from mox.imapproto import write as w
from mox.imapproto.numset import NumSet
from mox.imapproto.reader import CommandReader, NeedContinuation, ParseFailed, RawLine
from mox.ratelimit import connection_rate_limiter, connections_limiter, failed_auth_limiter
from mox.serve.services import ConnContext
from mox.store import events as ev
from mox.store.auth import LoginDisabled, LoginFailed, authenticate_plain
from mox.store.deliver import open_config_account
from mox.store.model import Flags, QuotaExceeded, StoreError

from . import bulk, mailboxes, messages, notify, search, session
from .session import APPEND_LIMIT, Bad, Closed, No, Result, Session

log = mlog.new("imapserver")

# Re-exported for tests and callers that shorten the timeouts.
IDLE_TIMEOUT = session.IDLE_TIMEOUT

_conn_rate = connection_rate_limiter()
_conns = connections_limiter()
_auth_fail = failed_auth_limiter()

__all__ = ["Flags", "capabilities", "register", "serve"]


async def serve(ctx: ConnContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one IMAP connection (the handler of IMAP and IMAPS endpoints)."""
    # Module attribute, so tests can shorten it.
    session.IDLE_TIMEOUT = IDLE_TIMEOUT
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
    sess = Session(ctx, reader, writer, remote_ip, slog, tls)
    try:
        if refusal is not None or ctx.server.shutting_down:
            writer.write(w.untagged("BYE [UNAVAILABLE] too many connections or shutting down, try again later"))
            await writer.drain()
            return
        writer.write(w.untagged(f"OK [CAPABILITY {' '.join(capabilities(sess))}] mox imap ready"))
        await _serve(sess)
    except (Closed, ConnectionError, ssl.SSLError):
        pass
    except asyncio.CancelledError:
        # mox serve cancels connections still open after its shutdown grace period.
        sess.send(w.untagged("BYE shutting down"))
        raise
    finally:
        if acquired:
            _conns.release(ip)
        if sess.sub is not None:
            sess.sub.close()
        if sess.account is not None:
            await sess.account.close()
        try:
            await sess.drain()
        except (Closed, ConnectionError, ssl.SSLError):
            pass


def _login_allowed(sess: Session) -> bool:
    lst = sess.cfg.static.Listeners[sess.ctx.endpoint.listener]
    return sess.tls or lst.IMAP.NoRequireSTARTTLS


def _ssl_object(sess: Session) -> ssl.SSLObject | None:
    obj = sess.writer.get_extra_info("ssl_object")
    return obj if isinstance(obj, ssl.SSLObject) else None


def _mechanisms(sess: Session) -> list[str]:
    obj = _ssl_object(sess) if sess.tls else None
    return sasl.mechanisms_offered(sess.tls, bool(sasl.channel_bindings(obj)), _login_allowed(sess), login=False)


CAPABILITIES = [
    "IMAP4rev2", "IMAP4rev1", "ENABLE", "LITERAL+", "IDLE", "SASL-IR", "BINARY", "UNSELECT", "UIDPLUS", "ESEARCH",
    "SEARCHRES", "MOVE", "UTF8=ACCEPT", "LIST-EXTENDED", "SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-STATUS",
]  # fmt: skip
"""Capabilities in upstream's order up to the AUTH= mechanisms; :data:`CAPABILITIES_AFTER_AUTH` follow them."""

CAPABILITIES_AFTER_AUTH = [
    "ID", f"APPENDLIMIT={APPEND_LIMIT}", "CONDSTORE", "QRESYNC", "STATUS=SIZE", "SAVEDATE", "WITHIN", "NAMESPACE",
    "MULTIAPPEND", "REPLACE", "PREVIEW", "COMPRESS=DEFLATE",
    # Beyond upstream (issue 6): RFC 5256 and RFC 5957.
    "UIDONLY", "QUOTA", "QUOTA=RES-STORAGE", "METADATA", "LIST-METADATA", "INPROGRESS", "MULTISEARCH", "NOTIFY",
    "SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
]  # fmt: skip


def capabilities(sess: Session) -> list[str]:
    """What this session is offered now (depends on TLS, login and the account's disabled capabilities)."""
    caps = list(CAPABILITIES)
    if _login_allowed(sess):
        caps += ["AUTH=" + m for m in _mechanisms(sess)]
    else:
        # SCRAM and CRAM-MD5 never expose the password; upstream offers them before TLS too.
        caps += ["AUTH=" + m for m in _mechanisms(sess)]
        caps.append("LOGINDISABLED")
    caps += CAPABILITIES_AFTER_AUTH
    if sess.compressing:
        caps.remove("COMPRESS=DEFLATE")
    if not sess.tls and sess.ctx.starttls is not None:
        caps.append("STARTTLS")
    return [c for c in caps if c.upper() not in sess.disabled]


async def _serve(sess: Session) -> None:
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
        except Bad as x:
            sess.send(w.tagged(cmd.tag, "BAD", str(x), x.code))
            continue
        except No as x:
            sess.send(w.tagged(cmd.tag, "NO", str(x), x.code))
            continue
        except QuotaExceeded as x:
            sess.send(w.tagged(cmd.tag, "NO", str(x), "OVERQUOTA"))
            continue
        except StoreError as x:
            sess.send(w.tagged(cmd.tag, "NO", str(x)))
            continue
        except (Closed, ConnectionError, ssl.SSLError):
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
            await sess.drain()
            assert sess.ctx.starttls is not None
            await sess.writer.start_tls(sess.ctx.starttls)
            sess.tls = True
            sess.creader = CommandReader(literal_limit=APPEND_LIMIT)
        elif cmd.name == "COMPRESS":
            # RFC 4978 section 3: compression starts right after the tagged OK, both ways.
            await sess.drain()
            sess.start_compress()


_ANY = {"CAPABILITY", "NOOP", "LOGOUT", "ID"}
_NOT_AUTH = {"LOGIN", "AUTHENTICATE", "STARTTLS"}
_AUTH = {
    "ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS",
    "APPEND", "IDLE", "NAMESPACE", "COMPRESS", "GETQUOTA", "GETQUOTAROOT",
    "GETMETADATA", "SETMETADATA", "ESEARCH", "NOTIFY",
}  # fmt: skip
_SELECTED = {"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE", "CLOSE", "UNSELECT", "CHECK", "REPLACE", "SORT", "THREAD"}
_SEQUENCE = {"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "REPLACE", "SORT", "THREAD"}
_DEFER = {"FETCH", "STORE", "SEARCH", "SORT", "THREAD"}  # RFC 9051 section 7.5.1: no EXPUNGE responses during these (non-UID).


async def _command(sess: Session, cmd: p.Command) -> Result | None:
    name = cmd.name.removeprefix("UID ")
    if name in _NOT_AUTH:
        if sess.account is not None:
            raise Bad("already authenticated")
    elif name in _AUTH:
        if sess.account is None:
            raise Bad("not authenticated")
    elif name in _SELECTED:
        if sess.mailbox is None:
            raise Bad("no mailbox selected")
        if sess.uidonly and name in _SEQUENCE and not cmd.name.startswith("UID "):
            # RFC 9586 section 3.2.
            raise Bad("cannot use message sequence numbers with UIDONLY", "UIDREQUIRED")
    elif name not in _ANY:
        raise Bad(f"unknown or unsupported command {name}")
    res = await _HANDLERS[name](sess, cmd)
    uid = bool(getattr(cmd, "uid", False)) or (isinstance(cmd, p.Expunge) and cmd.uids is not None)
    if not (sess.mailbox is not None and name in _DEFER and not uid):
        await flush(sess)
    return res


async def flush(sess: Session) -> None:
    """Report queued changes of the selected mailbox, updating the session's UID list.

    New messages are announced with one EXISTS at the end; a message added
    and removed before it was announced is never mentioned.
    """
    if sess.sub is None or sess.account is None:
        return
    items = sess.sub.pending()
    if sess.notify is not None:
        if any(isinstance(item, ev.Resync) for item in items):
            notify.overflow(sess)
        else:
            await notify.report(sess, [b for b in items if isinstance(b, ev.Batch) and b.source is not sess])
    if sess.mailbox is None:
        return  # Nothing more to report without a selected mailbox; SELECT reads afresh.
    fresh: list[int] = []
    group = sess.notify.selected_group() if sess.notify is not None else None
    report_flags = group is None or (group.events is not None and "FLAGCHANGE" in group.events)
    new_atts = group.fetch_atts if group is not None and group.events and "MESSAGENEW" in group.events else []

    # FETCH FLAGS lines are gathered and written together (a STORE on a whole mailbox elsewhere
    # means thousands), before any other response so the order stays.
    out: list[bytes] = []

    def send_flags() -> None:
        if out:
            sess.send(b"".join(out))
            out.clear()

    async def announce() -> None:
        send_flags()
        if fresh:
            new = list(fresh)
            sess.uids.extend(fresh)
            fresh.clear()
            sess.send(w.untagged(f"{len(sess.uids)} EXISTS"))
            if new_atts:
                # RFC 5465 section 5.1: FETCH responses with the requested attributes for new messages.
                with contextlib.suppress(No):  # E.g. expunged meanwhile: the EXISTS stands, the FETCH is best effort.
                    await messages.fetch(sess, p.Fetch("", "UID FETCH", True, NumSet.from_numbers(new), list(new_atts)))

    for item in items:
        if isinstance(item, ev.Resync):
            await announce()
            await _resync(sess, report_flags)
            continue
        for c in item.changes:
            # The watermark for a resync: every change of the mailbox up to here was seen.
            if getattr(c, "mailbox_id", None) == sess.mailbox_id and getattr(c, "modseq", 0) > sess.modseq:
                sess.modseq = c.modseq  # type: ignore[union-attr]
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
                send_flags()
                report_expunged(sess, c.uids)
            elif isinstance(c, ev.FlagsChanged):
                # Not yet announced messages need no FETCH: the client asks for their flags.
                seq = sess.seq_of(c.uid)
                if seq and report_flags:
                    fl = bulk.flag_list_of(c.flags, c.keywords)
                    ms = b" MODSEQ (%d)" % c.modseq if sess.condstore else b""
                    if sess.uidonly:
                        out.append(b"* %d UIDFETCH (FLAGS %s%s)\r\n" % (c.uid, fl, ms))
                    else:
                        out.append(b"* %d FETCH (UID %d FLAGS %s%s)\r\n" % (seq, c.uid, fl, ms))
                    if len(out) >= bulk.WRITE_BATCH:
                        send_flags()
            elif isinstance(c, ev.MailboxRenamed):
                sess.mailbox = c.new_name
            elif isinstance(c, ev.MailboxRemoved):
                # The selected mailbox is gone: nothing more can be done with it.
                send_flags()
                sess.send(w.untagged("BYE selected mailbox was deleted"))
                raise Closed()
    await announce()


def report_expunged(sess: Session, uids: tuple[int, ...] | list[int]) -> None:
    """EXPUNGE (highest first) or, with QRESYNC, one VANISHED for the known UIDs among uids."""
    if sess.qresync or sess.uidonly:
        # RFC 9586 section 3.5: UIDONLY reports expunges with VANISHED too.
        known = [u for u in uids if sess.seq_of(u)]
        if known:
            gone = set(known)
            sess.uids = [u for u in sess.uids if u not in gone]
            sess.send(w.vanished(known))
        return
    # Highest first: each EXPUNGE shifts the sequence numbers above it (RFC 9051 section 7.5.1).
    for uid in sorted(uids, reverse=True):
        seq = sess.seq_of(uid)
        if seq:
            del sess.uids[seq - 1]
            sess.send(w.untagged(f"{seq} EXPUNGE"))


async def _resync(sess: Session, report_flags: bool = True) -> None:
    """The session missed changes (its queue overflowed): compare with the mailbox as it is now.
    Expunged messages, flags changed since the session's modseq watermark (for messages it knows)
    and new messages are reported, in that order."""
    assert sess.account is not None and sess.mailbox is not None
    mb, current, _, changed = await sess.account.mailbox_uids(sess.mailbox, changed_since=sess.modseq)
    cur = set(current)
    report_expunged(sess, [u for u in sess.uids if u not in cur])
    if report_flags:
        out: list[bytes] = []
        for uid, fl, kwj, _, _, modseq, _, expunged in changed:
            seq = 0 if expunged else sess.seq_of(uid)
            if not seq:
                continue
            ms = b" MODSEQ (%d)" % modseq if sess.condstore else b""
            if sess.uidonly:
                out.append(b"* %d UIDFETCH (FLAGS %s%s)\r\n" % (uid, bulk.flag_list(fl, kwj), ms))
            else:
                out.append(b"* %d FETCH (UID %d FLAGS %s%s)\r\n" % (seq, uid, bulk.flag_list(fl, kwj), ms))
        if out:
            sess.send(b"".join(out))
    last = sess.uids[-1] if sess.uids else 0
    new = [u for u in current if u > last]
    if new:
        sess.uids.extend(new)
        sess.send(w.untagged(f"{len(sess.uids)} EXISTS"))
    sess.modseq = max(sess.modseq, mb.modseq)


# Commands in any state.


async def _capability(sess: Session, cmd: p.Command) -> Result:
    sess.send(w.untagged("CAPABILITY " + " ".join(capabilities(sess))))
    return "capability done", None


async def _noop(sess: Session, cmd: p.Command) -> Result:
    return f"{cmd.name.lower()} done", None


async def _logout(sess: Session, cmd: p.Command) -> Result:
    sess.send(w.untagged("BYE logging out"))
    return "logout done", None


async def _id(sess: Session, cmd: p.Command) -> Result:
    """RFC 2971: log what the client says it is, name ourselves."""
    assert isinstance(cmd, p.Id)
    if cmd.params:
        sess.slog.info("imap client id", **{k.lower()[:30]: (v or "")[:100] for k, v in cmd.params[:30]})
    sess.send(w.id_response([("name", "mox")]))
    return "id done", None


# Not authenticated.


async def _starttls(sess: Session, cmd: p.Command) -> Result:
    if sess.tls or sess.ctx.starttls is None:
        raise Bad("STARTTLS not available")
    return "begin TLS now", None


async def _logged_in(sess: Session, account: str, how: str) -> None:
    sess.account = await open_config_account(sess.cfg, account)
    sess.account_name = account
    acc_cfg = sess.cfg.dynamic.Accounts.get(account)
    if acc_cfg is not None:
        sess.disabled = {c.upper() for c in acc_cfg.IMAPCapabilitiesDisabled}
    sess.sub = sess.account.bus.subscribe()
    sess.slog.info("imap login", account=account, mechanism=how)


async def _login(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Login)
    ip = ipaddress.ip_address(sess.remote_ip)
    if not _login_allowed(sess):
        raise No("login only after STARTTLS", "PRIVACYREQUIRED")
    if not _auth_fail.can_add(ip):
        raise No("too many failed logins, try again later", "UNAVAILABLE")
    try:
        account = await authenticate_plain(sess.cfg, cmd.username, cmd.password)
    except LoginDisabled as x:
        raise No(f"login disabled: {x}", "UNAVAILABLE") from None
    except LoginFailed:
        _auth_fail.add(ip)
        sess.slog.info("imap login failed", username=cmd.username)
        raise No("invalid credentials", "AUTHENTICATIONFAILED") from None
    _auth_fail.reset(ip)
    await _logged_in(sess, account, "LOGIN")
    return "login done", "CAPABILITY " + " ".join(capabilities(sess))


async def _sasl_line(sess: Session, challenge: bytes) -> bytes:
    sess.send(w.continuation(sasl.encode_challenge(challenge)))
    sess.creader.expect_line()
    e = await sess.next_event()
    if not isinstance(e, RawLine):
        raise Bad("expected a SASL response line")
    return e.line


async def _authenticate(sess: Session, cmd: p.Command) -> Result:
    """RFC 9051 section 6.2.2 with mox.sasl's mechanisms, as the SMTP server uses them."""
    assert isinstance(cmd, p.Authenticate)
    ip = ipaddress.ip_address(sess.remote_ip)
    mechs = _mechanisms(sess)
    if cmd.mechanism.upper() not in mechs:
        if cmd.mechanism.upper() in sasl.PLAINTEXT_MECHANISMS and not _login_allowed(sess):
            raise No("authentication only after STARTTLS", "PRIVACYREQUIRED")
        raise No("unsupported mechanism", "CANNOT")
    if not _auth_fail.can_add(ip):
        raise No("too many failed logins, try again later", "UNAVAILABLE")
    mech = sasl.new_server(cmd.mechanism, hostname=sess.cfg.static.Hostname, channel_bindings=sasl.channel_bindings(_ssl_object(sess)))
    lookup = _account_lookup(sess)
    if cmd.initial_response is None:
        step = mech.respond(None, initial=True)
    else:
        step = mech.step(cmd.initial_response)
    try:
        while True:
            if isinstance(step, sasl.NeedCredentials):
                step = await sasl.provide_credentials(mech, step, lookup)
            elif isinstance(step, sasl.Challenge):
                step = mech.respond(await _sasl_line(sess, step.data))
            else:
                break
    except LoginDisabled as x:
        raise No(f"login disabled: {x}", "UNAVAILABLE") from None
    if isinstance(step, sasl.Success):
        _auth_fail.reset(ip)
        await _logged_in(sess, step.account, mech.name)
        return "authenticate done", "CAPABILITY " + " ".join(capabilities(sess))
    assert isinstance(step, sasl.Failure)
    sess.slog.info("imap authentication failed", mechanism=mech.name, reason=step.reason)
    if step.server_data is not None:
        # RFC 5802 section 7: the server-final-message with the error, then the failure.
        await _sasl_line(sess, step.server_data)
    if step.code in (sasl.FailureCode.ABORTED, sasl.FailureCode.MALFORMED, sasl.FailureCode.TOO_LONG):
        raise Bad(step.reason or "authentication aborted")
    _auth_fail.add(ip)
    if step.code == sasl.FailureCode.AUTHZ_NOT_PERMITTED:
        raise No("authorization identity not permitted", "AUTHORIZATIONFAILED")
    raise No("invalid credentials", "AUTHENTICATIONFAILED")


def _account_lookup(sess: Session) -> sasl.CredentialLookup:
    from mox.sasl.accounts import account_lookup

    return account_lookup(sess.cfg)


# Authenticated.


_ENABLEABLE = {"IMAP4REV2", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC", "UIDONLY"}


async def _enable(sess: Session, cmd: p.Command) -> Result:
    """RFC 5161: turn on extensions; ENABLED names those we know that need enabling."""
    assert isinstance(cmd, p.Enable)
    out: list[str] = []
    for c in cmd.capabilities:
        if c in _ENABLEABLE and c not in sess.disabled:
            if c not in sess.enabled:
                sess.enabled.add(c)
            out.append(c)
    # RFC 7162 section 3.2.3: QRESYNC implies CONDSTORE.
    if "QRESYNC" in out and "CONDSTORE" not in out:
        was = sess.condstore
        await mailboxes.ensure_condstore(sess)
        if not was:
            out.append("CONDSTORE")
    sess.creader.utf8 = sess.utf8
    sess.send(w.untagged(" ".join(["ENABLED", *[_CAP_SPELLING.get(c, c) for c in out]])))
    return "enable done", None


_CAP_SPELLING = {"IMAP4REV2": "IMAP4rev2"}


async def _namespace(sess: Session, cmd: p.Command) -> Result:
    # RFC 2342, RFC 9051 section 6.3.10: one personal namespace, "/" as hierarchy delimiter.
    sess.send(w.namespace(""))
    return "namespace done", None


async def _compress(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Compress)
    if sess.compressing:
        raise No("already compressing", "COMPRESSIONACTIVE")
    if cmd.mechanism != "DEFLATE" or "COMPRESS=DEFLATE" in sess.disabled:
        raise Bad("only DEFLATE compression is supported")
    return "deflate active", None


async def _idle(sess: Session, cmd: p.Command) -> Result:
    """RFC 2177: report changes as they happen until the client sends DONE."""
    sess.send(w.continuation("idling"))
    sess.creader.expect_line()
    assert sess.sub is not None
    # One read at a time, never cancelled: a cancelled read could lose the bytes it got.
    read: asyncio.Future[None] | None = None
    change = asyncio.ensure_future(_wait_change(sess.sub))
    try:
        while True:
            await flush(sess)
            await sess.drain()
            line = sess.creader.next_event()
            if line is not None:
                if isinstance(line, RawLine) and line.line.upper() == b"DONE":
                    return "idle done", None
                raise Bad("expected DONE")
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


async def _check(sess: Session, cmd: p.Command) -> Result:
    return "check done", None


_HANDLERS: dict[str, Callable[[Session, p.Command], Awaitable[Result | None]]] = {
    "CAPABILITY": _capability,
    "NOOP": _noop,
    "CHECK": _check,
    "LOGOUT": _logout,
    "ID": _id,
    "STARTTLS": _starttls,
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "NAMESPACE": _namespace,
    "COMPRESS": _compress,
    "IDLE": _idle,
    "SELECT": mailboxes.select,
    "EXAMINE": mailboxes.select,
    "CREATE": mailboxes.create,
    "DELETE": mailboxes.delete,
    "RENAME": mailboxes.rename,
    "SUBSCRIBE": mailboxes.subscribe,
    "UNSUBSCRIBE": mailboxes.subscribe,
    "LIST": mailboxes.list_,
    "LSUB": mailboxes.list_,
    "STATUS": mailboxes.status,
    "APPEND": mailboxes.append,
    "CLOSE": messages.close,
    "UNSELECT": messages.close,
    "EXPUNGE": messages.expunge,
    "STORE": messages.store,
    "COPY": messages.copy,
    "MOVE": messages.copy,
    "FETCH": messages.fetch,
    "REPLACE": messages.replace,
    "SEARCH": search.search,
    "GETQUOTA": mailboxes.getquota,
    "GETQUOTAROOT": mailboxes.getquotaroot,
    "GETMETADATA": mailboxes.getmetadata,
    "SETMETADATA": mailboxes.setmetadata,
    "ESEARCH": search.esearch,
    "NOTIFY": notify.notify,
    "SORT": search.sort,
    "THREAD": search.thread,
}


def register() -> None:
    """Install this server as the handler of the IMAP and IMAPS endpoints."""
    from mox.serve import services

    for kind in ("IMAP", "IMAPS"):
        services.HANDLERS[kind] = serve
