"""DANE for SMTP: TLSA lookup and certificate verification (RFC 6698, RFC 7671, RFC 7672).

See the package documentation in :mod:`mox.dane` for the API overview.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PrivateKeyTypes
from cryptography.x509 import verification as pkixverify

from mox import mlog
from mox.dane.x509util import (
    DERError,
    cert_matches_host,
    is_ca,
    raw_spki,
    valid_at,
    verify_signature,
)
from mox.dns import TLSA, DNSError, Domain, Name, NotFound, Resolver, TemporaryError, tlsa_name

log = mlog.new("dane")


class Usage(enum.IntEnum):
    """TLSA certificate usage, RFC 6698 section 2.1.1, names from RFC 7218."""

    PKIX_TA = 0
    PKIX_EE = 1
    DANE_TA = 2
    DANE_EE = 3


class Selector(enum.IntEnum):
    """TLSA selector, RFC 6698 section 2.1.2."""

    CERT = 0
    SPKI = 1


class MatchType(enum.IntEnum):
    """TLSA matching type, RFC 6698 section 2.1.3."""

    FULL = 0
    SHA256 = 1
    SHA512 = 2


# Names accepted on the command line, as upstream: "dane-ee" or "3", etc.
USAGE_NAMES = {"pkix-ta": Usage.PKIX_TA, "pkix-ee": Usage.PKIX_EE, "dane-ta": Usage.DANE_TA, "dane-ee": Usage.DANE_EE}
SELECTOR_NAMES = {"cert": Selector.CERT, "spki": Selector.SPKI}
MATCHTYPE_NAMES = {"full": MatchType.FULL, "sha2-256": MatchType.SHA256, "sha2-512": MatchType.SHA512}

# Usages usable with SMTP: PKIX-TA(0) and PKIX-EE(1) are "unusable" for SMTP,
# RFC 7672 section 3.1.3.
SMTP_USAGES: frozenset[int] = frozenset({Usage.DANE_TA, Usage.DANE_EE})

# RFC 8460 section 4.3 result types that DANE produces.
RESULT_TLSA_INVALID = "tlsa-invalid"
RESULT_DNSSEC_INVALID = "dnssec-invalid"
RESULT_DANE_REQUIRED = "dane-required"
RESULT_VALIDATION_FAILURE = "validation-failure"
RESULT_CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
RESULT_CERTIFICATE_EXPIRED = "certificate-expired"
RESULT_CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"

# Public keys that can sign certificates.
_SIGNING_KEYS = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    dsa.DSAPublicKey,
)

# Longest chain from leaf to trust anchor we try to build for DANE-TA.
MAX_CHAIN_DEPTH = 8


def record_text(r: TLSA) -> str:
    """Zone-file presentation of a TLSA record's data: ``3 1 1 <hex>``."""
    return f"{r.usage} {r.selector} {r.matching_type} {r.data.hex()}"


def record_description(r: TLSA) -> str:
    """Human-readable record, e.g. ``dane-ee spki sha2-256 <hex>``."""

    def name(table: Mapping[str, int], v: int) -> str:
        return next((k for k, x in table.items() if x == v), str(v))

    return (
        f"{name(USAGE_NAMES, r.usage)} {name(SELECTOR_NAMES, r.selector)} "
        f"{name(MATCHTYPE_NAMES, r.matching_type)} {r.data.hex()}"
    )


def unusable_reason(r: TLSA, usages: Iterable[int] = SMTP_USAGES) -> str:
    """Why a record cannot be used, or "" when it can.

    Unusable records have unknown or not allowed parameters or malformed data
    (RFC 6698 section 4.1, RFC 7672 section 2.2 and 3.1.3).
    """
    if r.usage not in set(usages):
        if r.usage in (Usage.PKIX_TA, Usage.PKIX_EE):
            return f"usage {r.usage} (pkix) not usable here"
        return f"unknown usage {r.usage}"
    if r.selector not in (Selector.CERT, Selector.SPKI):
        return f"unknown selector {r.selector}"
    if r.matching_type == MatchType.FULL:
        try:
            if r.selector == Selector.CERT:
                x509.load_der_x509_certificate(r.data)
            else:
                serialization.load_der_public_key(r.data)
        except (ValueError, TypeError) as e:
            return f"malformed full data: {e}"
    elif r.matching_type == MatchType.SHA256:
        if len(r.data) != 32:
            return f"sha2-256 data is {len(r.data)} bytes, expected 32"
    elif r.matching_type == MatchType.SHA512:
        if len(r.data) != 64:
            return f"sha2-512 data is {len(r.data)} bytes, expected 64"
    else:
        return f"unknown matching type {r.matching_type}"
    return ""


