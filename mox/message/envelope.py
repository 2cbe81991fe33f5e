"""The IMAP ENVELOPE of a message (RFC 3501 section 7.4.2, RFC 9051 section 7.5.2).

An envelope holds the commonly used header fields of a message: date,
subject, the address fields, In-Reply-To and Message-ID. As upstream mox:

- ``subject`` is RFC 2047-decoded (upstream decodes it, and IMAP clients
  show it as is); ``date``, ``in_reply_to`` and ``message_id`` are the raw,
  unfolded field values (use :func:`parse_date` for a datetime);
- address fields hold all addresses of all occurrences of the field, groups
  flattened;
- an empty Sender or Reply-To is *not* replaced by From here: RFC 3501
  section 7.4.2 says the server returns From for them, and upstream's IMAP
  server does that when writing the ENVELOPE; so does ours.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
from dataclasses import dataclass, field
from typing import Any

from .address import Address, parse_address_list
from .encodedword import decode_words
from .headers import unfold

ENVELOPE_FIELDS = frozenset(
    {
        b"date",
        b"subject",
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"in-reply-to",
        b"message-id",
    }
)
"""Lower-case names of the header fields an envelope is made of."""


@dataclass(slots=True)
class Envelope:
    """Envelope of a message; empty strings/lists for absent fields."""

    date: str = ""
    subject: str = ""
    from_: list[Address] = field(default_factory=list)
    sender: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    in_reply_to: str = ""
    message_id: str = ""

    def to_json(self) -> list[Any]:
        """Compact JSON-serialisable form: a list of the fields in ENVELOPE order."""

        def al(lst: list[Address]) -> list[list[str]]:
            return [[a.name, a.user, a.host] for a in lst]

        return [
            self.date,
            self.subject,
            al(self.from_),
            al(self.sender),
            al(self.reply_to),
            al(self.to),
            al(self.cc),
            al(self.bcc),
            self.in_reply_to,
            self.message_id,
        ]

    @classmethod
    def from_json(cls, v: list[Any]) -> Envelope:
        """Inverse of :meth:`to_json`."""

        def al(lst: list[list[str]]) -> list[Address]:
            return [Address(a[0], a[1], a[2]) for a in lst]

        return cls(v[0], v[1], al(v[2]), al(v[3]), al(v[4]), al(v[5]), al(v[6]), al(v[7]), v[8], v[9])


def envelope_from_fields(fields: dict[bytes, list[bytes]]) -> Envelope:
    """Build an envelope from raw field values keyed by lower-case field name.

    Single-valued fields use their first occurrence (as upstream); address
    fields combine all occurrences.
    """

    def first(name: bytes) -> str:
        vals = fields.get(name)
        return unfold(vals[0]) if vals else ""

    def addrs(name: str) -> list[Address]:
        out: list[Address] = []
        for raw in fields.get(name.encode(), ()):
            out.extend(parse_address_list(raw))
        return out

    subject = first(b"subject")
    if "=?" in subject:
        subject = decode_words(subject)
    return Envelope(
        date=first(b"date"),
        subject=subject,
        from_=addrs("from"),
        sender=addrs("sender"),
        reply_to=addrs("reply-to"),
        to=addrs("to"),
        cc=addrs("cc"),
        bcc=addrs("bcc"),
        in_reply_to=first(b"in-reply-to"),
        message_id=first(b"message-id"),
    )


def parse_envelope(headers: list[tuple[str, bytes]]) -> Envelope:
    """Build an envelope from :func:`mox.message.parse_headers` output."""
    fields: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        key = name.lower().encode("latin-1")
        if key in ENVELOPE_FIELDS:
            fields.setdefault(key, []).append(value)
    return envelope_from_fields(fields)


def parse_date(value: str) -> _dt.datetime | None:
    """Parse an RFC 5322 section 3.3 date-time (obsolete forms too); None if unparseable.

    A date without zone information is returned as UTC (RFC 5322 section 4.3
    says "-0000" means no information about the local zone).
    """
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.UTC)
    return d
