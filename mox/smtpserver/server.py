"""The asyncio SMTP server: incoming mail for our domains (the MX listener) and authenticated submission.

A thin driver around :class:`mox.smtp.server.Connection` (the protocol state
machine): it reads and writes the socket, upgrades to TLS, and answers the
state machine's decision events with the policy here:

- connection limits per source network (mox.ratelimit), refused with 421;
- AUTH through mox.sasl with the account's password secrets; failed logins
  counted per source network;
- RCPT: local recipients only unless authenticated (no open relay, RFC 5321
  section 3.6.2); unknown users 550 5.1.1; postmaster always accepted
  (section 4.5.1); a disabled domain 450 4.2.1;
- incoming messages: iprev, SPF, DKIM and DMARC checks, Received,
  Authentication-Results (RFC 8601) and Received-SPF headers; DMARC reject
  gives 550 5.7.1, quarantine delivers to Junk;
- submission: the From address must belong to the account, Message-ID and
  Date are added when missing, daily sending limits, DKIM signing;
- delivery through the store; the message is acknowledged only after every
  copy is committed.

Delivery to other domains needs the outgoing queue, which comes with the
outbound issue: until then submission to non-local recipients is refused at
RCPT with a clear permanent error (the message stays with the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import email.utils
import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from mox import authres, dkim, dmarc, dsn, iprev, mlog, sasl, spf
from mox import message as msg
from mox import queue as mqueue
from mox.config.load import Config
from mox.dmarcdb import Evaluation, EvaluationDB, interval_hours
from mox.dns import default_resolver
from mox.dns.domain import Domain, DomainError, parse_domain
from mox.localserve.failures import SimulatedFailure, simulated_failure
from mox.ratelimit import (
    connection_rate_limiter,
    connections_limiter,
    delivery_message_limiter,
    delivery_size_limiter,
    failed_auth_limiter,
)
from mox.serve.services import ConnContext
from mox.smtp import codes as c
from mox.smtp import command as cmd
from mox.smtp import server as sm
from mox.smtp.address import Address, parse_address
from mox.smtp.codes import Reply
from mox.smtp.path import Path
from mox.smtpserver.received import ReceivedInfo, received_header
from mox.store import QuotaExceeded, SMTPContext, StoreError
from mox.store.auth import LoginDisabled
from mox.store.deliver import (
    AliasPostRefused,
    DomainDisabled,
    UnknownRecipient,
    message_info,
    open_config_account,
    postmaster_recipient,
    resolve_recipient,
    ruleset_mailbox,
)
from mox.store.deliver import Recipient as LocalRecipient

log = mlog.new("smtpserver")

# RFC 5321 section 4.5.3.2: at least 5 minutes for commands, 3 for a DATA block.
COMMAND_TIMEOUT = 300.0
READ_SIZE = 64 * 1024
# Upstream's daily defaults when the account sets none.
DEFAULT_MAX_OUTGOING_PER_DAY = 1000
DEFAULT_MAX_FIRST_TIME_PER_DAY = 200

_conn_rate = connection_rate_limiter()
_conns = connections_limiter()
_auth_fail = failed_auth_limiter()
_deliveries = delivery_message_limiter()
_delivery_size = delivery_size_limiter()


@dataclass
class _Session:
    ctx: ConnContext
    remote_ip: str
    cid: str
    log: mlog.Log
    writer: asyncio.StreamWriter
    account: str = ""
    login: str = ""
    mech: sasl.Mechanism | None = None
    spool: bytearray = field(default_factory=bytearray)
    rcpts: dict[str, list[LocalRecipient]] = field(default_factory=dict)
    # Recipients in other domains on authenticated submission, for the outgoing queue.
    remote: set[str] = field(default_factory=set)
    # The reverse path of the current transaction ("" for the null path), from MAIL FROM.
    mail_from: str = ""
    # Checks of incoming mail that need no message content, started at the first accepted
    # RCPT TO so their DNS lookups overlap the rest of the transaction (see _prefetch_checks).
    iprev_task: asyncio.Task[iprev.Result] | None = None
    spf_task: asyncio.Task[spf.Received] | None = None
    spf_key: tuple[str, str] = ("", "")  # (mail_from, helo) the SPF check is for

    @property
    def submission(self) -> bool:
        return self.ctx.endpoint.kind != "SMTP"

    @property
    def cfg(self) -> Config:
        """The server's current configuration: a connection open across a reload or a ctl edit
        (an account or address added) sees the change at its next command, as upstream."""
        return self.ctx.server.cfg


def _reply(code: int, enhanced: str, text: str) -> Reply:
    return Reply(code, enhanced, (text,))


def _tls_info(writer: asyncio.StreamWriter) -> tuple[str, str, ssl.SSLObject | None]:
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return "", "", None
    version = (obj.version() or "").replace("TLSv", "TLS")
    cipher = obj.cipher()
    return version, cipher[0] if cipher else "", obj


def _auth_mechanisms(sess: _Session, tls: bool, ssl_obj: ssl.SSLObject | None) -> tuple[str, ...]:
    lst = sess.cfg.static.Listeners[sess.ctx.endpoint.listener]
    allow_plain = tls or lst.Submission.NoRequireSTARTTLS
    return tuple(sasl.mechanisms_offered(tls, bool(sasl.channel_bindings(ssl_obj)), allow_plain))


async def serve(ctx: ConnContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one SMTP connection (the handler registered for SMTP, Submission and Submissions)."""
    peer = writer.get_extra_info("peername")
    remote_ip = str(peer[0]) if peer else "0.0.0.0"
    cid = format(mlog.new_cid(), "x")
    slog = log.with_fields(cid=cid, remote=remote_ip, listener=ctx.endpoint.listener, kind=ctx.endpoint.kind)
    ip = ipaddress.ip_address(remote_ip)
    refusal = _conn_rate.try_add(ip)
    acquired = False
    if refusal is None:
        refusal = _conns.acquire(ip)
        acquired = refusal is None
    sess = _Session(ctx, remote_ip, cid, slog, writer)
    try:
        await _serve(ctx, reader, writer, sess, refusal)
    finally:
        _drop_checks(sess)
        if acquired:
            _conns.release(ip)


