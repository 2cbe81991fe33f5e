"""The asyncio SMTP client: connect, EHLO, STARTTLS, AUTH, deliver messages, QUIT.

A thin driver around the sans-IO parts in :mod:`mox.smtpclient.protocol`:
it moves bytes, keeps the deadlines, streams messages and does the TLS
handshakes. The caller (the queue) has resolved the destination's IP address
and chosen TLS requirements (MTA-STS, DANE); see :func:`connect`.

Deadlines are those of RFC 5321 section 4.5.3.2 by default, as named
constants; tests pass shorter ones in :class:`Timeouts`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from mox import mlog
from mox.sasl import channel_bindings
from mox.sasl.client import SaslClientError, choose_mechanism, new_client
from mox.smtpclient.ehlo import Extensions, parse_ehlo
from mox.smtpclient.errors import (
    RESULT_STARTTLS_NOT_SUPPORTED,
    RESULT_VALIDATION_FAILURE,
    AuthError,
    CommandTimeout,
    ConnectionLost,
    ConnectionUnusable,
    GreetingError,
    ProtocolError,
    ReplyError,
    SMTPClientError,
    TLSFailure,
)
from mox.smtpclient.protocol import (
    ClientProtocol,
    CommandReply,
    DataEncoder,
    LineEndingNormalizer,
    MailOptions,
    Recipient,
    RecipientResult,
    Transaction,
    TxPhase,
)
from mox.smtpclient.reply import Reply, ReplyParseError
from mox.smtpclient.tls import (
    TLSConfig,
    TLSMode,
    TLSState,
    classify_handshake_error,
    make_context,
    peer_chain_der,
)

__all__ = [
    "BDAT_CHUNK_SIZE",
    "INLINE_MESSAGE_MAX",
    "AuthConfig",
    "Client",
    "DeliveryResult",
    "MessageSource",
    "Timeouts",
    "connect",
]

log_pkg = mlog.new("smtpclient")

# RFC 5321 section 4.5.3.2 timeouts, in seconds.
CONNECT_TIMEOUT = 30.0  # Not in the RFC; TCP connect to one address.
GREETING_TIMEOUT = 300.0  # 4.5.3.2.1 initial 220: 5 minutes.
COMMAND_TIMEOUT = 300.0  # 4.5.3.2.2/3 MAIL, RCPT: 5 minutes; we use it for EHLO, RSET, AUTH too.
DATA_INIT_TIMEOUT = 120.0  # 4.5.3.2.4 DATA initiation (354): 2 minutes.
DATA_BLOCK_TIMEOUT = 180.0  # 4.5.3.2.5 each data block written: 3 minutes.
DATA_FINAL_TIMEOUT = 600.0  # 4.5.3.2.6 reply after the end of data: 10 minutes.
TLS_HANDSHAKE_TIMEOUT = 60.0  # As upstream: one minute for a STARTTLS handshake.
QUIT_TIMEOUT = 5.0  # As upstream: a short wait for the reply to QUIT.

# Messages up to this size are read into memory and, with CHUNKING and
# PIPELINING, sent in the same write as MAIL and RCPT: one round trip per message.
INLINE_MESSAGE_MAX = 256 * 1024
# Larger messages stream in pieces of this size (a BDAT chunk each with CHUNKING).
BDAT_CHUNK_SIZE = 1024 * 1024
_READ_SIZE = 64 * 1024

# RFC 5321 section 4.1.1.1: EHLO takes a domain or an address literal; no spaces or controls.
_EHLO_NAME = re.compile(r"[A-Za-z0-9.-]+|\[[A-Za-z0-9.:]+\]")


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds (for tests: shorter)."""

    connect: float = CONNECT_TIMEOUT
    greeting: float = GREETING_TIMEOUT
    command: float = COMMAND_TIMEOUT
    data_init: float = DATA_INIT_TIMEOUT
    data_block: float = DATA_BLOCK_TIMEOUT
    data_final: float = DATA_FINAL_TIMEOUT
    tls_handshake: float = TLS_HANDSHAKE_TIMEOUT
    quit: float = QUIT_TIMEOUT


