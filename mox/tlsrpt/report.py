"""The TLSRPT aggregate report JSON (RFC 8460 section 4): model, parsing, serialisation, merging.

Field names in the JSON are the RFC's (``organization-name``,
``policy-type``, ...); the Python attributes are their snake_case
equivalents. ``mx-host`` is a list, as RFC 8460 erratum 6241 corrects the
example (a single string is accepted when parsing).
"""

from __future__ import annotations

import datetime
import enum
import json
from dataclasses import dataclass, field
from typing import Any

# Reports larger than this are refused (as upstream: 20 MB of JSON).
MAX_REPORT_SIZE = 20 * 1024 * 1024


class ReportError(ValueError):
    """A TLS report that is not valid JSON or does not follow RFC 8460 section 4."""


class PolicyType(enum.StrEnum):
    """Section 4.4 "policy-type"."""

    TLSA = "tlsa"  # DANE, about an MX host
    STS = "sts"  # MTA-STS, about a recipient domain
    NO_POLICY_FOUND = "no-policy-found"


class ResultType(enum.StrEnum):
    """Section 4.3 result types (the IANA "STARTTLS Validation Result Types" registry)."""

    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


def result_type(s: str) -> ResultType | str:
    """The enum member for a known result type; unknown (future) types stay strings."""
    try:
        return ResultType(s)
    except ValueError:
        return s


@dataclass
class FailureDetails:
    """Section 4.4 "failure-details" entry."""

    result_type: ResultType | str
    failed_session_count: int = 1
    sending_mta_ip: str = ""
    receiving_mx_hostname: str = ""
    receiving_mx_helo: str = ""
    receiving_ip: str = ""
    additional_information: str = ""
    failure_reason_code: str = ""

    def key(self) -> tuple[str, ...]:
        """Everything but the count: details with equal keys are merged by adding counts."""
        return (
            str(self.result_type),
            self.sending_mta_ip,
            self.receiving_mx_hostname,
            self.receiving_mx_helo,
            self.receiving_ip,
            self.additional_information,
            self.failure_reason_code,
        )

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"result-type": str(self.result_type)}
        for attr, name in _FD_FIELDS:
            v = getattr(self, attr)
            if v or name != "receiving-mx-helo":
                d[name] = v
        d["failed-session-count"] = self.failed_session_count
        return d


_FD_FIELDS = (
    ("sending_mta_ip", "sending-mta-ip"),
    ("receiving_mx_hostname", "receiving-mx-hostname"),
    ("receiving_mx_helo", "receiving-mx-helo"),
    ("receiving_ip", "receiving-ip"),
    ("additional_information", "additional-information"),
    ("failure_reason_code", "failure-reason-code"),
)


@dataclass
class ResultPolicy:
    """Section 4.4 "policy": which policy the counts are about.

    ``domain`` is the policy domain in A-labels (section 4.4): the recipient
    domain for MTA-STS, the MX host (TLSA base domain) for DANE.
    ``strings`` is "policy-string": the MTA-STS policy lines, or the TLSA
    records in presentation format (sorted, so equal policies compare equal).
    """

    type: PolicyType
    domain: str
    strings: list[str] = field(default_factory=list)
    mx_hosts: list[str] = field(default_factory=list)

    def key(self) -> tuple[Any, ...]:
        return (str(self.type), self.domain, tuple(self.strings), tuple(self.mx_hosts))

    @classmethod
    def sts(cls, recipient_domain: str, policy_lines: list[str], mx_patterns: list[str]) -> ResultPolicy:
        """An MTA-STS policy of a recipient domain (A-labels): its policy text lines
        (section 4.4: "policy-string" holds the policy, one line per string) and mx patterns."""
        return cls(PolicyType.STS, recipient_domain, list(policy_lines), list(mx_patterns))

    @classmethod
    def tlsa(cls, mx_host: str, records: list[str]) -> ResultPolicy:
        """A DANE policy of an MX host (the TLSA base domain, A-labels) from its TLSA records in
        presentation format ("3 1 1 abcd..."); sorted, so equal record sets merge."""
        return cls(PolicyType.TLSA, mx_host, sorted(records))

    @classmethod
    def no_policy(cls, domain: str) -> ResultPolicy:
        """No MTA-STS policy for a recipient domain, or no TLSA records for an MX host."""
        return cls(PolicyType.NO_POLICY_FOUND, domain)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy-type": str(self.type),
            "policy-string": list(self.strings),
            "policy-domain": self.domain,
            "mx-host": list(self.mx_hosts),
        }