async def _serve(
    ctx: ConnContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sess: _Session, refusal: object
) -> None:
    cfg = sess.cfg
    lst = cfg.static.Listeners[ctx.endpoint.listener]
    hostname = cfg.static.HostnameDomain or Domain("localhost")
    tls_version, _, ssl_obj = _tls_info(writer)
    kind = ctx.endpoint.kind
    scfg = sm.ServerConfig(
        hostname=hostname,
        submission=sess.submission,
        tls_available=ctx.starttls is not None and not (kind == "SMTP" and lst.SMTP.NoSTARTTLS),
        tls_active=bool(tls_version),
        require_tls_for_auth=not (kind == "Submission" and lst.Submission.NoRequireSTARTTLS),
        max_message_size=lst.SMTPMaxMessageSize or sm.DEFAULT_MAX_MESSAGE_SIZE,
        requiretls=not lst.SMTP.NoRequireTLS,
        # FUTURERELEASE (RFC 4865, submission only): the outgoing queue holds the message until then.
        future_release=True,
        pedantic=cfg.static.Pedantic,
    )
    if sess.submission:
        scfg.auth_mechanisms = _auth_mechanisms(sess, bool(tls_version), ssl_obj)
    conn = sm.Connection(scfg)
    if refusal is not None:
        conn.refuse(_reply(c.C421_SERVICE_UNAVAIL, c.SE_POL7_OTHER_0, getattr(refusal, "text", "too many connections")))
    elif ctx.server.shutting_down:
        conn.refuse(_reply(c.C421_SERVICE_UNAVAIL, c.SE_SYS3_OTHER_0, "shutting down, try again later"))
    sess.log.debug("smtp connection")
    while True:
        ev = conn.next_event()
        if isinstance(ev, sm.NeedData):
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), COMMAND_TIMEOUT)
            except TimeoutError:
                conn.refuse(_reply(c.C421_SERVICE_UNAVAIL, c.SE_PROTO5_OTHER_0, "timeout, closing connection"))
                continue
            conn.receive_data(data)
        elif isinstance(ev, sm.SendReply):
            writer.write(ev.data)
        elif isinstance(ev, sm.Hello):
            conn.accept()
        elif isinstance(ev, sm.StartTLS):
            await writer.drain()
            assert ctx.starttls is not None
            await writer.start_tls(ctx.starttls)
            _, _, obj = _tls_info(writer)
            binding = sasl.channel_bindings(obj).get("tls-unique")
            mechs = _auth_mechanisms(sess, True, obj) if sess.submission else None
            conn.tls_started(channel_binding=binding, auth_mechanisms=mechs)
        elif isinstance(ev, sm.AuthStep):
            await _auth_step(sess, conn, ev)
        elif isinstance(ev, sm.AuthAborted):
            sess.mech = None
        elif isinstance(ev, sm.MailFrom):
            sess.spool.clear()
            sess.rcpts.clear()
            sess.remote.clear()
            sess.mail_from = ev.path.xstring() if ev.path is not None else ""
            fail = _localserve_failure(sess, ev.path, "mailfrom")
            if fail is not None:
                await _simulate(conn, writer, fail)
                continue
            conn.accept()
        elif isinstance(ev, sm.RcptTo):
            fail = _localserve_failure(sess, ev.path, "rcptto")
            if fail is not None:
                await _simulate(conn, writer, fail)
                continue
            _rcpt(sess, conn, ev)
            if sess.rcpts and not sess.submission:
                _prefetch_checks(sess, conn)
        elif isinstance(ev, sm.MessageData):
            sess.spool += ev.data
        elif isinstance(ev, sm.MessageAborted):
            sess.spool.clear()
        elif isinstance(ev, sm.MessageComplete):
            data = bytes(sess.spool)
            sess.spool.clear()
            reply = await _message(sess, conn, ev, data)
            if reply.code < 400:
                conn.accept(reply)
            else:
                conn.reject(reply)
        elif isinstance(ev, sm.Close):
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.drain()
            sess.log.debug("smtp connection closed", reason=ev.reason)
            return


