"""Message splitting and the DKIM hashes (RFC 6376 sections 3.4 and 3.7), over dkimpy.

dkimpy (``dkim`` package) supplies the canonicalization algorithms and the
header selection and hashing; this module gives them types and one place for
its exceptions. Pure and CPU-bound: callers run it off the event loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import dkim
from dkim.canonicalization import (
    CanonicalizationPolicy,
    InvalidCanonicalizationPolicyError,
)


class MessageError(ValueError):
    """The message header cannot be parsed."""


@dataclass
class Message:
    """A message split into header fields and body.

    headers: (name, value) pairs in message order; value is everything after
    the colon, including folding and the final CRLF, as RFC 6376's "simple"
    header canonicalization needs.
    """

    headers: list[tuple[bytes, bytes]]
    body: bytes

    def count(self, name: str) -> int:
        lname = name.lower().encode("ascii")
        return sum(1 for n, _ in self.headers if n.lower() == lname)


def split_message(data: bytes) -> Message:
    """Split a message (CRLF or bare LF line endings) into header fields and body.

    Raises:
        MessageError: a header line is neither a field nor a continuation.
    """
    # dkimpy's parser fails with IndexError on a continuation line before any
    # field (found by hypothesis), so that case is checked here first.
    if data[:1] in (b" ", b"\t"):
        raise MessageError("message starts with a continuation line")
    try:
        headers, body = dkim.rfc822_parse(data)
    except dkim.MessageFormatError as e:
        raise MessageError(str(e)) from None
    except IndexError:
        # The same after an mbox "From " line, which dkimpy skips.
        raise MessageError("continuation line without header field") from None
    return Message([(bytes(n), bytes(v)) for n, v in headers], body)


def policy(header_relaxed: bool, body_relaxed: bool) -> Any:
    """A dkimpy canonicalization policy."""
    c = ("relaxed" if header_relaxed else "simple") + "/" + ("relaxed" if body_relaxed else "simple")
    try:
        return CanonicalizationPolicy.from_c_value(c.encode("ascii"))
    except InvalidCanonicalizationPolicyError as e:  # pragma: no cover - both values are known
        raise ValueError(str(e)) from None


HASHES = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}


def body_hash(msg: Message, hash_name: str, body_relaxed: bool, length: int | None = None) -> bytes | None:
    """The body hash, bh= (RFC 6376 section 3.7, step 1).

    length: l=, hash only that many octets of the canonicalized body. Returns
    None when the body is shorter than that (section 6.1.3: the signature
    then cannot verify).
    """
    canon = policy(False, body_relaxed)
    body = canon.canonicalize_body(msg.body)
    if length is not None:
        if length > len(body):
            return None
        body = body[:length]
    h = HASHES[hash_name]()
    h.update(body)
    return h.digest()


def header_hash(
    msg: Message,
    hash_name: str,
    header_relaxed: bool,
    signed: list[str],
    sig_header: tuple[bytes, bytes],
) -> bytes:
    """The data hash over the signed header fields and the DKIM-Signature itself (section 3.7, step 2).

    signed: h= names; each occurrence picks the next instance from the bottom
    (section 5.4.2); a name without (further) instances adds nothing, which
    is how "oversigning" prevents additions.
    sig_header: (name, value) of the DKIM-Signature field; its b= value is
    removed before hashing and it is hashed without its final CRLF.
    """
    canon = policy(header_relaxed, False)
    h = HASHES[hash_name]()
    include = [n.strip().lower().encode("utf-8") for n in signed]
    headers = canon.canonicalize_headers([[n, v] for n, v in msg.headers])
    dkim.hash_headers(h, canon, headers, include, sig_header, {})
    return h.digest()
