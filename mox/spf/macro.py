"""SPF macro expansion, RFC 7208 section 7.

Expansion needs the values of the macro letters; the "p" letter needs DNS
lookups, so :class:`MacroValues` takes it as a string computed by the caller
(check_host does the PTR validation only when a "p" macro is present).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass

from mox.spf.record import parse_macro_string

# RFC 7208 section 7.3: "If the expanded domain name exceeds 253 characters
# ... the left side is truncated to fit".
MAX_DOMAIN_LENGTH = 253


@dataclass(frozen=True, slots=True)
class MacroValues:
    """The values for the macro letters of RFC 7208 section 7.2."""

    sender: str  # s: <sender>, local-part@domain (local-part "postmaster" when empty)
    domain: str  # d: the <domain> being evaluated
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address  # i, c, v
    helo: str = ""  # h
    validated_ptr: str = "unknown"  # p
    receiving_host: str = "unknown"  # r
    timestamp: int = 0  # t

    def letter(self, letter: str) -> str:
        """The unescaped value of a lower-case macro letter."""
        local, _, sender_domain = self.sender.rpartition("@")
        if letter == "s":
            return self.sender
        if letter == "l":
            return local or "postmaster"
        if letter == "o":
            return sender_domain
        if letter == "d":
            return self.domain
        if letter == "i":
            return dotted_ip(self.ip)
        if letter == "p":
            return self.validated_ptr
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo
        if letter == "c":
            # Section 7.3: "c" is the readable form (RFC 5952 for IPv6).
            return str(self.ip)
        if letter == "r":
            return self.receiving_host or "unknown"
        if letter == "t":
            return str(self.timestamp)
        raise ValueError(f"unknown macro letter {letter!r}")


def dotted_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The "i" macro form: dotted quad, or for IPv6 dot-separated nibbles (section 7.3)."""
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def _transform(value: str, digits: int, reverse: bool, delimiters: str) -> str:
    # Section 7.3: split on the delimiters ("." by default), optionally
    # reverse, keep the rightmost <digits> parts, join with ".".
    if not digits and not reverse and not delimiters:
        return value
    delims = delimiters or "."
    parts: list[str] = []
    cur: list[str] = []
    for c in value:
        if c in delims:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    if reverse:
        parts.reverse()
    if digits and digits < len(parts):
        parts = parts[len(parts) - digits :]
    return ".".join(parts)


def expand(spec: str, values: MacroValues, *, exp: bool = False) -> str:
    """Expand a macro-string (domain-spec or explanation text), RFC 7208 section 7.

    Upper-case macro letters are URL-escaped (section 7.3). For a domain-spec
    (``exp`` false) the result is truncated from the left to at most 253
    characters, whole labels at a time.

    Raises:
        RecordSyntaxError: the macro-string is malformed.
    """
    out: list[str] = []
    for part in parse_macro_string(spec, exp=exp):
        if isinstance(part, str):
            out.append(part)
            continue
        letter, digits, reverse, delimiters = part
        v = _transform(values.letter(letter.lower()), digits, reverse, delimiters)
        if letter.isupper():
            # Section 7.3: escape as in RFC 3986 section 2.1, all but "unreserved".
            v = urllib.parse.quote(v, safe="-._~")
        out.append(v)
    s = "".join(out)
    if not exp:
        s = truncate_domain(s)
    return s


def truncate_domain(s: str) -> str:
    """Remove labels from the left until the name fits in 253 characters (section 7.3)."""
    trailing = s.endswith(".")
    name = s[:-1] if trailing else s
    while len(name) > MAX_DOMAIN_LENGTH and "." in name:
        name = name.split(".", 1)[1]
    return name + ("." if trailing else "")
