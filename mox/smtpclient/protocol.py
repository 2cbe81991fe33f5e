"""The client side of an SMTP conversation, sans-IO: commands out as bytes, replies in, results out.

Three parts, none of which touches a socket:

- Command lines (:func:`mail_command`, :func:`rcpt_command`, ...), with the
  parameters of SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
  DSN (RFC 3461) and REQUIRETLS (RFC 8689), and message encoders for DATA
  (dot-stuffing, RFC 5321 section 4.5.2) and BDAT (RFC 3030), both turning
  bare CR and LF into CRLF.
- :class:`ClientProtocol`: matches replies to the commands written, in order,
  which is what PIPELINING (RFC 2920) needs: several commands in one write,
  their replies read afterwards.
- :class:`Transaction`: one mail transaction (MAIL, RCPT..., DATA or BDAT),
  deciding what to write next from each reply, and the outcome per
  recipient. The asyncio client (:mod:`mox.smtpclient.client`) only moves
  bytes and streams the message when the transaction says so.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from mox.smtp.path import PathError, parse_mailbox
from mox.smtpclient.ehlo import Extensions
from mox.smtpclient.errors import ConnectionUnusable, ExtensionUnsupported, ReplyError, SMTPClientError
from mox.smtpclient.reply import Reply, ReplyParseError, ReplyReader

__all__ = [
    "ClientProtocol",
    "CommandReply",
    "DataEncoder",
    "LineEndingNormalizer",
    "MailOptions",
    "Recipient",
    "RecipientResult",
    "Transaction",
    "TxPhase",
    "check_address",
    "mail_command",
    "rcpt_command",
    "xtext",
]


# --- Command lines.


def check_address(addr: str, what: str) -> None:
    """Refuse an envelope address that is not a valid mailbox (RFC 5321 section 4.1.2).

    Empty is allowed for the reverse path (null sender, for DSNs). Besides
    correctness this keeps CR, LF, ">" and spaces out of command lines.

    Raises:
        ValueError: not a valid address.
    """
    if addr == "" and what == "mail from":
        return
    if addr.lower() == "postmaster" and what == "rcpt to":
        return
    try:
        parse_mailbox(addr, utf8=True)
    except PathError as e:
        raise ValueError(f"{what} address {addr!r}: {e}") from None


def xtext(s: str) -> str:
    """RFC 3461 section 4 xtext: printable ASCII except "+" and "=" as is, other octets "+HH"."""
    out = []
    for b in s.encode("utf-8"):
        if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D):
            out.append(chr(b))
        else:
            out.append(f"+{b:02X}")
    return "".join(out)


def _utf8_addr_unitext(s: str) -> str:
    """RFC 6533 section 3 utf-8-addr-unitext: UTF-8 as is, except "+", "=", "\\" and controls as \\x{HEX}."""
    out = []
    for c in s:
        o = ord(c)
        if c in "+=\\" or o <= 0x20 or o == 0x7F:
            out.append(f"\\x{{{o:X}}}")
        else:
            out.append(c)
    return "".join(out)


_DSN_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_ENVID = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class MailOptions:
    """Per-message parameters of a delivery.

    Attributes:
        has_8bit: the message has octets over 127. Needs 8BITMIME (RFC 6152);
            without it delivery fails permanently (as upstream: we do not
            convert to 7 bit).
        smtputf8: the message or its envelope uses UTF-8 (RFC 6531): sent with
            the SMTPUTF8 parameter when the server supports it.
        smtputf8_optional: when the server lacks SMTPUTF8, the message may go
            without it (the caller checked that headers are ASCII or may be
            sent as they are). Envelope addresses with non-ASCII characters
            never may. Without this flag a server lacking SMTPUTF8 is a
            permanent failure (RFC 6531 section 3.2, 5.6.7).
        requiretls: RFC 8689 REQUIRETLS: the server must announce it, and the
            connection must be TLS with verified (PKIX or DANE) certificates.
        size: message size for the SIZE parameter; when None the client uses
            the size of the message source.
        dsn_ret: RFC 3461 RET parameter, "FULL" or "HDRS"; only sent when the
            server announces DSN.
        dsn_envid: RFC 3461 ENVID parameter (xtext-encoded when sent).
    """

    has_8bit: bool = False
    smtputf8: bool = False
    smtputf8_optional: bool = False
    requiretls: bool = False
    size: int | None = None
    dsn_ret: str | None = None
    dsn_envid: str | None = None

    def __post_init__(self) -> None:
        if self.dsn_ret is not None and self.dsn_ret.upper() not in ("FULL", "HDRS"):
            raise ValueError(f"dsn ret must be FULL or HDRS, not {self.dsn_ret!r}")
        if self.dsn_envid is not None and (not self.dsn_envid.isascii() or len(self.dsn_envid) > 100):
            # RFC 3461 section 4.4: ENVID is at most 100 characters, "xtext".
            raise ValueError("dsn envid must be ascii and at most 100 characters")
        if self.size is not None and self.size < 0:
            raise ValueError("size must not be negative")


@dataclass(frozen=True)
class Recipient:
    """One envelope recipient, with its RFC 3461 DSN parameters.

    Attributes:
        address: the mailbox, "localpart@domain".
        notify: NOTIFY values: ("NEVER",) or a subset of SUCCESS, FAILURE,
            DELAY; empty for none. Only sent when the server announces DSN.
        orcpt: the original recipient for ORCPT (RFC 3461 section 4.2), sent
            as "rfc822;" xtext, or "utf-8;" (RFC 6533) when it is not ASCII
            and the message uses SMTPUTF8.
    """

    address: str
    notify: tuple[str, ...] = ()
    orcpt: str = ""

    def __post_init__(self) -> None:
        check_address(self.address, "rcpt to")
        notify = tuple(n.upper() for n in self.notify)
        if notify and notify != ("NEVER",) and not set(notify) <= _DSN_NOTIFY:
            raise ValueError(
                f"dsn notify must be NEVER or a subset of SUCCESS,FAILURE,DELAY, not {self.notify!r}"
            )
        object.__setattr__(self, "notify", notify)
        if self.orcpt and any(c in self.orcpt for c in "\r\n"):
            raise ValueError("orcpt must not contain line breaks")


def mail_command(ext: Extensions, mail_from: str, opts: MailOptions, size: int, *, smtputf8: bool) -> bytes:
    """The MAIL FROM command line for a server with extensions ext.

    Parameters are only added for extensions the server announced (RFC 5321
    section 4.1.1.11: a client must not use parameters the server did not).
    """
    parts = [f"MAIL FROM:<{mail_from}>"]
    if ext.size and size >= 0:
        parts.append(f"SIZE={size}")  # RFC 1870 section 6; left out when the size is unknown (negative).
    if ext.eightbitmime:
        parts.append("BODY=8BITMIME" if opts.has_8bit else "BODY=7BIT")  # RFC 6152 section 2.
    if smtputf8:
        parts.append("SMTPUTF8")  # RFC 6531 section 3.4.
    if opts.requiretls:
        parts.append("REQUIRETLS")  # RFC 8689 section 4.1.
    if ext.dsn:
        if opts.dsn_ret:
            parts.append(f"RET={opts.dsn_ret.upper()}")  # RFC 3461 section 4.3.
        if opts.dsn_envid:
            parts.append(f"ENVID={xtext(opts.dsn_envid)}")  # RFC 3461 section 4.4.
    return (" ".join(parts) + "\r\n").encode("utf-8")


def rcpt_command(ext: Extensions, rcpt: Recipient, *, smtputf8: bool) -> bytes:
    """The RCPT TO command line, with DSN parameters when the server announced DSN."""
    parts = [f"RCPT TO:<{rcpt.address}>"]
    if ext.dsn:
        if rcpt.notify:
            parts.append("NOTIFY=" + ",".join(rcpt.notify))  # RFC 3461 section 4.1.
        if rcpt.orcpt:
            if rcpt.orcpt.isascii() or not smtputf8:
                parts.append(f"ORCPT=rfc822;{xtext(rcpt.orcpt)}")  # RFC 3461 section 4.2.
            else:
                parts.append(f"ORCPT=utf-8;{_utf8_addr_unitext(rcpt.orcpt)}")  # RFC 6533 section 3.
    return (" ".join(parts) + "\r\n").encode("utf-8")


# --- Message encoding.


class LineEndingNormalizer:
    """Turns bare CR and bare LF into CRLF, over a message fed in pieces.

    RFC 5321 section 2.3.8: lines end in CRLF, and bare CR or LF must not be
    sent. Servers (mox among them) refuse bare CR as possible SMTP smuggling,
    so both are normalized rather than passed on.
    """

    _BARE = re.compile(rb"\r\n|\r|\n")

    def __init__(self) -> None:
        self._pending_cr = False
        self.ends_crlf = True  # At the start there is no partial line.

    def feed(self, data: bytes) -> bytes:
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            # Could be the first half of a CRLF split over two pieces.
            data = data[:-1]
            self._pending_cr = True
        if not data:
            return b""
        n = data.count(b"\n")
        if n != data.count(b"\r") or n != data.count(b"\r\n"):
            data = self._BARE.sub(b"\r\n", data)
        self.ends_crlf = data.endswith(b"\r\n")
        return data

    def finish(self) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            self.ends_crlf = True
            return b"\r\n"
        return b""


class DataEncoder:
    """Message to DATA content: normalized line endings, dot-stuffing, the end marker.

    RFC 5321 section 4.5.2: a line starting with "." gets another "." in
    front; section 4.1.1.4: the data ends with CRLF "." CRLF, a CRLF being
    added first when the message does not end with one.
    """

    def __init__(self) -> None:
        self._norm = LineEndingNormalizer()
        self._line_start = True

    def feed(self, data: bytes) -> bytes:
        data = self._norm.feed(data)
        if not data:
            return b""
        if b"\n." in data:
            data = data.replace(b"\r\n.", b"\r\n..")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        self._line_start = data.endswith(b"\r\n")
        return data

    def finish(self) -> bytes:
        tail = self._norm.finish()
        if tail:
            self._line_start = True
        if not self._line_start:
            tail += b"\r\n"
        return tail + b".\r\n"


# --- Matching replies to commands.


@dataclass(frozen=True, slots=True)
class CommandReply:
    """A reply and the command it answers ("mail", "rcpt", "data", "bdat", "rset", ...), with its index."""

    command: str
    reply: Reply
    index: int = 0  # For "rcpt": which recipient.


class ClientProtocol:
    """Replies matched to the commands written, in order (RFC 2920 section 3.1).

    ``send`` records a command and returns its line as bytes to write;
    ``receive_data`` takes what the server sent; ``next_event`` returns
    the next reply with its command, or None if more data is needed.
    A reply with nothing outstanding is a protocol error: the server is out
    of sync.
    """

    def __init__(self) -> None:
        self.reader = ReplyReader()
        self._pending: deque[tuple[str, int]] = deque()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def expect(self, command: str, index: int = 0) -> None:
        """Expect a reply for a command written without send (the greeting, a BDAT chunk's data)."""
        self._pending.append((command, index))

    def send(self, command: str, line: bytes, index: int = 0) -> bytes:
        self._pending.append((command, index))
        return line

    def receive_data(self, data: bytes) -> None:
        """Raises ReplyParseError for malformed or over-long replies."""
        self.reader.feed(data)

    def next_event(self) -> CommandReply | None:
        """The next reply matched to its command, or None when more data is needed.

        Raises:
            ReplyParseError: malformed reply, or a reply nothing was waiting for.
        """
        reply = self.reader.next_reply()
        if reply is None:
            return None
        if not self._pending:
            raise ReplyParseError("reply without a command waiting for one", reply.first_line)
        cmd, index = self._pending.popleft()
        return CommandReply(cmd, reply, index)


# --- One mail transaction.


@dataclass(frozen=True)
class RecipientResult:
    """What happened to one recipient.

    Attributes:
        recipient: the address.
        accepted: the server took the message for this recipient (RCPT and
            the message data both accepted).
        reply: the reply that decided (the final reply after the data for
            an accepted recipient, else the RCPT reply or the reply that
            failed the transaction); None when the recipient was not tried
            (e.g. beyond the server's RCPTMAX).
        permanent: for a failure: True for 5xx (bounce), False for 4xx,
            untried and other temporary failures. RFC 5321 section 4.5.3.1.10:
            552 to RCPT is treated as 452, temporary.
    """

    recipient: str
    accepted: bool
    reply: Reply | None
    permanent: bool = False

    @property
    def code(self) -> int:
        return self.reply.code if self.reply is not None else 0

    @property
    def enhanced(self) -> str:
        return self.reply.enhanced if self.reply is not None else ""

    @property
    def text(self) -> str:
        return self.reply.text if self.reply is not None else ""


class TxPhase(enum.Enum):
    ENVELOPE = "envelope"  # Waiting for replies to RSET/MAIL/RCPT/DATA.
    SEND_DATA = "send-data"  # The driver must now send the message (DATA content or BDAT chunks).
    FINAL = "final"  # Waiting for the reply to the end of data / BDAT chunks.
    DONE = "done"


@dataclass
class _Outcome:
    rcpt_replies: list[Reply | None] = field(default_factory=list)
    mail_reply: Reply | None = None
    data_reply: Reply | None = None
    final_reply: Reply | None = None
    error: SMTPClientError | None = None


class Transaction:
    """One mail transaction, sans-IO.

    Use::

        tx = Transaction(ext, proto, mail_from, recipients, opts, size=..., tls_verified=...)
        write(tx.start())               # RSET? MAIL, and with PIPELINING all RCPTs and DATA
        while tx.phase is TxPhase.ENVELOPE:
            write(tx.handle(await read_event()))   # next command without PIPELINING
        if tx.phase is TxPhase.SEND_DATA:
            ... stream the message: DATA content then tx.data_sent(),
            ... or tx.bdat(n, last) before each chunk
        while tx.phase is TxPhase.FINAL:
            write(tx.handle(await read_event()))
        tx.results()   # per recipient; raises the transaction's error, if any

    With CHUNKING and PIPELINING, a small message goes in the first write:
    pass ``inline_bdat`` (the normalized message) and MAIL, RCPTs, BDAT LAST
    and the data leave together, one round trip per message.

    Raises (constructor): ExtensionUnsupported when the message needs what
    the server does not offer; ValueError for bad addresses.
    """

    def __init__(
        self,
        ext: Extensions,
        proto: ClientProtocol,
        mail_from: str,
        recipients: Sequence[Recipient],
        opts: MailOptions,
        *,
        size: int,
        tls_verified: bool = False,
        rset_first: bool = False,
        inline_bdat: bytes | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("need at least one recipient")
        check_address(mail_from, "mail from")
        self.ext = ext
        self.proto = proto
        self.mail_from = mail_from
        self.recipients = list(recipients)
        self.opts = opts
        self.size = size
        self.rset_first = rset_first
        self.smtputf8 = self._check_extensions(tls_verified)
        self.use_bdat = ext.chunking
        self.pipelining = ext.pipelining
        self.inline_bdat = inline_bdat if (self.use_bdat and self.pipelining) else None
        self.phase = TxPhase.ENVELOPE
        self.out = _Outcome(rcpt_replies=[None] * len(self.recipients))
        self._next_rcpt = 0
        self._stop_rcpt = False
        # Beyond RCPTMAX (RFC 9422 section 5.2) recipients are not tried in this transaction.
        self.rcpt_limit = len(self.recipients)
        if ext.rcpt_max:
            self.rcpt_limit = min(self.rcpt_limit, ext.rcpt_max)

    def _check_extensions(self, tls_verified: bool) -> bool:
        ext, opts = self.ext, self.opts
        if opts.has_8bit and not ext.eightbitmime:
            raise ExtensionUnsupported(
                "8BITMIME",
                "remote smtp server does not implement 8bitmime extension, required by message",
                permanent=True,
                enhanced="5.6.3",
            )
        non_ascii_envelope = not self.mail_from.isascii() or any(
            not r.address.isascii() for r in self.recipients
        )
        smtputf8 = opts.smtputf8 or non_ascii_envelope
        if smtputf8 and not ext.smtputf8:
            if non_ascii_envelope or not opts.smtputf8_optional:
                # RFC 6531 section 3.2: without SMTPUTF8 at the server, a message that needs it cannot be sent.
                raise ExtensionUnsupported(
                    "SMTPUTF8",
                    "remote smtp server does not implement smtputf8 extension, required by message",
                    permanent=True,
                    enhanced="5.6.7" if non_ascii_envelope else "5.6.9",
                )
            smtputf8 = False
        if opts.requiretls:
            # RFC 8689 section 4.2.1: only to a server announcing REQUIRETLS, over verified TLS.
            if not tls_verified:
                raise ExtensionUnsupported(
                    "REQUIRETLS",
                    "requiretls: connection is not tls with verified certificate (pkix or dane)",
                    permanent=False,
                    enhanced="5.7.30",
                )
            if not ext.requiretls:
                raise ExtensionUnsupported(
                    "REQUIRETLS",
                    "remote smtp server does not implement requiretls extension, required for delivery",
                    permanent=False,
                    enhanced="5.7.30",
                )
        if ext.size and ext.size_limit and self.size > ext.size_limit:  # Unknown (-1) passes.
            # RFC 1870 section 6.
            raise ExtensionUnsupported(
                "SIZE",
                f"message is {self.size} bytes, remote has a {ext.size_limit} bytes maximum size",
                permanent=True,
                enhanced="5.3.4",
            )
        return smtputf8

    def _mail_line(self) -> bytes:
        return mail_command(self.ext, self.mail_from, self.opts, self.size, smtputf8=self.smtputf8)

    def _rcpt_line(self, i: int) -> bytes:
        return rcpt_command(self.ext, self.recipients[i], smtputf8=self.smtputf8)

    def start(self) -> bytes:
        """The first write of the transaction."""
        p = self.proto
        out = []
        if self.rset_first:
            out.append(p.send("rset", b"RSET\r\n"))
            if not self.pipelining:
                return out[0]
        out.append(p.send("mail", self._mail_line()))
        if self.pipelining:
            for i in range(self.rcpt_limit):
                out.append(p.send("rcpt", self._rcpt_line(i), i))
            self._next_rcpt = self.rcpt_limit
            if self.inline_bdat is not None:
                out.append(p.send("bdat-last", b"BDAT %d LAST\r\n" % len(self.inline_bdat)))
                out.append(self.inline_bdat)
            elif not self.use_bdat:
                out.append(p.send("data", b"DATA\r\n"))
        return b"".join(out)

    @property
    def accepted_count(self) -> int:
        return sum(1 for r in self.out.rcpt_replies if r is not None and r.code // 100 == 2)

    def handle(self, ev: CommandReply) -> bytes:
        """Take one reply; returns what to write next (often nothing)."""
        r = ev.reply
        o = self.out
        cmd = ev.command
        if cmd == "rset":
            if r.code // 100 != 2 and o.error is None:
                o.error = ReplyError("rset", r)
            if not self.pipelining:
                if o.error is not None:
                    self._finish()
                    return b""
                return self.proto.send("mail", self._mail_line())
            return b""
        if cmd == "mail":
            o.mail_reply = r
            if r.code // 100 != 2 and o.error is None:
                o.error = ReplyError("mail", r)
            if not self.pipelining:
                if o.error is not None:
                    self._finish()
                    return b""
                self._next_rcpt = 1
                return self.proto.send("rcpt", self._rcpt_line(0), 0)
            return self._maybe_envelope_done()
        if cmd == "rcpt":
            o.rcpt_replies[ev.index] = r
            if not self.pipelining:
                if ev.index > 0 and r.code in (452, 552):
                    # RFC 5321 section 4.5.3.1.10: too many recipients; the rest are for another transaction.
                    self._stop_rcpt = True
                if self._next_rcpt < self.rcpt_limit and not self._stop_rcpt:
                    i = self._next_rcpt
                    self._next_rcpt += 1
                    return self.proto.send("rcpt", self._rcpt_line(i), i)
                if self.accepted_count == 0:
                    self._finish()
                    return b""
                if self.use_bdat:
                    self.phase = TxPhase.SEND_DATA
                    return b""
                return self.proto.send("data", b"DATA\r\n")
            return self._maybe_envelope_done()
        if cmd == "data":
            o.data_reply = r
            if self.phase is TxPhase.FINAL:
                # Reply to the "." we sent after a 354 without accepted recipients.
                self._finish()
                return b""
            if r.code == 354:
                if o.error is not None or self.accepted_count == 0:
                    # RFC 2920 section 3.1: the server took DATA though nothing is to be
                    # delivered; end it empty to stay in sync.
                    self.phase = TxPhase.FINAL
                    return self.proto.send("data", b".\r\n")
                self.phase = TxPhase.SEND_DATA
                return b""
            if o.error is None and self.accepted_count > 0:
                o.error = ReplyError("data", r)
            self._finish()
            return b""
        if cmd in ("bdat", "bdat-last"):
            if (
                r.code // 100 != 2
                and o.error is None
                and (o.mail_reply is None or o.mail_reply.code // 100 == 2)
            ):
                if self.accepted_count > 0:
                    o.error = ReplyError("bdat", r)
            if cmd == "bdat-last":
                o.final_reply = r
                if self.phase is not TxPhase.ENVELOPE or self.proto.pending == 0:
                    self._finish()
            elif r.code // 100 != 2 and self.proto.pending == 0 and self.phase is TxPhase.SEND_DATA:
                # RFC 3030 section 2: after a failed chunk no more chunks are sent.
                self._finish()
            return b""
        if cmd == "data-end":
            o.final_reply = r
            if r.code // 100 != 2 and o.error is None:
                o.error = ReplyError("data", r)
            self._finish()
            return b""
        raise ValueError(f"unexpected command {cmd!r} in transaction")

    def _maybe_envelope_done(self) -> bytes:
        if self.proto.pending:
            return b""
        # Pipelined: all replies in.
        if self.inline_bdat is not None:
            self._finish()
        elif self.use_bdat and self.out.error is None and self.accepted_count > 0:
            self.phase = TxPhase.SEND_DATA
        elif self.use_bdat:
            self._finish()
        return b""

    def data_sent(self) -> None:
        """The driver has written the DATA content and end marker."""
        assert self.phase is TxPhase.SEND_DATA
        self.proto.expect("data-end")
        self.phase = TxPhase.FINAL

    def bdat(self, n: int, last: bool) -> bytes:
        """The BDAT command for the next chunk of n octets (RFC 3030 section 2); write the chunk after it."""
        assert self.phase is TxPhase.SEND_DATA
        if last:
            self.phase = TxPhase.FINAL
            return self.proto.send("bdat-last", b"BDAT %d LAST\r\n" % n)
        return self.proto.send("bdat", b"BDAT %d\r\n" % n)

    def _finish(self) -> None:
        self.phase = TxPhase.DONE

    @property
    def failed(self) -> bool:
        return self.out.error is not None

    def results(self) -> list[RecipientResult]:
        """Per-recipient outcome once DONE.

        Raises:
            SMTPClientError: the transaction as a whole failed (MAIL, DATA,
                BDAT or the final reply refused): no recipient got the message.
        """
        if self.phase is not TxPhase.DONE:
            raise ConnectionUnusable("transaction not finished")
        o = self.out
        if o.error is not None:
            raise o.error
        results = []
        accepted_final = o.final_reply is not None and o.final_reply.code // 100 == 2
        for i, rcpt in enumerate(self.recipients):
            r = o.rcpt_replies[i]
            if r is None:
                results.append(RecipientResult(rcpt.address, False, None, False))
            elif r.code // 100 == 2:
                results.append(RecipientResult(rcpt.address, accepted_final, o.final_reply, False))
            else:
                # RFC 5321 section 4.5.3.1.10: 552 for RCPT is "too many recipients", temporary.
                permanent = r.permanent and r.code != 552
                results.append(RecipientResult(rcpt.address, False, r, permanent))
        return results