async def _auth_step(sess: _Session, conn: sm.Connection, ev: sm.AuthStep) -> None:
    ip = ipaddress.ip_address(sess.remote_ip)
    refusal = _auth_fail.check(ip)
    if refusal is not None:
        conn.auth_fail(_reply(c.C421_SERVICE_UNAVAIL, c.SE_POL7_OTHER_0, refusal.text))
        return
    try:
        if ev.first:
            _, _, obj = _tls_info(sess.writer)
            sess.mech = sasl.new_server(ev.mechanism, hostname=sess.cfg.static.Hostname, channel_bindings=sasl.channel_bindings(obj))
        assert sess.mech is not None
        step = sess.mech.step(ev.data)
        while isinstance(step, sasl.NeedCredentials):
            step = await sasl.provide_credentials(sess.mech, step, _account_lookup(sess.cfg))
    except LoginDisabled as e:
        conn.auth_fail(_reply(c.C535_AUTH_BAD_CREDS, c.SE_POL7_AUTH_BAD_CREDS_8, f"login disabled: {e}"))
        return
    except (sasl.UnsupportedMechanism, ValueError) as e:
        conn.auth_fail(_reply(c.C504_PARAM_NOT_IMPL, c.SE_PROTO5_SYNTAX_2, str(e)))
        return
    if isinstance(step, sasl.Challenge):
        conn.auth_continue(step.data)
    elif isinstance(step, sasl.Success):
        sess.account, sess.login = step.account, step.username
        _auth_fail.reset(ip)
        sess.log.info("authenticated", account=step.account, mechanism=ev.mechanism)
        conn.auth_success()
    else:
        assert isinstance(step, sasl.Failure)
        _auth_fail.add(ip)
        sess.log.info("authentication failed", mechanism=ev.mechanism, reason=step.reason)
        code = step.code
        if code in (sasl.FailureCode.MALFORMED, sasl.FailureCode.TOO_LONG, sasl.FailureCode.ABORTED):
            conn.auth_fail(_reply(c.C501_BAD_PARAM_SYNTAX, c.SE_PROTO5_SYNTAX_2, step.reason or "malformed"))
        else:
            conn.auth_fail()


def _account_lookup(cfg: Config) -> sasl.CredentialLookup:
    from mox.sasl.accounts import account_lookup

    return account_lookup(cfg)


# mox localserve (upstream's -localserve): addresses nobody has are delivered to this account.
LOCALSERVE_ADDRESS = "mox@localhost"
# How long a simulated "timeout" failure keeps the client waiting (upstream: an hour).
LOCALSERVE_TIMEOUT = 3600.0


def _localserve_failure(sess: _Session, path: Path | None, stage: str) -> SimulatedFailure | None:
    """Under mox localserve, the failure a local part asks for at this stage (mox.localserve.failures)."""
    if not sess.ctx.server.localserve or path is None:
        return None
    f = simulated_failure(path.localpart)
    return f if f is not None and f.stage == stage else None


async def _simulate(conn: sm.Connection, writer: asyncio.StreamWriter, f: SimulatedFailure) -> None:
    if f.timeout:
        await writer.drain()
        await asyncio.sleep(LOCALSERVE_TIMEOUT)
    se = c.SE_MAILBOX2_OTHER_0 if f.code < 500 else c.SE_ADDR1_UNKNOWN_DEST_MAILBOX_1
    conn.reject(_reply(f.code, se, f"simulated error {f.code} (mox localserve)"))


def _rcpt(sess: _Session, conn: sm.Connection, ev: sm.RcptTo) -> None:
    cfg = sess.cfg
    path = ev.path
    key = path.xstring()
    if path.is_postmaster_only():
        sess.rcpts[key] = [postmaster_recipient(cfg)]
        conn.accept()
        return
    addr = path.address()
    if sess.ctx.server.localserve and addr is not None and not (sess.submission and sess.account and not _is_local(cfg, addr)):
        # As upstream's localserve: known addresses as usual, any other address (also in other
        # domains) of incoming mail to the mox account. Submissions to other domains are queued.
        try:
            sess.rcpts[key] = resolve_recipient(cfg, addr)
        except (UnknownRecipient, AliasPostRefused, DomainDisabled):
            sess.rcpts[key] = resolve_recipient(cfg, parse_address(LOCALSERVE_ADDRESS))
        conn.accept()
        return
    if addr is None or (addr.domain.name not in cfg.dynamic.Domains and addr.domain != cfg.static.HostnameDomain):
        if sess.submission and sess.account and addr is not None:
            # Authenticated submission to another domain: through the outgoing queue.
            sess.remote.add(key)
            conn.accept()
        else:
            conn.reject(_reply(c.C550_MAILBOX_UNAVAIL, c.SE_POL7_DELIVERY_UNAUTH_1, "not accepting email for domain (no relaying)"))
        return
    try:
        rs = resolve_recipient(cfg, addr)
    except DomainDisabled as e:
        conn.reject(_reply(c.C450_MAILBOX_UNAVAIL, c.SE_MAILBOX2_DISABLED_1, str(e)))
        return
    except (UnknownRecipient, AliasPostRefused):
        # Alias posting rights depend on the From header: checked at DATA.
        if addr.domain.name in cfg.dynamic.Domains and _is_alias(cfg, addr.localpart, addr.domain.name):
            sess.rcpts[key] = []
            conn.accept()
            return
        conn.reject(_reply(c.C550_MAILBOX_UNAVAIL, c.SE_ADDR1_UNKNOWN_DEST_MAILBOX_1, "no such user"))
        return
    for r in rs:
        if r.destination.SMTPError:
            code, _, text = r.destination.SMTPError.partition(" ")
            if code == "421":
                conn.reject(_reply(c.C451_LOCAL_ERR, c.SE_SYS3_OTHER_0, text or "error processing"))
            else:
                conn.reject(_reply(c.C550_MAILBOX_UNAVAIL, c.SE_ADDR1_UNKNOWN_DEST_MAILBOX_1, text or "no such user(s)"))
            return
    sess.rcpts[key] = rs
    conn.accept()


