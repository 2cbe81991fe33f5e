"""Composing outgoing report messages (DMARC aggregate and TLS reports) and handing them to the queue.

Shared by :mod:`mox.dmarcdb.send` and :mod:`mox.tlsrptsend`. Report messages
come from ``postmaster@<hostname>``, are DKIM-signed with the keys of the
host name's domain (or the nearest configured parent domain), and are queued
with a submit callable so tests (and the ctl "send now" commands) can
capture them; :func:`queue_submit` is the default, using :func:`mox.queue.current`.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mox import dkim, mlog
from mox.dns import Domain

if TYPE_CHECKING:
    from mox.config.load import Config
    from mox.config.model import DKIM

log = mlog.new("dmarcdb")

# Report messages are retried less than regular mail, and give up before a delay DSN would be due (as upstream).
REPORT_MAX_ATTEMPTS = 5


@dataclass
class OutgoingReport:
    """A composed report message for one recipient, ready for the queue.

    ``data`` is the whole message, DKIM-Signature header(s) included.
    ``requiretls`` False means "TLS-Required: No" (RFC 8689 section 5): TLS
    reports must be delivered even when TLS fails (RFC 8460 section 3).
    """

    account: str  # the postmaster account, whose queue entries these are
    sender: str  # postmaster@<hostname>, ASCII
    recipient: str
    data: bytes
    message_id: str
    subject: str
    is_dmarc_report: bool = False
    is_tls_report: bool = False
    max_attempts: int = REPORT_MAX_ATTEMPTS
    requiretls: bool | None = None
    smtputf8: bool = False


SubmitFn = Callable[[OutgoingReport], Awaitable[None]]


async def queue_submit(r: OutgoingReport) -> None:
    """Add the report to the running server's queue (:func:`mox.queue.current`).

    Raises :class:`mox.queue.QueueError` (no queue, or a bad address) and
    :class:`mox.queue.Suppressed` as ``Queue.add`` does.
    """
    from mox import queue
    from mox.smtp.path import PathError, parse_mailbox

    try:
        sender = parse_mailbox(r.sender, True)
        rcpt = parse_mailbox(r.recipient, True)
    except PathError as e:
        raise queue.QueueError(f"report address: {e}") from None
    await queue.current().add(
        r.account,
        sender,
        [rcpt],
        r.data,
        smtputf8=r.smtputf8,
        message_id=r.message_id,
        subject=r.subject,
        requiretls=r.requiretls,
        is_dmarc_report=r.is_dmarc_report,
        is_tls_report=r.is_tls_report,
        max_attempts=r.max_attempts,
    )


def host_dkim_domain(cfg: Config) -> tuple[Domain, DKIM | None, str]:
    """The configured domain to sign reports from the host name with: the host name's
    domain, or the nearest parent that is configured (as upstream).

    Returns (domain, DKIM config with signing selectors or None, reason when None).
    """
    host: Domain = cfg.static.HostnameDomain
    labels = host.ascii.split(".")
    ulabels = (host.unicode or host.ascii).split(".")
    for i in range(len(labels)):
        d = Domain(".".join(labels[i:]), ".".join(ulabels[i:]) if host.unicode else "")
        dc = cfg.dynamic.Domains.get(d.name)
        if dc is None:
            continue
        if dc.Disabled:
            return d, None, f"domain {d.name} is disabled"
        if not dc.DKIM.Sign:
            return d, None, f"domain {d.name} has no dkim signing configured"
        return d, dc.DKIM, ""
    return host, None, "no configured domain for the host name"


def dkim_sign(cfg: Config, msg: bytes, extra_headers: Sequence[str] = (), *, now: float | None = None) -> tuple[str, str]:
    """DKIM-Signature headers for a report message from postmaster@<hostname>.

    Returns (headers, reason): headers is "" with a reason when the host has no
    usable DKIM configuration or signing failed. extra_headers are signed too
    (RFC 8460 section 5.3: TLS-Report-Domain and TLS-Report-Submitter).
    """
    d, conf, reason = host_dkim_domain(cfg)
    if conf is None:
        return "", reason
    try:
        sels = [dkim.selector_from_config(conf.Selectors[s]) for s in conf.Sign]
        for s in sels:
            for h in extra_headers:
                if h.lower() not in (x.lower() for x in s.headers):
                    s.headers.append(h)
        return dkim.sign(msg, d, sels, localpart="postmaster", now=now), ""
    except (dkim.SignError, KeyError, ValueError) as e:
        log.errorx("dkim-signing report message", e)
        return "", f"dkim signing: {e}"


def message_id(hostname: str) -> str:
    return f"<{secrets.token_hex(12)}@{hostname}>"


def _b64_lines(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return b"".join(enc[i : i + 76] + b"\r\n" for i in range(0, len(enc), 76))


def compose(
    *,
    from_addr: str,
    to: Sequence[str],
    subject: str,
    msg_id: str,
    date: float,
    text: str,
    attachment: bytes | None = None,
    attachment_type: str = "",
    filename: str = "",
    extra_headers: Sequence[tuple[str, str]] = (),
    report_type: str = "",
) -> bytes:
    """A report message: a text part and (optionally) a base64 attachment, CRLF line endings, ASCII.

    With report_type, the container is multipart/report with that report-type
    (RFC 6522), else multipart/mixed; without attachment a single text/plain.
    """
    dt = datetime.datetime.fromtimestamp(date, datetime.UTC)
    hdrs = [
        ("From", f"<{from_addr}>"),
        ("To", ", ".join(f"<{a}>" for a in to)),
        ("Subject", subject),
        *extra_headers,
        ("Message-Id", msg_id),
        ("Date", email.utils.format_datetime(dt)),
        ("User-Agent", "moxmail"),
        ("MIME-Version", "1.0"),
    ]
    body_text = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    text_cte = "7bit" if body_text.isascii() else "8bit"
    if attachment is None:
        hdrs += [("Content-Type", 'text/plain; charset="utf-8"'), ("Content-Transfer-Encoding", text_cte)]
        head = "".join(f"{k}: {v}\r\n" for k, v in hdrs).encode()
        return head + b"\r\n" + body_text
    boundary = "mox" + secrets.token_hex(12)
    ctype = f'multipart/report; report-type="{report_type}"' if report_type else "multipart/mixed"
    hdrs.append(("Content-Type", f'{ctype}; boundary="{boundary}"'))
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs).encode()
    b = boundary.encode()
    parts = (
        b"--" + b + b"\r\n"
        b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: " + text_cte.encode() + b"\r\n\r\n" + body_text + b"\r\n"
        b"--" + b + b"\r\n"
        b"Content-Type: " + attachment_type.encode() + (f'; name="{filename}"'.encode() if filename else b"") + b"\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        + (f'Content-Disposition: attachment; filename="{filename}"\r\n'.encode() if filename else b"")
        + b"\r\n"
        + _b64_lines(attachment)
        + b"\r\n--" + b + b"--\r\n"
    )
    return head + b"\r\n" + parts
