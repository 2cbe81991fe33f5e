"""SPF record syntax: parsing and formatting of "v=spf1" records, RFC 7208 section 4.5 and 12.

:func:`parse_record` is pure and strict: anything that does not match the ABNF
of RFC 7208 section 12 raises :class:`RecordSyntaxError`, which check_host turns
into a "permerror" (RFC 7208 section 4.6). A parsed :class:`Record` formats back
to record text with ``str()``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

# RFC 7208 section 4.6.2: the four qualifiers, "+" (pass) when absent.
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}

MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")

# RFC 7208 section 7.1: macro letters; "c", "r" and "t" only in "exp" text.
MACRO_LETTERS = frozenset("slodiphcrtv")
EXP_ONLY_MACRO_LETTERS = frozenset("crt")
MACRO_DELIMITERS = frozenset(".-+,/_=")


class RecordSyntaxError(ValueError):
    """The record text does not match the ABNF of RFC 7208 section 12."""


@dataclass(frozen=True, slots=True)
class Directive:
    """A mechanism with its qualifier, RFC 7208 section 4.6.2 and 5.

    ``domain_spec`` is the unexpanded macro-string for include/a/mx/ptr/exists
    ("" when absent); ``network`` is set for ip4/ip6; ``ip4_cidr``/``ip6_cidr``
    are the (dual-)cidr-lengths, ``None`` when not given.
    """

    qualifier: str  # "", "+", "-", "~" or "?"; "" means the implicit "+".
    mechanism: str  # lower case, one of MECHANISMS
    domain_spec: str = ""
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    ip4_cidr: int | None = None
    ip6_cidr: int | None = None
    address: str = ""  # ip4/ip6 address as written, host bits kept, for formatting

    @property
    def result(self) -> str:
        """The SPF result when this directive matches."""
        return QUALIFIERS[self.qualifier or "+"]

    def __str__(self) -> str:
        s = self.qualifier + self.mechanism
        if self.mechanism in ("ip4", "ip6"):
            s += ":" + self.address
        elif self.domain_spec:
            s += ":" + self.domain_spec
        if self.ip4_cidr is not None:
            s += f"/{self.ip4_cidr}"
        if self.ip6_cidr is not None:
            s += f"//{self.ip6_cidr}" if self.mechanism in ("a", "mx") else f"/{self.ip6_cidr}"
        return s


@dataclass(frozen=True, slots=True)
class Modifier:
    """A modifier other than redirect and exp, kept for formatting (RFC 7208 section 6)."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


@dataclass(frozen=True, slots=True)
class Record:
    """A parsed SPF record.

    Attributes:
        directives: the mechanisms in evaluation order.
        redirect: the "redirect=" domain-spec, "" when absent (section 6.1).
        explanation: the "exp=" domain-spec, "" when absent (section 6.2).
        other: unknown modifiers, ignored in evaluation (section 6).
    """

    directives: tuple[Directive, ...] = ()
    redirect: str = ""
    explanation: str = ""
    other: tuple[Modifier, ...] = field(default=())

    def __str__(self) -> str:
        terms = ["v=spf1", *(str(d) for d in self.directives)]
        if self.redirect:
            terms.append("redirect=" + self.redirect)
        if self.explanation:
            terms.append("exp=" + self.explanation)
        terms.extend(str(m) for m in self.other)
        return " ".join(terms)


def is_spf_record(txt: str) -> bool:
    """Whether a TXT record is an SPF record: starts with "v=spf1" and then a space or its end.

    RFC 7208 section 4.5: the version is matched case-insensitively (ABNF
    strings are case-insensitive, RFC 5234 section 2.3), and "v=spf10" is not
    an SPF record.
    """
    return txt[:6].lower() == "v=spf1" and (len(txt) == 6 or txt[6] == " ")


# RFC 7208 section 12: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
_MODIFIER_RE = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)=(.*)", re.DOTALL)
_MECHANISM_RE = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9]*)(.*)", re.DOTALL)
# ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT); ip6 likewise with up to 3 digits.
_CIDR_RE = r"(?:0|[1-9][0-9]{0,2})"
_DUAL_CIDR_RE = re.compile(rf"(?:/({_CIDR_RE}))?(?://({_CIDR_RE}))?")
# qnum: a decimal 0-255 without leading zeros.
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IP4_NETWORK_RE = re.compile(rf"{_QNUM}\.{_QNUM}\.{_QNUM}\.{_QNUM}")
# toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
_TOPLABEL_RE = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9\-]*[A-Za-z0-9]")