def _is_local(cfg: Config, addr: Address) -> bool:
    return addr.domain.name in cfg.dynamic.Domains or addr.domain == cfg.static.HostnameDomain


def _is_alias(cfg: Config, localpart: str, domain: str) -> bool:
    from mox.config.load import canonical_localpart

    dom = cfg.dynamic.Domains[domain]
    lp = canonical_localpart(localpart, dom)
    return any(canonical_localpart(k, dom) == lp for k in dom.Aliases)


def _helo(conn: sm.Connection) -> str:
    hello = conn.hello
    return hello.domain.ascii if hello is not None and hello.domain is not None else ""


def _prefetch_checks(sess: _Session, conn: sm.Connection) -> None:
    """Start the iprev and SPF checks of incoming mail once a transaction has a local recipient.

    They depend only on the connection and the envelope, not on the content, so their DNS
    lookups run while the client sends DATA; the DATA handling awaits them (upstream looks
    them up after the data). iprev is per connection (the remote IP does not change), SPF
    per reverse path and EHLO name. Started at RCPT rather than MAIL FROM so a transaction
    that names no valid recipient costs no lookups.
    """
    resolver = default_resolver()
    if sess.iprev_task is None or (sess.iprev_task.done() and (sess.iprev_task.cancelled() or sess.iprev_task.exception())):
        sess.iprev_task = asyncio.ensure_future(iprev.lookup(sess.remote_ip, resolver))
    key = (sess.mail_from, _helo(conn))
    if sess.spf_task is None or sess.spf_key != key:
        _drop_task(sess.spf_task)
        sess.spf_key = key
        sess.spf_task = asyncio.ensure_future(
            spf.verify(resolver, sess.remote_ip, key[0], key[1], receiving_host=sess.cfg.static.Hostname)
        )


def _drop_task(t: asyncio.Task[Any] | None) -> None:
    if t is None:
        return
    if not t.done():
        t.cancel()
    elif not t.cancelled():
        t.exception()  # retrieved: no "never retrieved" warning for a check nobody awaited


def _drop_checks(sess: _Session) -> None:
    _drop_task(sess.iprev_task)
    _drop_task(sess.spf_task)
    sess.iprev_task = sess.spf_task = None


async def _checks_iprev(sess: _Session) -> iprev.Result:
    t = sess.iprev_task
    if t is None or (t.done() and (t.cancelled() or t.exception())):
        return await iprev.lookup(sess.remote_ip, default_resolver())
    return await t


async def _checks_spf(sess: _Session, mail_from: str, helo: str) -> spf.Received:
    t = sess.spf_task
    if t is None or sess.spf_key != (mail_from, helo) or (t.done() and (t.cancelled() or t.exception())):
        return await spf.verify(default_resolver(), sess.remote_ip, mail_from, helo, receiving_host=sess.cfg.static.Hostname)
    return await t


async def _dmarc_lookup(from_domain: Domain | None) -> dmarc.Lookup | None:
    if from_domain is None:
        return None
    return await dmarc.lookup(from_domain, default_resolver())


def _from_address(data: bytes) -> tuple[str, Domain | None]:
    part = msg.parse(data)
    env = part.envelope
    if env is None or len(env.from_) != 1:
        return "", None
    a = env.from_[0]
    try:
        return f"{a.user}@{a.host}", parse_domain(a.host)
    except (DomainError, ValueError):
        return f"{a.user}@{a.host}", None


async def _message(sess: _Session, conn: sm.Connection, ev: sm.MessageComplete, data: bytes) -> Reply:
    for p, _ in ev.recipients:
        fail = _localserve_failure(sess, p, "data")
        if fail is not None:
            if fail.timeout:
                await sess.writer.drain()
                await asyncio.sleep(LOCALSERVE_TIMEOUT)
            se = c.SE_MAILBOX2_OTHER_0 if fail.code < 500 else c.SE_ADDR1_UNKNOWN_DEST_MAILBOX_1
            return _reply(fail.code, se, f"simulated error {fail.code} (mox localserve)")
    try:
        if sess.submission:
            return await _submission(sess, conn, ev, data)
        return await _incoming(sess, conn, ev, data)
    except Exception as e:
        sess.log.errorx("processing message", e)
        return _reply(c.C451_LOCAL_ERR, c.SE_SYS3_OTHER_0, "error processing message, try again later")


def _received(sess: _Session, conn: sm.Connection, ev: sm.MessageComplete) -> bytes:
    tls_version, cipher, _ = _tls_info(sess.writer)
    local = sess.writer.get_extra_info("sockname")
    hello = conn.hello
    ehlo = ""
    if hello is not None:
        ehlo = hello.domain.ascii if hello.domain is not None else (f"[{hello.ip}]" if hello.ip else hello.raw)
    return received_header(
        ReceivedInfo(
            ehlo=ehlo,
            remote_ip=sess.remote_ip,
            local_hostname=sess.cfg.static.Hostname,
            local_ip=str(local[0]) if local else "",
            tls_version=tls_version,
            tls_cipher=cipher,
            authenticated=bool(sess.account),
            smtputf8=ev.mail_params.smtputf8,
            connection_id=sess.cid,
            recipient=ev.recipients[0][0].xstring() if len(ev.recipients) == 1 else "",
        )
    )


