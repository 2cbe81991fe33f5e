"""The TLSRPT DNS TXT record at ``_smtp._tls.<policy-domain>`` (RFC 8460 section 3).

Example: ``v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://example.com/tlsrpt``.
Pure parsing here; :func:`mox.tlsrpt.lookup` does the DNS query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

VERSION = "TLSRPTv1"


class RecordError(ValueError):
    """A TLSRPT record that does not follow the grammar of RFC 8460 section 3."""


@dataclass
class Extension:
    key: str
    value: str


@dataclass
class Record:
    """A parsed TLSRPT record.

    ``ruas`` keeps the grouping of the record: ``rua=`` may appear more than
    once (section 3 "tlsrpt-rua" is repeatable in practice), each a comma-separated
    list. URIs are kept as written, with ``%2C``/``%21``/``%3B`` still encoded.
    """

    ruas: list[list[str]] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)
    version: str = VERSION

    def addresses(self) -> list[str]:
        """All reporting URIs, flattened, with the percent-encoded delimiters decoded."""
        return [decode_uri(u) for group in self.ruas for u in group]

    def __str__(self) -> str:
        parts = [f"v={self.version}"]
        parts += ["rua=" + ",".join(g) for g in self.ruas]
        parts += [f"{e.key}={e.value}" for e in self.extensions]
        return "; ".join(parts)


def decode_uri(uri: str) -> str:
    """Decode the characters RFC 8460 section 3 requires encoded in a rua URI (",", "!", ";")."""
    return re.sub(r"%(2[cC]|21|3[bB])", lambda m: unquote(m.group(0)), uri)


def encode_uri(uri: str) -> str:
    """Encode ",", "!" and ";" in a URI for inclusion in a record (section 3)."""
    return uri.replace(",", "%2C").replace("!", "%21").replace(";", "%3B")


# Section 3: tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
# tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) : visible chars except ";" and "="
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
# A URI of the rua list: up to ",", "!", ";" or whitespace (section 3, "tlsrpt-uri").
_URI = re.compile(r"[^,!;\s]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_WSP = re.compile(r"[ \t]*")


def parse_record(txt: str) -> tuple[Record | None, bool]:
    """Parse a TLSRPT TXT record (RFC 8460 section 3).

    Returns (record, is_tlsrpt). is_tlsrpt is False (and record None) when the
    text does not start with ``v=TLSRPTv1;``: such TXT records are not TLSRPT
    records and are ignored by a lookup. Raises :class:`RecordError` when it
    does start so but is malformed, or has no ``rua``.
    """
    prefix = f"v={VERSION}"
    if not txt.startswith(prefix):
        return None, False
    o = len(prefix)
    m = re.compile(r"[ \t]*;[ \t]*").match(txt, o)
    if m is None:
        return None, False
    o = m.end()
    rec = Record()
    while o < len(txt):
        km = _EXT_NAME.match(txt, o)
        if km is None:
            raise RecordError(f"expected a field name at offset {o} in {txt!r}")
        key = km.group(0)
        o = km.end()
        if not txt.startswith("=", o):
            raise RecordError(f"expected '=' after {key!r} in {txt!r}")
        o += 1
        if key == "rua":
            group: list[str] = []
            while True:
                o = _WSP.match(txt, o).end()  # type: ignore[union-attr]
                um = _URI.match(txt, o)
                if um is None:
                    raise RecordError(f"expected a URI in rua at offset {o} in {txt!r}")
                uri = um.group(0)
                if _SCHEME.match(uri) is None:
                    raise RecordError(f"rua URI {uri!r} has no scheme")
                group.append(uri)
                o = _WSP.match(txt, um.end()).end()  # type: ignore[union-attr]
                if not txt.startswith(",", o):
                    break
                o += 1
            rec.ruas.append(group)
        else:
            vm = _EXT_VALUE.match(txt, o)
            if vm is None:
                raise RecordError(f"expected a value for {key!r} in {txt!r}")
            rec.extensions.append(Extension(key, vm.group(0)))
            o = vm.end()
        # Section 3: fields separated by ";" with optional whitespace; a trailing ";" is allowed.
        dm = re.compile(r"[ \t]*;[ \t]*").match(txt, o)
        if dm is None:
            break
        o = dm.end()
    if o != len(txt):
        raise RecordError(f"leftover text {txt[o:]!r} in record")
    if not rec.ruas:
        raise RecordError("record has no rua")
    return rec, True
