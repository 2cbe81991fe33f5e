"""The service extensions a server announces in its EHLO reply, parsed (pure).

RFC 5321 section 4.1.1.1: the first line of the 250 reply holds the server's
domain and a greeting, each following line one ``ehlo-keyword`` with
optional space-separated parameters. Keywords are case-insensitive. Lines
that do not follow the grammar are ignored, as is anything we do not use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Extensions", "parse_ehlo", "parse_limits"]

# RFC 5321 section 4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# RFC 1870 section 4: the SIZE parameter is a number of at most 20 digits.
_MAX_SIZE_DIGITS = 20
# RFC 9422 section 4: LIMITS values are at most 6 digits.
_MAX_LIMIT_DIGITS = 6


@dataclass(frozen=True)
class Extensions:
    """What the server supports, from its EHLO reply (or nothing, after HELO).

    Attributes:
        hostname: the domain from the first reply line (informative).
        keywords: every keyword announced, upper case, with its parameters.
        size_limit: RFC 1870 maximum message size; 0 when SIZE was announced
            without a limit or not at all.
        auth: SASL mechanisms offered (RFC 4954), upper case, in the order given.
        limits: RFC 9422 LIMITS name/value pairs, upper-case names; empty when
            absent or malformed (section 4 says to ignore the whole extension then).
        mail_max, rcpt_max, rcpt_domain_max: RFC 9422 limits, 0 for none.
    """

    hostname: str = ""
    keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ehlo: bool = True  # False when the server only spoke HELO.
    starttls: bool = False
    pipelining: bool = False
    eightbitmime: bool = False
    smtputf8: bool = False
    size: bool = False
    size_limit: int = 0
    chunking: bool = False
    binarymime: bool = False
    dsn: bool = False
    requiretls: bool = False
    enhancedstatuscodes: bool = False
    auth: tuple[str, ...] = ()
    limits: Mapping[str, str] = field(default_factory=dict)
    mail_max: int = 0
    rcpt_max: int = 0
    rcpt_domain_max: int = 0

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.keywords


def parse_limits(params: Sequence[str]) -> tuple[dict[str, str], int, int, int]:
    """Parse the LIMITS parameters (RFC 9422 section 4): ``name=value`` pairs.

    Returns (limits, mail_max, rcpt_max, rcpt_domain_max). A syntax error in
    any pair, or a duplicate name, drops the whole extension (section 4:
    "the client MUST ignore the entire LIMITS extension"); a known limit whose
    value is not a number of 1 to 6 digits is ignored on its own (section 5).
    """
    limits: dict[str, str] = {}
    for p in params:
        name, eq, value = p.partition("=")
        if (
            not eq
            or not re.fullmatch(r"[A-Za-z0-9_-]+", name)
            or not re.fullmatch(r"[\x21-\x3a\x3c-\x7e]+", value)
        ):
            return {}, 0, 0, 0
        key = name.upper()
        if key in limits:
            return {}, 0, 0, 0
        limits[key] = value

    def number(key: str) -> int:
        v = limits.get(key, "")
        if v.isascii() and v.isdigit() and len(v) <= _MAX_LIMIT_DIGITS and int(v) > 0:
            return int(v)
        return 0

    return limits, number("MAILMAX"), number("RCPTMAX"), number("RCPTDOMAINMAX")


def parse_ehlo(lines: Sequence[str]) -> Extensions:
    """Extensions from the text lines of a 250 reply to EHLO (first line: the server's domain)."""
    hostname = lines[0].split(" ", 1)[0] if lines else ""
    keywords: dict[str, tuple[str, ...]] = {}
    for line in lines[1:]:
        words = line.strip().split()
        if not words:
            continue
        kw = words[0]
        params = words[1:]
        if kw.upper().startswith("AUTH="):
            # Pre-RFC 4954 servers announce "AUTH=LOGIN PLAIN"; treat it as AUTH.
            params = [kw[5:], *params] if kw[5:] else params
            kw = "AUTH"
        if not _KEYWORD.fullmatch(kw):
            continue
        kw = kw.upper()
        if kw == "AUTH" and "AUTH" in keywords:
            params = [*keywords["AUTH"], *params]
        keywords[kw] = tuple(params)

    size_limit = 0
    if keywords.get("SIZE"):
        v = keywords["SIZE"][0]
        if v.isascii() and v.isdigit() and len(v) <= _MAX_SIZE_DIGITS:
            size_limit = int(v)  # 0 means no fixed limit, RFC 1870 section 4.
    auth: list[str] = []
    for m in keywords.get("AUTH", ()):
        m = m.upper()
        if re.fullmatch(r"[A-Z0-9_-]{1,20}", m) and m not in auth:
            auth.append(m)
    limits, mail_max, rcpt_max, rcpt_domain_max = parse_limits(keywords.get("LIMITS", ()))
    return Extensions(
        hostname=hostname,
        keywords=keywords,
        starttls="STARTTLS" in keywords,
        pipelining="PIPELINING" in keywords,
        eightbitmime="8BITMIME" in keywords,
        # RFC 6531 section 3.3: parameters to SMTPUTF8 are ignored.
        smtputf8="SMTPUTF8" in keywords,
        size="SIZE" in keywords,
        size_limit=size_limit,
        chunking="CHUNKING" in keywords,
        binarymime="BINARYMIME" in keywords,
        dsn="DSN" in keywords,
        requiretls="REQUIRETLS" in keywords,
        enhancedstatuscodes="ENHANCEDSTATUSCODES" in keywords,
        auth=tuple(auth),
        limits=limits,
        mail_max=mail_max,
        rcpt_max=rcpt_max,
        rcpt_domain_max=rcpt_domain_max,
    )
