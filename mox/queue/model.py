"""Types of the outgoing queue: queued and retired messages, hold rules, suppressions, filters,
and the interface to the deliverer (what does the SMTP work) with its outcomes."""

from __future__ import annotations

import enum
import io
import ipaddress
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, BinaryIO, Protocol

from mox.dns.domain import Domain, DomainError, parse_domain
from mox.dsn import NameIP
from mox.smtp.address import format_localpart
from mox.smtp.path import Path

# Error text of the result of an attempt in progress; replaced when the attempt ends (as upstream).
RESULT_DELIVERING = "delivering..."


class QueueError(Exception):
    """A queue operation was refused or failed; the message says why."""


class Suppressed(QueueError):
    """A recipient is on the sender account's suppression list (upstream refuses these at submission)."""

    def __init__(self, addresses: list[str]) -> None:
        super().__init__(f"recipient address(es) on suppression list: {', '.join(addresses)}")
        self.addresses = addresses


def format_ip_domain(domain: Domain | None, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> str:
    """A domain as stored for filtering: the Unicode name, or an IP address in brackets."""
    if domain is not None:
        return domain.name
    if ip is not None:
        return f"[{ip}]"
    return ""


def make_path(localpart: str, domain_str: str) -> Path:
    """The Path of a stored localpart and domain (see format_ip_domain)."""
    if domain_str.startswith("[") and domain_str.endswith("]"):
        return Path(localpart, None, ipaddress.ip_address(domain_str[1:-1]))
    if not domain_str:
        return Path(localpart)
    try:
        return Path(localpart, parse_domain(domain_str))
    except DomainError as e:
        raise QueueError(f"stored domain {domain_str!r}: {e}") from None


def path_string(localpart: str, domain_str: str) -> str:
    """The address as text (Unicode domain), empty for the null path."""
    if not localpart and not domain_str:
        return ""
    return f"{format_localpart(localpart)}@{domain_str}"


@dataclass
class MsgResult:
    """The result (or the progress) of one delivery attempt."""

    start: float
    duration: float = 0.0
    success: bool = False
    code: int = 0
    secode: str = ""  # enhanced status code without the class digit, e.g. "1.1", as upstream
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"Start": self.start, "Duration": self.duration, "Success": self.success, "Code": self.code,
                "Secode": self.secode, "Error": self.error}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MsgResult:
        return cls(float(d["Start"]), float(d.get("Duration", 0)), bool(d.get("Success")), int(d.get("Code", 0)),
                   str(d.get("Secode", "")), str(d.get("Error", "")))  # fmt: skip


@dataclass
class DSNOptions:
    """RFC 3461 parameters of a submission: MAIL FROM's ENVID and RET."""

    envid: str = ""  # decoded (not xtext)
    ret: str = ""  # "", "FULL" or "HDRS"


@dataclass
class NewRecipient:
    """A recipient for :meth:`Queue.add`, with its RFC 3461 RCPT parameters."""

    path: Path
    notify: tuple[str, ...] | None = None  # None: not given (failure and delay DSNs), ("NEVER",), or SUCCESS/FAILURE/DELAY
    orcpt_type: str = ""  # e.g. "rfc822" or "utf-8"; empty without ORCPT
    orcpt: str = ""  # decoded address


@dataclass
class QueuedMsg:
    """A message for one recipient in the queue (upstream's queue.Msg)."""

    id: int
    base_id: int  # the first id of the submission; rows of one submission share the message file
    queued: float
    hold: bool
    sender_account: str  # local account that submitted, "" for e.g. DSNs we queue
    sender_localpart: str  # "" with sender_domain "" for the null reverse-path
    sender_domain: str  # Unicode name or [ip]
    recipient_localpart: str
    recipient_domain: str  # Unicode name or [ip]
    attempts: int
    max_attempts: int  # 0: the default (8)
    next_attempt: float
    last_attempt: float | None
    results: list[MsgResult]
    has8bit: bool
    smtputf8: bool
    is_dmarc_report: bool
    is_tls_report: bool
    size: int  # prefix plus file
    message_id: str  # with <>
    subject: str
    msg_prefix: bytes  # prepended to the file at delivery (Received, DKIM-Signature)
    transport: str  # "" for the default routing
    requiretls: bool | None  # None: recipient policy; True: REQUIRETLS; False: "TLS-Required: No"
    future_release_request: str  # "for;<seconds>" or "until;<date-time>" (RFC 4865 section 6)
    dsn_envid: str
    dsn_ret: str  # "", "FULL", "HDRS"
    dsn_notify: tuple[str, ...] | None
    dsn_orcpt_type: str
    dsn_orcpt: str

    def sender(self) -> Path | None:
        """MAIL FROM; None for the null reverse-path."""
        if not self.sender_localpart and not self.sender_domain:
            return None
        return make_path(self.sender_localpart, self.sender_domain)

    def recipient(self) -> Path:
        return make_path(self.recipient_localpart, self.recipient_domain)

    @property
    def sender_address(self) -> str:
        return path_string(self.sender_localpart, self.sender_domain)

    @property
    def recipient_address(self) -> str:
        return path_string(self.recipient_localpart, self.recipient_domain)

    def last_result(self) -> MsgResult | None:
        return self.results[-1] if self.results else None

    def notify_allows(self, kind: str) -> bool:
        """Whether a DSN of kind ("SUCCESS", "FAILURE", "DELAY") may be sent (RFC 3461 section 4.1).

        Without NOTIFY, failures and delays are reported; never for the null reverse-path.
        """
        if self.sender() is None:
            return False
        if self.dsn_notify is None:
            return kind in ("FAILURE", "DELAY")
        return kind in self.dsn_notify


