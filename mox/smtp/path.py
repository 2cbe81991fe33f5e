"""SMTP envelope paths: Reverse-path and Forward-path. RFC 5321 section 4.1.2, RFC 6531 section 3.3.

A path is ``<`` [source route ``:``] Mailbox ``>``; the Mailbox is a Dot-string
or Quoted-string local part, ``@``, and a domain or an address literal
(section 4.1.3). Source routes are accepted and ignored (RFC 5321 section
4.1.1.3 and appendix C). Without SMTPUTF8 (RFC 6531 section 3.3) local parts
and domains must be ASCII; IDNA A-labels are always fine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mox.dns.domain import Domain, DomainError, parse_domain
from mox.smtp.address import Address, format_localpart

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PathError(ValueError):
    """A path does not follow the syntax; ``non_ascii`` when the only problem is UTF-8 without SMTPUTF8."""

    def __init__(self, msg: str, non_ascii: bool = False) -> None:
        super().__init__(msg)
        self.non_ascii = non_ascii


@dataclass(frozen=True, slots=True)
class Path:
    """A mailbox from an envelope path.

    ``domain`` is set for a domain, ``ip`` for an address literal; both are
    None only for the special ``<postmaster>`` recipient (RFC 5321 section
    4.1.1.3).
    """

    localpart: str
    domain: Domain | None = None
    ip: IPAddress | None = None

    def is_postmaster_only(self) -> bool:
        return self.domain is None and self.ip is None

    def address(self) -> Address | None:
        """The address, when the path has a domain (not an IP literal, not bare postmaster)."""
        if self.domain is None:
            return None
        return Address(self.localpart, self.domain)

    def xstring(self, utf8: bool = True) -> str:
        """The mailbox as text, without angle brackets."""
        lp = format_localpart(self.localpart)
        if self.domain is not None:
            return f"{lp}@{self.domain.xname(utf8)}"
        if self.ip is not None:
            if self.ip.version == 6:
                return f"{lp}@[IPv6:{self.ip}]"
            return f"{lp}@[{self.ip}]"
        return lp

    def __str__(self) -> str:
        return self.xstring(True)


_ATEXT_SPECIALS = set("!#$%&'*+-/=?^_`{|}~")


def _is_atext(c: str, utf8: bool) -> bool:
    if c.isascii():
        return c.isalnum() or c in _ATEXT_SPECIALS
    return utf8 and c.isprintable()


def parse_address_literal(s: str) -> IPAddress:
    """Parse the inside of ``[...]``: IPv4 or ``IPv6:...`` (RFC 5321 section 4.1.3).

    Raises:
        PathError: not an IPv4 or IPv6 literal (General-address-literal is not supported).
    """
    if s[:5].upper() == "IPV6:":
        try:
            return ipaddress.IPv6Address(s[5:])
        except ValueError:
            raise PathError(f"invalid IPv6 address literal {s!r}") from None
    try:
        return ipaddress.IPv4Address(s)
    except ValueError:
        raise PathError(f"invalid IPv4 address literal {s!r}") from None


def _parse_domain_part(s: str, utf8: bool) -> tuple[Domain | None, IPAddress | None]:
    if s.startswith("["):
        if not s.endswith("]"):
            raise PathError(f"unterminated address literal {s!r}")
        return None, parse_address_literal(s[1:-1])
    if not s.isascii() and not utf8:
        raise PathError(f"non-ASCII domain {s!r} without SMTPUTF8", non_ascii=True)
    try:
        return parse_domain(s), None
    except DomainError as e:
        raise PathError(str(e)) from None


def _scan_localpart(s: str, utf8: bool) -> tuple[str, int]:
    """Scan a local part at the start of s; returns the unquoted value and its length."""
    if s.startswith('"'):
        out = []
        i = 1
        while i < len(s):
            c = s[i]
            if c == "\\":
                # RFC 5321 section 4.1.2 quoted-pairSMTP: %d92 %d32-126.
                if i + 1 >= len(s) or not (32 <= ord(s[i + 1]) <= 126):
                    raise PathError("invalid escape in quoted local part")
                out.append(s[i + 1])
                i += 2
                continue
            if c == '"':
                return "".join(out), i + 1
            if not c.isascii():
                if not utf8:
                    raise PathError("non-ASCII local part without SMTPUTF8", non_ascii=True)
                if not c.isprintable():
                    raise PathError(f"invalid character {c!r} in quoted local part")
            elif not (32 <= ord(c) <= 126):
                raise PathError(f"invalid character {c!r} in quoted local part")
            out.append(c)
            i += 1
        raise PathError("missing closing quote in local part")
    i = 0
    while i < len(s) and s[i] != "@":
        c = s[i]
        if c != "." and not _is_atext(c, utf8):
            if not c.isascii() and not utf8 and c.isprintable():
                raise PathError("non-ASCII local part without SMTPUTF8", non_ascii=True)
            raise PathError(f"invalid character {c!r} in local part")
        i += 1
    lp = s[:i]
    if lp == "":
        raise PathError("empty local part")
    if lp.startswith(".") or lp.endswith(".") or ".." in lp:
        raise PathError(f"local part {lp!r}: empty part between dots")
    return lp, i


def parse_mailbox(s: str, utf8: bool) -> Path:
    """Parse a Mailbox (``local-part@domain-or-literal``), no angle brackets.

    Raises:
        PathError: invalid syntax.
    """
    lp, n = _scan_localpart(s, utf8)
    rest = s[n:]
    if not rest.startswith("@"):
        raise PathError("missing @ after local part")
    domain, ip = _parse_domain_part(rest[1:], utf8)
    return Path(lp, domain, ip)


def _skip_source_route(s: str) -> str:
    # RFC 5321 section 4.1.2: A-d-l = At-domain *( "," At-domain ) ":"; ignored (appendix C).
    if not s.startswith("@"):
        return s
    colon = s.find(":")
    if colon < 0:
        raise PathError("source route without colon")
    for hop in s[:colon].split(","):
        if not hop.startswith("@"):
            raise PathError(f"invalid source route hop {hop!r}")
        try:
            parse_domain(hop[1:])
        except DomainError as e:
            raise PathError(f"invalid source route: {e}") from None
    return s[colon + 1 :]


def scan_path(s: str) -> tuple[str, str]:
    """Split a path at the start of s from what follows: returns (inside of <>, rest).

    Honours quoted local parts, which may contain ``>`` and spaces.

    Raises:
        PathError: no ``<``, or no closing ``>``.
    """
    if not s.startswith("<"):
        raise PathError("expected < to start the path")
    i = 1
    quoted = False
    while i < len(s):
        c = s[i]
        if quoted:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ">":
            return s[1:i], s[i + 1 :]
        i += 1
    raise PathError("expected > to end the path")


def parse_path_inner(inner: str, utf8: bool) -> Path:
    """Parse the inside of a non-null path: optional source route and a Mailbox.

    Raises:
        PathError: invalid syntax.
    """
    return parse_mailbox(_skip_source_route(inner), utf8)
