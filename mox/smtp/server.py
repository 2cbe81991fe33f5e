"""The server side of an SMTP conversation as a state machine without I/O (h11 style).

RFC 5321 (SMTP: command order in section 4.1.4, replies in 4.2, 4.3.2), RFC
1870 (SIZE), RFC 2034 (ENHANCEDSTATUSCODES), RFC 2920 (PIPELINING), RFC 3030
(CHUNKING, BINARYMIME), RFC 3207 (STARTTLS), RFC 3461 (DSN), RFC 4865
(FUTURERELEASE), RFC 4954 (AUTH), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8),
RFC 8689 (REQUIRETLS), RFC 9422 (LIMITS).

A driver (the asyncio server) loops::

    conn = Connection(config)
    while True:
        ev = conn.next_event()
        NeedData        -> flush written replies, read, conn.receive_data(data) (b"" at EOF)
        SendReply       -> write ev.data
        Hello/MailFrom/RcptTo/MessageComplete -> conn.accept() or conn.reject(reply)
        AuthStep        -> conn.auth_continue(challenge), conn.auth_success() or conn.auth_fail(reply)
        StartTLS        -> flush, TLS handshake, conn.tls_started()
        MessageData     -> append ev.data to the message file
        MessageAborted, AuthAborted -> forget the message / SASL session (reply already queued)
        Close           -> flush, close the connection

Contract for the driver: call receive_data() only after NeedData (so input
stays bounded by what one read returns, and nothing is buffered while a
decision is open); write SendReply data in order and flush before waiting
(NeedData, a decision, StartTLS, Close); answer each decision event exactly
once before calling next_event() again (else SMTPStateError). Timeouts are
the driver's (RFC 5321 section 4.5.3.2); on a timeout or a failed TLS
handshake it just closes. The driver may call refuse(reply) at any time
(shutdown, rate limits before the greeting).

Decisions that need the outside world (recipient lookup, rate limits,
relaying policy, credentials, storing the message) are events the driver
answers; everything about the protocol (order of commands, what each
extension allows, limits, replies to syntax errors) is decided here.

Pipelining: commands are handled strictly one at a time, in order, and
nothing after a command is looked at until its decision is made, so replies
come out in order and DATA/BDAT content is never parsed as commands. After
STARTTLS everything already received is dropped, never interpreted (plaintext
command injection, CVE-2011-0411 and CVE-2021-38371).
"""

from __future__ import annotations

import base64
import datetime
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mox.dns.domain import Domain
from mox.smtp import codes as c
from mox.smtp import command as cmd
from mox.smtp.codes import Reply, ReplyError
from mox.smtp.data import BdatReader, ContentStats, DataReader
from mox.smtp.path import IPAddress, Path

# Upstream's default (config.DefaultMaxMsgSize): 100 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 100 * 1024 * 1024
# Upstream's rcptToLimit, announced as LIMITS RCPTMAX (RFC 9422 section 4.2).
DEFAULT_RCPT_MAX = 1000
# Errors before we hang up; Postfix smtpd_hard_error_limit is 20.
DEFAULT_MAX_ERRORS = 20
# Upstream's queue.FutureReleaseIntervalMax: 60 days (RFC 4865 section 3 leaves it to the server).
DEFAULT_FUTURE_RELEASE_MAX = 60 * 24 * 3600
# Upstream's offered mechanisms, strongest first.
DEFAULT_AUTH_MECHANISMS = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-1",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
)
# A BDAT chunk announcing more than this beyond the size limit is not drained:
# 552 and hang up instead of reading gigabytes we will throw away.
MAX_BDAT_OVERRUN = 16 * 1024 * 1024


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class ServerConfig:
    """What this listener offers.

    Attributes:
        hostname: our name, in the greeting and EHLO reply.
        submission: a submission listener: AUTH offered and required before MAIL,
            FUTURERELEASE offered, EHLO argument not checked (unless pedantic).
        tls_available: STARTTLS can be offered (a certificate is configured).
        tls_active: the connection is already TLS (implicit TLS, port 465).
        require_tls_for_auth: offer AUTH only on TLS connections (RFC 4954 section 4).
        max_message_size: SIZE limit in octets (RFC 1870); 0 for no SIZE announcement and no limit.
        rcpt_max: recipients per transaction, LIMITS RCPTMAX (RFC 9422).
        max_errors: error replies after which we send 421 and close.
        auth_mechanisms: mechanisms offered (upper case), in order of preference.
        future_release_max: HOLDFOR/HOLDUNTIL limit in seconds (RFC 4865).
        pedantic: refuse common protocol violations instead of tolerating them.
        now: the clock, for FUTURERELEASE.
    """

    hostname: Domain
    submission: bool = False
    tls_available: bool = False
    tls_active: bool = False
    require_tls_for_auth: bool = True
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    rcpt_max: int = DEFAULT_RCPT_MAX
    max_errors: int = DEFAULT_MAX_ERRORS
    pipelining: bool = True
    eightbitmime: bool = True
    smtputf8: bool = True
    chunking: bool = True
    binarymime: bool = True
    dsn: bool = True
    requiretls: bool = True
    enhanced_status_codes: bool = True
    future_release: bool = True
    future_release_max: int = DEFAULT_FUTURE_RELEASE_MAX
    auth_mechanisms: tuple[str, ...] = DEFAULT_AUTH_MECHANISMS
    # Non-submission: a null reverse path gets one recipient only (upstream; DSNs have one).
    single_rcpt_null_sender: bool = True
    pedantic: bool = False
    greeting_text: str = "ESMTP mox"
    now: Callable[[], datetime.datetime] = _utcnow


