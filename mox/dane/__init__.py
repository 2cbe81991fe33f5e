"""DANE: verifying TLS certificates of SMTP servers with DNSSEC-signed TLSA records.

RFC 6698 defines TLSA records, RFC 7671 updates how they are used, RFC 7672
applies them to SMTP between mail servers. A TLSA record has a *usage*
(what to check), a *selector* (whole certificate or only its public key,
SubjectPublicKeyInfo) and a *matching type* (the data in full, or its SHA-256
or SHA-512 hash).

For SMTP only two usages are "usable" (RFC 7672 section 3.1.3):

- DANE-EE (3): the server's own certificate or key matches; no name, expiry
  or CA checks (RFC 7672 section 3.1.1).
- DANE-TA (2): a certificate or key in the server's chain matches and is the
  trust anchor; the server certificate must chain to it, be within its
  validity period, and carry one of the allowed names (RFC 7672 section 3.1.2).

How the queue uses this package:

1. Only when the MX host's address records were DNSSEC-authentic:
   ``lk = await lookup_tlsa(resolver, host)`` (or :func:`gather_tlsa` for a
   CNAME'd host). ``lk.status`` says what to do: NONE/INSECURE: no DANE;
   USABLE: require STARTTLS and verify with ``lk.records``; UNUSABLE: require
   STARTTLS without verification (report ``lk.result_type`` "tlsa-invalid");
   ERROR: skip this host for now (temporary failure, report "dnssec-invalid").
2. After the TLS handshake (with the ssl module's own verification off):
   ``res = verify(peer_chain_der(sslobj), lk.records, hostnames)``;
   ``res.verified``, ``res.record``, and on failure ``res.result_type`` and
   ``res.reason`` for TLS reporting (RFC 8460). ``verify`` has the shape of the
   ``dane_verify(chain_der, records, hostnames) -> result`` callable the SMTP
   client takes.

:func:`make_record` makes records for ``mox dane makerecord`` and quickstart.
"""

from mox.dane.dane import (
    MATCHTYPE_NAMES,
    MAX_CHAIN_DEPTH,
    RESULT_CERTIFICATE_EXPIRED,
    RESULT_CERTIFICATE_HOST_MISMATCH,
    RESULT_CERTIFICATE_NOT_TRUSTED,
    RESULT_DANE_REQUIRED,
    RESULT_DNSSEC_INVALID,
    RESULT_TLSA_INVALID,
    RESULT_VALIDATION_FAILURE,
    SELECTOR_NAMES,
    SMTP_USAGES,
    USAGE_NAMES,
    CertOrKey,
    MakeRecordError,
    MatchType,
    Selector,
    TLSALookup,
    TLSAStatus,
    Usage,
    VerifyResult,
    gather_tlsa,
    lookup_tlsa,
    make_record,
    matches,
    record_description,
    record_text,
    tlsa_hostnames,
    unusable_reason,
    usable_records,
    verify,
)
from mox.dane.x509util import peer_chain_der, raw_spki

__all__ = [
    "MATCHTYPE_NAMES",
    "MAX_CHAIN_DEPTH",
    "RESULT_CERTIFICATE_EXPIRED",
    "RESULT_CERTIFICATE_HOST_MISMATCH",
    "RESULT_CERTIFICATE_NOT_TRUSTED",
    "RESULT_DANE_REQUIRED",
    "RESULT_DNSSEC_INVALID",
    "RESULT_TLSA_INVALID",
    "RESULT_VALIDATION_FAILURE",
    "SELECTOR_NAMES",
    "SMTP_USAGES",
    "USAGE_NAMES",
    "CertOrKey",
    "MakeRecordError",
    "MatchType",
    "Selector",
    "TLSALookup",
    "TLSAStatus",
    "Usage",
    "VerifyResult",
    "gather_tlsa",
    "lookup_tlsa",
    "make_record",
    "matches",
    "peer_chain_der",
    "raw_spki",
    "record_description",
    "record_text",
    "tlsa_hostnames",
    "unusable_reason",
    "usable_records",
    "verify",
]
