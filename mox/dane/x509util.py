"""Small X.509 helpers for DANE: raw SubjectPublicKeyInfo bytes, signatures, validity, names.

The TLSA "SPKI" selector (RFC 6698 section 2.1.2) matches the DER encoding of
the SubjectPublicKeyInfo exactly as it appears in the certificate. Re-encoding a
parsed public key can differ from what the issuer wrote (e.g. RSA parameters
NULL or absent), so :func:`raw_spki` cuts the bytes out of the certificate.
"""

from __future__ import annotations

import datetime as dt
import ssl
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID

from mox.dns.domain import DomainError, parse_domain


class DERError(ValueError):
    """Malformed DER."""


def _der_element(data: bytes, offset: int) -> tuple[int, int, int]:
    """Tag, content start and end offset of the DER element at offset (X.690 section 8.1)."""
    if offset + 2 > len(data):
        raise DERError("truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte tags not supported")
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or start + n > len(data):
            raise DERError("bad length")
        length = int.from_bytes(data[start : start + n], "big")
        start += n
    end = start + length
    if end > len(data):
        raise DERError("truncated content")
    return tag, start, end


def raw_spki(cert: x509.Certificate) -> bytes:
    """The DER SubjectPublicKeyInfo as encoded in the certificate (RFC 5280 section 4.1)."""
    tbs = cert.tbs_certificate_bytes
    tag, start, end = _der_element(tbs, 0)
    if tag != 0x30:
        raise DERError("tbsCertificate is not a SEQUENCE")
    offset = start
    # Fields: [0] version (optional), serialNumber, signature, issuer, validity,
    # subject, subjectPublicKeyInfo.
    tag, _, e = _der_element(tbs, offset)
    if tag == 0xA0:
        offset = e
    for _ in range(5):
        _, _, offset = _der_element(tbs, offset)
    tag, _, e = _der_element(tbs, offset)
    if tag != 0x30 or e > end:
        raise DERError("subjectPublicKeyInfo is not a SEQUENCE")
    return tbs[offset:e]


def verify_signature(issuer_key: CertificatePublicKeyTypes, cert: x509.Certificate) -> bool:
    """Whether cert's signature verifies with issuer_key (name chaining is checked separately)."""
    params: Any = cert.signature_algorithm_parameters
    hash_alg = cert.signature_hash_algorithm
    try:
        if isinstance(issuer_key, rsa.RSAPublicKey):
            if hash_alg is None or not isinstance(params, padding.PKCS1v15 | padding.PSS):
                return False
            issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, params, hash_alg)
        elif isinstance(issuer_key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, params)
        elif isinstance(issuer_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            issuer_key.verify(cert.signature, cert.tbs_certificate_bytes)
        elif isinstance(issuer_key, dsa.DSAPublicKey):
            if hash_alg is None:
                return False
            issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, hash_alg)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    """Whether cert may issue certificates: basicConstraints cA (RFC 5280 section 4.2.1.9)."""
    try:
        bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except x509.ExtensionNotFound:
        return False
    return isinstance(bc, x509.BasicConstraints) and bc.ca


def valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _norm_host(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        return parse_domain(name).ascii
    except DomainError:
        return name


def cert_dns_names(cert: x509.Certificate) -> list[str]:
    """DNS-IDs of cert; the subject CN only when there are none (RFC 6125 section 6.4.4)."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        if isinstance(san, x509.SubjectAlternativeName):
            names = san.get_values_for_type(x509.DNSName)
            if names:
                return [n.lower() for n in names]
    except (x509.ExtensionNotFound, ValueError):
        pass
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return [str(a.value).lower() for a in cns if isinstance(a.value, str)]


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 section 6.4.3: exact match, or a wildcard as the complete leftmost label."""
    pattern = pattern.rstrip(".").lower()
    host = _norm_host(host)
    if pattern == host:
        return True
    if pattern.startswith("*."):
        rest = pattern[2:]
        first, sep, remain = host.partition(".")
        return bool(sep) and first != "" and remain == rest and "." in rest
    return False


def cert_matches_host(cert: x509.Certificate, hosts: list[str]) -> bool:
    names = cert_dns_names(cert)
    return any(name_matches(n, h) for n in names for h in hosts)


def peer_chain_der(sslobj: ssl.SSLSocket | ssl.SSLObject) -> list[bytes]:
    """The certificate chain the TLS peer sent, leaf first, DER, without verification.

    Python 3.13 has ``get_unverified_chain()``; older versions have the same
    method on the internal ``_sslobj`` (since 3.10). Falls back to the leaf only.
    """
    fn = getattr(sslobj, "get_unverified_chain", None)
    inner = getattr(sslobj, "_sslobj", None)
    if fn is None and inner is not None:
        fn = getattr(inner, "get_unverified_chain", None)
    if fn is not None:
        chain = fn() or []
        out: list[bytes] = []
        for c in chain:
            if isinstance(c, bytes):
                out.append(c)
            else:
                out.append(c.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
        if out:
            return out
    leaf = sslobj.getpeercert(binary_form=True)
    return [leaf] if leaf else []
