"""The DMARC aggregate report ("feedback") of RFC 7489 appendix C: model, XML parsing and writing.

Parsing is namespace-agnostic (reports in the wild come without namespace,
with the draft's ``urn:ietf:params:xml:ns:dmarc-2.0`` or the RFC's
``http://dmarc.org/dmarc-xml/0.1``) and lenient about element order and
enumerated values (kept as strings), but requires the elements a report is
useless without. Writing follows the appendix C schema exactly (element
order, required elements, the IPv6 pattern of its IPAddress type).
"""

from __future__ import annotations

import enum
import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

# Reports larger than this are refused (as upstream: 20 MB of XML).
MAX_REPORT_SIZE = 20 * 1024 * 1024


class FeedbackError(ValueError):
    """An aggregate report that is not well-formed XML or lacks required elements."""


class Disposition(enum.StrEnum):
    """DispositionType: p=/sp= and the disposition applied."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


class Alignment(enum.StrEnum):
    RELAXED = "r"
    STRICT = "s"


class DMARCResult(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"


class PolicyOverride(enum.StrEnum):
    FORWARDED = "forwarded"
    SAMPLED_OUT = "sampled_out"
    TRUSTED_FORWARDER = "trusted_forwarder"
    MAILING_LIST = "mailing_list"
    LOCAL_POLICY = "local_policy"
    OTHER = "other"


@dataclass
class DateRange:
    begin: int  # Unix seconds, UTC
    end: int


@dataclass
class ReportMetadata:
    org_name: str
    email: str
    report_id: str
    date_range: DateRange
    extra_contact_info: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class PolicyPublished:
    """The DMARC record the evaluations were done with. ``domain`` is where it was found."""

    domain: str
    adkim: str = ""  # "r", "s" or "" (absent)
    aspf: str = ""
    p: str = "none"
    sp: str = ""  # "" when absent; written as p
    pct: int = 100
    fo: str = ""  # "" when absent; written as "0"


@dataclass
class PolicyOverrideReason:
    type: str
    comment: str = ""


@dataclass
class PolicyEvaluated:
    disposition: str = "none"
    dkim: str = "fail"
    spf: str = "fail"
    reasons: list[PolicyOverrideReason] = field(default_factory=list)


@dataclass
class Row:
    source_ip: str
    count: int
    policy_evaluated: PolicyEvaluated = field(default_factory=PolicyEvaluated)


@dataclass
class Identifiers:
    header_from: str
    envelope_to: str = ""
    envelope_from: str = ""  # in later drafts only; parsed, never written (not in RFC 7489's IdentifierType)


@dataclass
class DKIMAuthResult:
    domain: str
    result: str
    selector: str = ""
    human_result: str = ""


@dataclass
class SPFAuthResult:
    domain: str
    result: str
    scope: str = "mfrom"  # "helo" or "mfrom"


@dataclass
class AuthResults:
    dkim: list[DKIMAuthResult] = field(default_factory=list)
    spf: list[SPFAuthResult] = field(default_factory=list)


@dataclass
class ReportRecord:
    row: Row
    identifiers: Identifiers
    auth_results: AuthResults = field(default_factory=AuthResults)


@dataclass
class Feedback:
    """An aggregate report."""

    report_metadata: ReportMetadata
    policy_published: PolicyPublished
    records: list[ReportRecord] = field(default_factory=list)
    version: str = "1.0"

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (for the CLI and admin pages), field names as in the XML."""
        from dataclasses import asdict

        return asdict(self)


# Parsing.


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(e: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in e if _local(c.tag) == name]


def _child(e: ET.Element, name: str, what: str, *, required: bool = True) -> ET.Element | None:
    cs = _children(e, name)
    if not cs:
        if required:
            raise FeedbackError(f"{what}: missing <{name}>")
        return None
    return cs[0]


def _text(e: ET.Element, name: str, what: str, *, required: bool = True) -> str:
    c = _child(e, name, what, required=required)
    if c is None:
        return ""
    return (c.text or "").strip()


