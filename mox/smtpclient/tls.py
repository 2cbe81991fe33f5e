"""TLS settings and results of the SMTP client, and the mapping of failures to RFC 8460 result types.

The settings are independent, as upstream mox's smtpclient has them:

- :class:`TLSMode`: whether and how TLS is started (skip, opportunistic
  STARTTLS, required STARTTLS, immediate TLS for port 465).
- ``pkix``: the certificate chain must verify against the trusted CAs and
  the TLS server name (MTA-STS enforce, RFC 8461 section 4.2; submission).
- ``dane_records``: the chain must match a TLSA record (RFC 7672); the
  handshake is done without PKIX and the injected :class:`DaneVerifier`
  checks the peer's chain (mox.dane provides one; this package does not
  depend on it).
- ``ignore_verify_errors``: RFC 8689 section 5 "TLS-Required: No": TLS is
  still used, verification still done and its failure recorded, but the
  message is delivered anyway.

OpenSSL does the PKIX verification; its verification error codes map to
the RFC 8460 section 4.3 result types (:func:`classify_verify_error`).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mox.dns import TLSA
from mox.smtpclient.errors import (
    RESULT_CERTIFICATE_EXPIRED,
    RESULT_CERTIFICATE_HOST_MISMATCH,
    RESULT_CERTIFICATE_NOT_TRUSTED,
    RESULT_VALIDATION_FAILURE,
    TLSFailure,
)

__all__ = [
    "DaneVerifier",
    "DaneVerifyResult",
    "TLSConfig",
    "TLSMode",
    "TLSState",
    "classify_handshake_error",
    "classify_verify_error",
    "make_context",
    "peer_chain_der",
]


class TLSMode(enum.StrEnum):
    """If and how TLS is used; values as upstream's smtpclient.TLSMode."""

    SKIP = "skip"  # No TLS, e.g. after an earlier handshake failure with opportunistic TLS.
    OPPORTUNISTIC = "opportunistic"  # STARTTLS when announced, else plaintext (only without pkix/dane).
    REQUIRED_STARTTLS = "requiredstarttls"  # STARTTLS, even if not announced; failure is an error.
    IMMEDIATE = "immediate"  # TLS right after connecting (submissions, RFC 8314 section 3.3).


class DaneVerifyResult(Protocol):
    """What a DANE verifier returns (mox.dane's result type has these attributes).

    ``verified``: a usable TLSA record matched the chain (RFC 7672 section 3).
    ``record``: the record that matched, when verified.
    ``result_type``: when not verified, the RFC 8460 result type:
    "validation-failure" (no record matched) or "tlsa-invalid" (no usable record).
    ``reason``: a short reason code for the TLS report and logs.
    """

    @property
    def verified(self) -> bool: ...

    @property
    def record(self) -> TLSA | None: ...

    @property
    def result_type(self) -> str: ...

    @property
    def reason(self) -> str: ...


class DaneVerifier(Protocol):
    """Verifies a peer's certificate chain against TLSA records (RFC 7672 section 3).

    ``chain_der``: the chain as the server sent it, leaf first, DER.
    ``records``: the TLSA records (DNSSEC-authentic, looked up by the caller).
    ``hostnames``: names the certificate may carry for DANE-TA(2) (RFC 7672
    section 3.2.2: the TLSA base domain and, where applicable, the MX host and
    next-hop domain); DANE-EE(3) ignores names.
    """

    def __call__(
        self, chain_der: Sequence[bytes], records: Sequence[TLSA], hostnames: Sequence[str]
    ) -> DaneVerifyResult: ...


@dataclass(frozen=True)
class TLSConfig:
    """How the client uses TLS on one connection.

    Attributes:
        mode: see :class:`TLSMode`.
        server_name: the name for SNI and PKIX verification (the MX host, or
            the smarthost's name). Empty: no SNI, and pkix cannot be required.
        pkix: require a certificate chain verified against the trusted CAs for
            server_name. A missing STARTTLS or failed verification is an error.
        dane_records: when not None, require DANE verification with these
            records through dane_verify (an empty sequence is passed on: the
            verifier decides, e.g. "tlsa-invalid").
        dane_hostnames: extra names allowed for DANE-TA; server_name is
            always included.
        dane_verify: the verifier (mox.dane); required with dane_records.
        ignore_verify_errors: deliver even when verification fails (RFC 8689
            section 5); the failure is kept in :attr:`TLSState.ignored_failures`.
        cafile, capath, cadata: trusted CAs instead of the system's (tests, pebble).
        context_factory: makes the SSLContext instead; called with whether
            the handshake must verify PKIX (check_hostname and CERT_REQUIRED).
            Overrides cafile/capath/cadata.
    """

    mode: TLSMode = TLSMode.OPPORTUNISTIC
    server_name: str = ""
    pkix: bool = False
    dane_records: Sequence[TLSA] | None = None
    dane_hostnames: Sequence[str] = ()
    dane_verify: DaneVerifier | None = None
    ignore_verify_errors: bool = False
    cafile: str | None = None
    capath: str | None = None
    cadata: str | bytes | None = None
    context_factory: Callable[[bool], ssl.SSLContext] | None = None

    def __post_init__(self) -> None:
        if self.dane_records is not None and self.dane_verify is None:
            raise ValueError("dane_records given without dane_verify")
        if self.pkix and not self.server_name:
            raise ValueError("pkix verification needs a server_name")
        if (self.pkix or self.dane_records is not None) and self.mode is TLSMode.SKIP:
            raise ValueError("tls mode skip cannot be combined with pkix or dane verification")

    @property
    def verification_required(self) -> bool:
        """PKIX or DANE verification is required (TLS errors are then not ignored unless asked)."""
        return self.pkix or self.dane_records is not None