@dataclass
class Summary:
    total_successful_session_count: int = 0
    total_failure_session_count: int = 0


@dataclass
class Result:
    """One entry of "policies": a policy with its counts and failure details."""

    policy: ResultPolicy
    summary: Summary = field(default_factory=Summary)
    failure_details: list[FailureDetails] = field(default_factory=list)

    def add(self, success: int, failure: int, *details: FailureDetails) -> None:
        """Add session counts and failure details (details with the same key add up)."""
        s = self.summary
        # Never negative: a caller may compensate a success with -1 after a late failure.
        s.total_successful_session_count = max(0, s.total_successful_session_count + success)
        s.total_failure_session_count = max(0, s.total_failure_session_count + failure)
        for nd in details:
            for fd in self.failure_details:
                if fd.key() == nd.key():
                    fd.failed_session_count += nd.failed_session_count
                    break
            else:
                self.failure_details.append(
                    FailureDetails(**{k: getattr(nd, k) for k in nd.__dataclass_fields__})
                )

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy.to_json(),
            "summary": {
                "total-successful-session-count": self.summary.total_successful_session_count,
                "total-failure-session-count": self.summary.total_failure_session_count,
            },
            "failure-details": [fd.to_json() for fd in self.failure_details],
        }


@dataclass
class Report:
    """A TLS report (section 4.3)."""

    organization_name: str
    start: datetime.datetime  # "date-range" "start-datetime", aware UTC
    end: datetime.datetime  # "end-datetime"
    contact_info: str
    report_id: str
    policies: list[Result] = field(default_factory=list)

    def merge(self, *results: Result) -> None:
        """Merge results: counts of equal policies add up, other policies are appended."""
        for nr in results:
            for r in self.policies:
                if r.policy.key() == nr.policy.key():
                    r.add(nr.summary.total_successful_session_count, nr.summary.total_failure_session_count, *nr.failure_details)
                    break
            else:
                r = Result(ResultPolicy(nr.policy.type, nr.policy.domain, list(nr.policy.strings), list(nr.policy.mx_hosts)))
                r.add(nr.summary.total_successful_session_count, nr.summary.total_failure_session_count, *nr.failure_details)
                self.policies.append(r)

    def has_failures(self) -> bool:
        return any(r.summary.total_failure_session_count > 0 or r.failure_details for r in self.policies)

    def to_json(self) -> dict[str, Any]:
        return {
            "organization-name": self.organization_name,
            "date-range": {"start-datetime": format_datetime(self.start), "end-datetime": format_datetime(self.end)},
            "contact-info": self.contact_info,
            "report-id": self.report_id,
            "policies": [r.to_json() for r in self.policies],
        }

    def dumps(self, indent: int | None = None) -> str:
        return json.dumps(self.to_json(), indent=indent)


def format_datetime(t: datetime.datetime) -> str:
    """RFC 3339 date-time in UTC with "Z", as section 4.4 asks."""
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(s: object, what: str) -> datetime.datetime:
    """An RFC 3339 date-time. Without offset it is taken as UTC: some reporters
    (Microsoft, as upstream notes) leave the "Z" out."""
    if not isinstance(s, str):
        raise ReportError(f"{what}: expected a date-time string, got {type(s).__name__}")
    try:
        t = datetime.datetime.fromisoformat(s.replace("z", "Z"))
    except ValueError as e:
        raise ReportError(f"{what}: invalid date-time {s!r}") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.astimezone(datetime.UTC)