def _int(e: ET.Element, name: str, what: str, *, required: bool = True, default: int = 0) -> int:
    s = _text(e, name, what, required=required)
    if not s:
        if required:
            raise FeedbackError(f"{what}: empty <{name}>")
        return default
    try:
        return int(s)
    except ValueError:
        raise FeedbackError(f"{what}: <{name}> is not an integer: {s!r}") from None


def _parse_record(e: ET.Element, i: int) -> ReportRecord:
    what = f"record {i}"
    rowe = _child(e, "row", what)
    assert rowe is not None
    pe = _child(rowe, "policy_evaluated", what, required=False)
    evaluated = PolicyEvaluated()
    if pe is not None:
        evaluated = PolicyEvaluated(
            disposition=_text(pe, "disposition", what, required=False),
            dkim=_text(pe, "dkim", what, required=False),
            spf=_text(pe, "spf", what, required=False),
            reasons=[
                PolicyOverrideReason(_text(r, "type", what, required=False), _text(r, "comment", what, required=False))
                for r in _children(pe, "reason")
            ],
        )
    count = _int(rowe, "count", what)
    if count < 0:
        raise FeedbackError(f"{what}: negative count {count}")
    row = Row(source_ip=_text(rowe, "source_ip", what), count=count, policy_evaluated=evaluated)
    ide = _child(e, "identifiers", what, required=False)
    identifiers = Identifiers(header_from="")
    if ide is not None:
        identifiers = Identifiers(
            header_from=_text(ide, "header_from", what, required=False),
            envelope_to=_text(ide, "envelope_to", what, required=False),
            envelope_from=_text(ide, "envelope_from", what, required=False),
        )
    auth = AuthResults()
    are = _child(e, "auth_results", what, required=False)
    if are is not None:
        auth.dkim = [
            DKIMAuthResult(
                domain=_text(d, "domain", what, required=False),
                result=_text(d, "result", what, required=False),
                selector=_text(d, "selector", what, required=False),
                human_result=_text(d, "human_result", what, required=False),
            )
            for d in _children(are, "dkim")
        ]
        auth.spf = [
            SPFAuthResult(
                domain=_text(s, "domain", what, required=False),
                result=_text(s, "result", what, required=False),
                scope=_text(s, "scope", what, required=False),
            )
            for s in _children(are, "spf")
        ]
    return ReportRecord(row, identifiers, auth)


def parse_feedback(data: bytes | str) -> Feedback:
    """Parse an aggregate report XML document. Raises :class:`FeedbackError`.

    Entities are not expanded beyond what expat allows (it refuses
    entity-expansion amplification and never loads external entities).
    """
    if len(data) > MAX_REPORT_SIZE:
        raise FeedbackError(f"report larger than {MAX_REPORT_SIZE} bytes")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise FeedbackError(f"invalid xml: {e}") from None
    if _local(root.tag) != "feedback":
        raise FeedbackError(f"root element is <{_local(root.tag)}>, expected <feedback>")
    me = _child(root, "report_metadata", "feedback")
    assert me is not None
    dre = _child(me, "date_range", "report_metadata")
    assert dre is not None
    meta = ReportMetadata(
        org_name=_text(me, "org_name", "report_metadata"),
        email=_text(me, "email", "report_metadata", required=False),
        report_id=_text(me, "report_id", "report_metadata"),
        date_range=DateRange(_int(dre, "begin", "date_range"), _int(dre, "end", "date_range")),
        extra_contact_info=_text(me, "extra_contact_info", "report_metadata", required=False),
        errors=[(x.text or "").strip() for x in _children(me, "error")],
    )
    ppe = _child(root, "policy_published", "feedback")
    assert ppe is not None
    domain = _text(ppe, "domain", "policy_published")
    if not domain:
        raise FeedbackError("policy_published: empty <domain>")
    pp = PolicyPublished(
        domain=domain,
        adkim=_text(ppe, "adkim", "policy_published", required=False),
        aspf=_text(ppe, "aspf", "policy_published", required=False),
        p=_text(ppe, "p", "policy_published", required=False),
        sp=_text(ppe, "sp", "policy_published", required=False),
        pct=_int(ppe, "pct", "policy_published", required=False, default=100),
        fo=_text(ppe, "fo", "policy_published", required=False),
    )
    records = [_parse_record(r, i) for i, r in enumerate(_children(root, "record"))]
    return Feedback(meta, pp, records, version=_text(root, "version", "feedback", required=False))


