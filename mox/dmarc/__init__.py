"""DMARC: Domain-based Message Authentication, Reporting and Conformance (RFC 7489).

DMARC checks the domain of the message's From header, the one users see,
against the domains that SPF and DKIM authenticated, under the policy the
From domain publishes at ``_dmarc.<domain>`` (or its organizational domain's).

- :func:`lookup`: find the policy record (RFC 7489 section 6.6.3).
- :func:`verify`: evaluate a message (section 6.6.2, 4.2), with alignment
  (section 3.1), p/sp/pct (section 6.3), returning whether to reject and
  what aggregate reports need.
- :func:`lookup_external_reports_accepted`: whether a report destination in
  another domain accepts reports for a domain (section 7.1).
- :mod:`mox.dmarc.record`: record parsing and writing.

Decisions, as upstream mox:

- "quarantine" is treated like "reject" (:attr:`Result.reject`); callers
  decide whether that means rejecting or delivering to junk. A message
  sampled out by pct= is not "downgraded" to quarantine: the caller gets
  ``use_result=False`` and applies no DMARC policy.
- An SPF temperror or a DKIM temperror makes the result temperror (unless
  something aligned passes), and never rejects.
- Several DMARC records at one name: as if there were none (section 6.6.3).
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mox import publicsuffix
from mox.dkim import Result as DKIMResult
from mox.dkim import Status as DKIMStatus
from mox.dmarc.record import URI, Align, Policy, Record, RecordError, parse_record
from mox.dns import DNSError, Domain, NotFound, Resolver, default_resolver

log = logging.getLogger("mox.dmarc")


class Status(enum.StrEnum):
    """RFC 8601 section 2.7.5 / RFC 7489 section 11.2 dmarc results."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


# Randomness for pct= sampling: an int in [0, 100). Tests replace it.
random_percent: Callable[[], int] = lambda: random.randrange(100)  # noqa: E731


@dataclass
class DKIMAuth:
    """One DKIM result as aggregate reports list it (RFC 7489 appendix C, DKIMAuthResultType)."""

    domain: Domain
    selector: Domain
    result: str


@dataclass
class Result:
    """A DMARC evaluation.

    Attributes:
        reject: whether policy says reject (or quarantine). False does not mean
            accept: other checks may still refuse the message.
        status: the result for Authentication-Results.
        aligned_spf_pass, aligned_dkim_pass: which mechanism passed with alignment.
        domain: the domain where the record was found: the From domain, or
            its organizational domain.
        record: the parsed record, None if none was found.
        record_authentic: whether the record's lookups were DNSSEC-validated.
        error: what went wrong, "" if nothing.
        from_domain, spf_identity, spf_result, dkim: what was evaluated, for
            aggregate reports (identifiers and auth_results of RFC 7489 appendix C).
        policy_applied: the policy that applied (p=, or sp= for a subdomain).
    """

    reject: bool = False
    status: Status = Status.NONE
    aligned_spf_pass: bool = False
    aligned_dkim_pass: bool = False
    domain: Domain = field(default_factory=lambda: Domain(""))
    record: Record | None = None
    record_authentic: bool = False
    error: str = ""
    from_domain: Domain = field(default_factory=lambda: Domain(""))
    spf_identity: Domain | None = None
    spf_result: str = ""
    dkim: list[DKIMAuth] = field(default_factory=list)
    policy_applied: Policy = Policy.EMPTY


@dataclass
class Lookup:
    """The outcome of :func:`lookup`."""

    status: Status
    domain: Domain
    record: Record | None
    text: str
    authentic: bool
    error: str


async def _lookup_record(resolver: Resolver, domain: Domain) -> Lookup:
    name = f"_dmarc.{domain.ascii}"
    try:
        res = await resolver.lookup_txt(name)
    except NotFound as e:
        return Lookup(Status.NONE, domain, None, "", e.authentic, "no dmarc dns record")
    except DNSError as e:
        return Lookup(Status.TEMPERROR, domain, None, "", False, f"dmarc dns lookup: {e}")
    record: Record | None = None
    text = ""
    for txt in res.records:
        try:
            r, is_dmarc = parse_record(txt)
        except RecordError as e:
            return Lookup(
                Status.PERMERROR, domain, None, txt, res.authentic, f"malformed dmarc dns record: {e}"
            )
        if not is_dmarc:
            # Section 6.6.3 step 3: records not starting with v=DMARC1 are discarded.
            continue
        if record is not None:
            # Section 6.6.3 step 4: more than one record: no DMARC.
            return Lookup(Status.NONE, domain, None, "", res.authentic, "multiple dmarc dns records")
        record, text = r, txt
    if record is None:
        return Lookup(Status.NONE, domain, None, "", res.authentic, "no dmarc dns record")
    return Lookup(Status.NONE, domain, record, text, res.authentic, "")


async def lookup(from_domain: Domain, resolver: Resolver | None = None) -> Lookup:
    """Find the DMARC record for the From domain (RFC 7489 section 6.6.3).

    ``_dmarc.<from-domain>`` first, then ``_dmarc.<organizational-domain>``
    when the From domain has none. ``status`` is NONE when a record was found
    (or none exists); TEMPERROR/PERMERROR on DNS or syntax errors.
    """
    r = resolver or default_resolver()
    res = await _lookup_record(r, from_domain)
    if res.status != Status.NONE or res.record is not None:
        return res
    org = publicsuffix.lookup(from_domain)
    if org == from_domain:
        return res
    res2 = await _lookup_record(r, org)
    res2.authentic = res.authentic and res2.authentic
    return res2


def _aligned(a: Domain, b: Domain, mode: Align) -> bool:
    """Identifier alignment (RFC 7489 section 3.1): names equal, or in relaxed mode org domains equal."""
    if a.ascii == b.ascii:
        return True
    return mode == Align.RELAXED and publicsuffix.lookup(a).ascii == publicsuffix.lookup(b).ascii


