"""Keys and certificates for automatic TLS (pure, apart from file helpers).

- Host private keys: ECDSA P-256 and RSA 2048 (as upstream), PEM PKCS#8.
- The tls-alpn-01 challenge certificate (RFC 8737 section 3).
- The certificate cache: one PEM file per host and key type holding the
  private key followed by the certificate chain.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# RFC 8737 section 6.1: id-pe-acmeIdentifier.
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
# RFC 8737 section 6.2: the ALPN protocol of the validation connection.
ACME_TLS_ALPN = "acme-tls/1"


class CertError(ValueError):
    """A key or certificate file cannot be used."""


def key_type(key: PrivateKey) -> str:
    """"ecdsa" for P-256 keys, "rsa" for RSA keys (others are refused at load)."""
    return "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ecdsa"


def generate_key(kind: str) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise CertError(f"unknown key type {kind!r}")


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_key(data: bytes, what: str = "private key") -> PrivateKey:
    """The first private key in PEM data (PKCS#8, PKCS#1 or SEC 1)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise CertError(f"{what}: {e}") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise CertError(f"{what}: ecdsa key with curve {key.curve.name}, only P-256 is used")
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    raise CertError(f"{what}: unsupported key type {type(key).__name__}, need ecdsa p-256 or rsa")


def challenge_cert(domain: str, key_authorization: str) -> tuple[bytes, bytes]:
    """Certificate and key (PEM) for a tls-alpn-01 validation of domain.

    RFC 8737 section 3: self-signed, the domain as only dNSName, and a
    critical acmeIdentifier extension whose value is the DER OCTET STRING of
    the SHA-256 digest of the key authorization.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme tls alpn challenge")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


@dataclass(frozen=True)
class CachedCert:
    """A certificate from the cache: its file and validity."""

    path: Path
    host: str
    kind: str
    not_before: datetime.datetime
    not_after: datetime.datetime

    def renew_at(self, renew_before: datetime.timedelta | None) -> datetime.datetime:
        """When to renew: RenewBefore ahead of expiry when configured, else a third of the
        lifetime ahead (30 days for 90-day certificates, as Let's Encrypt advises)."""
        if renew_before is None:
            renew_before = (self.not_after - self.not_before) / 3
        return self.not_after - renew_before


def cache_path(cache_dir: Path, host: str, kind: str) -> Path:
    return cache_dir / (host if kind == "ecdsa" else f"{host}+rsa")


def write_cache(cache_dir: Path, host: str, key: PrivateKey, fullchain_pem: bytes) -> Path:
    from mox.config.load import write_file_atomic

    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    p = cache_path(cache_dir, host, key_type(key))
    write_file_atomic(p, key_pem(key) + fullchain_pem, 0o600)
    return p


def read_cache(cache_dir: Path, host: str, kind: str) -> CachedCert | None:
    """The cached certificate for host and key type, if present and parseable."""
    p = cache_path(cache_dir, host, kind)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return None
    try:
        certs = x509.load_pem_x509_certificates(data)
        load_key(data)
    except (ValueError, CertError):
        return None
    leaf = certs[0]
    return CachedCert(p, host, kind, leaf.not_valid_before_utc, leaf.not_valid_after_utc)


def cached_key(cache_dir: Path, host: str, kind: str) -> PrivateKey | None:
    try:
        return load_key(cache_path(cache_dir, host, kind).read_bytes())
    except (FileNotFoundError, CertError):
        return None
