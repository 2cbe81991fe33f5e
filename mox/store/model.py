"""The store's data types: mailboxes, messages, flags, counts. Backend-neutral (no SQL here)."""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field


class StoreError(Exception):
    """A store operation failed; the message is meant for the user or client."""


class MailboxNotFound(StoreError):
    pass


class MailboxExists(StoreError):
    pass


class QuotaExceeded(StoreError):
    pass


class Flags(enum.IntFlag):
    """System flags (RFC 9051 section 2.3.2) and the well-known keywords upstream keeps as flags."""

    NONE = 0
    SEEN = 1
    ANSWERED = 2
    FLAGGED = 4
    DELETED = 8
    DRAFT = 16
    FORWARDED = 32  # $Forwarded
    JUNK = 64  # $Junk
    NOTJUNK = 128  # $NotJunk
    PHISHING = 256  # $Phishing
    MDNSENT = 512  # $MDNSent


FLAG_NAMES: dict[Flags, str] = {
    Flags.SEEN: "\\Seen",
    Flags.ANSWERED: "\\Answered",
    Flags.FLAGGED: "\\Flagged",
    Flags.DELETED: "\\Deleted",
    Flags.DRAFT: "\\Draft",
    Flags.FORWARDED: "$Forwarded",
    Flags.JUNK: "$Junk",
    Flags.NOTJUNK: "$NotJunk",
    Flags.PHISHING: "$Phishing",
    Flags.MDNSENT: "$MDNSent",
}
_FLAG_BY_LOWER = {name.lower(): flag for flag, name in FLAG_NAMES.items()}


def parse_flag_names(names: list[str]) -> tuple[Flags, list[str]]:
    """Split IMAP flag names into system flags and (lower-cased, sorted, unique) keywords."""
    flags = Flags.NONE
    keywords: set[str] = set()
    for n in names:
        f = _FLAG_BY_LOWER.get(n.lower())
        if f is not None:
            flags |= f
        else:
            keywords.add(n.lower())
    return flags, sorted(keywords)


def flag_names(flags: Flags) -> list[str]:
    return [name for f, name in FLAG_NAMES.items() if flags & f]


class SpecialUse(enum.Enum):
    """RFC 6154 special-use attributes."""

    ARCHIVE = "\\Archive"
    DRAFTS = "\\Drafts"
    JUNK = "\\Junk"
    SENT = "\\Sent"
    TRASH = "\\Trash"


@dataclass
class MailboxCounts:
    """As upstream: total and unread exclude \\Deleted messages; unseen includes them (for IMAP)."""

    total: int = 0
    deleted: int = 0
    unread: int = 0
    unseen: int = 0
    size: int = 0

    def add(self, other: MailboxCounts, sign: int = 1) -> None:
        self.total += sign * other.total
        self.deleted += sign * other.deleted
        self.unread += sign * other.unread
        self.unseen += sign * other.unseen
        self.size += sign * other.size

    @property
    def imap_count(self) -> int:
        """IMAP's message count includes \\Deleted messages."""
        return self.total + self.deleted

    @staticmethod
    def of_message(flags: Flags, size: int) -> MailboxCounts:
        deleted = bool(flags & Flags.DELETED)
        seen = bool(flags & Flags.SEEN)
        return MailboxCounts(
            total=0 if deleted else 1,
            deleted=1 if deleted else 0,
            unread=1 if (not seen and not deleted) else 0,
            unseen=0 if seen else 1,
            size=size,
        )


@dataclass
class Mailbox:
    id: int
    name: str
    parent_id: int | None
    uidvalidity: int
    uidnext: int
    special_use: SpecialUse | None
    keywords: list[str]
    modseq: int
    createseq: int
    counts: MailboxCounts = field(default_factory=MailboxCounts)


@dataclass
class SMTPContext:
    """How a message arrived over SMTP, kept for reputation decisions later."""

    remote_ip: str = ""
    ehlo: str = ""
    mail_from: str = ""
    rcpt_to: str = ""
    msg_from: str = ""  # address in the message From header
    spf: str = ""  # SPF result, e.g. "pass"
    dkim_domains: list[str] = field(default_factory=list)  # domains with a passing DKIM signature
    dmarc: str = ""  # DMARC result
    tls_version: str = ""


@dataclass
class Message:
    id: int
    mailbox_id: int
    uid: int
    modseq: int
    createseq: int
    expunged: bool
    received: float  # unix time
    savedate: float
    size: int
    flags: Flags
    keywords: list[str]
    message_id: str  # normalised, without <>
    subject_base: str
    thread_id: int
    thread_parent_ids: list[int]
    thread_missing_link: bool
    thread_muted: bool
    thread_collapsed: bool
    smtp: SMTPContext = field(default_factory=SMTPContext)

    @property
    def counts(self) -> MailboxCounts:
        return MailboxCounts() if self.expunged else MailboxCounts.of_message(self.flags, self.size)


DEFAULT_SPECIAL_MAILBOXES = {
    SpecialUse.SENT: "Sent",
    SpecialUse.ARCHIVE: "Archive",
    SpecialUse.TRASH: "Trash",
    SpecialUse.DRAFTS: "Drafts",
    SpecialUse.JUNK: "Junk",
}


def check_mailbox_name(name: str, allow_inbox: bool = True) -> str:
    """Validate a mailbox name and return it with Inbox normalised (as upstream's CheckMailboxName).

    Raises:
        StoreError: with the reason.
    """
    parts = name.split("/")
    if parts[0].lower() == "inbox":
        if len(name) == 5 and not allow_inbox:
            raise StoreError("special mailbox name Inbox not allowed")
        name = "Inbox" + name[5:]
    if unicodedata.normalize("NFC", name) != name:
        raise StoreError("mailbox name must be in Unicode NFC form")
    for p in parts:
        if p == "":
            raise StoreError("empty mailbox name or empty part between slashes")
        if p in (".", ".."):
            raise StoreError(f'"{p}" not allowed in mailbox name')
    if name.startswith("#"):
        raise StoreError("mailbox name cannot start with # (IMAP namespaces)")
    # RFC 3501 section 5.1, RFC 9051 section 5.1: no control characters.
    for c in name:
        o = ord(c)
        if o <= 0x1F or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029):
            raise StoreError("control characters not allowed in mailbox name")
    return name


def parent_mailbox_name(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""
