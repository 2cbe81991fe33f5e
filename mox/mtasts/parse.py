"""MTA-STS TXT records and policies (RFC 8461 sections 3.1 and 3.2): parsing and formatting, pure.

Parsing is case-sensitive where the RFC's ABNF uses %s strings (``v=STSv1``,
``id=``, field names, modes). Unknown fields are extensions, kept and otherwise
ignored (RFC 8461 section 3.2: "Parsers MUST accept TXT records and policy files
that are syntactically valid but that include unknown fields"). For repeated
fields only the first counts, except ``mx`` (section 3.2).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from mox.dns.domain import Domain, DomainError, parse_domain

# RFC 8461 section 3.2: max_age is at most 31557600 seconds (about one year).
MAX_AGE_LIMIT = 31557600


class ParseError(ValueError):
    """Malformed TXT record or policy; the message says where and what was expected."""


class RecordParseError(ParseError):
    """A TXT record starting with ``v=STSv1`` that is otherwise malformed."""


class PolicyParseError(ParseError):
    """A malformed policy file."""


class Mode(enum.StrEnum):
    """Policy mode, RFC 8461 section 5."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class Record:
    """The ``_mta-sts.<domain>`` TXT record, e.g. ``v=STSv1; id=20160831085700Z``."""

    id: str
    version: str = "STSv1"
    extensions: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        parts = [f"v={self.version}", f"id={self.id}", *(f"{k}={v}" for k, v in self.extensions)]
        return "; ".join(parts)


@dataclass(frozen=True)
class MX:
    """An allowed MX host in a policy: a domain, or ``*.`` and a domain for one extra label."""

    domain: Domain
    wildcard: bool = False

    def text(self) -> str:
        return ("*." if self.wildcard else "") + self.domain.ascii

    def matches(self, host: Domain | str) -> bool:
        """RFC 8461 section 4.1: case-insensitive, a wildcard matches exactly one leftmost label."""
        h = _host_ascii(host)
        if not self.wildcard:
            return h == self.domain.ascii
        first, sep, rest = h.partition(".")
        return bool(sep) and first != "" and rest == self.domain.ascii


def _host_ascii(host: Domain | str) -> str:
    if isinstance(host, Domain):
        return host.ascii
    h = host.rstrip(".").lower()
    try:
        return parse_domain(h).ascii
    except DomainError:
        return h


@dataclass(frozen=True)
class Policy:
    """An MTA-STS policy (RFC 8461 section 3.2)."""

    mode: Mode
    max_age: int
    mx: tuple[MX, ...] = ()
    version: str = "STSv1"
    extensions: tuple[tuple[str, str], ...] = field(default=())

    @property
    def cache_seconds(self) -> int:
        """How long the policy may be cached: max_age, at most MAX_AGE_LIMIT."""
        return min(self.max_age, MAX_AGE_LIMIT)

    def matches(self, host: Domain | str) -> bool:
        """Whether an MX host is allowed by the policy (RFC 8461 section 4.1)."""
        return any(m.matches(host) for m in self.mx)

    def text(self) -> str:
        """The policy as served at the well-known URL, LF line endings."""
        lines = [f"version: {self.version}", f"mode: {self.mode.value}", f"max_age: {self.max_age}"]
        lines += [f"mx: {m.text()}" for m in self.mx]
        lines += [f"{k}: {v}" for k, v in self.extensions]
        return "\n".join(lines) + "\n"


# TXT record, RFC 8461 section 3.1.
_FIELD_DELIM = re.compile(r"[ \t]*;[ \t]*")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")


def is_sts_record(txt: str) -> bool:
    """Whether a TXT record claims to be an MTA-STS record (starts with ``v=STSv1``).

    Others at ``_mta-sts`` are ignored (RFC 8461 section 3.1).
    """
    return txt.startswith("v=STSv1")


