"""MTA-STS (RFC 8461): a domain's policy requiring verified TLS for mail delivery to its MX hosts.

A domain publishes a TXT record at ``_mta-sts.<domain>`` (``v=STSv1; id=...``)
and a policy at ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` with a mode
(enforce, testing, none), the allowed MX host patterns and how long it may be
cached (max_age).

- :mod:`mox.mtasts.parse` (pure): :func:`parse_record`, :func:`parse_policy`,
  :class:`Policy` with :meth:`Policy.matches` for MX host names.
- :mod:`mox.mtasts.fetch`: :func:`lookup_record` (TXT via mox.dns),
  :func:`fetch_policy` (HTTPS with aiohttp: PKIX verified, no redirects,
  text/plain, at most 64 KiB, 10 s), and :func:`lookup` combining both. Errors
  are :class:`MTASTSError` subclasses carrying the RFC 8460 result type.

Delivery uses the cache in :mod:`mox.mtastsdb`, not these functions directly.
"""

from mox.mtasts.fetch import (
    FETCH_TIMEOUT,
    MAX_POLICY_SIZE,
    RESULT_STS_POLICY_FETCH_ERROR,
    RESULT_STS_POLICY_INVALID,
    RESULT_STS_WEBPKI_INVALID,
    WELL_KNOWN_PATH,
    DNSLookupError,
    DNSResolver,
    FetchOptions,
    LookupResult,
    MTASTSError,
    MultipleRecordsError,
    NoPolicyError,
    NoRecordError,
    PolicyFetchError,
    PolicySyntaxError,
    RecordSyntaxError,
    WebPKIError,
    fetch_policy,
    lookup,
    lookup_record,
)
from mox.mtasts.parse import (
    MAX_AGE_LIMIT,
    MX,
    Mode,
    ParseError,
    Policy,
    PolicyParseError,
    Record,
    RecordParseError,
    is_sts_record,
    parse_policy,
    parse_record,
)

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_AGE_LIMIT",
    "MAX_POLICY_SIZE",
    "MX",
    "RESULT_STS_POLICY_FETCH_ERROR",
    "RESULT_STS_POLICY_INVALID",
    "RESULT_STS_WEBPKI_INVALID",
    "WELL_KNOWN_PATH",
    "DNSLookupError",
    "DNSResolver",
    "FetchOptions",
    "LookupResult",
    "MTASTSError",
    "Mode",
    "MultipleRecordsError",
    "NoPolicyError",
    "NoRecordError",
    "ParseError",
    "Policy",
    "PolicyFetchError",
    "PolicyParseError",
    "PolicySyntaxError",
    "Record",
    "RecordParseError",
    "RecordSyntaxError",
    "WebPKIError",
    "fetch_policy",
    "is_sts_record",
    "lookup",
    "lookup_record",
    "parse_policy",
    "parse_record",
]