def parse_macro_string(s: str, *, exp: bool = False) -> list[str | tuple[str, int, bool, str]]:
    """Split a macro-string (RFC 7208 section 7.1) into literals and macros.

    A macro is ``(letter, digits, reverse, delimiters)``; the letter keeps its
    case (upper case means URL-escaping, section 7.3). "%%", "%_" and "%-"
    become literals. ``exp`` allows the letters "c", "r" and "t" and any
    visible character or space as literal, as in explanation text.

    Raises:
        RecordSyntaxError: a malformed macro or a character outside macro-literal.
    """
    parts: list[str | tuple[str, int, bool, str]] = []
    lit: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c != "%":
            # macro-literal = %x21-24 / %x26-7E; explain-string also allows SP.
            if not ("\x21" <= c <= "\x7e" or (exp and c == " ")):
                raise RecordSyntaxError(f"invalid character {c!r} in macro-string {s!r}")
            lit.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise RecordSyntaxError(f"lone % at end of macro-string {s!r}")
        nc = s[i + 1]
        if nc in "%_-":
            lit.append({"%": "%", "_": " ", "-": "%20"}[nc])
            i += 2
            continue
        if nc != "{":
            raise RecordSyntaxError(f"invalid macro %{nc} in {s!r}")
        end = s.find("}", i + 2)
        if end < 0:
            raise RecordSyntaxError(f"unterminated macro in {s!r}")
        body = s[i + 2 : end]
        m = re.fullmatch(r"([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)", body)
        if m is None or m.group(1).lower() not in MACRO_LETTERS:
            raise RecordSyntaxError(f"invalid macro %{{{body}}} in {s!r}")
        letter = m.group(1)
        if not exp and letter.lower() in EXP_ONLY_MACRO_LETTERS:
            # RFC 7208 section 7.1: c, r and t are only allowed in "exp" text.
            raise RecordSyntaxError(f"macro letter {letter!r} only allowed in exp text")
        digits = 0
        if m.group(2):
            digits = int(m.group(2))
            # RFC 7208 section 7.1: the DIGIT transformer must be nonzero.
            if digits == 0:
                raise RecordSyntaxError(f"zero digit transformer in %{{{body}}}")
        if lit:
            parts.append("".join(lit))
            lit = []
        parts.append((letter, digits, bool(m.group(3)), m.group(4)))
        i = end + 1
    if lit:
        parts.append("".join(lit))
    return parts


def check_domain_spec(spec: str) -> None:
    """Check a domain-spec (RFC 7208 section 12): a macro-string ending in a toplabel or a macro.

    Raises:
        RecordSyntaxError: the domain-spec is malformed.
    """
    if not spec:
        raise RecordSyntaxError("empty domain-spec")
    parts = parse_macro_string(spec)
    last = parts[-1]
    if isinstance(last, tuple):
        return  # domain-end = macro-expand
    # A trailing "%%"/"%_"/"%-" is a macro-expand too, but it merged into a
    # literal; check the raw text for it.
    if re.search(r"(?<!%)(?:%%)*%[%_\-]$", spec):
        return
    text = last[:-1] if last.endswith(".") else last
    dot = text.rfind(".")
    # domain-end = "." toplabel [ "." ]: there must be a dot before the toplabel,
    # and something before that dot.
    if dot < 0 or (dot == 0 and len(parts) == 1):
        raise RecordSyntaxError(f"domain-spec {spec!r} does not end in a domain")
    if _TOPLABEL_RE.fullmatch(text[dot + 1 :]) is None:
        raise RecordSyntaxError(f"domain-spec {spec!r} has an invalid top label")


