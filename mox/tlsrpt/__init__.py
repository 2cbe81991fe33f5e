"""SMTP TLS Reporting (RFC 8460): the DNS record, the report JSON and report messages.

Pure except :func:`lookup` (DNS through ``mox.dns``).

- :func:`parse_record`: the ``_smtp._tls.<domain>`` TXT record (section 3).
- :class:`Report` and friends: the report JSON of section 4, with
  :func:`parse_report` (strict about structure and types, clear errors) and
  :meth:`Report.to_json`/:meth:`Report.dumps`; :meth:`Report.merge` adds up
  results per policy.
- :func:`parse_message`: the report in a report message (section 5.3,
  ``application/tlsrpt+gzip`` or ``application/tlsrpt+json``).

Policy domains: an MTA-STS result is about the recipient domain, a DANE
(TLSA) result about the MX host; they are separate TLSRPT policy domains
with their own records and reports.
"""

from mox.tlsrpt.lookup import (
    DNSLookupError,
    MalformedRecordError,
    MultipleRecordsError,
    NoRecordError,
    RecordLookupError,
    lookup,
)
from mox.tlsrpt.message import MAX_MESSAGE_SIZE, NoReportError, gunzip_limited, parse_message
from mox.tlsrpt.record import Extension, Record, RecordError, decode_uri, encode_uri, parse_record
from mox.tlsrpt.report import (
    MAX_REPORT_SIZE,
    FailureDetails,
    PolicyType,
    Report,
    ReportError,
    Result,
    ResultPolicy,
    ResultType,
    Summary,
    format_datetime,
    parse_datetime,
    parse_report,
    report_from_json,
    result_from_json,
    result_type,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_REPORT_SIZE",
    "DNSLookupError",
    "Extension",
    "FailureDetails",
    "MalformedRecordError",
    "MultipleRecordsError",
    "NoRecordError",
    "NoReportError",
    "PolicyType",
    "Record",
    "RecordError",
    "RecordLookupError",
    "Report",
    "ReportError",
    "Result",
    "ResultPolicy",
    "ResultType",
    "Summary",
    "decode_uri",
    "encode_uri",
    "format_datetime",
    "gunzip_limited",
    "lookup",
    "parse_datetime",
    "parse_message",
    "parse_record",
    "parse_report",
    "report_from_json",
    "result_from_json",
    "result_type",
]