async def _deliver_all(
    sess: _Session, ev: sm.MessageComplete, data: bytes, smtp_ctx: SMTPContext, *, junk: bool = False
) -> Reply:
    """Store a copy for every local recipient. DATA has one reply per transaction: when every
    copy fails, the reply is the error; when only some fail, the message is accepted and the
    sender gets a DSN for the recipients that failed (as upstream), so a retry by the client
    duplicates nothing and nothing is lost silently."""
    cfg = sess.cfg
    msg_from = smtp_ctx.msg_from
    # Each target account/destination with the recipients it serves.
    targets: list[tuple[LocalRecipient, list[tuple[Path, cmd.RcptParams]]]] = []
    for path, params in ev.recipients:
        rs = sess.rcpts.get(path.xstring())
        if rs == [] and path.address() is not None:
            a = path.address()
            assert a is not None
            try:
                rs = resolve_recipient(cfg, a, msg_from=msg_from)
            except AliasPostRefused as e:
                return _reply(c.C550_MAILBOX_UNAVAIL, c.SE_POL7_OTHER_0, str(e))
        for r in rs or []:
            for t, paths in targets:
                if t.account == r.account and t.destination is r.destination:
                    paths.append((path, params))
                    break
            else:
                targets.append((r, [(path, params)]))
    # Parsed once for all copies; a single copy is parsed by the store (on its database thread
    # when the delivery is alone, saving thread hops).
    info = await asyncio.to_thread(message_info, data) if len(targets) > 1 else None
    failures: list[tuple[list[tuple[Path, cmd.RcptParams]], Reply]] = []
    for r, paths in targets:
        mailbox = "Junk" if junk else ruleset_mailbox(r.destination, data, smtp_ctx)
        try:
            acc = await open_config_account(cfg, r.account)
            try:
                await acc.add_message(mailbox, data, smtp=smtp_ctx, info=info)
            finally:
                await acc.close()
        except QuotaExceeded as e:
            failures.append((paths, _reply(c.C552_MAILBOX_FULL, c.SE_MAILBOX2_FULL_2, str(e))))
        except StoreError as e:
            sess.log.errorx("storing message", e, account=r.account)
            failures.append((paths, _reply(c.C451_LOCAL_ERR, c.SE_SYS3_OTHER_0, "error storing message, try again later")))
    if failures and len(failures) == len(targets):
        # Nothing stored: the client keeps the message and retries (or bounces it) itself.
        return failures[0][1]
    if failures:
        failed = {p.xstring(): (p, params, reply) for paths, reply in failures for p, params in paths}
        # A recipient also served by a target that succeeded got the message.
        for _r, paths in targets:
            if not any(paths is fp for fp, _ in failures):
                for p, _ in paths:
                    failed.pop(p.xstring(), None)
        if failed:
            await _partial_failure_dsn(sess, ev, data, list(failed.values()))
    sess.log.info("message delivered", recipients=len(targets) - len(failures), failed=len(failures), size=len(data))
    return _reply(c.C250_COMPLETED, c.SE_MAILBOX2_OTHER_0, f"{sess.cid} message delivered")


async def _partial_failure_dsn(
    sess: _Session, ev: sm.MessageComplete, data: bytes, failed: list[tuple[Path, cmd.RcptParams, Reply]]
) -> None:
    """Queue a failure DSN (RFC 3464) to the envelope sender for recipients whose copy could not be stored.

    None for the null reverse-path (RFC 5321 section 4.5.5: no DSN about a DSN)
    or when every failed recipient asked for NOTIFY=NEVER or no failure notices.
    """
    if ev.mail_from is None:
        sess.log.info("not sending dsn for partially failed delivery: null sender", failed=len(failed))
        return
    rcpts = []
    for p, params, reply in failed:
        if params.notify is not None and "FAILURE" not in params.notify:
            continue
        rcpts.append(
            dsn.Recipient(
                final_recipient=p.xstring(),
                action=dsn.Action.FAILED,
                # Action "failed" takes a permanent status (RFC 3464 section 2.3.4): the message is
                # not retried for this recipient, whatever the class of the local error was.
                status="5." + (reply.enhanced if reply.enhanced.count(".") == 1 else reply.enhanced.partition(".")[2] or "0.0"),
                original_recipient=params.orcpt or "",
                original_recipient_type=params.orcpt_type or "rfc822",
                diagnostic_code=" ".join(reply.lines),
                diagnostic_type="X-moxmail",
                last_attempt_date=datetime.datetime.now(datetime.UTC),
            )
        )
    if not rcpts:
        return
    cfg = sess.cfg
    host = cfg.static.HostnameDomain.ascii if cfg.static.HostnameDomain is not None else "localhost"
    hdrs = ev.mail_params.ret != "FULL"
    text = (
        "Delivery of your message failed for the recipients below, while it succeeded for the others.\n\n"
        + "".join(f"\t{r.final_recipient}: {r.diagnostic_code}\n" for r in rcpts)
    )
    report = dsn.compose(
        dsn.Message(
            from_addr=f"postmaster@{host}",
            to_addr=ev.mail_from.xstring(),
            subject="mail delivery failed",
            message_id=f"{time.time_ns():x}.dsn.{sess.cid}@{host}",
            reporting_mta=host,
            recipients=rcpts,
            text_body=text,
            smtputf8=ev.mail_params.smtputf8,
            original_envelope_id=ev.mail_params.envid or "",
            arrival_date=datetime.datetime.now(datetime.UTC),
            original=data if not hdrs else dsn.header_section(data),
            original_full=not hdrs,
        ),
        smtputf8=ev.mail_params.smtputf8,
    )
    try:
        await mqueue.current().add("", None, [mqueue.NewRecipient(ev.mail_from)], report, smtputf8=ev.mail_params.smtputf8)
    except mqueue.QueueError as e:
        sess.log.errorx("queueing dsn for partially failed delivery", e)