@dataclass
class TLSState:
    """What happened with TLS on a connection, for the caller's TLS reporting (RFC 8460).

    Attributes:
        used: the connection is TLS-protected.
        starttls_offered: the server announced STARTTLS (before TLS).
        version, cipher: e.g. "TLSv1.3", "TLS_AES_256_GCM_SHA384".
        server_name: the SNI and verification name used.
        pkix_verified: the chain verified against the trusted CAs for server_name.
        dane_verified: a TLSA record matched; dane_record is that record.
        ignored_failures: verification failures not acted upon because of
            ignore_verify_errors; each has result_type and reason.
        not_offered: opportunistic mode fell back to plaintext because the
            server did not announce STARTTLS (RFC 8460 result
            "starttls-not-supported" for a no-policy-found report).
    """

    used: bool = False
    starttls_offered: bool = False
    version: str = ""
    cipher: str = ""
    server_name: str = ""
    pkix_verified: bool = False
    dane_verified: bool = False
    dane_record: TLSA | None = None
    ignored_failures: list[TLSFailure] = field(default_factory=list)
    not_offered: bool = False

    @property
    def verified(self) -> bool:
        """TLS with a verified certificate (PKIX or DANE), as REQUIRETLS needs."""
        return self.used and (self.pkix_verified or self.dane_verified)


def make_context(cfg: TLSConfig, verify: bool) -> ssl.SSLContext:
    """The client SSLContext: PKIX-verifying with the configured CAs, or not verifying at all.

    TLS 1.2 at least (RFC 8996, RFC 8997).
    """
    if cfg.context_factory is not None:
        return cfg.context_factory(verify)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if cfg.cafile or cfg.capath or cfg.cadata:
            ctx.load_verify_locations(cafile=cfg.cafile, capath=cfg.capath, cadata=cfg.cadata)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# OpenSSL X509_V_ERR_* codes (x509_vfy.h) and their RFC 8460 section 4.3 result types.
_VERIFY_CODES: dict[int, tuple[str, str]] = {
    9: (RESULT_CERTIFICATE_EXPIRED, "X509_V_ERR_CERT_NOT_YET_VALID"),
    10: (RESULT_CERTIFICATE_EXPIRED, "X509_V_ERR_CERT_HAS_EXPIRED"),
    2: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT"),
    18: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"),
    19: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN"),
    20: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
    21: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
    23: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_CERT_REVOKED"),
    24: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_INVALID_CA"),
    26: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_INVALID_PURPOSE"),
    27: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_CERT_UNTRUSTED"),
    28: (RESULT_CERTIFICATE_NOT_TRUSTED, "X509_V_ERR_CERT_REJECTED"),
    62: (RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_HOSTNAME_MISMATCH"),
    64: (RESULT_CERTIFICATE_HOST_MISMATCH, "X509_V_ERR_IP_ADDRESS_MISMATCH"),
}


def classify_verify_error(e: ssl.SSLCertVerificationError) -> TLSFailure:
    """A TLSFailure with the RFC 8460 result type for an OpenSSL verification error."""
    code = int(getattr(e, "verify_code", 0) or 0)
    msg = str(getattr(e, "verify_message", "") or e)
    result_type, reason = _VERIFY_CODES.get(code, (RESULT_VALIDATION_FAILURE, f"openssl-verify-error-{code}"))
    return TLSFailure(
        f"tls certificate verification: {msg}", result_type=result_type, reason=reason, verify_code=code
    )


def classify_handshake_error(e: BaseException) -> TLSFailure:
    """A TLSFailure for any TLS handshake error (RFC 8460 section 4.3 "validation-failure" unless verification)."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return classify_verify_error(e)
    if isinstance(e, ssl.SSLError):
        reason = (e.reason or "tls-error").lower().replace("_", "-")
        if "alert" in reason:
            reason = "tls-remote-" + reason.removeprefix("tlsv1-alert-").removeprefix("sslv3-alert-")
        return TLSFailure(f"tls handshake: {e}", result_type=RESULT_VALIDATION_FAILURE, reason=reason)
    if isinstance(e, TimeoutError):
        return TLSFailure(
            "tls handshake: timeout",
            result_type=RESULT_VALIDATION_FAILURE,
            reason="io-timeout-during-handshake",
        )
    return TLSFailure(
        f"tls handshake: {e or type(e).__name__}",
        result_type=RESULT_VALIDATION_FAILURE,
        reason="io-error-during-handshake",
    )


def peer_chain_der(ssl_object: ssl.SSLObject | None) -> list[bytes]:
    """The certificate chain the server sent, leaf first, DER; also with CERT_NONE.

    Python 3.13 has SSLObject.get_unverified_chain(); 3.11 and 3.12 only on
    the private _ssl object underneath, which is what we use there. Falls
    back to just the leaf.
    """
    if ssl_object is None:
        return []
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        inner = getattr(ssl_object, "_sslobj", None)
        getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        chain = getter() or []
        out = []
        for c in chain:
            if isinstance(c, bytes):
                out.append(c)
            else:
                out.append(c.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
        if out:
            return out
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []
