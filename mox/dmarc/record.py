"""DMARC DNS records (RFC 7489 section 6.3 grammar, section 6.4 formal definition).

Pure: parsing and writing ``v=DMARC1; p=...`` TXT record text.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


class RecordError(ValueError):
    """A TXT record claims to be DMARC (starts with v=DMARC1) but is malformed."""


class Policy(enum.StrEnum):
    """p= and sp= values (RFC 7489 section 6.3); EMPTY only for an absent sp=."""

    EMPTY = ""
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class Align(enum.StrEnum):
    """adkim= and aspf= (RFC 7489 section 3.1): relaxed (org domains equal) or strict (names equal)."""

    RELAXED = "r"
    STRICT = "s"


@dataclass
class URI:
    """A reporting destination (RFC 7489 section 6.2, dmarc-uri): an address with an optional size limit."""

    address: str
    max_size: int = 0
    unit: str = ""  # "", "k", "m", "g", "t": powers of 2^10.

    def __str__(self) -> str:
        s = self.address.replace(",", "%2C").replace("!", "%21")
        if self.max_size:
            s += f"!{self.max_size}{self.unit}"
        return s

    @property
    def max_bytes(self) -> int:
        """The size limit in bytes, 0 for none."""
        return self.max_size * 1024 ** ("kmgt".index(self.unit) + 1 if self.unit else 0)


@dataclass
class Record:
    """A DMARC policy (or reporting) record, with the defaults of RFC 7489 section 6.3."""

    version: str = "DMARC1"
    policy: Policy = Policy.EMPTY
    subdomain_policy: Policy = Policy.EMPTY
    aggregate_report_addresses: list[URI] = field(default_factory=list)
    failure_report_addresses: list[URI] = field(default_factory=list)
    adkim: Align = Align.RELAXED
    aspf: Align = Align.RELAXED
    aggregate_reporting_interval: int = 86400
    failure_reporting_options: list[str] = field(default_factory=lambda: ["0"])
    reporting_format: list[str] = field(default_factory=lambda: ["afrf"])
    percentage: int = 100

    def text(self) -> str:
        """TXT record text; tags with default values are left out."""
        parts = [f"v={self.version}"]
        if self.policy:
            parts.append(f"p={self.policy}")
        if self.subdomain_policy:
            parts.append(f"sp={self.subdomain_policy}")
        if self.aggregate_report_addresses:
            parts.append("rua=" + ",".join(str(u) for u in self.aggregate_report_addresses))
        if self.failure_report_addresses:
            parts.append("ruf=" + ",".join(str(u) for u in self.failure_report_addresses))
        if self.adkim != Align.RELAXED:
            parts.append(f"adkim={self.adkim}")
        if self.aspf != Align.RELAXED:
            parts.append(f"aspf={self.aspf}")
        if self.aggregate_reporting_interval != 86400:
            parts.append(f"ri={self.aggregate_reporting_interval}")
        if self.failure_reporting_options != ["0"]:
            parts.append("fo=" + ":".join(self.failure_reporting_options))
        if self.reporting_format != ["afrf"]:
            parts.append("rf=" + ":".join(self.reporting_format))
        if self.percentage != 100:
            parts.append(f"pct={self.percentage}")
        return "; ".join(parts)


_WSP = " \t"
_URI_RE = re.compile(r"^(?P<addr>[^!]+)(?:!(?P<size>[0-9]+)(?P<unit>[kmgtKMGT]?))?$")
_KEYWORD_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")


def _list(tag: str, value: str, sep: str, allowed: tuple[str, ...] | None) -> list[str]:
    items = [v.strip(_WSP).lower() for v in value.split(sep)]
    for v in items:
        if allowed is not None and v not in allowed:
            raise RecordError(f"{tag}=: unknown value {v!r}")
        if allowed is None and not _KEYWORD_RE.match(v):
            raise RecordError(f"{tag}=: invalid keyword {v!r}")
    return items


def _uris(tag: str, value: str) -> list[URI]:
    uris: list[URI] = []
    for part in value.split(","):
        p = part.strip(_WSP)
        m = _URI_RE.match(p)
        # Section 6.2: a URI with a scheme ("mailto:" is the only one used in practice).
        if not m or ":" not in m["addr"]:
            raise RecordError(f"{tag}=: invalid uri {p!r}")
        uris.append(URI(m["addr"], int(m["size"] or 0), (m["unit"] or "").lower()))
    return uris


def _number(tag: str, value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise RecordError(f"{tag}=: expected a number, got {value!r}")
    return int(value)


def parse_record(text: str, *, require_policy: bool = True) -> tuple[Record | None, bool]:
    """Parse a DMARC TXT record.

    Tag names and values are case-insensitive except the version "DMARC1"
    (section 6.4); unknown tags are ignored (section 6.3, "MUST be ignored").

    Args:
        text: the TXT record.
        require_policy: require a valid p= (policy records). False for the
            ``_report._dmarc`` records of external destinations (section 7.1),
            which need only ``v=DMARC1``.

    Returns:
        (record, is_dmarc): is_dmarc is False, and record None, when the text
        does not start with ``v=DMARC1``: such TXT records are not DMARC
        records and are skipped (section 6.6.3).

    Raises:
        RecordError: it starts as a DMARC record but is malformed.
    """
    # Section 6.4: v= MUST be first: "v" *WSP "=" *WSP "DMARC1".
    tags = text.split(";")
    tag, eq, value = tags[0].partition("=")
    if tag.strip(_WSP).lower() != "v" or not eq or value.strip(_WSP) != "DMARC1":
        return None, False
    r = Record()
    seen: set[str] = set()
    rest = tags[1:]
    if rest and rest[-1].strip(_WSP) == "":
        rest.pop()
    if len(tags) == 1 and require_policy:
        # A bare "v=DMARC1" (no ";") is not taken as a policy record, as upstream.
        return None, False
    for i, item in enumerate(rest):
        tag, eq, value = item.partition("=")
        tag = tag.strip(_WSP).lower()
        value = value.strip(_WSP)
        if not eq or not tag:
            raise RecordError(f"malformed tag {item.strip(_WSP)!r}")
        # The RFC does not speak of duplicates; they can only confuse, refused as upstream.
        if tag in seen:
            raise RecordError(f"duplicate tag {tag!r}")
        seen.add(tag)
        if tag == "p":
            # Section 6.4: p= must follow v= directly.
            if i != 0:
                raise RecordError("p= must be the first tag after v=")
            try:
                r.policy = Policy(value.lower())
            except ValueError:
                raise RecordError(f"p=: unknown policy {value!r}") from None
            if r.policy == Policy.EMPTY:
                raise RecordError("p=: empty policy")
        elif tag == "sp":
            # Checked below: an invalid sp= is handled like a missing p=.
            r.subdomain_policy = Policy(value.lower()) if value.lower() in list(Policy) else Policy.EMPTY
            if value.lower() not in list(Policy) or not value:
                seen.add("sp-invalid")
        elif tag == "rua":
            r.aggregate_report_addresses = _uris(tag, value)
        elif tag == "ruf":
            r.failure_report_addresses = _uris(tag, value)
        elif tag == "adkim":
            r.adkim = Align(_list(tag, value, "\0", ("r", "s"))[0])
        elif tag == "aspf":
            r.aspf = Align(_list(tag, value, "\0", ("r", "s"))[0])
        elif tag == "ri":
            r.aggregate_reporting_interval = _number(tag, value)
        elif tag == "fo":
            r.failure_reporting_options = _list(tag, value, ":", ("0", "1", "d", "s"))
        elif tag == "rf":
            r.reporting_format = _list(tag, value, ":", None)
        elif tag == "pct":
            r.percentage = _number(tag, value)
            if r.percentage > 100:
                raise RecordError(f"pct=: {r.percentage} is over 100")
        # Other tags: ignored (section 6.3).
    if require_policy and ("p" not in seen or "sp-invalid" in seen):
        # Section 6.6.3 step 6: a record without valid p= but with a valid
        # rua= is treated as p=none, so reports still flow.
        if r.aggregate_report_addresses:
            r.policy = Policy.NONE
            r.subdomain_policy = Policy.EMPTY
        else:
            raise RecordError("missing or invalid (subdomain) policy and no aggregate reporting address")
    return r, True