# Writing.


def schema_ip(ip: str) -> str:
    """An IP address as the appendix C IPAddress type accepts it: IPv6 fully written out
    (its pattern has no "::" shorthand). Text that is no IP address is returned as is."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    return a.exploded if a.version == 6 else str(a)


# Characters XML 1.0 cannot carry (section 2.2 of the XML spec), removed from text we write.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _sub(parent: ET.Element, name: str, text: str | int | None = None) -> ET.Element:
    e = ET.SubElement(parent, name)
    if text is not None:
        e.text = _XML_INVALID.sub("", str(text))
    return e


def feedback_xml(f: Feedback) -> bytes:
    """The report as an XML document (UTF-8, with declaration), valid under appendix C.

    Required elements the model may leave empty get their defaults: ``sp``
    is ``p`` when absent, ``fo`` is "0", and a record without SPF result gets
    an SPF "none" for its header-from domain (the schema requires at least one).
    """
    root = ET.Element("feedback")
    _sub(root, "version", f.version or "1.0")
    m = f.report_metadata
    me = _sub(root, "report_metadata")
    _sub(me, "org_name", m.org_name)
    _sub(me, "email", m.email)
    if m.extra_contact_info:
        _sub(me, "extra_contact_info", m.extra_contact_info)
    _sub(me, "report_id", m.report_id)
    dr = _sub(me, "date_range")
    _sub(dr, "begin", m.date_range.begin)
    _sub(dr, "end", m.date_range.end)
    for err in m.errors:
        _sub(me, "error", err)
    p = f.policy_published
    pe = _sub(root, "policy_published")
    _sub(pe, "domain", p.domain)
    if p.adkim:
        _sub(pe, "adkim", p.adkim)
    if p.aspf:
        _sub(pe, "aspf", p.aspf)
    _sub(pe, "p", p.p or "none")
    _sub(pe, "sp", p.sp or p.p or "none")
    _sub(pe, "pct", p.pct)
    _sub(pe, "fo", p.fo or "0")
    for r in f.records:
        re_ = _sub(root, "record")
        row = _sub(re_, "row")
        _sub(row, "source_ip", schema_ip(r.row.source_ip))
        _sub(row, "count", r.row.count)
        ev = _sub(row, "policy_evaluated")
        _sub(ev, "disposition", r.row.policy_evaluated.disposition)
        _sub(ev, "dkim", r.row.policy_evaluated.dkim)
        _sub(ev, "spf", r.row.policy_evaluated.spf)
        for reason in r.row.policy_evaluated.reasons:
            rse = _sub(ev, "reason")
            _sub(rse, "type", reason.type)
            if reason.comment:
                _sub(rse, "comment", reason.comment)
        ide = _sub(re_, "identifiers")
        if r.identifiers.envelope_to:
            _sub(ide, "envelope_to", r.identifiers.envelope_to)
        _sub(ide, "header_from", r.identifiers.header_from)
        ar = _sub(re_, "auth_results")
        for d in r.auth_results.dkim:
            de = _sub(ar, "dkim")
            _sub(de, "domain", d.domain)
            if d.selector:
                _sub(de, "selector", d.selector)
            _sub(de, "result", d.result)
            if d.human_result:
                _sub(de, "human_result", d.human_result)
        spfs = r.auth_results.spf or [SPFAuthResult(r.identifiers.header_from, "none", "mfrom")]
        for s in spfs:
            se = _sub(ar, "spf")
            _sub(se, "domain", s.domain)
            _sub(se, "scope", s.scope or "mfrom")
            _sub(se, "result", s.result)
    ET.indent(root, space="\t")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"
