"""Certificates for DANE tests: a CA, an intermediate and leaves, made with cryptography."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    san: list[str] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
    )
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in san]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def der(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.DER)


@dataclass
class PKI:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    inter_key: ec.EllipticCurvePrivateKey
    inter: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate

    def chain(self, *, with_root: bool = False) -> list[bytes]:
        out = [der(self.leaf), der(self.inter)]
        if with_root:
            out.append(der(self.root))
        return out


def make_pki(host: str = "mx.example.org", **leafargs: object) -> PKI:
    rk = ec.generate_private_key(ec.SECP256R1())
    root = cert("test root", rk, name("test root"), rk, ca=True)
    ik = ec.generate_private_key(ec.SECP256R1())
    inter = cert("test intermediate", ik, root.subject, rk, ca=True)
    lk = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(host, lk, inter.subject, ik, san=[host], **leafargs)  # type: ignore[arg-type]
    return PKI(rk, root, ik, inter, lk, leaf)