async def verify(
    resolver: Resolver | None,
    from_domain: Domain,
    dkim_results: Sequence[DKIMResult],
    spf_result: str,
    spf_identity: Domain | None,
    apply_random_percentage: bool = True,
    looked_up: Lookup | None = None,
) -> tuple[bool, Result]:
    """Evaluate the DMARC policy for a message (RFC 7489 section 6.6).

    Args:
        resolver: for the record lookup; the default resolver when None.
        from_domain: domain of the message's From address.
        dkim_results: results of :func:`mox.dkim.verify`.
        spf_result: the SPF result ("pass", "fail", "temperror", ...).
        spf_identity: the domain SPF evaluated: the MAIL FROM domain, or the
            EHLO domain for a null reverse-path (section 3.1.2), None if none.
        apply_random_percentage: honour pct= (normal mail handling); False
            applies the policy to every message.
        looked_up: the result of :func:`lookup` for from_domain when the caller
            already has it (e.g. looked up concurrently with DKIM); looked up here if None.

    Returns:
        (use_result, result): result is always filled (for Authentication-Results);
        use_result says whether pct= sampling selected this message for the
        policy, i.e. whether ``result.reject`` should be acted on.
    """
    r = resolver or default_resolver()
    lk = looked_up if looked_up is not None else await lookup(from_domain, r)
    result = Result(
        status=lk.status,
        domain=lk.domain,
        record=lk.record,
        record_authentic=lk.authentic,
        error=lk.error,
        from_domain=from_domain,
        spf_identity=spf_identity,
        spf_result=str(spf_result),
        dkim=[
            DKIMAuth(d.sig.domain, d.sig.selector, str(d.status)) for d in dkim_results if d.sig is not None
        ],
    )
    record = lk.record
    if record is None:
        return False, result

    # Section 6.6.4: pct= selects the share of failing messages the policy applies to.
    use_result = (
        not apply_random_percentage or record.percentage == 100 or random_percent() < record.percentage
    )

    # Section 6.3, sp=: for subdomains of the domain where the record was found; p= when absent.
    if lk.domain != from_domain and record.subdomain_policy != Policy.EMPTY:
        result.policy_applied = record.subdomain_policy
    else:
        result.policy_applied = record.policy
    result.reject = result.policy_applied != Policy.NONE

    # Section 6.6.2: pass needs an aligned pass of SPF or DKIM; else fail, or
    # temperror when a check could not complete.
    result.status = Status.FAIL
    if str(spf_result) == "temperror":
        result.status = Status.TEMPERROR
        result.reject = False

    if (
        str(spf_result) == "pass"
        and spf_identity is not None
        and _aligned(from_domain, spf_identity, record.aspf)
    ):
        result.aligned_spf_pass = True

    for d in dkim_results:
        if d.status == DKIMStatus.TEMPERROR:
            result.status = Status.TEMPERROR
            result.reject = False
            continue
        # Section 3.1.1: the d= of a passing signature against the From domain.
        if (
            d.status == DKIMStatus.PASS
            and d.sig is not None
            and _aligned(from_domain, d.sig.domain, record.adkim)
        ):
            result.aligned_dkim_pass = True
            break

    if result.aligned_spf_pass or result.aligned_dkim_pass:
        result.status = Status.PASS
        result.reject = False
    log.debug(
        "dmarc verify result from=%s status=%s reject=%s use=%s domain=%s",
        from_domain.ascii,
        result.status,
        result.reject,
        use_result,
        lk.domain.ascii,
    )
    return use_result, result


@dataclass
class ExternalReports:
    """The outcome of :func:`lookup_external_reports_accepted`."""

    accepts: bool
    status: Status
    records: list[Record]
    texts: list[str]
    authentic: bool
    error: str


async def lookup_external_reports_accepted(
    dmarc_domain: Domain, dest_domain: Domain, resolver: Resolver | None = None
) -> ExternalReports:
    """Whether dest_domain accepts reports about dmarc_domain (RFC 7489 section 7.1).

    Looks for a DMARC record at ``<dmarc-domain>._report._dmarc.<dest-domain>``.
    Several records are allowed here. The bare ``v=DMARC1`` the RFC's
    examples use (not valid by the grammar, erratum 5440) is accepted.
    """
    r = resolver or default_resolver()
    name = f"{dmarc_domain.ascii}._report._dmarc.{dest_domain.ascii}"
    try:
        res = await r.lookup_txt(name)
    except NotFound as e:
        return ExternalReports(False, Status.NONE, [], [], e.authentic, "no dmarc reporting dns record")
    except DNSError as e:
        return ExternalReports(False, Status.TEMPERROR, [], [], False, f"dmarc dns lookup: {e}")
    records: list[Record] = []
    texts: list[str] = []
    for txt in res.records:
        try:
            rec, is_dmarc = parse_record(txt, require_policy=False)
        except RecordError as e:
            return ExternalReports(
                False, Status.PERMERROR, records, texts, res.authentic, f"malformed record: {e}"
            )
        if rec is None or not is_dmarc:
            continue
        records.append(rec)
        texts.append(txt)
    if not records:
        return ExternalReports(False, Status.NONE, [], [], res.authentic, "no dmarc reporting dns record")
    return ExternalReports(True, Status.NONE, records, texts, res.authentic, "")


__all__ = [
    "URI",
    "Align",
    "DKIMAuth",
    "ExternalReports",
    "Lookup",
    "Policy",
    "Record",
    "RecordError",
    "Result",
    "Status",
    "lookup",
    "lookup_external_reports_accepted",
    "parse_record",
    "verify",
]
