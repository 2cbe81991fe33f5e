"""DKIM signature verification (RFC 6376 section 6, RFC 8301, RFC 8463).

How the work is split, and why:

1. Off the event loop (``asyncio.to_thread``): split the message, parse each
   DKIM-Signature, check its parameters and the local policy.
2. On the loop: look up every distinct ``<selector>._domainkey.<domain>`` key
   record through *our* async resolver (``mox.dns``), concurrently.
3. Off the loop: hash and verify, with the records fetched in step 2.

So DNS is never done from a worker thread and never through dkimpy's own
``dnsfunc`` (which would need a synchronous lookup on the loop's resolver):
prefetching keeps all I/O on the loop and all CPU work off it, and lets us
tell NXDOMAIN (permerror) from SERVFAIL (temperror), which dkimpy's
``dnsfunc`` interface cannot express. dkimpy supplies canonicalization and
header hashing (:mod:`mox.dkim.canon`); the signature crypto is done with
``cryptography`` directly (dkimpy needs PyNaCl for Ed25519, which we do not
depend on).

Decisions as upstream mox:

- Signatures with l= (body length) get status "policy": a partially signed
  body invites appended content (RFC 6376 section 8.2).
- Signatures must cover Subject ("policy" otherwise) and From (permerror).
- A signing domain that is a public suffix is a permerror.
- A missing key record is a permerror (section 6.1.2), several valid records
  a temperror, a record in testing mode (t=y) turns a non-pass into "none".
- RSA keys under 1024 bits are a permerror (RFC 8301 section 3.2); rsa-sha1 is
  still verified (RFC 8301 section 3.1 deprecates it; upstream accepts it).

Limits against abuse: at most :data:`MAX_SIGNATURES` signatures per message
are verified; each takes a DNS lookup and public-key operations.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from mox import publicsuffix
from mox.dkim.canon import Message, MessageError, body_hash, header_hash, split_message
from mox.dkim.record import Record, RecordError, claims_dkim, parse_record
from mox.dkim.signature import HASH_ALGORITHMS, SIGN_ALGORITHMS, Signature, SignatureError, parse_signature
from mox.dns import DNSError, Domain, NotFound, Resolver, default_resolver

log = logging.getLogger("mox.dkim")

# Signatures verified per message; more are reported as "policy" without
# lookups. Legitimate mail carries one to three (author domain, ESP, list).
MAX_SIGNATURES = 10
# RFC 8301 section 3.2: verifiers MUST NOT consider keys under 1024 bits valid.
MIN_RSA_BITS = 1024
# RFC 8301 section 3.2: verifiers MUST handle keys of 1024 to 4096 bits. Larger
# keys are refused so a hostile record cannot make verification expensive.
MAX_RSA_BITS = 8192


class Status(enum.StrEnum):
    """RFC 8601 section 2.7.1 dkim results."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"
    POLICY = "policy"
    NEUTRAL = "neutral"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass
class Result:
    """The outcome for one DKIM-Signature.

    Attributes:
        status: the result.
        sig: the parsed signature, None when it could not be parsed.
        record: the key record used, when one was found.
        record_authentic: whether the key record lookup was DNSSEC-validated.
        error: why the status is not pass ("" when it is).
    """

    status: Status
    sig: Signature | None = None
    record: Record | None = None
    record_authentic: bool = False
    error: str = ""

    @property
    def domain(self) -> Domain | None:
        return self.sig.domain if self.sig else None

    @property
    def selector(self) -> Domain | None:
        return self.sig.selector if self.sig else None

    @property
    def algorithm(self) -> str:
        return self.sig.algorithm if self.sig else ""


Policy = Callable[[Signature], str]
"""Local acceptance policy: returns "" to accept a signature, else the reason."""


def default_policy(sig: Signature) -> str:
    """Upstream mox's policy: no l=, and Subject must be signed."""
    # RFC 6376 section 8.2: l= lets anyone append content.
    if sig.length is not None:
        return "l= for length not acceptable"
    # Section 5.4 recommends signing Subject; From is checked separately.
    if not any(h.lower() == "subject" for h in sig.signed_headers):
        return "required header field subject not signed"
    return ""


@dataclass
class _Pending:
    index: int
    header: tuple[bytes, bytes]
    sig: Signature


@dataclass
class _Prepared:
    msg: Message | None
    results: list[Result | None] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)