def parse_record(txt: str) -> Record:
    """Parse an MTA-STS TXT record.

    Raises:
        RecordParseError: malformed; the message names the problem.
    """
    if not is_sts_record(txt):
        raise RecordParseError("record must start with v=STSv1")
    pos = len("v=STSv1")
    record_id = ""
    extensions: list[tuple[str, str]] = []
    seen: set[str] = set()
    nfields = 0
    while pos < len(txt):
        m = _FIELD_DELIM.match(txt, pos)
        if m is None:
            raise RecordParseError(f"expected ';' at offset {pos}: {txt[pos:]!r}")
        pos = m.end()
        if pos == len(txt):
            break  # a trailing delimiter is allowed
        m = _EXT_NAME.match(txt, pos)
        if m is None:
            raise RecordParseError(f"expected field name at offset {pos}: {txt[pos:]!r}")
        key = m.group(0)
        pos = m.end()
        if not txt.startswith("=", pos):
            raise RecordParseError(f"expected '=' after field {key!r}")
        pos += 1
        if key == "id":
            m = _ID.match(txt, pos)
            if m is None:
                raise RecordParseError("id must be 1 to 32 letters or digits")
            if m.end() < len(txt) and txt[m.end()] not in " \t;":
                raise RecordParseError("id must be 1 to 32 letters or digits")
            if key not in seen:
                record_id = m.group(0)
        else:
            m = _EXT_VALUE.match(txt, pos)
            if m is None:
                raise RecordParseError(f"empty or invalid value for field {key!r}")
            extensions.append((key, m.group(0)))
        seen.add(key)
        pos = m.end()
        nfields += 1
    if nfields == 0 or not record_id:
        raise RecordParseError("missing id field")
    return Record(record_id, "STSv1", tuple(extensions))


# Policy, RFC 8461 section 3.2.
_POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")
_DIGITS = re.compile(r"[0-9]{1,10}")


def _policy_ext_value(value: str) -> bool:
    # sts-policy-vchar = %x21-7E / UTF8 non-ASCII; inner spaces allowed.
    return value != "" and not value.startswith(" ") and all(c == " " or (c > " " and c != "\x7f") for c in value)


def _parse_mx(value: str, lineno: int) -> MX:
    wildcard = value.startswith("*.")
    name = value[2:] if wildcard else value
    labels = name.split(".")
    for label in labels:
        if not label.isascii():
            raise PolicyParseError(f"line {lineno}: mx {value!r}: use A-labels (xn--), not unicode")
        if _LABEL.fullmatch(label) is None:
            raise PolicyParseError(f"line {lineno}: mx {value!r}: invalid domain label {label!r}")
    try:
        d = parse_domain(name.lower())
    except DomainError as e:
        raise PolicyParseError(f"line {lineno}: mx {value!r}: {e}") from None
    return MX(d, wildcard)


def parse_policy(text: str) -> Policy:
    """Parse a policy file; lines end in LF or CRLF, the last line terminator is optional.

    Raises:
        PolicyParseError: malformed, or a required field missing; the message names the line.
    """
    if text == "":
        raise PolicyParseError("empty policy")
    lines = re.split(r"\r?\n", text)
    if lines[-1] == "":
        lines.pop()
    version: str | None = None
    mode: Mode | None = None
    max_age: int | None = None
    mx: list[MX] = []
    extensions: list[tuple[str, str]] = []
    for i, line in enumerate(lines, start=1):
        if "\r" in line:
            raise PolicyParseError(f"line {i}: bare carriage return")
        m = _POLICY_NAME.match(line)
        if m is None:
            raise PolicyParseError(f"line {i}: expected field name: {line!r}")
        key = m.group(0)
        rest = line[m.end() :]
        if not rest.startswith(":"):
            raise PolicyParseError(f"line {i}: expected ':' after field {key!r}")
        value = rest[1:].lstrip(" \t").rstrip(" \t")
        if key == "version":
            if value != "STSv1":
                raise PolicyParseError(f"line {i}: version must be STSv1, not {value!r}")
            version = version or value
        elif key == "mode":
            try:
                v = Mode(value)
            except ValueError:
                raise PolicyParseError(f"line {i}: mode must be enforce, testing or none, not {value!r}") from None
            mode = mode or v
        elif key == "max_age":
            if _DIGITS.fullmatch(value) is None:
                raise PolicyParseError(f"line {i}: max_age must be 1 to 10 digits, not {value!r}")
            if max_age is None:
                max_age = int(value)
        elif key == "mx":
            mx.append(_parse_mx(value, i))
        else:
            if not _policy_ext_value(value):
                raise PolicyParseError(f"line {i}: empty or invalid value for field {key!r}")
            extensions.append((key, value))
    if version is None:
        raise PolicyParseError("missing field version")
    if mode is None:
        raise PolicyParseError("missing field mode")
    if max_age is None:
        raise PolicyParseError("missing field max_age")
    if not mx and mode != Mode.NONE:
        # RFC 8461 section 3.2: mx is required unless the mode is none.
        raise PolicyParseError(f"missing field mx, required with mode {mode.value}")
    return Policy(mode, max_age, tuple(mx), version, tuple(extensions))
