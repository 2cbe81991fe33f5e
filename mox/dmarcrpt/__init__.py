"""DMARC aggregate reports (RFC 7489 section 7.2 and appendix C). Pure, no I/O.

- :func:`parse_feedback` / :func:`feedback_xml`: the report XML, parsed
  leniently (namespaces, element order) and written strictly to the schema.
- :func:`parse_message`: the report in a report message, as plain XML, gzip
  or zip attachment (or the whole message body).
"""

from mox.dmarcrpt.feedback import (
    MAX_REPORT_SIZE,
    Alignment,
    AuthResults,
    DateRange,
    Disposition,
    DKIMAuthResult,
    DMARCResult,
    Feedback,
    FeedbackError,
    Identifiers,
    PolicyEvaluated,
    PolicyOverride,
    PolicyOverrideReason,
    PolicyPublished,
    ReportMetadata,
    ReportRecord,
    Row,
    SPFAuthResult,
    feedback_xml,
    parse_feedback,
    schema_ip,
)
from mox.dmarcrpt.message import (
    MAX_MESSAGE_SIZE,
    NoReportError,
    parse_message,
    parse_report_bytes,
    unzip_report,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_REPORT_SIZE",
    "Alignment",
    "AuthResults",
    "DKIMAuthResult",
    "DMARCResult",
    "DateRange",
    "Disposition",
    "Feedback",
    "FeedbackError",
    "Identifiers",
    "NoReportError",
    "PolicyEvaluated",
    "PolicyOverride",
    "PolicyOverrideReason",
    "PolicyPublished",
    "ReportMetadata",
    "ReportRecord",
    "Row",
    "SPFAuthResult",
    "feedback_xml",
    "parse_feedback",
    "parse_message",
    "parse_report_bytes",
    "schema_ip",
    "unzip_report",
]