async def _incoming(sess: _Session, conn: sm.Connection, ev: sm.MessageComplete, data: bytes) -> Reply:
    cfg = sess.cfg
    # Upstream's per-network delivery limits: the reply names the limit (temporary, the sender retries later).
    ip = ipaddress.ip_address(sess.remote_ip)
    refusal = _deliveries.try_add(ip, n=len(ev.recipients)) or _delivery_size.try_add(ip, n=len(data) * len(ev.recipients))
    if refusal is not None:
        sess.log.info("delivery rate limited", limit=refusal.name)
        return _reply(c.C451_LOCAL_ERR, c.SE_POL7_DELIVERY_UNAUTH_1, refusal.text)
    resolver = default_resolver()
    helo = _helo(conn)
    mail_from = ev.mail_from.xstring() if ev.mail_from is not None else ""
    from_addr, from_domain = _from_address(data)
    # All lookups at once: iprev and SPF were usually started at RCPT TO already; the DMARC
    # record needs only the From domain, its evaluation (below) the DKIM and SPF results.
    iprev_res, spf_res, dkim_res, dmarc_lookup = await asyncio.gather(
        _checks_iprev(sess),
        _checks_spf(sess, mail_from, helo),
        dkim.verify(data, resolver),
        _dmarc_lookup(from_domain),
    )
    dmarc_use, dmarc_res = False, None
    spf_identity: Domain | None = None
    if ev.mail_from is not None and ev.mail_from.domain is not None:
        spf_identity = ev.mail_from.domain
    elif helo:
        with contextlib.suppress(DomainError):
            spf_identity = parse_domain(helo)
    if from_domain is not None:
        dmarc_use, dmarc_res = await dmarc.verify(
            resolver, from_domain, dkim_res, str(spf_res.result), spf_identity, looked_up=dmarc_lookup
        )
    ar = authres.AuthResults(cfg.static.Hostname)
    ar.methods.append(authres.iprev_method(iprev_res, sess.remote_ip))
    ar.methods.append(authres.spf_method(str(spf_res.result), spf_identity, spf_res.authentic))
    ar.methods.extend(authres.dkim_methods(dkim_res))
    ar.methods.append(authres.dmarc_method(dmarc_res, from_domain))
    reject = junk = False
    if dmarc_use and dmarc_res is not None and dmarc_res.reject:
        reject = str(dmarc_res.policy_applied) == "reject"
        junk = not reject  # quarantine
    if dmarc_res is not None and dmarc_res.record is not None and dmarc_res.record.aggregate_report_addresses:
        await _store_dmarc_evaluation(sess, ev, dmarc_res, dkim_res, spf_res, from_domain, spf_identity, junk)
    if reject:
        sess.log.info("message rejected by dmarc policy", from_domain=str(from_domain))
        return _reply(c.C550_MAILBOX_UNAVAIL, c.SE_POL7_DELIVERY_UNAUTH_1, "rejecting per dmarc policy")
    prefix = ar.header().encode() + spf_res.header().encode() + _received(sess, conn, ev)
    passing = [str(r.domain) for r in dkim_res if str(r.status) == "pass"]
    smtp_ctx = SMTPContext(
        remote_ip=sess.remote_ip, ehlo=helo, mail_from=mail_from,
        rcpt_to=",".join(p.xstring() for p, _ in ev.recipients), msg_from=from_addr,
        spf=str(spf_res.result), dkim_domains=passing, dmarc=str(dmarc_res.status) if dmarc_res else "",
        tls_version=_tls_info(sess.writer)[0],
    )  # fmt: skip
    reply = await _deliver_all(sess, ev, prefix + data, smtp_ctx, junk=junk)
    if reply.code == c.C250_COMPLETED:
        await _process_reports(sess, ev, data, from_domain, dmarc_res is not None and str(dmarc_res.status) == "pass", dkim_res)
    return reply