def usable_records(records: Iterable[TLSA], usages: Iterable[int] = SMTP_USAGES) -> list[TLSA]:
    """The records that can be used for verification (see unusable_reason)."""
    allowed = set(usages)
    return [r for r in records if unusable_reason(r, allowed) == ""]


# TLSA lookup.


class TLSAStatus(enum.StrEnum):
    """Outcome of a TLSA lookup for an SMTP server (RFC 7672 section 2.2)."""

    NONE = "none"
    """Authenticated denial of existence: the host does not do DANE."""
    INSECURE = "insecure"
    """Records or denial not DNSSEC-validated: ignore them, deliver as without DANE."""
    USABLE = "usable"
    """Usable records: TLS is required and must verify against ``records``."""
    UNUSABLE = "unusable"
    """Records exist but none is usable: TLS is required, without authentication."""
    ERROR = "error"
    """The lookup failed (e.g. SERVFAIL): do not deliver to this host now, retry later."""


@dataclass(frozen=True)
class TLSALookup:
    """Result of :func:`lookup_tlsa`.

    Attributes:
        status: see TLSAStatus.
        name: the TLSA owner name queried, e.g. ``_25._tcp.mx.example.org``.
        records: the usable records (status USABLE).
        all_records: every record received (also unusable ones), for TLS reports.
        authentic: whether the answer (or denial) was DNSSEC-validated.
        error: text of the lookup error (status ERROR) or of why records are unusable.
        result_type: RFC 8460 result type to report for this host, "" if none:
            "dnssec-invalid" for a failed lookup, "tlsa-invalid" for only unusable records.
    """

    status: TLSAStatus
    name: str
    records: tuple[TLSA, ...] = ()
    all_records: tuple[TLSA, ...] = ()
    authentic: bool = False
    error: str = ""
    result_type: str = ""

    @property
    def dane_required(self) -> bool:
        """Whether delivery to this host must use TLS (and not fall back to plain text)."""
        return self.status in (TLSAStatus.USABLE, TLSAStatus.UNUSABLE, TLSAStatus.ERROR)

    @property
    def verify(self) -> bool:
        """Whether the server certificate must be verified with DANE (records usable)."""
        return self.status == TLSAStatus.USABLE


async def lookup_tlsa(
    resolver: Resolver, host: Name, port: int = 25, *, usages: Iterable[int] = SMTP_USAGES
) -> TLSALookup:
    """Look up TLSA records at ``_<port>._tcp.<host>`` and classify them for SMTP.

    Call only when the host's address records were DNSSEC-authentic (RFC 7672
    section 2.2.2): asking TLSA for insecure hosts only invites broken-server
    timeouts. CNAMEs at the TLSA name are followed by the resolver; the answer is
    authentic only when the whole chain is.

    - NXDOMAIN/NODATA, authentic: NONE (no DANE).
    - any answer or denial that is not authentic: INSECURE (no DANE, RFC 7672
      section 2.2: insecure TLSA records are ignored).
    - a failed lookup (SERVFAIL, timeout, REFUSED): ERROR. The host's zone is
      signed, so an attacker could be hiding records; the MX host must not be
      used now (RFC 7672 section 2.2, "the SMTP client MUST NOT deliver ... ").
    - authentic records, some usable: USABLE.
    - authentic records, none usable: UNUSABLE. RFC 7672 section 2.2: the client
      then still uses TLS (no fallback to plain text) but cannot authenticate the
      server; upstream mox does the same.
    """
    name = tlsa_name(port, "tcp", host)
    try:
        result = await resolver.lookup_tlsa(name)
    except NotFound as e:
        if e.authentic:
            return TLSALookup(TLSAStatus.NONE, name, authentic=True)
        return TLSALookup(TLSAStatus.INSECURE, name, authentic=False, error=str(e))
    except (TemporaryError, DNSError) as e:
        kind = "temporary" if isinstance(e, TemporaryError) else "permanent"
        log.debugx("tlsa lookup failed", e, name=name, kind=kind)
        return TLSALookup(TLSAStatus.ERROR, name, error=str(e), result_type=RESULT_DNSSEC_INVALID)
    if not result.authentic:
        return TLSALookup(TLSAStatus.INSECURE, name, all_records=result.records, authentic=False)
    allowed = set(usages)
    usable = tuple(r for r in result.records if unusable_reason(r, allowed) == "")
    if not usable:
        reasons = "; ".join(unusable_reason(r, allowed) for r in result.records)
        return TLSALookup(
            TLSAStatus.UNUSABLE,
            name,
            all_records=result.records,
            authentic=True,
            error=f"all tlsa records unusable: {reasons}",
            result_type=RESULT_TLSA_INVALID,
        )
    return TLSALookup(TLSAStatus.USABLE, name, usable, result.records, authentic=True)


