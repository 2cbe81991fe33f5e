"""Delivery status notifications: compose and parse (RFC 3464, RFC 3461, RFC 6533).

A DSN is a ``multipart/report; report-type=delivery-status`` message (RFC 6522)
with two or three parts: human-readable text, the machine-readable
``message/delivery-status`` (or ``message/global-delivery-status`` when the
report needs UTF-8, RFC 6533 section 6.1), and optionally the original message
or only its header (RFC 3461 section 4.3 RET=FULL / RET=HDRS).

Pure: bytes in, values out. :func:`compose` builds a DSN from a
:class:`Message`; :func:`parse` reads one back (raising :class:`DSNError`
with a clear message on anything malformed), :func:`parse_delivery_status`
reads only the machine-readable part.
"""

from __future__ import annotations

import base64
import datetime as _dt
import email.utils
import enum
import quopri
import re
import secrets
from dataclasses import dataclass, field

from mox import message as msg
from mox.message.headers import decode_text, line_ending, scan_header

# RFC 3464 section 2.1.1: the status groups are separated by empty lines; we
# refuse absurdly large machine-readable parts rather than parse them.
MAX_STATUS_SIZE = 1024 * 1024
# RFC 2045 section 6.8: base64 lines at most 76 characters.
_B64_LINE = 76


class DSNError(ValueError):
    """A message is not a valid DSN, or a DSN cannot be composed from the values given."""


