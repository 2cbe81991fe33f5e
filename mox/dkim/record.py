"""DKIM key records in DNS (RFC 6376 section 3.6.1, RFC 8463 for Ed25519).

Pure: parsing and writing the TXT record text, no I/O.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class RecordError(ValueError):
    """A TXT record is not a valid DKIM key record."""


@dataclass
class Record:
    """A parsed DKIM key record.

    Attributes:
        version: "DKIM1" (v=, optional but must be first when present).
        hashes: acceptable hash algorithms (h=), empty means any.
        key_type: "rsa" (default) or "ed25519" (k=, RFC 8463 section 4.2).
        notes: n=, for humans.
        public_key: base64-decoded p=; empty means the key is revoked.
        services: s=, "*" (default) or "email".
        flags: t=, "y" (testing) and/or "s" (i= domain must equal d=).
        key: the public key object, None when revoked.
    """

    version: str = "DKIM1"
    hashes: list[str] = field(default_factory=list)
    key_type: str = "rsa"
    notes: str = ""
    public_key: bytes = b""
    services: list[str] = field(default_factory=lambda: ["*"])
    flags: list[str] = field(default_factory=list)
    key: PublicKey | None = None

    def text(self) -> str:
        """The record as TXT record text, e.g. ``v=DKIM1; k=ed25519; p=...``."""
        parts = [f"v={self.version}"]
        if self.hashes:
            parts.append("h=" + ":".join(self.hashes))
        parts.append(f"k={self.key_type}")
        if self.services and self.services != ["*"]:
            parts.append("s=" + ":".join(self.services))
        if self.flags:
            parts.append("t=" + ":".join(self.flags))
        if self.notes:
            parts.append(f"n={self.notes}")
        parts.append("p=" + base64.b64encode(self.public_key).decode("ascii"))
        return "; ".join(parts)


def parse_tags(text: str) -> list[tuple[str, str]]:
    """Split a tag-list (RFC 6376 section 3.2) into (lower-case tag, value) pairs.

    Whitespace around tags and values is removed; values keep inner
    whitespace. A trailing ";" is allowed. Duplicate tags are an error.

    Raises:
        RecordError: syntax error or duplicate tag.
    """
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    items = text.split(";")
    if items and items[-1].strip() == "":
        items.pop()
    for item in items:
        tag, eq, value = item.partition("=")
        tag = tag.strip(" \t\r\n")
        if not eq or not tag:
            raise RecordError(f"malformed tag-spec {item.strip()!r}")
        if not all(c.isalnum() or c == "_" for c in tag) or not tag[0].isalpha():
            raise RecordError(f"invalid tag name {tag!r}")
        ltag = tag.lower()
        # RFC 6376 section 3.2: "Tags with duplicate names MUST NOT occur within a single tag-list".
        if ltag in seen:
            raise RecordError(f"duplicate tag {tag!r}")
        seen.add(ltag)
        pairs.append((ltag, value.strip(" \t\r\n")))
    return pairs


def _remove_fws(s: str) -> str:
    return "".join(s.split())


def load_public_key(key_type: str, data: bytes) -> PublicKey:
    """The public key from a record's p= bytes.

    RSA keys are SubjectPublicKeyInfo DER (RFC 6376 section 3.6.1), some
    publishers use a bare PKCS#1 RSAPublicKey, which is accepted too. Ed25519
    keys are the raw 32 bytes (RFC 8463 section 4.2).

    Raises:
        RecordError: the key cannot be parsed or is of the wrong type.
    """
    if key_type == "ed25519":
        if len(data) != 32:
            raise RecordError(f"ed25519 public key must be 32 bytes, got {len(data)}")
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    try:
        pub = serialization.load_der_public_key(data)
    except ValueError:
        try:
            pem = (
                b"-----BEGIN RSA PUBLIC KEY-----\n"
                + base64.encodebytes(data)
                + b"-----END RSA PUBLIC KEY-----\n"
            )
            pub = serialization.load_pem_public_key(pem)
        except ValueError as e:
            raise RecordError(f"cannot parse rsa public key: {e}") from None
    if not isinstance(pub, rsa.RSAPublicKey):
        raise RecordError(f"k=rsa but key is {type(pub).__name__}")
    return pub


def parse_record(text: str) -> tuple[Record, bool]:
    """Parse a DKIM key record (RFC 6376 section 3.6.1).

    Returns:
        The record, and whether the text claims to be a DKIM record (starts
        with v=DKIM1): a TXT record that does not is ignored by callers rather
        than an error (there may be other TXT records at the name).

    Raises:
        RecordError: syntax error. Whether that is a permanent error or the
            record is just not meant as DKIM is for :func:`claims_dkim` to say
            (section 6.1.2 step 6).
    """
    is_dkim = claims_dkim(text)
    pairs = parse_tags(text)
    r = Record()
    have_p = False
    for i, (tag, value) in enumerate(pairs):
        if tag == "v":
            # "v= ... MUST be the first tag in the record", value "DKIM1".
            if i != 0:
                raise RecordError("v= must be the first tag")
            if value != "DKIM1":
                raise RecordError(f"unknown version {value!r}")
            r.version = value
        elif tag == "h":
            r.hashes = [h.strip().lower() for h in value.split(":")]
        elif tag == "k":
            r.key_type = value.lower()
        elif tag == "n":
            r.notes = value
        elif tag == "p":
            have_p = True
            try:
                r.public_key = base64.b64decode(_remove_fws(value), validate=True)
            except ValueError as e:
                raise RecordError(f"p= is not valid base64: {e}") from None
        elif tag == "s":
            r.services = [s.strip().lower() for s in value.split(":")]
        elif tag == "t":
            r.flags = [f.strip().lower() for f in value.split(":")]
        # Unrecognized tags MUST be ignored (section 3.6.1).
    if not have_p:
        raise RecordError("missing required p= tag")
    if r.key_type not in ("rsa", "ed25519"):
        raise RecordError(f"unknown key type k={r.key_type}")
    if r.public_key:
        r.key = load_public_key(r.key_type, r.public_key)
    return r, is_dkim


def claims_dkim(text: str) -> bool:
    """Whether a TXT record starts with v=DKIM1 (whitespace around "=" allowed)."""
    tag, _, rest = text.partition("=")
    return tag.strip().lower() == "v" and rest.strip().startswith("DKIM1")


def record_for_key(key: PrivateKey | PublicKey, hashes: list[str] | None = None) -> Record:
    """A record publishing the public part of key."""
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) else key
    if isinstance(pub, ed25519.Ed25519PublicKey):
        data = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key_type = "ed25519"
    else:
        data = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        key_type = "rsa"
    return Record(hashes=list(hashes or []), key_type=key_type, public_key=data, key=pub)


def txt_record(key: PrivateKey | PublicKey, hashes: list[str] | None = None) -> str:
    """The DNS TXT record text for key, ``v=DKIM1; k=rsa; p=...``, for ``<selector>._domainkey.<domain>``.

    An RSA 2048 record is longer than 255 bytes: publish it as several
    character-strings of one TXT record, which are concatenated (section 3.6.2.2).
    """
    return record_for_key(key, hashes).text()