def _check_params(sig: Signature, now: int) -> str:
    """Parameter checks that need no key record; "" when fine, else the permerror reason."""
    # Section 5.4: "The From header field MUST be signed".
    if not any(h.lower() == "from" for h in sig.signed_headers):
        return 'required header field "from" not signed'
    if sig.algorithm_sign not in SIGN_ALGORITHMS:
        return f"unknown signature algorithm {sig.algorithm_sign!r}"
    if sig.algorithm_hash not in HASH_ALGORITHMS:
        return f"unknown hash algorithm {sig.algorithm_hash!r}"
    if sig.algorithm_sign == "ed25519" and sig.algorithm_hash != "sha256":
        # RFC 8463 section 3: only ed25519-sha256 is defined.
        return "ed25519 is only defined with sha256"
    # Section 6.1.1: "Verifiers MAY ignore the DKIM-Signature header field if the signature has expired".
    if sig.expire_time is not None and sig.expire_time < now:
        return f"signature expired at {sig.expire_time}"
    # Section 3.5, q=: only dns/txt exists.
    if sig.query_methods and "dns/txt" not in sig.query_methods:
        return "no recognized query method, need dns/txt"
    # Section 6.1.1 / 8.x: refuse a d= that is a public suffix: "x.<d>" then
    # being its own organizational domain shows d= is above the org domain.
    sub = Domain("x." + sig.domain.ascii)
    if publicsuffix.lookup(sub) == sub:
        return f"signing domain {sig.domain.name} is a public suffix"
    return ""


def _prepare(data: bytes, policy: Policy, now: int) -> _Prepared:
    try:
        msg = split_message(data)
    except MessageError as e:
        # Not a parsable message: one permerror if there is anything that looks signed.
        if b"dkim-signature" in data[:65536].lower():
            return _Prepared(None, [Result(Status.PERMERROR, error=f"malformed message header: {e}")])
        return _Prepared(None)
    p = _Prepared(msg)
    sigs = [(n, v) for n, v in msg.headers if n.lower() == b"dkim-signature"]
    for i, (name, value) in enumerate(sigs):
        if i >= MAX_SIGNATURES:
            p.results.append(
                Result(Status.POLICY, error=f"more than {MAX_SIGNATURES} signatures, not verified")
            )
            continue
        try:
            sig = parse_signature(value.decode("utf-8", errors="replace"))
        except SignatureError as e:
            # Section 6.1.1: a malformed signature is a permerror.
            p.results.append(Result(Status.PERMERROR, error=f"parsing DKIM-Signature: {e}"))
            continue
        reason = _check_params(sig, now)
        if reason:
            p.results.append(Result(Status.PERMERROR, sig, error=reason))
            continue
        reason = policy(sig)
        if reason:
            p.results.append(Result(Status.POLICY, sig, error=f"signature rejected by policy: {reason}"))
            continue
        p.results.append(None)
        p.pending.append(_Pending(i, (name, value), sig))
    return p


# How far _may_be_signed looks for the end of the header section.
_HEADER_SCAN_MAX = 1 << 20


def _may_be_signed(data: bytes) -> bool:
    """Whether data mentions DKIM-Signature (any case) where :func:`_prepare` would look:
    the header section, or the first 64 KiB of a message that does not parse. False means
    _prepare finds nothing."""
    lim = min(len(data), _HEADER_SCAN_MAX)
    crlf = data.find(b"\n\r\n", 0, lim)
    lf = data.find(b"\n\n", 0, crlf if crlf >= 0 else lim)
    end = lf if lf >= 0 else crlf
    if end < 0:
        if len(data) > lim:
            return True  # no end of header in sight: let _prepare decide
        end = len(data)
    return b"dkim-signature" in data[: max(end, 65536)].lower()


@dataclass
class KeyLookup:
    """A key record lookup: status PASS with the record, or the error status and why."""

    status: Status
    record: Record | None
    authentic: bool
    error: str


async def lookup_record(resolver: Resolver, selector: Domain, domain: Domain) -> KeyLookup:
    """Fetch and parse the key record at ``<selector>._domainkey.<domain>`` (section 3.6.2.1)."""
    name = f"{selector.ascii}._domainkey.{domain.ascii}"
    try:
        res = await resolver.lookup_txt(name)
    except NotFound as e:
        # Section 6.1.2 step 3: no key record is PERMFAIL.
        return KeyLookup(Status.PERMERROR, None, e.authentic, f"no dkim dns record at {name}")
    except DNSError as e:
        return KeyLookup(Status.TEMPERROR, None, False, f"lookup of dkim dns record: {e}")
    record: Record | None = None
    status, error = Status.TEMPERROR, f"no dkim dns record at {name}"
    for txt in res.records:
        try:
            r, _ = parse_record(txt)
        except RecordError as e:
            if claims_dkim(txt):
                # Section 6.1.2 step 6: an unparsable record is PERMFAIL.
                return KeyLookup(
                    Status.PERMERROR, None, res.authentic, f"syntax error in dkim dns record: {e}"
                )
            # Not a DKIM record at all: ignore it, but if nothing else is found
            # say temperror, the publisher may be fixing it.
            error = f"not a dkim record at {name}: {e}"
            continue
        if record is not None:
            # Several valid records: ambiguous, perhaps a key rollover in progress.
            return KeyLookup(Status.TEMPERROR, None, res.authentic, f"multiple dkim dns records at {name}")
        record = r
    if record is None:
        return KeyLookup(status, None, res.authentic, error)
    return KeyLookup(Status.PASS, record, res.authentic, "")