class SMTPStateError(RuntimeError):
    """The driver called a method that does not fit the current state (a bug in the driver)."""


# Events.


@dataclass(frozen=True, slots=True)
class NeedData:
    """Read more from the client and pass it to :meth:`Connection.receive_data`; flush replies first."""


@dataclass(frozen=True, slots=True)
class SendReply:
    """Write ``data`` (the encoded ``reply``) to the client."""

    reply: Reply
    data: bytes


@dataclass(frozen=True, slots=True)
class Hello:
    """HELO/EHLO received; answer with accept() or reject(reply).

    ``domain``/``ip`` are the client's claim (both None in submission when the
    argument was unusable and ignored).
    """

    ehlo: bool
    domain: Domain | None
    ip: IPAddress | None
    raw: str


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Do the TLS handshake now, then call tls_started(). ``discarded``: plaintext received after STARTTLS, dropped."""

    discarded: bytes


@dataclass(frozen=True, slots=True)
class AuthStep:
    """SASL data from the client: the initial response (``first``, None if absent) or a response to a challenge."""

    mechanism: str
    data: bytes | None
    first: bool


@dataclass(frozen=True, slots=True)
class AuthAborted:
    """The client cancelled the exchange ("*") or sent invalid base64; the 501 is already queued."""

    mechanism: str


@dataclass(frozen=True, slots=True)
class MailFrom:
    """MAIL FROM; ``path`` None is the null reverse path. Answer accept() or reject(reply)."""

    path: Path | None
    params: cmd.MailParams


@dataclass(frozen=True, slots=True)
class RcptTo:
    """RCPT TO; answer accept() or reject(reply)."""

    path: Path
    params: cmd.RcptParams


@dataclass(frozen=True, slots=True)
class MessageData:
    """Message content, unstuffed, in order; write it to the message file."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MessageComplete:
    """All content delivered; store it, then accept(reply) or reject(reply) (one reply for the transaction)."""

    mail_from: Path | None
    mail_params: cmd.MailParams
    recipients: tuple[tuple[Path, cmd.RcptParams], ...]
    stats: ContentStats
    chunked: bool  # via BDAT


