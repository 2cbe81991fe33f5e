"""Sender Policy Framework (SPF), RFC 7208.

A domain publishes in a DNS TXT record which IPs may send mail with the domain
in SMTP MAIL FROM (or HELO); a receiver checks the client IP against it.

- :mod:`mox.spf.record`: pure parsing and formatting of "v=spf1" records
  (section 4.5, 12).
- :mod:`mox.spf.macro`: macro expansion (section 7).
- :mod:`mox.spf.check`: :func:`check_host` (section 4), with the DNS limits of
  section 4.6.4, and :func:`verify`, which picks the identity as upstream mox.
- :mod:`mox.spf.received`: the Received-SPF header field (section 9.1).

DNS goes through :class:`mox.dns.Resolver` only.
"""

from mox.spf.check import (
    CHECK_TIMEOUT,
    MAX_DNS_TERMS,
    MAX_MX_NAMES,
    MAX_PTR_NAMES,
    MAX_VOID_LOOKUPS,
    RecordLookup,
    check_host,
    lookup_record,
    valid_domain,
    verify,
)
from mox.spf.macro import MacroValues, expand
from mox.spf.received import Received
from mox.spf.record import Directive, Modifier, Record, RecordSyntaxError, is_spf_record, parse_record

__all__ = [
    "CHECK_TIMEOUT",
    "MAX_DNS_TERMS",
    "MAX_MX_NAMES",
    "MAX_PTR_NAMES",
    "MAX_VOID_LOOKUPS",
    "Directive",
    "MacroValues",
    "Modifier",
    "Received",
    "Record",
    "RecordLookup",
    "RecordSyntaxError",
    "check_host",
    "expand",
    "is_spf_record",
    "lookup_record",
    "parse_record",
    "valid_domain",
    "verify",
]