def _check_record(sig: Signature, r: Record) -> tuple[Status, str]:
    if r.key is None:
        # Section 3.6.1, p=: "An empty value means that this public key has been revoked."
        return Status.PERMERROR, "key has been revoked"
    if r.hashes and sig.algorithm_hash not in r.hashes:
        return Status.PERMERROR, f"hash algorithm {sig.algorithm_hash} not allowed by dns record"
    if r.key_type != sig.algorithm_sign:
        return (
            Status.PERMERROR,
            f"signature algorithm {sig.algorithm_sign} does not match dns record k={r.key_type}",
        )
    if "*" not in r.services and "email" not in r.services:
        return Status.PERMERROR, "dns record not allowed for use with email"
    # Section 3.6.1, t=s: i= domain must equal d=, no subdomains.
    if "s" in r.flags and sig.identity_domain not in (sig.domain.ascii, sig.domain.name.lower()):
        return Status.PERMERROR, "dns record disallows mismatch of d= and i= domains"
    if isinstance(r.key, rsa.RSAPublicKey) and r.key.key_size < MIN_RSA_BITS:
        return Status.PERMERROR, f"key is too weak, need at least {MIN_RSA_BITS} bits, got {r.key.key_size}"
    if isinstance(r.key, rsa.RSAPublicKey) and r.key.key_size > MAX_RSA_BITS:
        return Status.PERMERROR, f"key is too large, at most {MAX_RSA_BITS} bits, got {r.key.key_size}"
    return Status.PASS, ""


def verify_crypto(msg: Message, header: tuple[bytes, bytes], sig: Signature, r: Record) -> tuple[Status, str]:
    """Check a signature against a key record: body hash, then signature (section 6.1.3)."""
    status, reason = _check_record(sig, r)
    if status != Status.PASS:
        return status, reason
    # l= only gets here when the local policy accepts it (the default does not).
    bh = body_hash(msg, sig.algorithm_hash, sig.body_relaxed, sig.length)
    if bh is None:
        return Status.FAIL, f"body shorter than l={sig.length}"
    if bh != sig.body_hash:
        return Status.FAIL, "body hash does not match"
    digest = header_hash(msg, sig.algorithm_hash, sig.header_relaxed, sig.signed_headers, header)
    try:
        if isinstance(r.key, ed25519.Ed25519PublicKey):
            # RFC 8463 section 3: Ed25519 signs the SHA-256 hash of the header data.
            r.key.verify(sig.signature, digest)
        elif isinstance(r.key, rsa.RSAPublicKey):
            alg: hashes.HashAlgorithm = hashes.SHA256() if sig.algorithm_hash == "sha256" else hashes.SHA1()
            r.key.verify(sig.signature, digest, padding.PKCS1v15(), utils.Prehashed(alg))
        else:  # pragma: no cover - record parsing only makes these two
            return Status.PERMERROR, "unknown key type"
    except InvalidSignature:
        return Status.FAIL, "signature verification failed"
    return Status.PASS, ""


def _verify_all(prep: _Prepared, records: dict[tuple[str, str], KeyLookup], ignore_test_mode: bool) -> None:
    assert prep.msg is not None
    for pend in prep.pending:
        sig = pend.sig
        lk = records[(sig.selector.ascii, sig.domain.ascii)]
        if lk.record is None:
            prep.results[pend.index] = Result(lk.status, sig, None, lk.authentic, lk.error)
            continue
        status, reason = verify_crypto(prep.msg, pend.header, sig, lk.record)
        # Section 3.6.1, t=y: the domain is testing; results must not be relied on.
        if not ignore_test_mode and "y" in lk.record.flags and status != Status.PASS:
            status = Status.NONE
        prep.results[pend.index] = Result(status, sig, lk.record, lk.authentic, reason)


async def verify(
    message: bytes,
    resolver: Resolver | None = None,
    *,
    policy: Policy = default_policy,
    ignore_test_mode: bool = False,
    now: float | None = None,
) -> list[Result]:
    """Verify every DKIM-Signature in message (RFC 6376 section 6).

    Args:
        message: the whole message, CRLF (or LF) line endings.
        resolver: for key records; the default resolver when None.
        policy: local acceptance policy for signatures, see :func:`default_policy`.
        ignore_test_mode: report the real status for keys in testing mode (t=y).
        now: Unix time for expiration checks (tests); the current time when None.

    Returns:
        One result per DKIM-Signature, in message order; empty for an unsigned message.
    """
    if not _may_be_signed(message):
        # Most incoming mail: nothing to verify, and no need to hand the message to a thread.
        return []
    r = resolver or default_resolver()
    t = int(time.time() if now is None else now)
    prep = await asyncio.to_thread(_prepare, message, policy, t)
    keys = {(p.sig.selector.ascii, p.sig.domain.ascii): p.sig for p in prep.pending}
    found = await asyncio.gather(*(lookup_record(r, s.selector, s.domain) for s in keys.values()))
    records = dict(zip(keys, found, strict=True))
    if prep.pending:
        await asyncio.to_thread(_verify_all, prep, records, ignore_test_mode)
    results = [x for x in prep.results if x is not None]
    for res in results:
        log.debug(
            "dkim verify result status=%s domain=%s selector=%s error=%s",
            res.status,
            res.domain.ascii if res.domain else "",
            res.selector.ascii if res.selector else "",
            res.error,
        )
    return results