@dataclass(frozen=True, slots=True)
class MessageAborted:
    """The message is refused or the connection ended during data; discard what was written."""

    reason: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection (after writing queued replies)."""

    reason: str


Event = (
    NeedData
    | SendReply
    | Hello
    | StartTLS
    | AuthStep
    | AuthAborted
    | MailFrom
    | RcptTo
    | MessageData
    | MessageComplete
    | MessageAborted
    | Close
)


@dataclass
class _Transaction:
    mail_from: Path | None
    params: cmd.MailParams
    recipients: list[tuple[Path, cmd.RcptParams]] = field(default_factory=list)
    stats: ContentStats | None = None
    chunked: bool = False


_COMMAND = "command"
_AUTH = "auth-response"
_DATA = "data"
_BDAT = "bdat"
_CLOSED = "closed"


def _err(code: int, enhanced: str, text: str) -> ReplyError:
    return ReplyError(code, enhanced, text)


def _bad_syntax(text: str) -> Reply:
    return Reply(c.C500_BAD_SYNTAX, c.SE_PROTO5_SYNTAX_2, (f"bad syntax: {text}",))


def _seq(text: str) -> ReplyError:
    # RFC 5321 section 4.3.2 / 4.1.4: 503 for commands out of order.
    return ReplyError(c.C503_BAD_CMD_SEQ, c.SE_PROTO5_BAD_CMD_OR_SEQ_1, text)


class Connection:
    """One SMTP server conversation. Feed bytes in, take events out.

    Args:
        config: what this listener offers; not changed by the connection.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.tls = config.tls_active
        self.channel_binding: bytes | None = None
        self.authenticated = False
        self.hello: Hello | None = None
        self.errors = 0
        self.commands = 0  # recognised commands so far
        self._auth_mechanisms = config.auth_mechanisms
        self._buf = bytearray()
        self._eof = False
        self._events: deque[Event] = deque()
        self._pending: Event | None = None
        self._state = _COMMAND
        self._tx: _Transaction | None = None
        self._data: DataReader | None = None
        self._bdat: BdatReader | None = None
        self._bdat_error: ReplyError | None = None
        self._bdat_last = False
        self._after_bdat = False
        self._auth_mech = ""
        self._close_event: Close | None = None
        self._send(Reply(c.C220_SERVICE_READY, "", (f"{config.hostname.ascii} {config.greeting_text}",)))

    # Driver input.

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the client; b"" means the client closed its side."""
        if self._state == _CLOSED or self._eof:
            return
        if data == b"":
            self._eof = True
            return
        if isinstance(self._pending, StartTLS):
            return  # TLS handshake bytes are not ours; nothing plaintext may sneak in.
        self._buf += data

    def next_event(self) -> Event:
        """The next thing the driver must do.

        Raises:
            SMTPStateError: a decision event (Hello, MailFrom, RcptTo, AuthStep,
                StartTLS, MessageComplete) has not been answered yet.
        """
        while True:
            if self._events:
                ev = self._events.popleft()
                if isinstance(ev, Close):
                    self._state = _CLOSED
                    self._close_event = ev
                return ev
            if self._state == _CLOSED:
                assert self._close_event is not None
                return self._close_event
            if self._pending is not None:
                raise SMTPStateError(f"answer {type(self._pending).__name__} first")
            if not self._step():
                if self._eof:
                    self._on_eof()
                    continue
                return NeedData()

    # Decisions.

    def accept(self, reply: Reply | None = None) -> None:
        """Accept the pending Hello, MailFrom, RcptTo or MessageComplete; reply overrides the default 250."""
        ev = self._take_pending(Hello, MailFrom, RcptTo, MessageComplete)
        if isinstance(ev, Hello):
            self._reset_tx()
            self.hello = ev
            self._send(reply or self._hello_reply(ev.ehlo))
        elif isinstance(ev, MailFrom):
            self._tx = _Transaction(ev.path, ev.params)
            self._send(reply or Reply(c.C250_COMPLETED, c.SE_ADDR1_OTHER_0, ("sender ok",)))
        elif isinstance(ev, RcptTo):
            assert self._tx is not None
            self._tx.recipients.append((ev.path, ev.params))
            self._send(reply or Reply(c.C250_COMPLETED, c.SE_ADDR1_DEST_VALID_5, ("recipient ok",)))
        else:
            self._reset_tx()
            self._send(reply or Reply(c.C250_COMPLETED, c.SE_MAILBOX2_OTHER_0, ("message accepted",)))

    def reject(self, reply: Reply) -> None:
        """Refuse the pending Hello, MailFrom, RcptTo or MessageComplete with reply (4xx or 5xx)."""
        if reply.code < 400:
            raise SMTPStateError(f"reject needs an error reply, not {reply.code}")
        ev = self._take_pending(Hello, MailFrom, RcptTo, MessageComplete)
        if isinstance(ev, MessageComplete):
            self._reset_tx()
        self._send_error(reply)

    def auth_continue(self, challenge: bytes) -> None:
        """Send a 334 challenge (RFC 4954 section 4) and wait for the client's response."""
        ev = self._take_pending(AuthStep)
        assert isinstance(ev, AuthStep)
        self._auth_mech = ev.mechanism
        self._send(Reply(c.C334_CONTINUE_AUTH, "", (base64.b64encode(challenge).decode("ascii"),)))
        self._state = _AUTH

    def auth_success(self, reply: Reply | None = None) -> None:
        """Authentication succeeded: 235 2.7.0 (RFC 4954 section 6)."""
        self._take_pending(AuthStep)
        self.authenticated = True
        self._send(reply or Reply(c.C235_AUTH_SUCCESS, c.SE_POL7_OTHER_0, ("authentication successful",)))

    def auth_fail(self, reply: Reply | None = None) -> None:
        """Authentication failed: reply, by default 535 5.7.8 (RFC 4954 section 6)."""
        self._take_pending(AuthStep)
        self._send_error(
            reply or Reply(c.C535_AUTH_BAD_CREDS, c.SE_POL7_AUTH_BAD_CREDS_8, ("bad credentials",))
        )

    def tls_started(
        self, channel_binding: bytes | None = None, auth_mechanisms: tuple[str, ...] | None = None
    ) -> None:
        """The TLS handshake after STARTTLS succeeded; the conversation starts afresh (RFC 3207 section 4.2).

        Args:
            channel_binding: e.g. tls-unique, kept for SCRAM-PLUS in the auth layer.
            auth_mechanisms: replaces the configured list (e.g. to add EXTERNAL with a client certificate).
        """
        self._take_pending(StartTLS)
        self.tls = True
        self.channel_binding = channel_binding
        if auth_mechanisms is not None:
            self._auth_mechanisms = auth_mechanisms
        # RFC 3207 section 4.2: discard all knowledge obtained from the client.
        self.hello = None
        self._reset_tx()
        self._buf.clear()

    def refuse(self, reply: Reply) -> None:
        """Send reply (e.g. 421 4.3.2 shutting down, or a rate-limit refusal instead of the greeting) and close."""
        if self._state == _CLOSED:
            return
        first = self._events[0] if self._events else None
        if isinstance(first, SendReply) and first.reply.code == c.C220_SERVICE_READY and self.commands == 0:
            self._events.popleft()  # replace the greeting that was not sent yet
        if self._state in (_DATA, _BDAT):
            self._events.append(MessageAborted("connection refused during message data"))
        self._pending = None
        self._send(reply)
        self._close("refused")

    # Extensions on this connection.

    def offered_auth_mechanisms(self) -> tuple[str, ...]:
        """AUTH mechanisms usable now: only on submission, only with TLS unless configured otherwise."""
        if not self.config.submission or (self.config.require_tls_for_auth and not self.tls):
            return ()
        return self._auth_mechanisms

    def _requiretls_offered(self) -> bool:
        # RFC 8689 section 4.1: REQUIRETLS only on TLS connections.
        return self.config.requiretls and self.tls

    def _starttls_offered(self) -> bool:
        return self.config.tls_available and not self.tls

    def _futurerelease_offered(self) -> bool:
        return self.config.submission and self.config.future_release

    def _hello_reply(self, ehlo: bool) -> Reply:
        cfg = self.config
        if not ehlo:
            # RFC 5321 section 4.1.1.1: HELO gets a plain 250 with our name.
            return Reply(c.C250_COMPLETED, "", (cfg.hostname.ascii,))
        lines = [cfg.hostname.ascii]
        if cfg.pipelining:
            lines.append("PIPELINING")  # RFC 2920 section 3
        if cfg.max_message_size > 0:
            lines.append(f"SIZE {cfg.max_message_size}")  # RFC 1870 section 4
        if self._starttls_offered():
            lines.append("STARTTLS")  # RFC 3207 section 4
        if self._requiretls_offered():
            lines.append("REQUIRETLS")  # RFC 8689 section 4.1
        mechs = self.offered_auth_mechanisms()
        if mechs:
            lines.append("AUTH " + " ".join(mechs))  # RFC 4954 section 3
        if self._futurerelease_offered():
            # RFC 4865 section 3: max interval in seconds and max date-time.
            until = cfg.now() + datetime.timedelta(seconds=cfg.future_release_max)
            until = until.astimezone(datetime.UTC)
            lines.append(f"FUTURERELEASE {cfg.future_release_max} {until.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        if cfg.enhanced_status_codes:
            lines.append("ENHANCEDSTATUSCODES")  # RFC 2034 section 3
        if cfg.eightbitmime:
            lines.append("8BITMIME")  # RFC 6152 section 2
        if cfg.chunking:
            lines.append("CHUNKING")  # RFC 3030 section 2
            if cfg.binarymime:
                lines.append("BINARYMIME")  # RFC 3030 section 3
        if cfg.dsn:
            lines.append("DSN")  # RFC 3461 section 4
        lines.append(f"LIMITS RCPTMAX={cfg.rcpt_max}")  # RFC 9422 section 4
        if cfg.smtputf8:
            lines.append("SMTPUTF8")  # RFC 6531 section 3.1
        return Reply(c.C250_COMPLETED, "", tuple(lines))

    # Internals.

    def _take_pending(self, *types: type) -> Event:
        ev = self._pending
        if ev is None or not isinstance(ev, types):
            names = "/".join(t.__name__ for t in types)
            have = type(ev).__name__ if ev is not None else "nothing"
            raise SMTPStateError(f"no pending {names} to answer (pending: {have})")
        self._pending = None
        return ev

    def _decide(self, ev: Event) -> None:
        self._pending = ev
        self._events.append(ev)

    def _send(self, reply: Reply) -> None:
        self._events.append(SendReply(reply, reply.encode(self.config.enhanced_status_codes)))

    def _send_error(self, reply: Reply) -> None:
        self._send(reply)
        self.errors += 1
        if self.errors >= self.config.max_errors:
            # RFC 5321 section 3.8: 421 may be sent at any time before closing.
            self._send(
                Reply(c.C421_SERVICE_UNAVAIL, c.SE_POL7_OTHER_0, ("too many errors, closing connection",))
            )
            self._close("too many errors")

    def _close(self, reason: str) -> None:
        self._events.append(Close(reason))
        self._state = _CLOSED_PENDING

    def _reset_tx(self) -> None:
        self._tx = None

    def _on_eof(self) -> None:
        if self._state in (_DATA, _BDAT):
            self._events.append(MessageAborted("connection closed during message data"))
        self._close("connection closed by client")

    def _step(self) -> bool:
        """Make progress on buffered input; False when more data is needed."""
        if self._state == _CLOSED_PENDING:
            return False
        if self._state == _DATA:
            return self._step_data()
        if self._state == _BDAT:
            return self._step_bdat()
        line = self._read_line()
        if line is None:
            return self._state == _CLOSED_PENDING
        if self._state == _AUTH:
            self._auth_response(line)
        else:
            self._command(line)
        return True

    def _read_line(self) -> str | Reply | None:
        """The next command line without CRLF, a Reply if it is unusable, or None if incomplete."""
        nl = self._buf.find(b"\n")
        if nl < 0 or nl >= cmd.MAX_LINE_BUFFER:
            if nl >= cmd.MAX_LINE_BUFFER or len(self._buf) >= cmd.MAX_LINE_BUFFER:
                # As upstream: we cannot find the next command reliably, so hang up.
                text = f"line too long, smtp max is {cmd.MAX_COMMAND_LINE}, we reached {cmd.MAX_LINE_BUFFER}"
                self._send(Reply(c.C500_BAD_SYNTAX, c.SE_PROTO5_OTHER_0, (text,)))
                self._close("line too long")
            return None
        raw = bytes(self._buf[: nl + 1])
        del self._buf[: nl + 1]
        if raw.endswith(b"\r\n"):
            raw = raw[:-2]
        else:
            raw = raw[:-1]
            if self.config.pedantic:
                # RFC 5321 section 2.3.8: lines end with CRLF; lax mode takes a bare LF too.
                return _bad_syntax("line must end with CRLF")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _bad_syntax("invalid UTF-8")
        if "\r" in line or "\x00" in line:
            return _bad_syntax("CR or NUL in command line")
        return line

    def _command(self, line: str | Reply) -> None:
        after_bdat = self._after_bdat
        self._after_bdat = False
        if after_bdat and (isinstance(line, Reply) or cmd.command_verb(line) not in cmd.VERBS):
            # A BDAT chunk-size that did not match what was sent leaves us reading message
            # content as commands (RFC 3030 section 2 has no way back); hang up.
            self._send(_bad_syntax("no command after BDAT chunk, chunk size wrong?"))
            self._close("out of sync after BDAT")
            return
        if isinstance(line, Reply):
            self._send_error(line)
            return
        smtputf8 = self._tx is not None and self._tx.params.smtputf8
        try:
            command = cmd.parse_command(line, pedantic=self.config.pedantic, smtputf8=smtputf8)
        except cmd.UnknownCommandError as e:
            if self.commands == 0:
                # As upstream: probably not SMTP at all (HTTP?), more lines will follow; stop.
                self._send(
                    Reply(c.C500_BAD_SYNTAX, c.SE_PROTO5_SYNTAX_2, ("please try again speaking smtp",))
                )
                self._close("not speaking smtp")
                return
            self._send_error(e.reply)
            return
        except cmd.CommandError as e:
            self.commands += 1
            verb = cmd.command_verb(line)
            if verb == "BDAT":
                # RFC 3030 section 2: without a valid chunk size we cannot find the next command.
                self._send(e.reply)
                self._close("bad BDAT syntax")
                return
            if verb == "MAIL":
                self._reset_tx()  # RFC 5321 section 4.1.1.2 (as upstream, a failed MAIL clears the transaction)
            if verb in ("HELO", "EHLO") and self.config.submission and not self.config.pedantic:
                # As upstream: mail clients send junk here, of no use for submission; ignore it.
                ehlo = verb == "EHLO"
                self._decide(Hello(ehlo, None, None, line[5:]))
                return
            self._send_error(e.reply)
            return
        self.commands += 1
        try:
            self._dispatch(command)
        except ReplyError as e:
            self._send_error(e.reply)

    def _need_hello(self) -> None:
        if self.hello is None:
            raise _seq("no ehlo/helo yet")

    def _need_auth(self) -> None:
        if self.config.submission and not self.authenticated:
            # RFC 4954 section 6: 530 5.7.0 authentication required.
            raise _err(c.C530_SECURITY_REQUIRED, c.SE_POL7_OTHER_0, "authentication required")

    def _dispatch(self, command: cmd.Command) -> None:
        if isinstance(command, cmd.Hello):
            self._decide(Hello(command.ehlo, command.domain, command.ip, command.raw))
        elif isinstance(command, cmd.Mail):
            self._mail(command)
        elif isinstance(command, cmd.Rcpt):
            self._rcpt(command)
        elif isinstance(command, cmd.Data):
            self._data_cmd()
        elif isinstance(command, cmd.Bdat):
            self._bdat_cmd(command)
        elif isinstance(command, cmd.Rset):
            # RFC 5321 section 4.1.1.5.
            self._reset_tx()
            self._send(Reply(c.C250_COMPLETED, c.SE_OTHER_0_0, ("all clear",)))
        elif isinstance(command, cmd.Noop):
            self._send(Reply(c.C250_COMPLETED, c.SE_OTHER_0_0, ("ok",)))
        elif isinstance(command, cmd.Quit):
            self._send(Reply(c.C221_CLOSING, c.SE_OTHER_0_0, ("bye",)))
            self._close("quit")
        elif isinstance(command, (cmd.Vrfy, cmd.Expn)):
            # RFC 5321 section 3.5.3 and 7.3: 252, neither verified nor refused.
            what = "verify" if isinstance(command, cmd.Vrfy) else "expand"
            self._send(Reply(c.C252_WITHOUT_VRFY, c.SE_POL7_OTHER_0, (f"no {what}, but will try delivery",)))
        elif isinstance(command, cmd.Help):
            self._send(Reply(c.C214_HELP, c.SE_OTHER_0_0, ("see rfc 5321 (smtp)",)))
        elif isinstance(command, cmd.StartTLS):
            self._starttls()
        else:
            self._auth(command)

    def _starttls(self) -> None:
        self._need_hello()
        if self.tls:
            raise _seq("already speaking tls")  # RFC 3207 section 4.2
        if self.authenticated:
            raise _seq("cannot starttls after authentication")
        if not self.config.tls_available:
            raise _seq("starttls not offered")
        self._send(Reply(c.C220_SERVICE_READY, c.SE_OTHER_0_0, ("go ahead with tls",)))
        discarded = bytes(self._buf)
        self._buf.clear()
        self._decide(StartTLS(discarded))

    def _auth(self, command: cmd.Auth) -> None:
        self._need_hello()
        if not self.config.submission:
            raise _seq("authentication only allowed on submission ports")
        if self.authenticated:
            raise _seq("already authenticated")  # RFC 4954 section 4
        if self._tx is not None:
            raise _seq("authentication not allowed during mail transaction")  # RFC 4954 section 4
        if command.mechanism not in self.offered_auth_mechanisms():
            if command.mechanism in self._auth_mechanisms and not self.tls:
                raise _err(
                    c.C538_ENC_REQ_FOR_AUTH, c.SE_POL7_ENC_REQ_FOR_AUTH_11, "authentication requires tls"
                )
            raise _err(
                c.C504_PARAM_NOT_IMPL,
                c.SE_PROTO5_BAD_PARAMS_4,
                f"mechanism {command.mechanism} not supported",
            )
        self._auth_mech = command.mechanism
        self._decide(AuthStep(command.mechanism, command.initial, True))

    def _auth_response(self, line: str | Reply) -> None:
        self._state = _COMMAND
        if line == "*":
            # RFC 4954 section 4: the client cancels, 501.
            self._events.append(AuthAborted(self._auth_mech))
            self._send_error(Reply(c.C501_BAD_PARAM_SYNTAX, c.SE_PROTO5_OTHER_0, ("authentication aborted",)))
            return
        try:
            if isinstance(line, Reply):
                raise ReplyError(line.code, line.enhanced, line.text)
            data = cmd.decode_base64(line) if line != "" else b""
        except ReplyError as e:
            self._events.append(AuthAborted(self._auth_mech))
            self._send_error(e.reply)
            return
        self._decide(AuthStep(self._auth_mech, data, False))

    def _check_mail_params(self, p: cmd.MailParams) -> None:
        cfg = self.config
        for key in p.given:
            ok = True
            if key == "SIZE":
                ok = cfg.max_message_size > 0
            elif key == "BODY":
                ok = (
                    p.body == "7BIT"
                    or (p.body == "8BITMIME" and cfg.eightbitmime)
                    or (p.body == "BINARYMIME" and cfg.chunking and cfg.binarymime)
                )
            elif key == "SMTPUTF8":
                ok = cfg.smtputf8
            elif key == "AUTH":
                ok = cfg.submission
            elif key in ("RET", "ENVID"):
                ok = cfg.dsn
            elif key == "REQUIRETLS":
                if not self.tls:
                    # RFC 8689 section 4.1 (and upstream): 523 5.7.10.
                    raise _err(
                        c.C523_ENCRYPTION_NEEDED,
                        c.SE_POL7_ENC_NEEDED_10,
                        "requiretls only allowed on tls-encrypted connections",
                    )
                ok = cfg.requiretls
            elif key in ("HOLDFOR", "HOLDUNTIL"):
                ok = self._futurerelease_offered()  # RFC 4865 section 4: submission only
            if not ok:
                raise _err(
                    c.C555_UNRECOGNIZED_ADDR_PARAMS,
                    c.SE_SYS3_NOT_SUPPORTED_3,
                    f"unrecognized parameter {key!r}",
                )
        if p.size is not None and cfg.max_message_size > 0 and p.size > cfg.max_message_size:
            # RFC 1870 section 6.1: 552, and RFC 3463 X.3.4.
            raise _err(c.C552_MAILBOX_FULL, c.SE_SYS3_MSG_LIMIT_EXCEEDED_4, "message too large")
        if p.hold_for is not None and p.hold_for > cfg.future_release_max:
            # RFC 4865 section 4.
            raise _err(
                c.C554_TRANSACTION_FAILED,
                c.SE_PROTO5_BAD_PARAMS_4,
                "future release interval too far in the future",
            )
        if p.hold_until is not None:
            ival = (p.hold_until - cfg.now()).total_seconds()
            if ival <= 0:
                raise _err(
                    c.C554_TRANSACTION_FAILED,
                    c.SE_PROTO5_BAD_PARAMS_4,
                    "requested future release time is in the past",
                )
            if ival > cfg.future_release_max:
                raise _err(
                    c.C554_TRANSACTION_FAILED,
                    c.SE_PROTO5_BAD_PARAMS_4,
                    "requested future release time is too far in the future",
                )

    def _mail(self, command: cmd.Mail) -> None:
        self._need_hello()
        self._need_auth()
        if self._tx is not None:
            # RFC 5321 section 4.1.4: MAIL during a transaction is out of order.
            raise _seq("already have MAIL")
        self._check_mail_params(command.params)
        self._decide(MailFrom(command.path, command.params))

    def _rcpt(self, command: cmd.Rcpt) -> None:
        self._need_hello()
        self._need_auth()
        tx = self._tx
        if tx is None:
            raise _seq("missing MAIL FROM")
        if command.params.given and not self.config.dsn:
            key = command.params.given[0]
            raise _err(
                c.C555_UNRECOGNIZED_ADDR_PARAMS, c.SE_SYS3_NOT_SUPPORTED_3, f"unrecognized parameter {key!r}"
            )
        if len(tx.recipients) >= self.config.rcpt_max:
            # RFC 5321 section 4.5.3.1.10: 452 too many recipients.
            raise _err(
                c.C452_STORAGE_FULL,
                c.SE_PROTO5_TOO_MANY_RCPTS_3,
                f"max of {self.config.rcpt_max} recipients reached",
            )
        if (
            self.config.single_rcpt_null_sender
            and not self.config.submission
            and tx.mail_from is None
            and tx.recipients
        ):
            raise _err(
                c.C452_STORAGE_FULL,
                c.SE_PROTO5_TOO_MANY_RCPTS_3,
                "only one recipient allowed with null reverse address",
            )
        self._decide(RcptTo(command.path, command.params))

    def _need_rcpts(self) -> _Transaction:
        self._need_hello()
        self._need_auth()
        if self._tx is None:
            raise _seq("missing MAIL FROM")
        if not self._tx.recipients:
            raise _seq("missing RCPT TO")
        return self._tx

    def _data_cmd(self) -> None:
        tx = self._need_rcpts()
        if tx.chunked:
            raise _seq("cannot mix BDAT and DATA in one transaction")  # RFC 3030 section 2
        if tx.params.body == "BINARYMIME":
            raise _seq("BODY=BINARYMIME requires BDAT")  # RFC 3030 section 3
        self._send(Reply(c.C354_CONTINUE, "", ("go ahead, end with <CR><LF>.<CR><LF>",)))
        limit = self.config.max_message_size or (1 << 62)
        self._data = DataReader(limit, self.config.pedantic)
        tx.stats = self._data.stats
        self._state = _DATA

    def _step_data(self) -> bool:
        dr = self._data
        assert dr is not None
        fed = dr.feed(bytes(self._buf))
        if fed.consumed:
            del self._buf[: fed.consumed]
        if fed.content:
            self._events.append(MessageData(fed.content))
        if fed.done:
            self._state = _COMMAND
            self._data = None
            self._message_end(dr.error())
            return True
        return fed.consumed > 0

    def _content_error(self, tx: _Transaction, st: ContentStats) -> str:
        cfg = self.config
        if not cfg.pedantic:
            return ""
        if st.has_8bit and tx.params.body not in ("8BITMIME", "BINARYMIME"):
            return "message with non-us-ascii requires 8bitmime extension"
        if st.has_nul and tx.params.body != "BINARYMIME":
            return "message contains NUL octets"
        if st.max_line > cmd.MAX_TEXT_LINE and tx.params.body != "BINARYMIME":
            return f"message has lines longer than {cmd.MAX_TEXT_LINE} octets"
        if tx.chunked and tx.params.body != "BINARYMIME" and (st.bare_cr or st.bare_lf):
            return "invalid bare \\r or \\n"
        return ""

    def _message_end(self, syntax_error: str) -> None:
        tx = self._tx
        assert tx is not None and tx.stats is not None
        st = tx.stats
        if st.too_large:
            self._events.append(MessageAborted("message too large"))
            self._reset_tx()
            # RFC 1870 section 6.3: 552 after the data.
            self._send_error(
                Reply(c.C552_MAILBOX_FULL, c.SE_SYS3_MSG_LIMIT_EXCEEDED_4, ("message too large",))
            )
            return
        if syntax_error:
            self._events.append(MessageAborted(syntax_error))
            self._reset_tx()
            self._send_error(Reply(c.C500_BAD_SYNTAX, c.SE_PROTO5_SYNTAX_2, (syntax_error,)))
            return
        content = self._content_error(tx, st)
        if content:
            self._events.append(MessageAborted(content))
            self._reset_tx()
            self._send_error(Reply(c.C554_TRANSACTION_FAILED, c.SE_MSG6_OTHER_0, (content,)))
            return
        self._decide(MessageComplete(tx.mail_from, tx.params, tuple(tx.recipients), st, tx.chunked))

    def _bdat_cmd(self, command: cmd.Bdat) -> None:
        error: ReplyError | None = None
        stats: ContentStats
        try:
            tx = self._need_rcpts()
        except ReplyError as e:
            # RFC 3030 section 2: the chunk is still read, then the error reply sent.
            error = e
            stats = ContentStats(0)
        else:
            if tx.stats is None:
                tx.stats = ContentStats(self.config.max_message_size or (1 << 62))
            tx.chunked = True
            stats = tx.stats
            if (
                self.config.max_message_size
                and stats.size + command.size > self.config.max_message_size + MAX_BDAT_OVERRUN
            ):
                self._reset_tx()
                self._send(Reply(c.C552_MAILBOX_FULL, c.SE_SYS3_MSG_LIMIT_EXCEEDED_4, ("message too large",)))
                self._close("BDAT chunk far over the size limit")
                return
        self._bdat = BdatReader(command.size, stats)
        self._bdat_error = error
        self._bdat_last = command.last
        self._state = _BDAT

    def _step_bdat(self) -> bool:
        br = self._bdat
        assert br is not None
        if br.done:
            fed_done = True
        else:
            fed = br.feed(bytes(self._buf[: br.remaining]))
            if fed.consumed:
                del self._buf[: fed.consumed]
            if fed.content and self._bdat_error is None:
                self._events.append(MessageData(fed.content))
            fed_done = fed.done
            if not fed_done:
                return fed.consumed > 0
        self._state = _COMMAND
        self._bdat = None
        self._after_bdat = True
        if self._bdat_error is not None:
            self._send_error(self._bdat_error.reply)
            return True
        tx = self._tx
        assert tx is not None and tx.stats is not None
        if tx.stats.too_large:
            self._message_end("")
            return True
        if not self._bdat_last:
            self._send(Reply(c.C250_COMPLETED, c.SE_OTHER_0_0, (f"{br.stats.size} octets received",)))
            return True
        tx.stats.finish_bare()
        self._message_end("")
        return True


_CLOSED_PENDING = "closing"