@dataclass
class RetiredMsg:
    """A message whose delivery ended, kept for the account's KeepRetiredMessagePeriod (upstream's MsgRetired)."""

    id: int
    base_id: int
    queued: float
    sender_account: str
    sender_localpart: str
    sender_domain: str
    recipient_localpart: str
    recipient_domain: str
    attempts: int
    max_attempts: int
    last_attempt: float | None
    results: list[MsgResult]
    has8bit: bool
    smtputf8: bool
    is_dmarc_report: bool
    is_tls_report: bool
    size: int
    message_id: str
    subject: str
    transport: str
    requiretls: bool | None
    future_release_request: str
    success: bool
    last_activity: float
    keep_until: float

    @property
    def sender_address(self) -> str:
        return path_string(self.sender_localpart, self.sender_domain)

    @property
    def recipient_address(self) -> str:
        return path_string(self.recipient_localpart, self.recipient_domain)

    def last_result(self) -> MsgResult | None:
        return self.results[-1] if self.results else None


@dataclass
class HoldRule:
    """Conditions that put newly queued messages on hold; all empty matches every message."""

    id: int = 0
    account: str = ""
    sender_domain: str = ""  # Unicode name
    recipient_domain: str = ""

    def all(self) -> bool:
        return not (self.account or self.sender_domain or self.recipient_domain)

    def matches(self, account: str, sender_domain: str, recipient_domain: str) -> bool:
        # As upstream: any one condition matching is enough.
        return (
            self.all()
            or (self.account != "" and self.account == account)
            or (self.sender_domain != "" and self.sender_domain == sender_domain)
            or (self.recipient_domain != "" and self.recipient_domain == recipient_domain)
        )


@dataclass
class Suppression:
    """An address an account does not send to (upstream's webapi.Suppression)."""

    id: int
    created: float
    account: str
    base_address: str
    original_address: str
    manual: bool
    reason: str


@dataclass
class Filter:
    """Selects queued messages; empty fields match everything (upstream's queue.Filter, same JSON names)."""

    max: int = 0
    ids: list[int] = field(default_factory=list)
    account: str = ""
    from_: str = ""  # substring of the sender address
    to: str = ""  # substring of the recipient address, e.g. "@example.com"
    hold: bool | None = None
    submitted: str = ""  # "<duration" or ">duration" relative to now, also "<now"/">now"
    next_attempt: str = ""
    transport: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"Max": self.max, "IDs": self.ids, "Account": self.account, "From": self.from_, "To": self.to,
                "Hold": self.hold, "Submitted": self.submitted, "NextAttempt": self.next_attempt,
                "Transport": self.transport}  # fmt: skip

    @classmethod
    def from_json(cls, d: Any) -> Filter:
        if not isinstance(d, dict):
            raise QueueError("filter must be a JSON object")
        try:
            return cls(int(d.get("Max") or 0), [int(x) for x in d.get("IDs") or []], str(d.get("Account") or ""),
                       str(d.get("From") or ""), str(d.get("To") or ""), _opt_bool(d.get("Hold")),
                       str(d.get("Submitted") or ""), str(d.get("NextAttempt") or ""),
                       None if d.get("Transport") is None else str(d["Transport"]))  # fmt: skip
        except (TypeError, ValueError) as e:
            raise QueueError(f"bad filter: {e}") from None


@dataclass
class Sort:
    field: str = "NextAttempt"  # or "Queued"
    asc: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"Field": self.field, "Asc": self.asc}

    @classmethod
    def from_json(cls, d: Any) -> Sort:
        if not isinstance(d, dict):
            raise QueueError("sort must be a JSON object")
        return cls(str(d.get("Field") or "NextAttempt"), bool(d.get("Asc")))