async def gather_tlsa(
    resolver: Resolver,
    host: Domain | str,
    expanded_host: Domain | str | None = None,
    expanded_authentic: bool = False,
    port: int = 25,
) -> tuple[TLSALookup, str]:
    """TLSA records for an MX host whose name may be a CNAME (RFC 7672 section 2.2.3).

    When the host's CNAME chain was followed securely to expanded_host, TLSA
    records are looked up there first, then at the original host when the
    expanded name has none. Returns the lookup and the "TLSA base domain" the
    records were found for (use it for SNI).
    """
    h = host.ascii if isinstance(host, Domain) else host.rstrip(".").lower()
    eh = expanded_host.ascii if isinstance(expanded_host, Domain) else (expanded_host or "").rstrip(".").lower()
    if eh and eh != h and expanded_authentic:
        r = await lookup_tlsa(resolver, eh, port)
        if r.status not in (TLSAStatus.NONE, TLSAStatus.INSECURE):
            return r, eh
    return await lookup_tlsa(resolver, h, port), h


def tlsa_hostnames(
    *,
    have_mx: bool,
    expanded_next_hop_authentic: bool,
    expanded_tlsa_base_authentic: bool,
    orig_next_hop: str,
    expanded_next_hop: str,
    orig_tlsa_base: str,
    expanded_tlsa_base: str,
) -> list[str]:
    """Names allowed in the certificate under DANE-TA, first one for SNI (RFC 7672 section 3.2.2).

    With MX records: the TLSA base domain(s) and, when the MX lookup was secure,
    the original and CNAME-expanded next-hop (recipient) domain. Without MX
    records (implicit MX): the TLSA base domain(s) only.
    """
    if not have_mx:
        if not expanded_tlsa_base_authentic or orig_tlsa_base == expanded_tlsa_base:
            return [orig_tlsa_base]
        return [expanded_tlsa_base, orig_tlsa_base]
    if not expanded_next_hop_authentic:
        return [orig_next_hop]
    names: list[str] = []
    if expanded_tlsa_base_authentic:
        names.append(expanded_tlsa_base)
    for n in (orig_tlsa_base, orig_next_hop, expanded_next_hop):
        if n and n not in names:
            names.append(n)
    return names


# Verification.


@dataclass(frozen=True)
class VerifyResult:
    """Result of :func:`verify`; true in a boolean context when verified.

    Attributes:
        verified: a record matched (and for DANE-TA the chain and name checked out).
        record: the record that verified the certificate, or None.
        result_type: RFC 8460 result type when not verified, "" when verified.
        reason: short failure reason code for TLS reports, e.g. "dane-no-match".
        errors: per-record problems met while verifying, for logging.
    """

    verified: bool
    record: TLSA | None = None
    result_type: str = ""
    reason: str = ""
    errors: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return self.verified


def _select(cert: x509.Certificate, der: bytes, selector: int) -> bytes | None:
    if selector == Selector.CERT:
        return der
    if selector == Selector.SPKI:
        try:
            return raw_spki(cert)
        except DERError:
            return None
    return None


def _digest(data: bytes, matching_type: int) -> bytes | None:
    if matching_type == MatchType.FULL:
        return data
    if matching_type == MatchType.SHA256:
        return hashlib.sha256(data).digest()
    if matching_type == MatchType.SHA512:
        return hashlib.sha512(data).digest()
    return None


def matches(record: TLSA, cert: x509.Certificate, der: bytes) -> bool:
    """Whether the certificate (or its SPKI) matches the record's association data."""
    data = _select(cert, der, record.selector)
    if data is None:
        return False
    digest = _digest(data, record.matching_type)
    return digest is not None and digest == record.data