class Action(enum.StrEnum):
    """RFC 3464 section 2.3.3 action-value."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"
    EXPANDED = "expanded"


@dataclass
class NameIP:
    """A host by name and, optionally, IP address (Remote-MTA, Received-From-MTA)."""

    name: str = ""
    ip: str = ""

    def is_zero(self) -> bool:
        return not self.name and not self.ip


@dataclass
class Recipient:
    """Per-recipient fields (RFC 3464 section 2.3)."""

    final_recipient: str
    action: Action
    status: str  # enhanced status code, e.g. "5.1.1" (RFC 3463)
    status_comment: str = ""
    # From the RCPT ORCPT parameter (RFC 3461 section 4.2), decoded: its address type and address.
    original_recipient: str = ""
    original_recipient_type: str = "rfc822"
    final_recipient_type: str = "rfc822"
    remote_mta: NameIP = field(default_factory=NameIP)
    # The remote's SMTP reply (all lines, space separated), without "smtp; " (RFC 3464 section 2.3.6).
    diagnostic_code: str = ""
    diagnostic_type: str = "smtp"
    last_attempt_date: _dt.datetime | None = None
    final_log_id: str = ""
    will_retry_until: _dt.datetime | None = None
    # Parsed DSNs only: every field of the group as (name, value), extensions included.
    fields: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Message:
    """A DSN: headers of the report message, the text, per-message and per-recipient fields, the original."""

    from_addr: str
    to_addr: str
    subject: str
    message_id: str  # without <>
    reporting_mta: str  # required (RFC 3464 section 2.2.2), a DNS name
    recipients: list[Recipient]
    text_body: str = ""
    references: str = ""  # Message-ID of the original, with <>
    # Whether the original message needed SMTPUTF8; with UTF-8 transport the report is "global".
    smtputf8: bool = False
    original_envelope_id: str = ""  # RFC 3461 ENVID, decoded
    dsn_gateway: str = ""
    received_from_mta: NameIP = field(default_factory=NameIP)
    arrival_date: _dt.datetime | None = None
    future_release_request: str = ""  # RFC 4865 section 6
    # The original message (full) or its header section; None for none.
    original: bytes | None = None
    original_full: bool = False
    date: _dt.datetime | None = None  # Date header; now when None
    # Parsed DSNs only: all per-message fields.
    message_fields: list[tuple[str, str]] = field(default_factory=list)
    # Parsed DSNs only: whether the status part was message/global-delivery-status.
    is_global: bool = False


def _rfc5322_date(t: _dt.datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return email.utils.format_datetime(t)


# RFC 6533 section 3: utf-8-addr-xtext, non-ASCII (and the characters xtext
# cannot carry) as \x{HEX}.
def _utf8_addr_xtext(addr: str) -> str:
    out = []
    for c in addr:
        o = ord(c)
        if 0x21 <= o <= 0x7E and c not in "+=\\":
            out.append(c)
        else:
            out.append(f"\\x{{{o:X}}}")
    return "".join(out)


_XESC = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


def _utf8_addr_decode(s: str) -> str:
    def repl(m: re.Match[str]) -> str:
        v = int(m.group(1), 16)
        if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
            raise DSNError(f"invalid \\x{{{m.group(1)}}} escape in address")
        return chr(v)

    return _XESC.sub(repl, s)


def _address_field(typ: str, addr: str, utf8: bool) -> str:
    """An address-type;address value (RFC 3464 section 2.3.1/2.3.2, RFC 6533 section 3)."""
    if addr.isascii():
        return f"{typ}; {addr}"
    # Non-ASCII needs the utf-8 address type: raw in a global DSN, escaped otherwise.
    return f"utf-8; {addr}" if utf8 else f"utf-8; {_utf8_addr_xtext(addr)}"


def _check_value(name: str, v: str) -> None:
    if "\r" in v or "\n" in v:
        raise DSNError(f"{name}: line break in value")


def compose(m: Message, *, smtputf8: bool = False, boundary: str | None = None) -> bytes:
    """Build the DSN message (CRLF line endings).

    smtputf8 says whether the DSN will be delivered with SMTPUTF8; only when it
    is and the original needed it is the report "global" (RFC 6533 section
    6.1), otherwise everything is 7-bit (non-ASCII addresses escaped, the
    original's header base64-encoded, as upstream does).

    Raises:
        DSNError: a required value is missing or a value cannot be represented.
    """
    utf8 = smtputf8 and m.smtputf8
    if not m.message_id:
        raise DSNError("missing message-id")
    if not m.reporting_mta:
        raise DSNError("missing reporting-mta")
    if not m.recipients:
        raise DSNError("missing per-recipient fields")
    for name, v in [("from", m.from_addr), ("to", m.to_addr), ("subject", m.subject), ("message-id", m.message_id),
                    ("references", m.references), ("envid", m.original_envelope_id), ("reporting-mta", m.reporting_mta),
                    ("future-release-request", m.future_release_request)]:  # fmt: skip
        _check_value(name, v)
    if boundary is None:
        boundary = "dsn-" + secrets.token_hex(12)
    out: list[bytes] = []

    def line(s: str) -> None:
        out.append(s.encode("utf-8") + b"\r\n")

    def addr_header(a: str) -> str:
        if a.isascii() or utf8:
            return f"<{a}>"
        # A non-ASCII address cannot appear in a 7-bit header; escape its local part visibly.
        return f"<{_utf8_addr_xtext(a)}>"

    # RFC 3464 section 2: the DSN's own header.
    line(f"From: {addr_header(m.from_addr)}")
    line(f"To: {addr_header(m.to_addr)}")
    subject = m.subject if (m.subject.isascii() or utf8) else _encoded_word(m.subject)
    line(f"Subject: {subject}")
    line(f"Message-Id: <{m.message_id}>")
    if m.references:
        line(f"References: {m.references}")
    line(f"Date: {_rfc5322_date(m.date or _dt.datetime.now(_dt.UTC))}")
    # RFC 3834 section 5: automatically generated; helps receivers avoid loops.
    line("Auto-Submitted: auto-replied")
    line("MIME-Version: 1.0")
    line(f'Content-Type: multipart/report; report-type="delivery-status"; boundary="{boundary}"')
    line("")
    line("This is a MIME-formatted delivery status notification.")
    line("")

    # Part 1: human-readable (RFC 3464 section 2, RFC 6522 section 3).
    line(f"--{boundary}")
    text = m.text_body.replace("\r\n", "\n").replace("\n", "\r\n")
    if text and not text.endswith("\r\n"):
        text += "\r\n"
    if text.isascii():
        line("Content-Type: text/plain; charset=us-ascii")
        line("Content-Transfer-Encoding: 7bit")
        line("")
        out.append(text.encode("ascii"))
    elif utf8:
        line("Content-Type: text/plain; charset=utf-8")
        line("Content-Transfer-Encoding: 8bit")
        line("")
        out.append(text.encode("utf-8"))
    else:
        line("Content-Type: text/plain; charset=utf-8")
        line("Content-Transfer-Encoding: quoted-printable")
        line("")
        qp = quopri.encodestring(text.encode("utf-8")).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        out.append(qp if qp.endswith(b"\r\n") else qp + b"\r\n")

    # Part 2: machine-readable (RFC 3464 section 2.1; RFC 6533 section 6.1 for global).
    line(f"--{boundary}")
    if utf8:
        line("Content-Type: message/global-delivery-status")
        line("Content-Transfer-Encoding: 8bit")
    else:
        line("Content-Type: message/delivery-status")
        line("Content-Transfer-Encoding: 7bit")
    line("")
    for fl in status_fields(m, utf8):
        line(fl)

    # Part 3: the original, or its header only (RFC 3461 section 4.3).
    if m.original is not None:
        line(f"--{boundary}")
        orig = m.original
        if not m.original_full:
            orig = header_section(orig)
        eight = not orig.isascii()
        if m.original_full:
            ctype = "message/global" if m.smtputf8 else "message/rfc822"
        elif m.smtputf8 and utf8:
            ctype = "message/global-headers"  # RFC 6533 section 6.3
        else:
            ctype = "text/rfc822-headers"  # RFC 6522 section 4
        if eight and not utf8:
            # 8-bit data in a 7-bit report: base64 (RFC 6532 section 3.5 allows it for message/global).
            if ctype == "message/rfc822":
                ctype = "message/global" if m.smtputf8 else ctype
            if ctype == "message/rfc822":
                # RFC 2046 section 5.2.1 forbids base64 on message/rfc822: send the 8-bit as is.
                line(f"Content-Type: {ctype}")
                line("Content-Transfer-Encoding: 8bit")
                line("")
                out.append(_crlf(orig))
            else:
                cs = "; charset=utf-8" if ctype.startswith("text/") else ""
                line(f"Content-Type: {ctype}{cs}")
                line("Content-Transfer-Encoding: base64")
                line("")
                b64 = base64.b64encode(orig).decode("ascii")
                for i in range(0, len(b64), _B64_LINE):
                    line(b64[i : i + _B64_LINE])
        else:
            line(f"Content-Type: {ctype}")
            line(f"Content-Transfer-Encoding: {'8bit' if eight else '7bit'}")
            line("")
            out.append(_crlf(orig))
        if not out[-1].endswith(b"\r\n"):
            out.append(b"\r\n")
    line(f"--{boundary}--")
    return b"".join(out)


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _encoded_word(s: str) -> str:
    # RFC 2047 section 4.1, "B" encoding, split so each word stays under 75 characters.
    words = []
    chunk = ""
    for c in s:
        if len((chunk + c).encode("utf-8")) > 45:
            words.append(chunk)
            chunk = ""
        chunk += c
    if chunk:
        words.append(chunk)
    return " ".join(f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words)


def header_section(data: bytes) -> bytes:
    """The header section of a message, including the empty line ending it when present."""
    _, body_start, _ = scan_header(data, 0, len(data), line_ending(data))
    return data[:body_start]


def status_fields(m: Message, utf8: bool) -> list[str]:
    """The lines of the delivery-status body: per-message fields, then an empty line before each recipient group."""
    lines: list[str] = []
    if m.original_envelope_id:
        # RFC 3464 section 2.2.1; RFC 3461 section 4.4: decoded from xtext, given as is.
        env = m.original_envelope_id
        lines.append(f"Original-Envelope-Id: {env if (env.isascii() or utf8) else _utf8_addr_xtext(env)}")
    lines.append(f"Reporting-MTA: dns; {m.reporting_mta}")  # RFC 3464 section 2.2.2
    if m.dsn_gateway:
        lines.append(f"DSN-Gateway: dns; {m.dsn_gateway}")  # RFC 3464 section 2.2.3
    if not m.received_from_mta.is_zero():
        v = f"dns; {m.received_from_mta.name}"
        if m.received_from_mta.ip:
            v += f" ({m.received_from_mta.ip})"
        lines.append(f"Received-From-MTA: {v}")  # RFC 3464 section 2.2.4
    if m.arrival_date is not None:
        lines.append(f"Arrival-Date: {_rfc5322_date(m.arrival_date)}")  # RFC 3464 section 2.2.5
    if m.future_release_request:
        lines.append(f"Future-Release-Request: {m.future_release_request}")  # RFC 4865 section 6
    for r in m.recipients:
        for name, v in [("final-recipient", r.final_recipient), ("original-recipient", r.original_recipient),
                        ("status-comment", r.status_comment), ("diagnostic-code", r.diagnostic_code)]:  # fmt: skip
            _check_value(name, v)
        if not r.final_recipient:
            raise DSNError("missing final-recipient")
        if not re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", r.status):
            raise DSNError(f"status {r.status!r}: expected an enhanced status code like 5.1.1")
        lines.append("")
        if r.original_recipient:
            lines.append(f"Original-Recipient: {_address_field(r.original_recipient_type, r.original_recipient, utf8)}")
        lines.append(f"Final-Recipient: {_address_field(r.final_recipient_type, r.final_recipient, utf8)}")
        lines.append(f"Action: {r.action.value}")
        comment = r.status_comment
        if comment and not (comment.isascii() or utf8):
            comment = comment.encode("ascii", "backslashreplace").decode("ascii")
        comment = comment.replace("(", "[").replace(")", "]")
        lines.append(f"Status: {r.status}" + (f" ({comment})" if comment else ""))
        if not r.remote_mta.is_zero():
            v = f"dns; {r.remote_mta.name}"
            if r.remote_mta.ip:
                v += f" ({r.remote_mta.ip})"
            lines.append(f"Remote-MTA: {v}")  # RFC 3464 section 2.3.5
        if r.diagnostic_code:
            dc = r.diagnostic_code
            if not (dc.isascii() or utf8):
                dc = dc.encode("ascii", "backslashreplace").decode("ascii")
            lines.append(f"Diagnostic-Code: {r.diagnostic_type}; {dc}")  # RFC 3464 section 2.3.6
        if r.last_attempt_date is not None:
            lines.append(f"Last-Attempt-Date: {_rfc5322_date(r.last_attempt_date)}")  # RFC 3464 section 2.3.7
        if r.final_log_id:
            lines.append(f"Final-Log-ID: {r.final_log_id}")
        if r.will_retry_until is not None:
            lines.append(f"Will-Retry-Until: {_rfc5322_date(r.will_retry_until)}")  # RFC 3464 section 2.3.9
    return lines


# Parsing


def _groups(data: bytes) -> list[list[tuple[str, str]]]:
    """Split a delivery-status body into groups of (name, unfolded value), on empty lines."""
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    groups: list[list[tuple[str, str]]] = []
    cur: list[tuple[str, str]] = []
    for raw in text.split(b"\n"):
        if raw.strip(b" \t") == b"":
            if cur:
                groups.append(cur)
                cur = []
            continue
        if raw[:1] in (b" ", b"\t"):
            if not cur:
                raise DSNError("continuation line without a field in delivery-status")
            name, v = cur[-1]
            cur[-1] = (name, v + " " + decode_text(raw).strip(" \t"))
            continue
        name_b, sep, value = raw.partition(b":")
        name = name_b.decode("latin-1").rstrip(" \t")
        if not sep or not name or not re.fullmatch(r"[!-9;-~]+", name):
            raise DSNError(f"malformed field line {raw[:60]!r} in delivery-status")
        cur.append((name, decode_text(value).strip(" \t")))
    if cur:
        groups.append(cur)
    return groups


def _strip_comments(v: str) -> str:
    return re.sub(r"\([^()]*\)", "", v).strip()


def _split_typed(name: str, v: str) -> tuple[str, str]:
    typ, sep, rest = v.partition(";")
    typ = typ.strip()
    if not sep or not typ or not re.fullmatch(r"[A-Za-z0-9-]+", typ):
        raise DSNError(f"{name} {v!r}: expected type; value")
    return typ.lower(), rest.strip()


def _name_ip(name: str, v: str) -> NameIP:
    _, rest = _split_typed(name, v)
    ip = ""
    m = re.search(r"\(([^()]*)\)\s*$", rest)
    if m is not None:
        ip = m.group(1).strip().strip("[]")
        rest = rest[: m.start()].strip()
    return NameIP(rest, ip)


def _date(name: str, v: str) -> _dt.datetime:
    d = msg.parse_date(v)
    if d is None:
        raise DSNError(f"{name} {v!r}: not a date-time")
    return d


def parse_delivery_status(data: bytes, utf8: bool) -> Message:
    """Parse the body of a message/delivery-status (utf8 False) or message/global-delivery-status part.

    Returns a Message with the status fields set (header fields empty).

    Raises:
        DSNError: malformed, or a required field is missing.
    """
    if len(data) > MAX_STATUS_SIZE:
        raise DSNError(f"delivery-status part larger than {MAX_STATUS_SIZE} bytes")
    if not utf8 and not data.isascii():
        raise DSNError("non-ASCII data in message/delivery-status (only allowed in message/global-delivery-status)")
    groups = _groups(data)
    if len(groups) < 2:
        raise DSNError("delivery-status needs per-message fields and at least one per-recipient group")
    m = Message(from_addr="", to_addr="", subject="", message_id="", reporting_mta="", recipients=[], is_global=utf8)
    m.message_fields = groups[0]
    for name, v in groups[0]:
        k = name.lower()
        if k == "original-envelope-id":
            m.original_envelope_id = _utf8_addr_decode(v)
        elif k == "reporting-mta":
            m.reporting_mta = _name_ip(name, v).name
        elif k == "dsn-gateway":
            m.dsn_gateway = _name_ip(name, v).name
        elif k == "received-from-mta":
            m.received_from_mta = _name_ip(name, v)
        elif k == "arrival-date":
            m.arrival_date = _date(name, v)
        elif k == "future-release-request":
            m.future_release_request = v
    if not m.reporting_mta:
        raise DSNError("missing Reporting-MTA in per-message fields")
    for g in groups[1:]:
        final = ""
        ftype = "rfc822"
        action: Action | None = None
        status = ""
        r = Recipient(final_recipient="", action=Action.FAILED, status="", fields=g)
        for name, v in g:
            k = name.lower()
            if k == "final-recipient":
                ftype, final = _split_typed(name, v)
                final = _utf8_addr_decode(_strip_comments(final)) if ftype == "utf-8" else _strip_comments(final)
            elif k == "original-recipient":
                t, a = _split_typed(name, v)
                r.original_recipient_type = t
                r.original_recipient = _utf8_addr_decode(a) if t == "utf-8" else a
            elif k == "action":
                av = _strip_comments(v).lower()
                try:
                    action = Action(av)
                except ValueError:
                    raise DSNError(f"Action {v!r}: expected failed, delayed, delivered, relayed or expanded") from None
            elif k == "status":
                mm = re.fullmatch(r"([245]\.\d{1,3}\.\d{1,3})\s*(?:\((.*)\))?\s*", v)
                if mm is None:
                    raise DSNError(f"Status {v!r}: expected an enhanced status code like 5.1.1")
                status = mm.group(1)
                r.status_comment = mm.group(2) or ""
            elif k == "remote-mta":
                r.remote_mta = _name_ip(name, v)
            elif k == "diagnostic-code":
                r.diagnostic_type, r.diagnostic_code = _split_typed(name, v)
            elif k == "last-attempt-date":
                r.last_attempt_date = _date(name, v)
            elif k == "final-log-id":
                r.final_log_id = v
            elif k == "will-retry-until":
                r.will_retry_until = _date(name, v)
        if not final:
            raise DSNError("missing Final-Recipient in per-recipient fields")
        if action is None:
            raise DSNError(f"missing Action for recipient {final}")
        if not status:
            raise DSNError(f"missing Status for recipient {final}")
        r.final_recipient, r.final_recipient_type, r.action, r.status = final, ftype, action, status
        m.recipients.append(r)
    return m


def parse(data: bytes) -> Message:
    """Parse a DSN message: the report's From/To/Subject/Message-ID, the text, the status fields, the original.

    Raises:
        DSNError: not a multipart/report with a (global-)delivery-status second part, or malformed status fields.
    """
    root = msg.parse(data)
    if root.content_type != "MULTIPART/REPORT":
        raise DSNError(f"content-type is {root.content_type.lower()}, a DSN is multipart/report")
    if not 2 <= len(root.parts) <= 3:
        raise DSNError(f"a DSN has 2 or 3 parts, this one has {len(root.parts)}")
    p0, p1 = root.parts[0], root.parts[1]
    if p0.media_type != "TEXT":
        raise DSNError(f"first part is {p0.content_type.lower()}, expected human-readable text")
    if p1.media_type != "MESSAGE" or p1.media_subtype not in ("DELIVERY-STATUS", "GLOBAL-DELIVERY-STATUS"):
        raise DSNError(f"second part is {p1.content_type.lower()}, expected message/delivery-status or message/global-delivery-status")
    is_global = p1.media_subtype == "GLOBAL-DELIVERY-STATUS"
    m = parse_delivery_status(p1.decoded_body(data), is_global)
    env = root.envelope
    if env is not None:
        if env.from_:
            m.from_addr = _env_addr(env.from_[0])
        if env.to:
            m.to_addr = _env_addr(env.to[0])
        m.subject = env.subject
        m.message_id = env.message_id.strip().strip("<>")
    refs = msg.header_value(root.headers(data), "References")
    m.references = refs or ""
    m.text_body = p0.text(data).replace("\r\n", "\n")
    m.smtputf8 = is_global
    if len(root.parts) == 3:
        p2 = root.parts[2]
        ct = p2.content_type
        if ct in ("TEXT/RFC822-HEADERS", "MESSAGE/GLOBAL-HEADERS"):
            m.original = p2.decoded_body(data)
            m.original_full = False
        elif ct in ("MESSAGE/RFC822", "MESSAGE/GLOBAL"):
            m.original = p2.decoded_body(data)
            m.original_full = True
        else:
            raise DSNError(f"third part is {ct.lower()}, expected the original message or its header")
    return m


def _env_addr(a: msg.Address) -> str:
    return f"{a.user}@{a.host}" if a.host else a.user
