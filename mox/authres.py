"""The Authentication-Results header field (RFC 8601).

:class:`AuthResults` holds the results and writes the header, quoting values
that are not tokens (RFC 8601 section 2.2, RFC 2045 section 5.1) and folding
lines at 76 characters (continuation lines start with a tab), as upstream
mox writes it::

    Authentication-Results: mox.example;
        iprev=pass (without dnssec) policy.iprev=198.51.100.1;
        dkim=pass (2048 bit rsa, without dnssec) header.d=example.org
        header.s=sel header.a=rsa-sha256 header.b=Xy7Hq0...; spf=pass
        ...

The ``*_method`` functions make the method entries from the results of
:mod:`mox.iprev`, :mod:`mox.dkim` and :mod:`mox.dmarc`, with the properties
upstream mox adds (RFC 8601 section 2.7, RFC 6008 for header.b, RFC 7489
section 11.2 for header.from).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from mox import dkim, dmarc, iprev
from mox.dns import Domain, dnssec_status

# Folding width, as upstream's header writer: 76 characters before CRLF
# (RFC 5322 section 2.1.1: SHOULD be at most 78).
LINE_WIDTH = 76

# RFC 2045 section 5.1 tspecials (and space, controls) need a quoted-string.
_TSPECIALS = set('()<>@,;:\\"/[]?= ')


@dataclass
class AuthProp:
    """A property, "type.property=value", e.g. ``smtp.mailfrom=example.org``.

    is_addr_like: the value is a domain or local-part@domain, in which "@" is
    allowed unquoted (RFC 8601 section 2.3, pvalue).
    comment: a header comment after the value, without parentheses.
    """

    type: str
    property: str
    value: str
    is_addr_like: bool = False
    comment: str = ""


@dataclass
class AuthMethod:
    """One method's result, e.g. ``spf=pass (comment) smtp.mailfrom=example.org``."""

    method: str
    result: str
    comment: str = ""
    reason: str = ""
    props: list[AuthProp] = field(default_factory=list)
    version: str = ""


@dataclass
class AuthResults:
    """An Authentication-Results header: the authserv-id (our host name) and method results."""

    hostname: str
    comment: str = ""
    methods: list[AuthMethod] = field(default_factory=list)

    def header(self) -> str:
        """The complete header field, possibly folded, ending in CRLF.

        Without methods the result is "none" (RFC 8601 section 2.2).
        """
        w = _Writer()
        first = "Authentication-Results:" + _comment(self.comment) + " " + quote_value(self.hostname) + ";"
        w.add("", first)
        if not self.methods:
            w.add(" ", "none")
            return w.text()
        for i, m in enumerate(self.methods):
            w.newline()
            tokens = [m.method + (f"/{m.version}" if m.version else "") + "=" + m.result]
            # A comment directly after the result only when something follows, as upstream.
            if m.comment and (m.reason or m.props):
                tokens.append(f"({_escape_comment(m.comment)})")
            if m.reason:
                tokens.append("reason=" + quote_value(m.reason))
            for p in m.props:
                tokens.append(
                    f"{p.type}.{p.property}={quote_value(p.value, p.is_addr_like)}{_comment(p.comment)}"
                )
            if i < len(self.methods) - 1:
                tokens[-1] += ";"
            for j, t in enumerate(tokens):
                w.add(" " if j > 0 else "", t)
        return w.text()


def _escape_comment(s: str) -> str:
    # RFC 5322 section 3.2.2: ctext excludes "(", ")" and "\"; quote them.
    return "".join("\\" + c if c in "()\\" else c for c in s.replace("\r", " ").replace("\n", " "))


def _comment(s: str) -> str:
    return f" ({_escape_comment(s)})" if s else ""


def quote_value(s: str, is_addr_like: bool = False) -> str:
    """s as a token, or as a quoted-string if needed (RFC 8601 section 2.2 "value", RFC 2045 section 5.1).

    UTF-8 needs no quoting (RFC 6532 section 3.2).
    """
    need = s == "" or any(
        ord(c) <= 0x20 or ord(c) == 0x7F or (c == "@" and not is_addr_like) or (c in _TSPECIALS and c != "@")
        for c in s
    )
    if not need:
        return s
    return '"' + "".join("\\" + c if c in '"\\' else c for c in s) + '"'


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.line_len = 0
        self.nonfirst = False

    def add(self, sep: str, text: str) -> None:
        if self.nonfirst and self.line_len > 1 and self.line_len + len(sep) + len(text) > LINE_WIDTH:
            self.parts.append("\r\n\t")
            self.line_len = 1
        elif self.nonfirst and sep:
            self.parts.append(sep)
            self.line_len += len(sep)
        self.parts.append(text)
        self.line_len += len(text)
        self.nonfirst = True

    def newline(self) -> None:
        self.parts.append("\r\n\t")
        self.line_len = 1
        self.nonfirst = True

    def text(self) -> str:
        return "".join(self.parts) + "\r\n"