class _TAFailure(Exception):
    def __init__(self, result_type: str, reason: str, detail: str) -> None:
        self.result_type = result_type
        self.reason = reason
        super().__init__(detail)


def _build_path(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    ta_key: CertificatePublicKeyTypes,
    ta_subject: x509.Name | None,
) -> list[x509.Certificate] | None:
    """A path from leaf up to (not including) the trust anchor, or None.

    Each step needs the issuer name to equal the next certificate's subject and
    a valid signature; intermediates must be CAs (RFC 5280 section 6.1.4 (k)).
    """

    def issued_by_ta(c: x509.Certificate) -> bool:
        if ta_subject is not None and c.issuer != ta_subject:
            return False
        return verify_signature(ta_key, c)

    def walk(c: x509.Certificate, path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        if issued_by_ta(c):
            return path
        if len(path) >= MAX_CHAIN_DEPTH:
            return None
        for cand in intermediates:
            if any(cand is p for p in path) or cand.subject != c.issuer or not is_ca(cand):
                continue
            if not verify_signature(cand.public_key(), c):
                continue
            found = walk(cand, [*path, cand])
            if found is not None:
                return found
        return None

    return walk(leaf, [leaf])


def _verify_dane_ta(
    record: TLSA,
    certs: list[tuple[x509.Certificate, bytes]],
    hosts: list[str],
    now: dt.datetime,
) -> bool:
    """DANE-TA(2): a matching certificate or key in the chain (or the record) is the
    trust anchor; the leaf must chain to it with valid signatures, all certificates
    must be within their validity period, and the leaf name must match one of the
    hosts (RFC 7671 section 5.2, RFC 7672 section 3.1.2). Raises _TAFailure for a
    found trust anchor whose chain does not check out; False if no anchor."""
    ta_key: CertificatePublicKeyTypes | None = None
    ta_subject: x509.Name | None = None
    ta_cert: x509.Certificate | None = None
    ta_index = -1
    for i, (c, der) in enumerate(certs):
        if matches(record, c, der):
            ta_cert, ta_index = c, i
            break
    if ta_cert is None and record.matching_type == MatchType.FULL:
        # RFC 7671 section 5.2.2: a server may leave out a trust anchor that the
        # TLSA record holds in full.
        try:
            if record.selector == Selector.CERT:
                ta_cert = x509.load_der_x509_certificate(record.data)
            else:
                pub = serialization.load_der_public_key(record.data)
                if not isinstance(pub, _SIGNING_KEYS):
                    return False
                ta_key = pub
        except (ValueError, TypeError):
            return False
    if ta_cert is not None:
        ta_key = ta_cert.public_key()
        ta_subject = ta_cert.subject
    if ta_key is None:
        return False

    leaf = certs[0][0]
    if ta_index == 0:
        # The leaf itself is the trust anchor.
        path: list[x509.Certificate] | None = [leaf]
        ta_cert = None  # its validity is checked as part of path
    else:
        intermediates = [c for i, (c, _) in enumerate(certs) if i > 0 and i != ta_index]
        path = _build_path(leaf, intermediates, ta_key, ta_subject)
    if path is None:
        raise _TAFailure(RESULT_VALIDATION_FAILURE, "dane-ta-no-chain", "leaf does not chain to the trust anchor")
    for c in [*path, *([ta_cert] if ta_cert is not None else [])]:
        if not valid_at(c, now):
            raise _TAFailure(
                RESULT_CERTIFICATE_EXPIRED,
                "dane-ta-expired",
                f"certificate {c.subject.rfc4514_string()} not valid at {now.isoformat()} "
                f"(valid {c.not_valid_before_utc.isoformat()} to {c.not_valid_after_utc.isoformat()})",
            )
    if not cert_matches_host(leaf, hosts):
        raise _TAFailure(
            RESULT_CERTIFICATE_HOST_MISMATCH,
            "dane-ta-host-mismatch",
            f"certificate names do not match any of {', '.join(hosts)}",
        )
    return True


def _verify_pkix(
    certs: list[tuple[x509.Certificate, bytes]],
    hosts: list[str],
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
) -> list[x509.Certificate] | None:
    """WebPKI verification for the PKIX-* usages (not used for SMTP)."""
    store = pkixverify.Store(list(roots))
    for h in hosts:
        try:
            verifier = (
                pkixverify.PolicyBuilder().store(store).time(now).build_server_verifier(pkixverify.DNSName(h))
            )
            return verifier.verify(certs[0][0], [c for c, _ in certs[1:]])
        except (pkixverify.VerificationError, ValueError):
            continue
    return None


def verify(
    chain_der: Sequence[bytes],
    records: Sequence[TLSA],
    hostnames: Sequence[str | Domain],
    now: dt.datetime | None = None,
    *,
    usages: Iterable[int] = SMTP_USAGES,
    pkix_roots: Sequence[x509.Certificate] | None = None,
) -> VerifyResult:
    """Verify a server's certificate chain against TLSA records.

    Args:
        chain_der: the certificates the server sent, DER, leaf first
            (:func:`mox.dane.peer_chain_der` gets them from an SSL object).
        records: TLSA records, normally :attr:`TLSALookup.records`. Records with
            a usage not in ``usages`` are skipped (PKIX-TA/PKIX-EE are unusable
            for SMTP, RFC 7672 section 3.1.3).
        hostnames: names accepted in the certificate for DANE-TA (not
            checked for DANE-EE, RFC 7672 section 3.1.1); see tlsa_hostnames.
        now: time for validity checks (DANE-TA only), default the current time.
        usages: usages to consider; the dane dial command allows all four.
        pkix_roots: trust anchors for PKIX-TA/PKIX-EE; without them those
            records never verify.

    DANE-EE(3): the leaf certificate or its SPKI matches; no name or expiry
    check. DANE-TA(2): see _verify_dane_ta.

    Failure result types (RFC 8460 section 4.3): "tlsa-invalid" when no usable
    record was given, "certificate-host-mismatch"/"certificate-expired"/
    "validation-failure" when a DANE-TA trust anchor was found but the chain
    failed, otherwise "validation-failure" with reason "dane-no-match".
    """
    when = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    hosts = [h.ascii if isinstance(h, Domain) else h for h in hostnames]
    allowed = set(usages)
    usable = [r for r in records if unusable_reason(r, allowed) == ""]
    if not usable:
        return VerifyResult(False, None, RESULT_TLSA_INVALID, "no-usable-tlsa-records")
    if not chain_der:
        return VerifyResult(False, None, RESULT_VALIDATION_FAILURE, "no-server-certificate")
    certs: list[tuple[x509.Certificate, bytes]] = []
    for i, der in enumerate(chain_der):
        try:
            certs.append((x509.load_der_x509_certificate(der), der))
        except ValueError as e:
            if i == 0:
                return VerifyResult(
                    False, None, RESULT_VALIDATION_FAILURE, "bad-server-certificate", (f"parsing leaf: {e}",)
                )
            # An unparsable extra certificate cannot be part of a path; skip it.
    errors: list[str] = []
    ta_failure: _TAFailure | None = None
    for r in usable:
        if r.usage == Usage.DANE_EE:
            if matches(r, certs[0][0], certs[0][1]):
                return VerifyResult(True, r)
        elif r.usage == Usage.DANE_TA:
            try:
                if _verify_dane_ta(r, certs, hosts, when):
                    return VerifyResult(True, r)
            except _TAFailure as e:
                errors.append(f"{record_description(r)}: {e}")
                # Report the first failure that got furthest: host mismatch over
                # expiry over a missing chain.
                order = [RESULT_VALIDATION_FAILURE, RESULT_CERTIFICATE_EXPIRED, RESULT_CERTIFICATE_HOST_MISMATCH]
                if ta_failure is None or order.index(e.result_type) > order.index(ta_failure.result_type):
                    ta_failure = e
        elif r.usage in (Usage.PKIX_EE, Usage.PKIX_TA) and pkix_roots is not None:
            if r.usage == Usage.PKIX_EE and not matches(r, certs[0][0], certs[0][1]):
                continue
            chain = _verify_pkix(certs, hosts, pkix_roots, when)
            if chain is None:
                errors.append(f"{record_description(r)}: pkix verification failed")
                continue
            if r.usage == Usage.PKIX_EE:
                return VerifyResult(True, r)
            for c in chain:
                if matches(r, c, c.public_bytes(serialization.Encoding.DER)):
                    return VerifyResult(True, r)
    if ta_failure is not None:
        return VerifyResult(False, None, ta_failure.result_type, ta_failure.reason, tuple(errors))
    return VerifyResult(False, None, RESULT_VALIDATION_FAILURE, "dane-no-match", tuple(errors))


# Making records.

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)


