"""The Received-SPF header field, RFC 7208 section 9.1.

The SMTP server prepends it to incoming messages with the result of the SPF
check. Values are written as dot-atom when they can be and as quoted-string
otherwise (RFC 5322 section 3.2.3 and 3.2.4); UTF-8 is left as it is
(RFC 6532), as upstream does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# RFC 5322 section 3.2.3: atext, besides letters and digits.
_ATEXT_SPECIALS = frozenset("!#$%&'*+-/=?^_`{|}~")
# RFC 5322 section 2.1.1: lines SHOULD be no more than 78 characters.
MAX_LINE = 78
# Problem text is cut so its key-value pair fits on one line, as upstream.
MAX_PROBLEM = 77 - len("problem=; ")


def _is_atext(c: str) -> bool:
    return (c.isascii() and c.isalnum()) or c in _ATEXT_SPECIALS or ord(c) > 0x7F


def encode_value(s: str) -> str:
    """A key-value-pair value: dot-atom when possible, else quoted-string (RFC 7208 section 9.1)."""
    if s and all(part and all(_is_atext(c) for c in part) for part in s.split(".")):
        return s
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == " " or c == "\t" or "\x21" <= c <= "\x7e" or ord(c) > 0x7F:
            out.append(c)
        # Other control characters cannot be in a quoted-string: dropped.
    out.append('"')
    return "".join(out)


def _comment(s: str) -> str:
    # RFC 5322 section 3.2.2: ctext excludes "(", ")" and "\"; quote them.
    escaped = "".join("\\" + c if c in "()\\" else c for c in s if c >= " " or c == "\t")
    return f"({escaped})"


@dataclass(slots=True)
class Received:
    """The result of an SPF check and the fields of its Received-SPF header.

    check_host fills the evaluation fields (result to authentic); verify also
    the identity fields (identity to receiver) used in the header.

    Attributes:
        result: none, neutral, pass, fail, softfail, temperror or permerror
            (RFC 7208 section 2.6).
        mechanism: the directive that matched (e.g. "-all", "ip4:192.0.2.0/24"),
            in the record of the redirect target when there was a redirect;
            "default" when nothing matched; for temperror and permerror the
            term being evaluated ("redirect=..." too), if any; "" for none.
        explanation: for "fail", the expanded "exp=" text (section 6.2), else "".
        domain: the domain whose record gave the result (after redirects).
        problem: what went wrong, for temperror and permerror.
        dns_terms: DNS-querying terms evaluated (limit 10, section 4.6.4).
        void_lookups: lookups that returned no records (limit 2, section 4.6.4).
        authentic: every DNS answer used was DNSSEC-validated.
    """

    result: str
    mechanism: str = ""
    explanation: str = ""
    domain: str = ""
    problem: str = ""
    dns_terms: int = 0
    void_lookups: int = 0
    authentic: bool = False
    identity: str = ""  # "mailfrom" or "helo", section 9.1 "identity="
    client_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    envelope_from: str = ""  # the <sender>, "postmaster@helo" for a HELO check
    helo: str = ""
    receiver: str = ""
    comment: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def pairs(self) -> list[tuple[str, str]]:
        """The key-value pairs of the header, in upstream's order."""
        kv: list[tuple[str, str]] = []
        if self.client_ip is not None:
            kv.append(("client-ip", str(self.client_ip)))
        kv.append(("envelope-from", self.envelope_from))
        kv.append(("helo", self.helo))
        if self.problem:
            kv.append(("problem", self.problem[:MAX_PROBLEM]))
        if self.mechanism:
            kv.append(("mechanism", self.mechanism))
        kv.append(("receiver", self.receiver))
        if self.identity:
            kv.append(("identity", self.identity))
        kv.extend(self.extra.items())
        return kv

    def _words(self) -> list[str]:
        words = [self.result]
        if self.comment:
            words.append(_comment(self.comment))
        pairs = self.pairs()
        for i, (k, v) in enumerate(pairs):
            words.append(f"{k}={encode_value(v)}" + (";" if i + 1 < len(pairs) else ""))
        return words

    def header_value(self) -> str:
        """The header field body on one line, without name and CRLF."""
        return " ".join(self._words())

    def header(self) -> str:
        """The whole "Received-SPF:" header field, folded at 78 characters, ending in CRLF."""
        lines: list[str] = []
        line = "Received-SPF:"
        for w in self._words():
            if len(line) + 1 + len(w) > MAX_LINE and line.strip() and line != "Received-SPF:":
                lines.append(line)
                line = "\t" + w
            else:
                line += " " + w
        lines.append(line)
        return "\r\n".join(lines) + "\r\n"