def _obj(v: object, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ReportError(f"{what}: expected an object, got {type(v).__name__}")
    return v


def _str(d: dict[str, Any], key: str, what: str, *, required: bool = True) -> str:
    if key not in d:
        if required:
            raise ReportError(f"{what}: missing {key!r}")
        return ""
    v = d[key]
    if not isinstance(v, str):
        raise ReportError(f"{what}: {key!r} must be a string, got {type(v).__name__}")
    return v


def _count(d: dict[str, Any], key: str, what: str) -> int:
    if key not in d:
        raise ReportError(f"{what}: missing {key!r}")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ReportError(f"{what}: {key!r} must be a non-negative integer, got {v!r}")
    return v


def _strlist(d: dict[str, Any], key: str, what: str) -> list[str]:
    v = d.get(key)
    if v is None:
        return []
    if isinstance(v, str):  # mx-host as a single string, as in the RFC's example before erratum 6241.
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ReportError(f"{what}: {key!r} must be a list of strings")
    return list(v)


def result_from_json(pv: object, what: str = "policy result") -> Result:
    """One "policies" entry (policy, summary, failure-details) from decoded JSON."""
    p = _obj(pv, what)
    pol = _obj(p.get("policy"), what + " policy")
    ptype = _str(pol, "policy-type", what + " policy")
    try:
        pt = PolicyType(ptype)
    except ValueError:
        raise ReportError(f"{what}: unknown policy-type {ptype!r}") from None
    policy = ResultPolicy(
        type=pt,
        domain=_str(pol, "policy-domain", what + " policy"),
        strings=_strlist(pol, "policy-string", what + " policy"),
        mx_hosts=_strlist(pol, "mx-host", what + " policy"),
    )
    summ = _obj(p.get("summary"), what + " summary")
    summary = Summary(
        _count(summ, "total-successful-session-count", what + " summary"),
        _count(summ, "total-failure-session-count", what + " summary"),
    )
    details = []
    fdl = p.get("failure-details", [])
    if not isinstance(fdl, list):
        raise ReportError(f"{what}: 'failure-details' must be a list")
    for j, fv in enumerate(fdl):
        fwhat = f"{what} failure-details[{j}]"
        fd = _obj(fv, fwhat)
        details.append(
            FailureDetails(
                result_type=result_type(_str(fd, "result-type", fwhat)),
                failed_session_count=_count(fd, "failed-session-count", fwhat),
                **{attr: _str(fd, name, fwhat, required=False) for attr, name in _FD_FIELDS},
            )
        )
    return Result(policy, summary, details)


def report_from_json(doc: object) -> Report:
    """Build a :class:`Report` from decoded JSON, checking the structure of section 4.3."""
    d = _obj(doc, "report")
    dr = _obj(d.get("date-range"), "date-range")
    policies = d.get("policies")
    if not isinstance(policies, list):
        raise ReportError("report: 'policies' must be a list")
    report = Report(
        organization_name=_str(d, "organization-name", "report"),
        start=parse_datetime(dr.get("start-datetime"), "date-range start-datetime"),
        end=parse_datetime(dr.get("end-datetime"), "date-range end-datetime"),
        # Required by the RFC, but left out by some reporters; not worth refusing a report for.
        contact_info=_str(d, "contact-info", "report", required=False),
        report_id=_str(d, "report-id", "report"),
    )
    for i, pv in enumerate(policies):
        report.policies.append(result_from_json(pv, f"policies[{i}]"))
    return report


def parse_report(data: bytes | str) -> Report:
    """Parse a TLS report from its JSON text (section 4). Raises :class:`ReportError`."""
    if len(data) > MAX_REPORT_SIZE:
        raise ReportError(f"report larger than {MAX_REPORT_SIZE} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ReportError(f"invalid json: {e}") from None
    return report_from_json(doc)