class MakeRecordError(ValueError):
    """The input has no certificate or key usable for the requested record."""


CertOrKey = bytes | str | x509.Certificate | CertificatePublicKeyTypes | PrivateKeyTypes


def _spki_of_key(key: object) -> bytes:
    pub = key.public_key() if hasattr(key, "public_key") and not isinstance(key, x509.Certificate) else key
    try:
        return pub.public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (AttributeError, TypeError, ValueError) as e:
        raise MakeRecordError(f"cannot get subject public key info from {type(pub).__name__}: {e}") from None


def _selected_from_pem(data: bytes, selector: int) -> bytes:
    """The first certificate (or, for SPKI, public or private key) in PEM data, as upstream."""
    skipped: list[str] = []
    for m in _PEM_BLOCK.finditer(data):
        kind = m.group(1).decode()
        block = m.group(0)
        if kind == "CERTIFICATE":
            try:
                cert = x509.load_pem_x509_certificate(block)
            except ValueError as e:
                raise MakeRecordError(f"parsing certificate: {e}") from None
            return cert.public_bytes(serialization.Encoding.DER) if selector == Selector.CERT else raw_spki(cert)
        if selector == Selector.CERT:
            skipped.append(kind)
            continue
        try:
            if kind in ("PUBLIC KEY", "RSA PUBLIC KEY"):
                return _spki_of_key(serialization.load_pem_public_key(block))
            if kind in ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"):
                return _spki_of_key(serialization.load_pem_private_key(block, password=None))
        except (ValueError, TypeError) as e:
            raise MakeRecordError(f"parsing {kind.lower()}: {e}") from None
        skipped.append(kind)
    extra = f" (skipped: {', '.join(skipped)})" if skipped else ""
    if selector == Selector.CERT:
        raise MakeRecordError(f"no certificate found in pem data{extra}")
    raise MakeRecordError(f"no certificate or public or private key found in pem data{extra}")