async def _process_reports(
    sess: _Session, ev: sm.MessageComplete, data: bytes, from_domain: Domain | None, dmarc_pass: bool, dkim_res: list[dkim.Result]
) -> None:
    """Messages to our DMARC/TLS reporting addresses are delivered as usual, and their reports
    are parsed and stored for the statistics (mox.dmarcdb, mox.tlsrptdb). Never fails delivery."""
    from mox.dmarcdb.incoming import is_report_address, process_report_delivery

    # RFC 8460 section 3: a signature covering only part of the body (l=) does not count, nor one
    # whose key is restricted to services other than "tlsrpt" (s=), as upstream.
    dkim_pass = [
        r.sig.domain
        for r in dkim_res
        if str(r.status) == "pass"
        and r.sig is not None
        and r.sig.length is None
        and (r.record is None or any(sv in ("*", "tlsrpt") for sv in r.record.services))
    ]
    mail_from = ev.mail_from.xstring() if ev.mail_from is not None else ""
    for p, _ in ev.recipients:
        rcpt = p.xstring()
        if not is_report_address(sess.cfg, rcpt):
            continue
        await process_report_delivery(
            sess.cfg, rcpt, data, from_domain=from_domain, dmarc_pass=dmarc_pass, dkim_pass_domains=dkim_pass, mail_from=mail_from
        )


_evaldb: EvaluationDB | None = None
_evaldb_lock = asyncio.Lock()


async def _evaluations(cfg: Config) -> EvaluationDB:
    global _evaldb
    async with _evaldb_lock:
        if _evaldb is None:
            _evaldb = await EvaluationDB.open(cfg.data_dir / "dmarceval.db")
        return _evaldb


async def close() -> None:
    """Close the server's databases (at shutdown)."""
    global _evaldb
    if _evaldb is not None:
        await _evaldb.close()
        _evaldb = None


def _report_addresses(cfg: Config) -> set[str]:
    out = set()
    for dname, dom in cfg.dynamic.Domains.items():
        for rep in (dom.DMARC, dom.TLSRPT):
            if rep is not None:
                out.add(f"{rep.ParsedLocalpart}@{rep.DNSDomain.name if rep.DNSDomain else dname}".lower())
    if cfg.static.HostTLSRPT.ParsedLocalpart:
        out.add(f"{cfg.static.HostTLSRPT.ParsedLocalpart}@{cfg.static.Hostname}".lower())
    return out


async def _store_dmarc_evaluation(
    sess: _Session,
    ev: sm.MessageComplete,
    res: dmarc.Result,
    dkim_res: list[dkim.Result],
    spf_res: spf.Received,
    from_domain: Domain | None,
    spf_identity: Domain | None,
    junk: bool,
) -> None:
    """Keep the evaluation for the policy domain's aggregate reports (RFC 7489 section 7.2), as upstream:
    not for messages to our own reporting addresses (reports are not evaluated for reports)."""
    reporting = _report_addresses(sess.cfg)
    if any(p.xstring().lower() in reporting for p, _ in ev.recipients):
        return
    r = res.record
    assert r is not None and from_domain is not None
    from mox import publicsuffix

    org = publicsuffix.lookup(from_domain)
    ev_dkim = [
        {"domain": x.sig.domain.name, "selector": x.sig.selector.ascii, "result": str(x.status)}
        for x in dkim_res
        if x.sig is not None and publicsuffix.lookup(x.sig.domain) == org
    ]
    scope = "mfrom" if ev.mail_from is not None else "helo"
    spf_results = [{"domain": spf_identity.name, "scope": scope, "result": str(spf_res.result)}] if spf_identity else []
    disposition = "none"
    if res.reject:
        disposition = "quarantine" if junk else "reject"
    evaluation = Evaluation(
        policy_domain=res.domain.name,
        interval_hours=interval_hours(r.aggregate_reporting_interval),
        addresses=[str(u) for u in r.aggregate_report_addresses],
        policy_published={
            "domain": res.domain.name, "adkim": str(r.adkim), "aspf": str(r.aspf), "p": str(r.policy),
            "sp": str(r.subdomain_policy or r.policy), "pct": r.percentage,
        },
        source_ip=sess.remote_ip,
        disposition=disposition,
        aligned_dkim_pass=res.aligned_dkim_pass,
        aligned_spf_pass=res.aligned_spf_pass,
        envelope_to=ev.recipients[0][0].domain.name if ev.recipients and ev.recipients[0][0].domain else "",
        envelope_from=ev.mail_from.domain.name if ev.mail_from is not None and ev.mail_from.domain else "",
        header_from=from_domain.name,
        dkim_results=ev_dkim,
        spf_results=spf_results,
    )  # fmt: skip
    try:
        await (await _evaluations(sess.cfg)).add(evaluation)
    except Exception as e:
        sess.log.errorx("storing dmarc evaluation", e)


