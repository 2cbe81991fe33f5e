"""DKIM signing (RFC 6376 sections 3.5 and 5, RFC 8463 for Ed25519).

Signing parameters come from the config's selectors (``mox.config.model.Selector``,
whose key config validation has loaded): :func:`selector_from_config` turns
one into a :class:`SignSelector`. :func:`sign` returns the DKIM-Signature
header lines to prepend to the message. It is CPU work: use :func:`sign_async`
from the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from mox.dkim.canon import body_hash, header_hash, split_message
from mox.dkim.record import PrivateKey
from mox.dkim.signature import qp_encode
from mox.dns import Domain

# Default header fields to sign, as upstream mox's config default.
DEFAULT_HEADERS = [
    "From", "To", "Cc", "Bcc", "Reply-To", "References", "In-Reply-To", "Subject", "Date", "Message-Id",
    "Content-Type",
]  # fmt: skip

# Folding width for the DKIM-Signature header (RFC 5322 section 2.1.1: SHOULD
# be no more than 78 characters).
LINE_WIDTH = 78


class SignError(ValueError):
    """The message cannot be signed (e.g. not exactly one From header)."""


@dataclass
class SignSelector:
    """One selector to sign with.

    Attributes:
        selector: the s= name.
        key: RSA or Ed25519 private key.
        hash: "sha256" (or "sha1", RSA only).
        headers: header field names to sign (h=), From required.
        seal_headers: "oversign": list each header once more than it occurs,
            so another instance cannot be added (section 5.4.2).
        header_relaxed, body_relaxed: canonicalization (c=).
        expiration_seconds: when > 0, an x= this long after t=.
    """

    selector: Domain
    key: PrivateKey
    hash: str = "sha256"
    headers: list[str] = field(default_factory=lambda: list(DEFAULT_HEADERS))
    seal_headers: bool = True
    header_relaxed: bool = True
    body_relaxed: bool = True
    expiration_seconds: int = 0


def selector_from_config(sel: Any) -> SignSelector:
    """A SignSelector from a validated ``mox.config.model.Selector`` (derived fields set).

    Raises:
        SignError: the selector's key was not loaded.
    """
    if not isinstance(sel.Key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise SignError("selector has no loaded private key")
    return SignSelector(
        selector=sel.Domain,
        key=sel.Key,
        hash=sel.HashEffective or "sha256",
        headers=list(sel.HeadersEffective or DEFAULT_HEADERS),
        seal_headers=not sel.DontSealHeaders,
        header_relaxed=sel.Canonicalization.HeaderRelaxed,
        body_relaxed=sel.Canonicalization.BodyRelaxed,
        expiration_seconds=sel.ExpirationSeconds,
    )


def _fold(name: str, tags: list[str]) -> str:
    """Fold "name: tag; tag; ...; b=" at LINE_WIDTH between tags, and inside h= between names.

    RFC 6376 section 3.5 allows FWS around the ":" of h=, and section 3.2
    around tags; FWS inside b= is handled by :func:`_fold_value`.
    """
    lines: list[str] = []
    line = name + ":"
    for i, t in enumerate(tags):
        end = ";" if i < len(tags) - 1 else ""
        if t.startswith("h="):
            names = t[2:].split(":")
            pieces = ["h=" + names[0]] + [":" + n for n in names[1:]]
        else:
            pieces = [t]
        pieces[-1] += end
        for j, piece in enumerate(pieces):
            sep = " " if j == 0 else ""
            if len(line) + len(sep) + len(piece) > LINE_WIDTH and line.strip():
                lines.append(line)
                line = "\t" + piece
            else:
                line += sep + piece
    lines.append(line)
    return "\r\n".join(lines)


def _fold_value(prefix: str, value: str) -> str:
    """Append value to the last line of prefix, wrapping with FWS at LINE_WIDTH."""
    last = len(prefix) - (prefix.rfind("\n") + 1)
    out = [prefix]
    while value:
        room = max(LINE_WIDTH - last, 16)
        out.append(value[:room])
        value = value[room:]
        if value:
            out.append("\r\n\t")
            last = 1
    return "".join(out)


def sign(
    message: bytes,
    domain: Domain,
    selectors: list[SignSelector],
    *,
    localpart: str = "",
    now: float | None = None,
) -> str:
    """DKIM-Signature header lines for message, one per selector, each ending in CRLF.

    Args:
        message: the message as it will be sent, CRLF line endings.
        domain: the signing domain (d=).
        selectors: what to sign with.
        localpart: when set, i= is localpart@domain (the sender), else i= is left out.
        now: Unix time for t= (tests); the current time when None.

    Raises:
        SignError: the message does not have exactly one From header.
    """
    msg = split_message(message)
    # RFC 6376 section 5.4: From MUST be signed; RFC 5322 section 3.6: exactly one From.
    if msg.count("From") != 1:
        raise SignError(f"message has {msg.count('From')} from headers, need exactly 1")
    t = int(time.time() if now is None else now)
    out: list[str] = []
    body_hashes: dict[tuple[str, bool], bytes] = {}
    for sel in selectors:
        alg_sign = "ed25519" if isinstance(sel.key, ed25519.Ed25519PrivateKey) else "rsa"
        if alg_sign == "ed25519" and sel.hash != "sha256":
            raise SignError("ed25519 keys only sign with sha256 (RFC 8463 section 3)")
        headers = list(sel.headers)
        if not any(h.lower() == "from" for h in headers):
            raise SignError("the From header must be signed")
        if sel.seal_headers:
            # Section 5.4.2: each listed name signs the next instance from the
            # bottom; listing a name once more than it occurs signs "no
            # instance", so one cannot be added without breaking the signature.
            for h in sel.headers:
                headers.extend([h] * msg.count(h))
        key = (sel.hash, sel.body_relaxed)
        if key not in body_hashes:
            bh = body_hash(msg, sel.hash, sel.body_relaxed)
            assert bh is not None  # Only None with a length.
            body_hashes[key] = bh
        c = (
            ("relaxed" if sel.header_relaxed else "simple")
            + "/"
            + ("relaxed" if sel.body_relaxed else "simple")
        )
        tags = [
            "v=1",
            f"a={alg_sign}-{sel.hash}",
            # A-labels always, as upstream: every verifier understands them.
            f"d={domain.ascii}",
            f"s={sel.selector.ascii}",
        ]
        if localpart:
            # dkim-quoted-printable keeps a UTF-8 local part (RFC 6531) within ASCII.
            tags.append("i=" + qp_encode(f"{localpart}@{domain.ascii}"))
        tags += [f"c={c}", f"t={t}"]
        if sel.expiration_seconds > 0:
            tags.append(f"x={t + sel.expiration_seconds}")
        tags.append("h=" + ":".join(headers))
        tags.append("bh=" + base64.b64encode(body_hashes[key]).decode("ascii"))
        tags.append("b=")
        text = _fold("DKIM-Signature", tags)
        name, _, value = text.partition(":")
        digest = header_hash(
            msg, sel.hash, sel.header_relaxed, headers, (name.encode(), value.encode("utf-8"))
        )
        if isinstance(sel.key, ed25519.Ed25519PrivateKey):
            # RFC 8463 section 3: sign the SHA-256 hash of the canonicalized header data.
            sig = sel.key.sign(digest)
        else:
            alg: hashes.HashAlgorithm = hashes.SHA256() if sel.hash == "sha256" else hashes.SHA1()
            sig = sel.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(alg))
        out.append(_fold_value(text, base64.b64encode(sig).decode("ascii")) + "\r\n")
    return "".join(out)


async def sign_async(
    message: bytes,
    domain: Domain,
    selectors: list[SignSelector],
    *,
    localpart: str = "",
    now: float | None = None,
) -> str:
    """:func:`sign`, run off the event loop."""
    return await asyncio.to_thread(sign, message, domain, selectors, localpart=localpart, now=now)
