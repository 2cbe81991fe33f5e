"""Email addresses as SMTP knows them: local part and domain. RFC 5321 section 4.1.2, RFC 6531 section 3.3.

A :class:`Localpart` holds the unquoted form; :func:`format_localpart` adds
quoting where the syntax needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mox.dns.domain import Domain, DomainError, parse_domain

# RFC 5321 section 4.5.3.1.1: 64 octets. Not enforced by default (upstream
# accepts longer ones outside pedantic mode); callers may check.
MAX_LOCALPART_OCTETS = 64

# RFC 5322 section 3.2.3 atext, without the letters and digits.
_ATEXT_SPECIALS = set("!#$%&'*+-/=?^_`{|}~")


class AddressError(ValueError):
    """A string is not a valid address or local part."""


def _is_atext(c: str) -> bool:
    return (c.isascii() and (c.isalnum() or c in _ATEXT_SPECIALS)) or (ord(c) >= 0x80 and c.isprintable())


def parse_localpart(s: str) -> str:
    """Parse a local part (Dot-string or Quoted-string), returning the unquoted value.

    Raises:
        AddressError: invalid syntax, saying what is wrong.
    """
    if s == "":
        raise AddressError("empty local part")
    if s.startswith('"'):
        out = []
        i = 1
        while i < len(s):
            c = s[i]
            if c == "\\":
                if i + 1 >= len(s) or not (32 <= ord(s[i + 1]) <= 126):
                    raise AddressError(f"local part {s!r}: invalid escape in quoted string")
                out.append(s[i + 1])
                i += 2
                continue
            if c == '"':
                if i != len(s) - 1:
                    raise AddressError(f"local part {s!r}: text after closing quote")
                return "".join(out)
            if not (32 <= ord(c) <= 126 and c not in '"\\') and not (ord(c) >= 0x80 and c.isprintable()):
                raise AddressError(f"local part {s!r}: invalid character {c!r} in quoted string")
            out.append(c)
            i += 1
        raise AddressError(f"local part {s!r}: missing closing quote")
    for atom in s.split("."):
        if atom == "":
            raise AddressError(f"local part {s!r}: empty part between dots")
        for c in atom:
            if not _is_atext(c):
                raise AddressError(f"local part {s!r}: invalid character {c!r}")
    return s


def _needs_quoting(lp: str) -> bool:
    if lp == "":
        return True
    for atom in lp.split("."):
        if atom == "" or not all(_is_atext(c) for c in atom):
            return True
    return False


def format_localpart(lp: str) -> str:
    """The local part as written in an address, quoted only when needed."""
    if not _needs_quoting(lp):
        return lp
    return '"' + lp.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Address:
    """An address with unquoted local part and parsed domain."""

    localpart: str
    domain: Domain

    def pack(self, utf8: bool = True) -> str:
        """The address as text; with utf8 the domain in Unicode form."""
        return f"{format_localpart(self.localpart)}@{self.domain.xname(utf8)}"

    def __str__(self) -> str:
        return self.pack(True)


def parse_address(s: str) -> Address:
    """Parse ``localpart@domain``.

    Raises:
        AddressError: invalid local part or domain.
    """
    lpstr, sep, dom = s.rpartition("@")
    if not sep:
        raise AddressError(f"address {s!r}: missing @")
    lp = parse_localpart(lpstr)
    try:
        d = parse_domain(dom)
    except DomainError as e:
        raise AddressError(f"address {s!r}: {e}") from None
    return Address(lp, d)