def _xname(d: Domain, smtputf8: bool) -> tuple[str, str]:
    """Name for a property, and the ASCII form as comment when the Unicode form is used."""
    name = d.xname(smtputf8)
    return name, (d.ascii if name != d.ascii else "")


def iprev_method(result: iprev.Result, ip: str) -> AuthMethod:
    """``iprev=pass (without dnssec) policy.iprev=<ip>`` (RFC 8601 section 2.7.3)."""
    return AuthMethod(
        "iprev", str(result.status), dnssec_status(result.authentic), props=[AuthProp("policy", "iprev", ip)]
    )


def spf_method(
    result: str, identity: Domain | None, authentic: bool, *, kind: str = "mailfrom", smtputf8: bool = False
) -> AuthMethod:
    """``spf=pass (with dnssec) smtp.mailfrom=example.org`` (RFC 8601 section 2.7.2).

    kind: "mailfrom" or "helo", the identity SPF checked.
    """
    props = []
    if identity is not None:
        name, extra = _xname(identity, smtputf8)
        props.append(AuthProp("smtp", kind, name, True, extra))
    return AuthMethod("spf", result, dnssec_status(authentic), props=props)


def dkim_methods(results: list[dkim.Result], *, smtputf8: bool = False, error: str = "") -> list[AuthMethod]:
    """One ``dkim=...`` per signature (RFC 8601 section 2.7.1, RFC 6008 for header.b).

    Without signatures: ``dkim=none reason="no dkim signatures"`` as upstream.
    """
    if error:
        return [AuthMethod("dkim", "none", reason=error)]
    if not results:
        return [AuthMethod("dkim", "none", reason="no dkim signatures")]
    methods: list[AuthMethod] = []
    for r in results:
        comment = ""
        props: list[AuthProp] = []
        if r.sig is not None:
            if r.record is not None and isinstance(r.record.key, rsa.RSAPublicKey):
                comment = f"{r.record.key.key_size} bit rsa, "
            comment += dnssec_status(r.record_authentic)
            # RFC 6008 section 4: at least 8 characters of b=, unique among the signatures.
            b = base64.b64encode(r.sig.signature).decode("ascii")[:12]
            d, dx = _xname(r.sig.domain, smtputf8)
            s, sx = _xname(r.sig.selector, smtputf8)
            props = [
                AuthProp("header", "d", d, True, dx),
                AuthProp("header", "s", s, True, sx),
                AuthProp("header", "a", r.sig.algorithm),
                AuthProp("header", "b", b),
            ]
            if r.sig.identity and not r.sig.identity.startswith("@"):
                props.append(AuthProp("header", "i", r.sig.identity, True))
        reason = r.error if r.status != dkim.Status.PASS else ""
        methods.append(AuthMethod("dkim", str(r.status), comment, reason, props))
    return methods


def dmarc_method(
    result: dmarc.Result | None, from_domain: Domain | None, *, smtputf8: bool = False
) -> AuthMethod:
    """``dmarc=pass (without dnssec) header.from=example.org`` (RFC 7489 section 11.2).

    With no From domain: ``dmarc=none``.
    """
    if result is None or from_domain is None or from_domain.is_zero():
        return AuthMethod("dmarc", "none")
    name, extra = _xname(from_domain, smtputf8)
    return AuthMethod(
        "dmarc",
        str(result.status),
        dnssec_status(result.record_authentic),
        props=[AuthProp("header", "from", name, True, extra)],
    )


def auth_method(mailfrom: str, *, result: str = "pass") -> AuthMethod:
    """``auth=pass smtp.mailfrom=user@example.org`` for authenticated submission (RFC 8601 section 2.7.4)."""
    return AuthMethod("auth", result, props=[AuthProp("smtp", "mailfrom", mailfrom, True)])


__all__ = [
    "AuthMethod",
    "AuthProp",
    "AuthResults",
    "auth_method",
    "dkim_methods",
    "dmarc_method",
    "iprev_method",
    "quote_value",
    "spf_method",
]