@dataclass(frozen=True)
class AuthConfig:
    """SMTP AUTH for a transport through a smarthost (RFC 4954).

    Attributes:
        username, password: the credentials.
        mechanisms: allowed mechanisms (upper case); None for any we implement.
            The strongest offered is used: SCRAM-SHA-256-PLUS ... LOGIN.
        allow_insecure: authenticate also without TLS. Off by default: a
            password (or SCRAM material) must not cross the network in clear.
        authzid: authorization identity, rarely needed.
    """

    username: str
    password: str = field(repr=False)
    mechanisms: Sequence[str] | None = None
    allow_insecure: bool = False
    authzid: str = ""


MessageSource = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO
"""A message: its octets; a file path; or a readable binary file (read from its current position)."""


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of one transaction: a result per recipient, in the order given.

    Recipients the server accepted got the message (``accepted``); the
    others carry the RCPT reply (code, enhanced code, text, permanent), or
    no reply when not tried because of the server's RCPTMAX (temporary:
    deliver them in another transaction).
    """

    recipients: list[RecipientResult]

    @property
    def delivered(self) -> list[str]:
        return [r.recipient for r in self.recipients if r.accepted]

    @property
    def failed(self) -> list[RecipientResult]:
        return [r for r in self.recipients if not r.accepted]


class _Source:
    """Reads a MessageSource in pieces; small messages at once."""

    def __init__(self, message: MessageSource) -> None:
        self._data: bytes | None = None
        self._file: BinaryIO | None = None
        self._close = False
        if isinstance(message, bytes | bytearray | memoryview):
            self._data = bytes(message)
            self.size = len(self._data)
        elif isinstance(message, str | os.PathLike):
            f = open(message, "rb")
            self._file = f
            self._close = True
            self.size = os.fstat(f.fileno()).st_size
        else:
            self._file = message
            self.size = self._remaining_size(message)

    @staticmethod
    def _remaining_size(f: BinaryIO) -> int:
        """Octets from the current position to the end; -1 when not seekable (a pipe): streamed then."""
        try:
            pos = f.tell()
            end = f.seek(0, io.SEEK_END)
            f.seek(pos)
            return end - pos
        except (OSError, ValueError):
            return -1

    async def read_all(self) -> bytes:
        if self._data is not None:
            return self._data
        assert self._file is not None
        return await asyncio.to_thread(self._file.read)

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        if self._data is not None:
            for i in range(0, len(self._data), size):
                yield self._data[i : i + size]
            return
        assert self._file is not None
        while True:
            chunk = await asyncio.to_thread(self._file.read, size)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        if self._close and self._file is not None:
            self._file.close()


class _Redial(Exception):
    """PKIX verification failed but errors are ignored: connect again without verifying."""

    def __init__(self, failure: TLSFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


class Client:
    """An SMTP session with one server. Make one with :func:`connect`.

    Attributes:
        remote_ip, remote_port: the server.
        greeting: the server's 220 reply.
        extensions: from the latest EHLO (after STARTTLS: the second one).
        tls: what happened with TLS (for TLS reporting).
        auth_mechanism: the SASL mechanism used, empty when not authenticated.
        transactions: mail transactions started on this connection.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        remote_ip: str,
        remote_port: int,
        tls_config: TLSConfig,
        timeouts: Timeouts,
        log: mlog.Log,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self.tls_config = tls_config
        self.timeouts = timeouts
        self.log = log
        self.proto = ClientProtocol()
        self.greeting: Reply | None = None
        self.extensions = Extensions(ehlo=False)
        self.tls = TLSState(server_name=tls_config.server_name)
        self.auth_mechanism = ""
        self.transactions = 0
        self._botched = False
        self._closed = False
        self._need_rset = False
        self._trace_write = log.tracer("LC: ")
        self._trace_read = log.tracer("RS: ")

    # --- State.

    @property
    def botched(self) -> bool:
        """True after an i/o or protocol error, or once closed: no more deliveries on this connection."""
        return self._botched or self._closed

    @property
    def local_addr(self) -> tuple[str, int] | None:
        sock = self._writer.get_extra_info("sockname")
        return (sock[0], sock[1]) if sock else None

    @property
    def mx_helo(self) -> str:
        """The host name the server gave in its greeting (RFC 5321 section 4.2; TLSRPT receiving-mx-helo)."""
        if self.greeting is None or not self.greeting.lines:
            return ""
        return self.greeting.lines[0].split(" ", 1)[0]

    def _check_usable(self) -> None:
        if self._closed:
            raise ConnectionUnusable("smtp client is closed")
        if self._botched:
            raise ConnectionUnusable("smtp connection is botched by an earlier error")

    # --- Reading and writing.

    def _write(self, data: bytes, *, level: mlog.Level = mlog.Level.TRACE) -> None:
        if not data:
            return
        self._trace_write.level = level
        self._trace_write(data)
        self._writer.write(data)

    async def _drain(self, timeout: float, command: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError:
            self._botched = True
            raise CommandTimeout(f"{command}: writing to server timed out", command=command) from None
        except (OSError, ConnectionError) as e:
            self._botched = True
            raise ConnectionLost(f"{command}: writing to server: {e}", command=command) from e

    async def _send(self, data: bytes, command: str, *, level: mlog.Level = mlog.Level.TRACE) -> None:
        self._write(data, level=level)
        await self._drain(self.timeouts.command, command)

    async def _read_event(self, timeout: float) -> CommandReply:
        """The next reply with its command; raises ProtocolError, ConnectionLost, CommandTimeout."""
        proto = self.proto
        try:
            ev = proto.next_event()
            if ev is not None:
                if ev.reply.code == 421:
                    self._botched = True
                self.log.debug(
                    "smtpclient command result", cmd=ev.command, code=ev.reply.code, secode=ev.reply.secode
                )
                return ev
            async with asyncio.timeout(timeout):
                while True:
                    data = await self._reader.read(_READ_SIZE)
                    if not data:
                        raise ConnectionLost(
                            f"server closed connection while waiting for reply to {self._waiting_for()}",
                            command=self._waiting_for(),
                        )
                    self._trace_read(data)
                    proto.receive_data(data)
                    ev = proto.next_event()
                    if ev is not None:
                        if ev.reply.code == 421:
                            # RFC 5321 section 3.8: the server is closing the connection.
                            self._botched = True
                        self.log.debug(
                            "smtpclient command result",
                            cmd=ev.command,
                            code=ev.reply.code,
                            secode=ev.reply.secode,
                        )
                        return ev
        except ReplyParseError as e:
            self._botched = True
            raise ProtocolError(
                f"smtp protocol error: {e}: {e.line!r}", command=self._waiting_for()
            ) from None
        except TimeoutError:
            self._botched = True
            raise CommandTimeout(
                f"no reply from server within {timeout}s to {self._waiting_for()}",
                command=self._waiting_for(),
            ) from None
        except (OSError, ConnectionError) as e:
            self._botched = True
            raise ConnectionLost(f"reading from server: {e}", command=self._waiting_for()) from e
        except ConnectionLost:
            self._botched = True
            raise

    def _waiting_for(self) -> str:
        return self.proto._pending[0][0] if self.proto._pending else "(none)"

    async def _command(
        self, command: str, line: bytes, timeout: float | None = None, *, level: mlog.Level = mlog.Level.TRACE
    ) -> Reply:
        """Write one command and read its reply (not pipelined)."""
        self.proto.send(command, line)
        await self._send(line, command, level=level)
        ev = await self._read_event(self.timeouts.command if timeout is None else timeout)
        return ev.reply

    # --- Session setup.

    async def _greeting(self) -> None:
        self.proto.expect("greeting")
        reply = (await self._read_event(self.timeouts.greeting)).reply
        self.greeting = reply
        if reply.code != 220:
            # RFC 5321 section 3.1: 554 (or 521, RFC 7504) means no service; 4xx: try later.
            self._botched = True
            raise GreetingError("greeting", reply, f"server greeting: expected 220, got {reply.code}")

    async def _hello(self, ehlo_hostname: str, *, helo_ok: bool) -> None:
        reply = await self._command("ehlo", f"EHLO {ehlo_hostname}\r\n".encode())
        if reply.code == 250:
            self.extensions = parse_ehlo(reply.lines)
            self.proto.reader.enhanced_codes = self.extensions.enhancedstatuscodes
            return
        if reply.permanent and helo_ok:
            # RFC 5321 section 3.2 and 4.1.4: a server that does not accept EHLO answers
            # 500, 501, 502 or 550; we try HELO after any 5xx (upstream: 500-504).
            reply = await self._command("helo", f"HELO {ehlo_hostname}\r\n".encode())
            if reply.code == 250:
                self.extensions = Extensions(hostname=reply.lines[0].split(" ", 1)[0], ehlo=False)
                return
            raise ReplyError("helo", reply)
        raise ReplyError("ehlo", reply)

    def _tls_done(self, ssl_object: ssl.SSLObject | None, verified_pkix: bool) -> None:
        """After a handshake: record TLS details and run DANE verification when asked."""
        cfg = self.tls_config
        st = self.tls
        st.used = True
        if ssl_object is not None:
            st.version = ssl_object.version() or ""
            cipher = ssl_object.cipher()
            st.cipher = cipher[0] if cipher else ""
        st.pkix_verified = verified_pkix
        if cfg.dane_records is not None:
            assert cfg.dane_verify is not None
            chain = peer_chain_der(ssl_object)
            hostnames = (
                [cfg.server_name, *cfg.dane_hostnames] if cfg.server_name else list(cfg.dane_hostnames)
            )
            res = cfg.dane_verify(chain, cfg.dane_records, hostnames)
            if res.verified:
                st.dane_verified = True
                st.dane_record = res.record
                self.log.debug("dane verification succeeded", record=res.record)
            else:
                failure = TLSFailure(
                    f"dane verification failed: {res.reason or res.result_type}",
                    result_type=res.result_type or "validation-failure",
                    reason=res.reason or "dane-no-match",
                )
                if cfg.ignore_verify_errors:
                    self.log.info(
                        "dane verification failed, continuing (verification errors ignored)",
                        reason=failure.reason,
                    )
                    st.ignored_failures.append(failure)
                else:
                    self._botched = True
                    raise failure
        self.log.debug(
            "tls handshake done",
            version=st.version,
            cipher=st.cipher,
            servername=st.server_name,
            pkixverified=st.pkix_verified,
            daneverified=st.dane_verified,
        )

    def _verify_in_handshake(self) -> bool:
        cfg = self.tls_config
        return cfg.pkix

    async def _starttls(self) -> None:
        cfg = self.tls_config
        reply = await self._command("starttls", b"STARTTLS\r\n")
        if reply.code != 220:
            # RFC 3207 section 4.
            raise TLSFailure(
                f"starttls: got {reply.code}, expected 220: {reply}",
                result_type=RESULT_STARTTLS_NOT_SUPPORTED,
                reason=f"smtp-starttls-reply-code-{reply.code}",
            )
        if self.proto.reader.buffered:
            # RFC 3207 section 4.2 (and CVE-2011-0411): data after the 220 before the
            # handshake would be taken as protected; refuse it.
            self._botched = True
            raise ProtocolError(
                "server sent data after 220 to STARTTLS, before the tls handshake", command="starttls"
            )
        verify = self._verify_in_handshake()
        ctx = make_context(cfg, verify)
        try:
            await self._writer.start_tls(
                ctx,
                server_hostname=cfg.server_name or None,
                ssl_handshake_timeout=self.timeouts.tls_handshake,
            )
        except ssl.SSLCertVerificationError as e:
            self._botched = True
            failure = classify_handshake_error(e)
            if cfg.ignore_verify_errors:
                raise _Redial(failure) from e
            raise failure from e
        except (ssl.SSLError, OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError) as e:
            self._botched = True
            raise classify_handshake_error(e) from e
        ssl_object = self._writer.get_extra_info("ssl_object")
        self._tls_done(ssl_object, verify)

    async def _auth(self, auth: AuthConfig) -> None:
        ssl_object = self._writer.get_extra_info("ssl_object") if self.tls.used else None
        cb = channel_bindings(ssl_object).get("tls-unique")
        name = choose_mechanism(
            self.extensions.auth,
            tls=self.tls.used,
            channel_binding=cb,
            allowed=auth.mechanisms,
            allow_insecure=auth.allow_insecure,
        )
        if name is None:
            if not self.tls.used and not auth.allow_insecure:
                raise AuthError("refusing to authenticate without tls", permanent=True, command="auth")
            raise AuthError(
                f"no usable authentication mechanism, server offers {' '.join(self.extensions.auth) or 'none'}",
                permanent=True,
                command="auth",
            )
        try:
            mech = new_client(name, auth.username, auth.password, authzid=auth.authzid, channel_binding=cb)
        except ValueError as e:
            raise AuthError(f"auth: {e}", permanent=True, command="auth") from None
        initial = mech.initial_response()
        line = f"AUTH {name}"
        if initial is not None:
            # RFC 4954 section 4: "=" for an empty initial response.
            line += " " + (base64.b64encode(initial).decode() if initial else "=")
        level = mlog.Level.TRACEAUTH
        reply = await self._command("auth", (line + "\r\n").encode(), level=level)
        while True:
            if reply.code == 235:
                try:
                    mech.complete()
                except SaslClientError as e:
                    self._botched = True
                    raise AuthError(f"auth {name}: {e}", command="auth", reply=reply) from None
                self.auth_mechanism = name
                self.log.debug("authenticated", mechanism=name, username=auth.username)
                return
            if reply.code != 334:
                raise AuthError(
                    f"auth {name}: server refused: {reply.code}",
                    permanent=reply.permanent,
                    code=reply.code,
                    enhanced=reply.enhanced,
                    command="auth",
                    reply=reply,
                )
            try:
                challenge = base64.b64decode(reply.lines[0].strip(), validate=True)
                response = mech.respond(challenge)
            except (ValueError, SaslClientError) as e:
                # RFC 4954 section 4: "*" cancels; the server answers 501, or with the
                # failure it found (SCRAM "e=invalid-proof" is followed by 535).
                final = reply
                with contextlib.suppress(SMTPClientError):
                    final = await self._command("auth", b"*\r\n")
                raise AuthError(
                    f"auth {name}: {e}",
                    permanent=final.permanent,
                    code=final.code,
                    enhanced=final.enhanced,
                    command="auth",
                    reply=final,
                ) from None
            reply = await self._command("auth", base64.b64encode(response) + b"\r\n", level=level)

    # --- Delivery.

    async def deliver(
        self,
        mail_from: str,
        recipients: Sequence[str | Recipient],
        message: MessageSource,
        opts: MailOptions | None = None,
    ) -> DeliveryResult:
        """Deliver one message in one transaction; per-recipient results.

        Uses PIPELINING (MAIL, all RCPT and DATA in one write) and CHUNKING
        (BDAT) when offered, else DATA with dot-stuffing. Bare CR and LF in
        the message are sent as CRLF. Recipients beyond the server's RCPTMAX
        (RFC 9422) are returned untried. Several deliveries may follow on one
        connection; a RSET is sent first when the previous one failed.

        Raises:
            ValueError: bad addresses or no recipients.
            ExtensionUnsupported: the message needs 8BITMIME, SMTPUTF8 or
                REQUIRETLS (or is over SIZE) and the server lacks it.
            ReplyError: MAIL, DATA/BDAT or the reply after the data refused:
                the whole transaction failed; ``permanent`` says 5xx.
            ConnectionLost, CommandTimeout, ProtocolError: temporary; the
                connection is unusable afterwards (``botched``).
            ConnectionUnusable: closed or botched before; or MAILMAX reached.
        """
        self._check_usable()
        opts = opts or MailOptions()
        rcpts = [r if isinstance(r, Recipient) else Recipient(r) for r in recipients]
        ext = self.extensions
        if ext.mail_max and self.transactions >= ext.mail_max:
            raise ConnectionUnusable(
                f"server allows {ext.mail_max} transactions per connection (LIMITS MAILMAX)", command="mail"
            )
        src = _Source(message)
        try:
            size = opts.size if opts.size is not None else src.size
            inline: bytes | None = None
            small = 0 <= src.size <= INLINE_MESSAGE_MAX
            if small:
                # Small messages: normalized in memory (exact BDAT size; one write).
                raw = await src.read_all()
                src = _Source(raw)
                if ext.chunking and ext.pipelining:
                    norm = LineEndingNormalizer()
                    inline = norm.feed(raw) + norm.finish()
            tx = Transaction(
                ext,
                self.proto,
                mail_from,
                rcpts,
                opts,
                size=size,
                tls_verified=self.tls.verified,
                rset_first=self._need_rset,
                inline_bdat=inline,
            )
            self.transactions += 1
            self._need_rset = True
            return await self._run(tx, src)
        finally:
            src.close()

    async def _run(self, tx: Transaction, src: _Source) -> DeliveryResult:
        t = self.timeouts
        level = mlog.Level.TRACEDATA if tx.inline_bdat is not None else mlog.Level.TRACE
        self._write(tx.start(), level=level)
        if not tx.pipelining:
            await self._drain(t.command, "mail")
        # Pipelined: replies are read while the transport still writes (no drain first),
        # so a server that stops reading until we take its replies cannot deadlock us
        # on a long recipient list. Write errors show up as read errors.
        try:
            while tx.phase is TxPhase.ENVELOPE:
                waiting = self._waiting_for()
                timeout = (
                    t.data_init
                    if waiting == "data"
                    else t.data_final
                    if waiting == "bdat-last"
                    else t.command
                )
                ev = await self._read_event(timeout)
                out = tx.handle(ev)
                if out:
                    await self._send(out, ev.command)
        except (ConnectionLost, CommandTimeout, ProtocolError):
            # A server may close the connection after refusing MAIL (e.g. a blocklisted IP);
            # report that refusal, not the i/o error after it.
            self._botched = True
            if tx.out.error is not None:
                raise tx.out.error from None
            raise
        if tx.phase is TxPhase.SEND_DATA:
            if tx.use_bdat:
                await self._send_bdat(tx, src)
            else:
                await self._send_data(tx, src)
        while tx.phase is TxPhase.FINAL:
            ev = await self._read_event(t.data_final)
            out = tx.handle(ev)
            if out:
                await self._send(out, ev.command)
        results = tx.results()
        if tx.out.final_reply is not None and tx.out.final_reply.code // 100 == 2:
            self._need_rset = False
        res = DeliveryResult(results)
        self.log.debug(
            "delivery transaction done",
            delivered=len(res.delivered),
            failed=len(res.failed),
            bdat=tx.use_bdat,
            pipelined=tx.pipelining,
        )
        return res

    async def _send_data(self, tx: Transaction, src: _Source) -> None:
        enc = DataEncoder()
        async for chunk in src.chunks(BDAT_CHUNK_SIZE):
            self._write(enc.feed(chunk), level=mlog.Level.TRACEDATA)
            await self._drain(self.timeouts.data_block, "data")
        self._write(enc.finish(), level=mlog.Level.TRACEDATA)
        tx.data_sent()
        await self._drain(self.timeouts.data_block, "data")

    async def _send_bdat(self, tx: Transaction, src: _Source) -> None:
        norm = LineEndingNormalizer()
        it = src.chunks(BDAT_CHUNK_SIZE).__aiter__()
        pending: bytes | None = None
        try:
            pending = await it.__anext__()
        except StopAsyncIteration:
            pending = None
        while tx.phase is TxPhase.SEND_DATA:
            nxt: bytes | None
            try:
                nxt = await it.__anext__() if pending is not None else None
            except StopAsyncIteration:
                nxt = None
            last = nxt is None
            data = norm.feed(pending) if pending is not None else b""
            if last:
                data += norm.finish()
            elif not data:
                pending = nxt
                continue
            self._write(tx.bdat(len(data), last))
            self._write(data, level=mlog.Level.TRACEDATA)
            await self._drain(self.timeouts.data_block, "bdat")
            if not tx.pipelining and not last:
                ev = await self._read_event(self.timeouts.data_final)
                tx.handle(ev)
            pending = nxt

    # --- Other commands.

    async def reset(self) -> None:
        """RSET (RFC 5321 section 4.1.1.5): abort a transaction. deliver() does this itself when needed."""
        self._check_usable()
        reply = await self._command("rset", b"RSET\r\n")
        if reply.code // 100 != 2:
            raise ReplyError("rset", reply)
        self._need_rset = False

    async def noop(self) -> Reply:
        """NOOP (RFC 5321 section 4.1.1.9), e.g. to check an idle connection before reuse."""
        self._check_usable()
        return await self._command("noop", b"NOOP\r\n")

    async def close(self) -> None:
        """QUIT (unless botched) and close. Errors on the way out are logged, not raised."""
        if self._closed:
            return
        if not self._botched:
            try:
                await self._command("quit", b"QUIT\r\n", self.timeouts.quit)
            except SMTPClientError as e:
                self.log.debugx("quit", e)
        self._closed = True
        self._writer.close()
        try:
            async with asyncio.timeout(self.timeouts.quit):
                await self._writer.wait_closed()
        except (TimeoutError, OSError, ConnectionError, ssl.SSLError):
            self._writer.transport.abort()

    def detach(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
        """Hand the connection over (e.g. to copy it to a terminal, as "mox smtp dial").

        Returns the streams (TLS-wrapped when TLS is used) and octets already
        received but not parsed. The client must not be used afterwards.
        """
        self._check_usable()
        self._closed = True
        return self._reader, self._writer, self.proto.reader.take_buffered()

    def abort(self) -> None:
        """Close at once, without QUIT."""
        self._closed = True
        self._writer.transport.abort()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect(
    ip: str,
    port: int,
    *,
    ehlo_hostname: str,
    tls: TLSConfig | None = None,
    auth: AuthConfig | None = None,
    local_addr: str | None = None,
    timeouts: Timeouts | None = None,
    log: mlog.Log | None = None,
) -> Client:
    """Connect to ip:port and set up the SMTP session: greeting, EHLO, TLS, EHLO, AUTH.

    Args:
        ip: the server's address, resolved by the caller.
        port: 25 for delivery, 587/465 for submission to a smarthost.
        ehlo_hostname: our name for EHLO/HELO (ASCII/IDNA A-label form).
        tls: TLS mode and verification, see :class:`TLSConfig`. Default:
            opportunistic STARTTLS without verification.
        auth: authenticate after TLS (transports via a smarthost).
        local_addr: source IP address to bind to.
        timeouts: deadlines, :class:`Timeouts`.

    Raises:
        CommandTimeout: no connection or reply within the deadline.
        ConnectionLost: connection refused, reset, closed.
        GreetingError: greeting not 220 (5xx: permanent).
        ReplyError: EHLO and HELO refused.
        TLSFailure: TLS required (mode, pkix or dane) and not possible, or
            verification failed, with its RFC 8460 result_type. With
            opportunistic TLS a failed handshake is also an error: reconnect
            with TLSMode.SKIP if policy allows, as upstream's queue does.
        AuthError: authentication refused or impossible.
        ProtocolError: malformed replies.

    With ``ignore_verify_errors`` and a failed PKIX verification the
    connection is made a second time without verification; the failure is
    in ``client.tls.ignored_failures``.
    """
    if not _EHLO_NAME.fullmatch(ehlo_hostname):
        raise ValueError(f"ehlo hostname {ehlo_hostname!r} is not a domain or address literal")
    cfg = tls or TLSConfig()
    t = timeouts or Timeouts()
    base_log = (log or log_pkg).with_fields(remote=f"{ip}:{port}", cid=mlog.new_cid())
    ignored: list[TLSFailure] = []
    for _attempt in range(2):
        try:
            client = await _connect_once(ip, port, ehlo_hostname, cfg, auth, local_addr, t, base_log)
        except _Redial as e:
            base_log.info(
                "pkix verification failed, connecting again without (verification errors ignored)",
                reason=e.failure.reason,
            )
            ignored.append(e.failure)
            cfg = replace(cfg, pkix=False)
            continue
        client.tls.ignored_failures[:0] = ignored
        return client
    raise AssertionError("not reached")


async def _connect_once(
    ip: str,
    port: int,
    ehlo_hostname: str,
    cfg: TLSConfig,
    auth: AuthConfig | None,
    local_addr: str | None,
    t: Timeouts,
    log: mlog.Log,
) -> Client:
    immediate = cfg.mode is TLSMode.IMMEDIATE
    ctx = make_context(cfg, cfg.pkix) if immediate else None
    try:
        async with asyncio.timeout(t.connect + (t.tls_handshake if immediate else 0)):
            reader, writer = await asyncio.open_connection(
                ip,
                port,
                local_addr=(local_addr, 0) if local_addr else None,
                ssl=ctx,
                server_hostname=(cfg.server_name or None) if immediate else None,
                ssl_handshake_timeout=t.tls_handshake if immediate else None,
            )
    except ssl.SSLCertVerificationError as e:
        failure = classify_handshake_error(e)
        if cfg.ignore_verify_errors:
            raise _Redial(failure) from e
        raise failure from e
    except ssl.SSLError as e:
        raise classify_handshake_error(e) from e
    except TimeoutError:
        raise CommandTimeout(
            f"connecting to {ip}:{port}: timeout after {t.connect}s", command="connect"
        ) from None
    except OSError as e:
        raise ConnectionLost(f"connecting to {ip}:{port}: {e}", command="connect") from e
    log.debug("connected", local=writer.get_extra_info("sockname"), tlsmode=str(cfg.mode))
    client = Client(reader, writer, remote_ip=ip, remote_port=port, tls_config=cfg, timeouts=t, log=log)
    try:
        if immediate:
            client._tls_done(writer.get_extra_info("ssl_object"), cfg.pkix)
            await _first_tls_read(client._greeting())
        else:
            await client._greeting()
        await client._hello(ehlo_hostname, helo_ok=True)
        ext = client.extensions
        client.tls.starttls_offered = ext.starttls
        if cfg.mode is TLSMode.REQUIRED_STARTTLS or (cfg.mode is TLSMode.OPPORTUNISTIC and ext.starttls):
            await client._starttls()
            await _first_tls_read(client._hello(ehlo_hostname, helo_ok=False))
        elif cfg.mode is TLSMode.OPPORTUNISTIC:
            client.tls.not_offered = True
            if cfg.verification_required:
                failure = TLSFailure(
                    "server does not announce STARTTLS, and tls verification is required",
                    result_type=RESULT_STARTTLS_NOT_SUPPORTED,
                )
                if not cfg.ignore_verify_errors:
                    raise failure
                client.tls.ignored_failures.append(failure)
                log.info("no starttls, continuing without tls (verification errors ignored)")
        if auth is not None:
            await client._auth(auth)
    except BaseException as e:
        client.abort()
        if isinstance(e, TLSFailure | _Redial):
            failure = e if isinstance(e, TLSFailure) else e.failure
            failure.mx_helo = client.mx_helo
        raise
    return client


async def _first_tls_read(step: Awaitable[None]) -> None:
    """Run the first exchange after a handshake; losing the connection then is a TLS failure.

    With TLS 1.3 the server checks our side of the handshake after we consider
    it done, and reports failure with an alert at our first read (RFC 8446
    section 4.4.4). asyncio turns such an alert into a plain end of stream,
    so a connection lost right after the handshake counts as a failed TLS
    session, as upstream counts alerts then (RFC 8460 "validation-failure").
    """
    try:
        await step
    except ConnectionLost as e:
        if isinstance(e.__cause__, ssl.SSLError):
            raise classify_handshake_error(e.__cause__) from e
        raise TLSFailure(
            f"connection lost right after tls handshake: {e}",
            result_type=RESULT_VALIDATION_FAILURE,
            reason="tls-connection-lost-after-handshake",
        ) from e