@dataclass
class RetiredFilter:
    max: int = 0
    ids: list[int] = field(default_factory=list)
    account: str = ""
    from_: str = ""
    to: str = ""
    submitted: str = ""
    last_activity: str = ""
    transport: str | None = None
    success: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {"Max": self.max, "IDs": self.ids, "Account": self.account, "From": self.from_, "To": self.to,
                "Submitted": self.submitted, "LastActivity": self.last_activity, "Transport": self.transport,
                "Success": self.success}  # fmt: skip

    @classmethod
    def from_json(cls, d: Any) -> RetiredFilter:
        if not isinstance(d, dict):
            raise QueueError("filter must be a JSON object")
        try:
            return cls(int(d.get("Max") or 0), [int(x) for x in d.get("IDs") or []], str(d.get("Account") or ""),
                       str(d.get("From") or ""), str(d.get("To") or ""), str(d.get("Submitted") or ""),
                       str(d.get("LastActivity") or ""), None if d.get("Transport") is None else str(d["Transport"]),
                       _opt_bool(d.get("Success")))  # fmt: skip
        except (TypeError, ValueError) as e:
            raise QueueError(f"bad filter: {e}") from None


@dataclass
class RetiredSort:
    field: str = "LastActivity"  # or "Queued"
    asc: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"Field": self.field, "Asc": self.asc}

    @classmethod
    def from_json(cls, d: Any) -> RetiredSort:
        if not isinstance(d, dict):
            raise QueueError("sort must be a JSON object")
        return cls(str(d.get("Field") or "LastActivity"), bool(d.get("Asc")))


def _opt_bool(v: Any) -> bool | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    raise ValueError(f"expected true, false or null, not {v!r}")


# The deliverer interface.


class OutcomeKind(enum.StrEnum):
    DELIVERED = "delivered"
    TEMPORARY = "temporary"  # retry later (or give up after the last attempt)
    PERMANENT = "permanent"  # fail now, with a DSN


@dataclass
class Outcome:
    """What happened to one message of a batch.

    code/secode: the SMTP reply code and enhanced status code (e.g. 550 and
    "5.1.1" or "1.1"), 0/"" when the failure was local (DNS, connection,
    policy); text: the remote's reply text or our error; lines: the full SMTP
    reply lines (for the DSN's Diagnostic-Code); remote: the host that gave the
    answer (the DSN's Remote-MTA). A permanent failure with a code and a remote
    (or reply lines) may put the recipient on the sender's suppression list, as
    upstream does for remote SMTP errors; local failures (no remote) never do.
    """

    kind: OutcomeKind
    code: int = 0
    secode: str = ""
    text: str = ""
    lines: list[str] = field(default_factory=list)
    remote: NameIP = field(default_factory=NameIP)

    @classmethod
    def delivered(cls, remote: NameIP | None = None, code: int = 250, text: str = "") -> Outcome:
        return cls(OutcomeKind.DELIVERED, code, "", text, [], remote or NameIP())

    @classmethod
    def temporary(cls, text: str, code: int = 0, secode: str = "", remote: NameIP | None = None, lines: list[str] | None = None) -> Outcome:
        return cls(OutcomeKind.TEMPORARY, code, secode, text, lines or [], remote or NameIP())

    @classmethod
    def permanent(cls, text: str, code: int = 0, secode: str = "", remote: NameIP | None = None, lines: list[str] | None = None) -> Outcome:
        return cls(OutcomeKind.PERMANENT, code, secode, text, lines or [], remote or NameIP())


class MessageSource:
    """The message of a batch: prefix (stored per message) plus the message file, read on demand."""

    def __init__(self, prefix: bytes, path: FsPath, size: int) -> None:
        self.prefix = prefix
        self.path = path
        self.size = size

    def open(self) -> BinaryIO:
        """A binary reader of prefix + file (blocking; use in a thread for large messages)."""
        return _PrefixedReader(self.prefix, open(self.path, "rb"))

    async def read(self) -> bytes:
        """The whole message, read off the event loop."""
        import asyncio

        def run() -> bytes:
            return self.prefix + self.path.read_bytes()

        return await asyncio.to_thread(run)


class _PrefixedReader(io.RawIOBase, BinaryIO):
    def __init__(self, prefix: bytes, f: BinaryIO) -> None:
        super().__init__()
        self._prefix = prefix
        self._pos = 0
        self._f = f

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        mv = memoryview(b).cast("B")
        if self._pos < len(self._prefix):
            n = min(len(mv), len(self._prefix) - self._pos)
            mv[:n] = self._prefix[self._pos : self._pos + n]
            self._pos += n
            return n
        data = self._f.read(len(mv))
        mv[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()

    def fileno(self) -> int:
        raise OSError(os.strerror(95))


class Deliverer(Protocol):
    """Delivers a batch: messages of one submission for one recipient domain and transport.

    Called by the delivery loop with the batch (at most MAX_BATCH recipients,
    sharing sender, message file, prefix, requiretls and transport) and the
    message. Returns one Outcome per message, in the same order. Raising is
    taken as a temporary failure of the whole batch. Connection reuse,
    routing, MTA-STS, DANE and TLS reporting are the deliverer's business.
    """

    def __call__(self, msgs: list[QueuedMsg], message: MessageSource, /) -> Awaitable[list[Outcome]]: ...
