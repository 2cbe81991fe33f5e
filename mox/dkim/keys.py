"""DKIM key generation and loading (RFC 8301 key sizes, RFC 8463 Ed25519)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mox.dkim.record import PrivateKey

# RFC 8301 section 3.2: signers MUST use at least 1024 bits, SHOULD use 2048.
RSA_BITS = 2048
MIN_RSA_BITS = 1024


def generate_rsa_key(bits: int = RSA_BITS) -> rsa.RSAPrivateKey:
    """A new RSA private key for DKIM signing."""
    if bits < MIN_RSA_BITS:
        raise ValueError(f"rsa keys for dkim need at least {MIN_RSA_BITS} bits (RFC 8301 section 3.2)")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def generate_ed25519_key() -> ed25519.Ed25519PrivateKey:
    """A new Ed25519 private key for DKIM signing (RFC 8463)."""
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: PrivateKey) -> bytes:
    """key as PKCS#8 PEM, the format of DKIM key files in the config."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key_pem(data: bytes) -> PrivateKey:
    """Parse a PEM private key, RSA or Ed25519.

    Raises:
        ValueError: not PEM, or another key type.
    """
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"unsupported key type {type(key).__name__}, expected rsa or ed25519")
    return key
