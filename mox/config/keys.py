"""Key and certificate generation for config files: DKIM keys, self-signed TLS certificates, admin password hashes."""

from __future__ import annotations

import datetime
import ipaddress

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

# RFC 8301 section 3.2: signers MUST use RSA keys of at least 1024 bits, SHOULD use 2048.
DKIM_RSA_BITS = 2048


def _pkcs8(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_dkim_rsa_key() -> bytes:
    """A new RSA 2048 private key in PKCS#8 PEM, as DKIM selectors use."""
    return _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=DKIM_RSA_BITS))


def make_dkim_ed25519_key() -> bytes:
    """A new Ed25519 private key in PKCS#8 PEM (RFC 8463)."""
    return _pkcs8(ed25519.Ed25519PrivateKey.generate())


def make_self_signed(names: list[str], ips: list[str] | None = None, days: int = 3650) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate and its PKCS#8 key, both PEM, for names and IPs."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips or []]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "moxmail")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pkcs8(key)


def hash_admin_password(password: str) -> bytes:
    """The bcrypt hash stored in the AdminPasswordFile, as upstream writes it."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt())


def check_admin_password(hashed: bytes, password: str) -> bool:
    return bcrypt.checkpw(password.encode("utf-8"), hashed.strip())