async def _submission(sess: _Session, conn: sm.Connection, ev: sm.MessageComplete, data: bytes) -> Reply:
    cfg = sess.cfg
    from_addr, from_domain = _from_address(data)
    if from_domain is None:
        return _reply(c.C550_MAILBOX_UNAVAIL, c.SE_MSG6_OTHER_0, "message needs exactly one From address")
    lp = from_addr.rsplit("@", 1)[0]
    ad = cfg.lookup_address(lp, from_domain)
    if ad is None or ad.account != sess.account or ad.catchall:
        return _reply(c.C550_MAILBOX_UNAVAIL, c.SE_POL7_DELIVERY_UNAUTH_1, "message From address not allowed for this account")
    dom = cfg.dynamic.Domains.get(from_domain.name)
    if dom is not None and dom.Disabled:
        return _reply(c.C451_LOCAL_ERR, c.SE_SYS3_OTHER_0, "sender domain temporarily disabled")
    acc_conf = cfg.dynamic.Accounts[sess.account]
    acc = await open_config_account(cfg, sess.account)
    try:
        limit = await acc.check_send_limits(
            [p.xstring() for p, _ in ev.recipients],
            max_messages=acc_conf.MaxOutgoingMessagesPerDay or DEFAULT_MAX_OUTGOING_PER_DAY,
            max_first_time=acc_conf.MaxFirstTimeRecipientsPerDay or DEFAULT_MAX_FIRST_TIME_PER_DAY,
        )
    finally:
        await acc.close()
    if limit is not None:
        name, value = limit
        return _reply(
            c.C451_LOCAL_ERR, c.SE_POL7_DELIVERY_UNAUTH_1,
            f"sending limit reached: at most {value} per day, raise {name} in the account's config to send more",
        )  # fmt: skip
    extra = b""
    part = msg.parse(data)
    headers = {n.lower() for n, _ in msg.parse_headers(data[part.header_offset : part.body_offset])}
    if "message-id" not in headers:
        extra += f"Message-ID: <{time.time_ns():x}.{sess.cid}@{cfg.static.Hostname}>\r\n".encode()
    if "date" not in headers:
        extra += f"Date: {email.utils.formatdate(localtime=False)}\r\n".encode()
    data = extra + data
    if dom is not None and dom.DKIM.Sign:
        selectors = [dkim.selector_from_config(dom.DKIM.Selectors[s]) for s in dom.DKIM.Sign]
        sig = await dkim.sign_async(data, from_domain, selectors, localpart=lp)
        data = sig.encode() + data
    received = _received(sess, conn, ev)
    remote = [(p, params) for p, params in ev.recipients if p.xstring() in sess.remote]
    local = tuple((p, params) for p, params in ev.recipients if p.xstring() not in sess.remote)
    if local:
        # Local copies first: a failure here leaves nothing queued, so the client's retry
        # duplicates nothing. (A queue failure after this makes the retry duplicate the
        # local copies; nothing is lost either way.)
        ar = authres.AuthResults(cfg.static.Hostname, methods=[authres.auth_method(sess.login)])
        smtp_ctx = SMTPContext(remote_ip=sess.remote_ip, mail_from=ev.mail_from.xstring() if ev.mail_from else "", msg_from=from_addr)
        reply = await _deliver_all(sess, dataclasses.replace(ev, recipients=local), ar.header().encode() + received + data, smtp_ctx)
        if reply.code != c.C250_COMPLETED or not remote:
            return reply
    result = await _queue_remote(sess, ev, remote, data, received)
    if isinstance(result, Reply):
        return result
    sess.log.info("message queued", ids=result, size=len(data))
    return _reply(c.C250_COMPLETED, c.SE_MAILBOX2_OTHER_0, f"{sess.cid} message queued for delivery")


def _tls_required_no(data: bytes) -> bool:
    """RFC 8689 section 5: a "TLS-Required: No" header asks to deliver even without verified TLS."""
    part = msg.parse(data)
    for name, value in msg.parse_headers(data[part.header_offset : part.body_offset]):
        if name.lower() == "tls-required" and value.strip().lower() == b"no":
            return True
    return False


async def _queue_remote(
    sess: _Session, ev: sm.MessageComplete, remote: list[tuple[Path, cmd.RcptParams]], data: bytes, received: bytes
) -> list[int] | Reply:
    """Add a submitted message for recipients in other domains to the outgoing queue.

    The DKIM-Signature is already part of data; the Received header becomes the
    queued message's prefix. DSN parameters (RFC 3461), REQUIRETLS or
    TLS-Required: No (RFC 8689) and FUTURERELEASE (RFC 4865) go with it.
    """
    mp = ev.mail_params
    next_attempt: float | None = None
    release = ""
    if mp.hold_for is not None:
        next_attempt = time.time() + mp.hold_for
        release = f"for;{mp.hold_for}"
    elif mp.hold_until is not None:
        next_attempt = mp.hold_until.timestamp()
        release = "until;" + mp.hold_until.strftime("%Y-%m-%dT%H:%M:%SZ")
    requiretls: bool | None = True if mp.requiretls else (False if _tls_required_no(data) else None)
    recipients = [
        mqueue.NewRecipient(p, notify=params.notify, orcpt_type=params.orcpt_type or "", orcpt=params.orcpt or "")
        for p, params in remote
    ]
    try:
        return await mqueue.current().add(
            sess.account,
            ev.mail_from,
            recipients,
            data,
            msg_prefix=received,
            has8bit=ev.stats.has_8bit,
            smtputf8=mp.smtputf8,
            requiretls=requiretls,
            next_attempt=next_attempt,
            future_release_request=release,
            dsn_options=mqueue.DSNOptions(envid=mp.envid or "", ret=mp.ret or ""),
        )
    except mqueue.Suppressed as e:
        return _reply(c.C550_MAILBOX_UNAVAIL, c.SE_ADDR1_UNKNOWN_DEST_MAILBOX_1, str(e))
    except mqueue.QueueError as e:
        sess.log.errorx("adding message to queue", e)
        return _reply(c.C451_LOCAL_ERR, c.SE_SYS3_OTHER_0, "error queueing message, try again later")


def register() -> None:
    """Install this server as the handler of the SMTP, Submission and Submissions endpoints."""
    from mox.serve import services

    for kind in ("SMTP", "Submission", "Submissions"):
        services.HANDLERS[kind] = serve