def _parse_directive(term: str) -> Directive:
    m = _MECHANISM_RE.fullmatch(term)
    if m is None:
        raise RecordSyntaxError(f"invalid term {term!r}")
    qualifier, name, rest = m.group(1), m.group(2).lower(), m.group(3)
    if name not in MECHANISMS:
        raise RecordSyntaxError(f"unknown mechanism {name!r}")
    if name == "all":
        if rest:
            raise RecordSyntaxError(f"invalid all mechanism {term!r}")
        return Directive(qualifier, name)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            raise RecordSyntaxError(f"{name} needs a domain-spec: {term!r}")
        check_domain_spec(rest[1:])
        return Directive(qualifier, name, rest[1:])
    if name == "ptr":
        spec = ""
        if rest:
            if not rest.startswith(":"):
                raise RecordSyntaxError(f"invalid ptr mechanism {term!r}")
            spec = rest[1:]
            check_domain_spec(spec)
        return Directive(qualifier, name, spec)
    if name in ("a", "mx"):
        spec = ""
        cidr = rest
        if rest.startswith(":"):
            # The domain-spec runs up to the dual-cidr-length at the end, if any.
            cm = re.search(rf"(?:/{_CIDR_RE})?(?://{_CIDR_RE})?$", rest)
            assert cm is not None
            spec, cidr = rest[1 : cm.start()], rest[cm.start() :]
            check_domain_spec(spec)
        dm = _DUAL_CIDR_RE.fullmatch(cidr)
        if dm is None:
            raise RecordSyntaxError(f"invalid {name} mechanism {term!r}")
        ip4 = int(dm.group(1)) if dm.group(1) is not None else None
        ip6 = int(dm.group(2)) if dm.group(2) is not None else None
        if (ip4 is not None and ip4 > 32) or (ip6 is not None and ip6 > 128):
            raise RecordSyntaxError(f"cidr-length out of range in {term!r}")
        return Directive(qualifier, name, spec, ip4_cidr=ip4, ip6_cidr=ip6)
    # ip4 / ip6
    if not rest.startswith(":"):
        raise RecordSyntaxError(f"{name} needs a network: {term!r}")
    addr, slash, length = rest[1:].partition("/")
    if slash and re.fullmatch(_CIDR_RE, length) is None:
        raise RecordSyntaxError(f"invalid cidr-length in {term!r}")
    bits = int(length) if slash else None
    try:
        if name == "ip4":
            if _IP4_NETWORK_RE.fullmatch(addr) is None:
                raise RecordSyntaxError(f"invalid IPv4 address in {term!r}")
            if bits is not None and bits > 32:
                raise RecordSyntaxError(f"cidr-length out of range in {term!r}")
            net4 = ipaddress.IPv4Network((addr, 32 if bits is None else bits), strict=False)
            return Directive(qualifier, name, network=net4, ip4_cidr=bits, address=addr)
        if bits is not None and bits > 128:
            raise RecordSyntaxError(f"cidr-length out of range in {term!r}")
        # ip6-network = <as per RFC 4291 section 2.2>; no zone index.
        if "%" in addr or not re.fullmatch(r"[0-9A-Fa-f:.]+", addr):
            raise RecordSyntaxError(f"invalid IPv6 address in {term!r}")
        a6 = ipaddress.IPv6Address(addr)
        net6 = ipaddress.IPv6Network((a6, 128 if bits is None else bits), strict=False)
        return Directive(qualifier, name, network=net6, ip6_cidr=bits, address=addr)
    except ValueError as e:
        if isinstance(e, RecordSyntaxError):
            raise
        raise RecordSyntaxError(f"invalid network in {term!r}: {e}") from None


def parse_record(txt: str) -> Record:
    """Parse the text of an SPF record, RFC 7208 section 4.5 and 12.

    Args:
        txt: the TXT record, its strings already concatenated (section 3.3).

    Returns:
        The parsed record.

    Raises:
        RecordSyntaxError: not an SPF record, or a term that does not match the
            ABNF, a repeated redirect or exp modifier (section 6), non-ASCII.
    """
    if not is_spf_record(txt):
        raise RecordSyntaxError("not an spf record: must start with v=spf1")
    # record = version terms *SP; terms = *( 1*SP ( directive / modifier ) ).
    # Only SP separates terms (section 4.6.1): a tab or other control
    # character inside a term makes it invalid below.
    directives: list[Directive] = []
    other: list[Modifier] = []
    redirect = explanation = ""
    seen: set[str] = set()
    for term in txt[6:].split(" "):
        if not term:
            continue
        if not term.isascii():
            raise RecordSyntaxError(f"non-ascii term {term!r}")
        mm = _MODIFIER_RE.fullmatch(term)
        if mm is None:
            directives.append(_parse_directive(term))
            continue
        name, value = mm.group(1).lower(), mm.group(2)
        if name in ("redirect", "exp"):
            # RFC 7208 section 6: each may appear at most once.
            if name in seen:
                raise RecordSyntaxError(f"modifier {name} appears more than once")
            seen.add(name)
            check_domain_spec(value)
            if name == "redirect":
                redirect = value
            else:
                explanation = value
        else:
            # unknown-modifier = name "=" macro-string (section 6, 12).
            parse_macro_string(value)
            other.append(Modifier(mm.group(1), value))
    return Record(tuple(directives), redirect, explanation, tuple(other))
