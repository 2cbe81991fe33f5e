"""Domain names with their ASCII (A-label) and Unicode (U-label) forms.

Pure: no I/O. IDNA per RFC 5891 with the UTS #46 mapping (the ``idna`` package),
which is what browsers and mail software use in practice (RFC 6531 section 3.2
leaves the mapping to the implementation).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import idna

# RFC 1035 section 2.3.4: 255 octets on the wire, so 253 characters of text
# without the trailing dot; labels 63 octets.
MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63


class DomainError(ValueError):
    """A string is not a valid domain name."""


@dataclass(frozen=True, slots=True)
class Domain:
    """A parsed domain name, lower case, without trailing dot.

    ``ascii`` is the form used in DNS queries; ``unicode`` is set only for IDNA
    names (it is empty for plain ASCII names).
    """

    ascii: str
    unicode: str = ""

    @property
    def name(self) -> str:
        """The Unicode name when there is one, else the ASCII name."""
        return self.unicode or self.ascii

    def xname(self, utf8: bool) -> str:
        """The Unicode name only when the peer understands UTF-8 (SMTPUTF8)."""
        return self.unicode if (utf8 and self.unicode) else self.ascii

    def log_string(self) -> str:
        return f"{self.unicode}/{self.ascii}" if self.unicode else self.ascii

    def __str__(self) -> str:
        return self.log_string()

    def is_zero(self) -> bool:
        return not self.ascii

    def is_subdomain_of(self, parent: Domain) -> bool:
        return self.ascii == parent.ascii or self.ascii.endswith("." + parent.ascii)


def parse_domain(s: str, *, lax: bool = False) -> Domain:
    """Parse a domain name in ASCII or Unicode form.

    Args:
        s: the name, without trailing dot.
        lax: allow underscores in ASCII-only names (seen in the wild for MX
            targets; refused in pedantic mode by callers).

    Returns:
        The canonical Domain.

    Raises:
        DomainError: the name is empty, has a trailing dot, is an IP address, or
            is not a valid (IDNA) host name.
    """
    if s == "":
        raise DomainError("empty domain name")
    if s.endswith("."):
        raise DomainError(f"domain name {s!r} must not end with a dot")
    try:
        ipaddress.ip_address(s)
    except ValueError:
        pass
    else:
        raise DomainError(f"{s!r} is an IP address, not a domain name")
    if lax and "_" in s and s.isascii():
        low = s.lower()
        check = parse_domain(low.replace("_", "a"))
        if check.unicode or check.ascii != low.replace("_", "a"):
            raise DomainError(f"domain name {s!r}: underscores only allowed in plain ASCII names")
        return Domain(low)
    try:
        if s.isascii():
            low = s.lower()
            labels = low.split(".")
            for label in labels:
                _check_ascii_label(s, label)
            if len(low) > MAX_NAME_LENGTH:
                raise DomainError(f"domain name {s!r} longer than {MAX_NAME_LENGTH} characters")
            if any(label.startswith("xn--") for label in labels):
                uni = idna.decode(low, uts46=True)
                again = idna.encode(uni, uts46=True).decode("ascii")
                if again != low:
                    raise DomainError(f"domain name {s!r}: A-label does not round-trip")
                return Domain(low, uni if uni != low else "")
            return Domain(low)
        ascii_name = idna.encode(s, uts46=True).decode("ascii")
        uni = idna.decode(ascii_name)
    except idna.IDNAError as e:
        raise DomainError(f"invalid domain name {s!r}: {e}") from None
    except UnicodeError as e:
        raise DomainError(f"invalid domain name {s!r}: {e}") from None
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise DomainError(f"domain name {s!r} longer than {MAX_NAME_LENGTH} characters")
    return Domain(ascii_name, "" if uni == ascii_name else uni)


def _check_ascii_label(name: str, label: str) -> None:
    # RFC 1123 section 2.1: letters, digits, hyphen; not starting or ending with a hyphen.
    if label == "":
        raise DomainError(f"domain name {name!r} has an empty label")
    if len(label) > MAX_LABEL_LENGTH:
        raise DomainError(f"domain name {name!r} has a label longer than {MAX_LABEL_LENGTH} characters")
    if label[0] == "-" or label[-1] == "-":
        raise DomainError(f"domain name {name!r}: label {label!r} starts or ends with a hyphen")
    for c in label:
        if not (c.isalnum() or c == "-"):
            raise DomainError(f"domain name {name!r}: invalid character {c!r}")
