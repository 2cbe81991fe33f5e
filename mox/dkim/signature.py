"""The DKIM-Signature header field (RFC 6376 section 3.5, RFC 8463 for ed25519-sha256).

Pure: parsing a signature's tags into a :class:`Signature`, and writing one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from mox.dkim.record import RecordError, parse_tags
from mox.dns import Domain, DomainError, parse_domain

# RFC 6376 section 3.3, RFC 8463 section 3.
SIGN_ALGORITHMS = ("rsa", "ed25519")
HASH_ALGORITHMS = ("sha256", "sha1")


class SignatureError(ValueError):
    """A DKIM-Signature header field is malformed (a permerror, RFC 6376 section 6.1.1)."""


@dataclass
class Signature:
    """A parsed DKIM-Signature.

    Attributes mirror the tags: ``algorithm_sign``/``algorithm_hash`` (a=),
    ``signature`` (b=), ``body_hash`` (bh=), ``header_relaxed``/``body_relaxed``
    (c=), ``domain`` (d=), ``signed_headers`` (h=, as written), ``identity``
    (i=, decoded; "@" + domain when absent), ``length`` (l=, None when absent),
    ``query_methods`` (q=), ``selector`` (s=), ``sign_time``/``expire_time``
    (t=/x=, None when absent).
    """

    version: int = 1
    algorithm_sign: str = ""
    algorithm_hash: str = ""
    signature: bytes = b""
    body_hash: bytes = b""
    header_relaxed: bool = False
    body_relaxed: bool = False
    domain: Domain = field(default_factory=lambda: Domain(""))
    signed_headers: list[str] = field(default_factory=list)
    identity: str = ""
    length: int | None = None
    query_methods: list[str] = field(default_factory=list)
    selector: Domain = field(default_factory=lambda: Domain(""))
    sign_time: int | None = None
    expire_time: int | None = None

    @property
    def algorithm(self) -> str:
        """a= as written, e.g. "rsa-sha256"."""
        return f"{self.algorithm_sign}-{self.algorithm_hash}"

    @property
    def canonicalization(self) -> str:
        return (
            ("relaxed" if self.header_relaxed else "simple")
            + "/"
            + ("relaxed" if self.body_relaxed else "simple")
        )

    @property
    def identity_domain(self) -> str:
        """The domain part of i=, lower case."""
        return self.identity.rpartition("@")[2].lower()


def _b64(tag: str, value: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError as e:
        raise SignatureError(f"{tag}= is not valid base64: {e}") from None


def _number(tag: str, value: str) -> int:
    # RFC 6376 section 3.5: 1*12DIGIT for t=/x=, 1*76DIGIT for l=.
    if not value.isdigit() or not value.isascii() or len(value) > 76:
        raise SignatureError(f"{tag}= must be a number, got {value!r}")
    return int(value)


def _qp_decode(value: str) -> str:
    """dkim-quoted-printable (RFC 6376 section 2.11): =XX hex escapes, FWS ignored."""
    s = "".join(value.split())
    out = bytearray()
    i = 0
    raw = s.encode("utf-8")
    while i < len(raw):
        if raw[i : i + 1] == b"=":
            try:
                out.append(int(raw[i + 1 : i + 3], 16))
            except ValueError:
                raise SignatureError(f"bad quoted-printable in {value!r}") from None
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", errors="replace")


def qp_encode(value: str) -> str:
    """dkim-quoted-printable encoding for i=: only ";", "=", whitespace, controls and non-ASCII are escaped."""
    out: list[str] = []
    for b in value.encode("utf-8"):
        if 0x21 <= b <= 0x7E and b not in (ord(";"), ord("=")):
            out.append(chr(b))
        else:
            out.append(f"={b:02X}")
    return "".join(out)


def _domain(tag: str, value: str) -> Domain:
    try:
        # Selectors and domains may contain underscores in practice.
        return parse_domain(value.strip().rstrip("."), lax=True)
    except DomainError as e:
        raise SignatureError(f"{tag}=: {e}") from None


def parse_signature(value: str) -> Signature:
    """Parse the value of a DKIM-Signature header field (everything after the colon).

    Raises:
        SignatureError: syntax error, a required tag is missing, or tags are inconsistent.
    """
    try:
        pairs = parse_tags(value)
    except RecordError as e:
        raise SignatureError(str(e)) from None
    tags = dict(pairs)
    # RFC 6376 section 6.1.1: v, a, b, bh, d, h, s are required.
    missing = [t for t in ("v", "a", "b", "bh", "d", "h", "s") if t not in tags]
    if missing:
        raise SignatureError("missing required tag(s): " + ", ".join(f"{t}=" for t in missing))
    sig = Signature()
    if tags["v"] != "1":
        raise SignatureError(f"unknown version v={tags['v']}")
    alg_sign, dash, alg_hash = tags["a"].lower().partition("-")
    if not dash:
        raise SignatureError(f"malformed algorithm a={tags['a']}")
    sig.algorithm_sign, sig.algorithm_hash = alg_sign, alg_hash
    sig.signature = _b64("b", tags["b"])
    sig.body_hash = _b64("bh", tags["bh"])
    c = tags.get("c", "simple/simple").lower()
    hc, _, bc = c.partition("/")
    bc = bc or "simple"
    if hc not in ("simple", "relaxed") or bc not in ("simple", "relaxed"):
        raise SignatureError(f"unknown canonicalization c={c}")
    sig.header_relaxed, sig.body_relaxed = hc == "relaxed", bc == "relaxed"
    sig.domain = _domain("d", tags["d"])
    sig.signed_headers = [h.strip() for h in tags["h"].split(":")]
    if any(not h for h in sig.signed_headers):
        raise SignatureError(f"empty header name in h={tags['h']}")
    sig.identity = _qp_decode(tags["i"]) if "i" in tags else "@" + sig.domain.ascii
    if "l" in tags:
        sig.length = _number("l", tags["l"])
    if "q" in tags:
        sig.query_methods = [q.strip().lower() for q in tags["q"].split(":")]
    sig.selector = _domain("s", tags["s"])
    if "t" in tags:
        sig.sign_time = _number("t", tags["t"])
    if "x" in tags:
        sig.expire_time = _number("x", tags["x"])
        # Section 3.5, x=: "the value of the "x=" tag MUST be greater than the value of the "t=" tag".
        if sig.sign_time is not None and sig.expire_time < sig.sign_time:
            raise SignatureError("x= (expiration) is before t= (signing time)")
    # Section 3.5, i=: the domain "MUST be the same as, or a subdomain of" d=.
    idom = sig.identity_domain
    d = sig.domain.ascii
    if "@" not in sig.identity or not (
        idom == d or idom.endswith("." + d) or idom == sig.domain.name.lower()
    ):
        raise SignatureError(f"i= {sig.identity!r} is not in (a subdomain of) d= {sig.domain.name}")
    return sig