def make_record(usage: int, selector: int, matchtype: int, cert_or_key: CertOrKey) -> TLSA:
    """A TLSA record for a certificate or key.

    Args:
        usage: 0-3 (Usage); any 0-255 is accepted, it does not affect the data.
        selector: 0 full certificate, 1 SubjectPublicKeyInfo.
        matchtype: 0 full, 1 SHA-256, 2 SHA-512.
        cert_or_key: PEM text/bytes (first CERTIFICATE, or for selector 1 also
            PUBLIC KEY/PRIVATE KEY/RSA PRIVATE KEY/EC PRIVATE KEY block), DER bytes
            of a certificate, a cryptography Certificate, or a public/private key.

    Typical for mail servers: ``make_record(3, 1, 1, cert)``, published as
    ``_25._tcp.<host>. TLSA 3 1 1 <hex>``; :func:`record_text` formats it.

    Raises:
        MakeRecordError: no usable certificate/key, or bad parameters.
    """
    if not 0 <= usage <= 255:
        raise MakeRecordError(f"usage {usage} out of range 0-255")
    if selector not in (Selector.CERT, Selector.SPKI):
        raise MakeRecordError(f"unknown selector {selector}, expected 0 (cert) or 1 (spki)")
    if matchtype not in (MatchType.FULL, MatchType.SHA256, MatchType.SHA512):
        raise MakeRecordError(f"unknown matching type {matchtype}, expected 0 (full), 1 (sha2-256) or 2 (sha2-512)")
    if isinstance(cert_or_key, str):
        cert_or_key = cert_or_key.encode()
    if isinstance(cert_or_key, bytes):
        if b"-----BEGIN " in cert_or_key:
            data = _selected_from_pem(cert_or_key, selector)
        else:
            try:
                cert = x509.load_der_x509_certificate(cert_or_key)
            except ValueError as e:
                raise MakeRecordError(f"not PEM, and not a DER certificate: {e}") from None
            data = cert_or_key if selector == Selector.CERT else raw_spki(cert)
    elif isinstance(cert_or_key, x509.Certificate):
        data = (
            cert_or_key.public_bytes(serialization.Encoding.DER)
            if selector == Selector.CERT
            else raw_spki(cert_or_key)
        )
    else:
        if selector == Selector.CERT:
            raise MakeRecordError("selector cert (0) needs a certificate, not a key")
        data = _spki_of_key(cert_or_key)
    digest = _digest(data, matchtype)
    assert digest is not None
    return TLSA(usage, selector, matchtype, digest)
