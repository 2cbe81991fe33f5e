"""Incoming DMARC aggregate reports delivered to our DMARC reporting addresses, and the
entry point the SMTP delivery path calls for both kinds of reports.

The message is delivered as usual whatever happens here: a report that is
malformed, not DMARC-authenticated, or about a domain the address does not
receive reports for is logged and not added to the statistics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mox import dmarcrpt, mlog
from mox.config.load import canonical_localpart
from mox.dmarcdb.reports import ReportsDB, open_reports
from mox.dns import Domain, DomainError, parse_domain
from mox.tlsrptdb import incoming as tlsincoming

if TYPE_CHECKING:
    from mox.config.load import Config

log = mlog.new("dmarcdb")

# Reports whose period ends further in the future than this are refused (as upstream).
FUTURE_SLACK = 60


def dmarc_report_domains(cfg: Config, rcpt: str) -> set[str]:
    """The configured domains (Unicode names) whose DMARC reporting address is ``rcpt`` (``localpart@domain``)."""
    lp, sep, dom = rcpt.rpartition("@")
    if not sep:
        return set()
    try:
        d = parse_domain(dom)
    except DomainError:
        return set()
    dc = cfg.dynamic.Domains.get(d.name)
    lpc = canonical_localpart(lp, dc) if dc is not None else lp.lower()
    out = set()
    for dname, dconf in cfg.dynamic.Domains.items():
        rep = dconf.DMARC
        if rep is None:
            continue
        rdom = rep.DNSDomain if rep.DNSDomain is not None else dconf.DNSDomain
        if rdom is None or rdom.name != d.name:
            continue
        rdc = cfg.dynamic.Domains.get(rdom.name)
        want = canonical_localpart(rep.ParsedLocalpart, rdc) if rdc is not None else rep.ParsedLocalpart.lower()
        if want == lpc:
            out.add(dname)
    return out


@dataclass
class IncomingOutcome:
    """What happened to an incoming report message; ``header`` (with CRLF) may be
    added to the delivered message when the report was not used, as upstream does."""

    stored: bool
    ids: list[int] = field(default_factory=list)
    error: str = ""
    header: str = ""


def _refuse(msg: str, **fields: object) -> IncomingOutcome:
    log.info("dmarc report not stored: " + msg, **fields)
    return IncomingOutcome(False, error=msg, header=f"X-Mox-DMARCReport-Error: {msg}\r\n")


def _about(domain: str, served: set[str]) -> bool:
    """Whether a report's policy domain is one of the served domains or below one
    (a subdomain with its own DMARC record whose rua points here)."""
    try:
        d = parse_domain(domain.rstrip("."))
    except DomainError:
        return False
    return any(d.name == s or d.name.endswith("." + s) for s in served)


async def process_incoming_report(
    cfg: Config,
    rcpt: str,
    data: bytes,
    *,
    dmarc_pass: bool,
    from_domain: Domain | None,
    db: ReportsDB | None = None,
    now: float | None = None,
) -> IncomingOutcome:
    """Parse and store the DMARC aggregate report in a message delivered to ``rcpt``.

    Args:
        cfg: the running config.
        rcpt: the recipient address, ``localpart@domain``.
        data: the message as delivered.
        dmarc_pass: whether the message's DMARC result was "pass" (RFC 7489
            section 7.2.1.1 requires report messages to pass DMARC).
        from_domain: domain of the message's From header, stored with the report.
        db: the reports database; the data directory's shared one by default.
        now: the current time (tests).

    Stored when the address is the DMARC reporting address of the report's
    policy domain (or a parent of it), the message passes DMARC and the
    report parses and does not end in the future. Never raises.
    """
    try:
        served = dmarc_report_domains(cfg, rcpt)
        if not served:
            return _refuse("not a dmarc reporting address", rcpt=rcpt)
        if not dmarc_pass:
            return _refuse("no DMARC pass", rcpt=rcpt)
        try:
            feedback = dmarcrpt.parse_message(data)
        except dmarcrpt.FeedbackError as e:
            return _refuse("could not parse report", rcpt=rcpt, err=str(e))
        domain = feedback.policy_published.domain
        if not _about(domain, served):
            return _refuse("published policy domain unrecognized", rcpt=rcpt, domain=domain)
        t = time.time() if now is None else now
        if feedback.report_metadata.date_range.end > t + FUTURE_SLACK:
            return _refuse("report has end date in the future", rcpt=rcpt, end=feedback.report_metadata.date_range.end)
        if db is None:
            db = await open_reports(cfg.data_dir)
        rid = await db.add_report(feedback, from_domain if from_domain is not None else "", received=t)
        log.info(
            "dmarc report stored", rcpt=rcpt, domain=domain, org=feedback.report_metadata.org_name, reportid=feedback.report_metadata.report_id
        )
        return IncomingOutcome(True, [rid])
    except Exception as e:
        log.errorx("processing incoming dmarc report", e, rcpt=rcpt)
        return IncomingOutcome(False, error=f"processing dmarc report: {e}")


def is_report_address(cfg: Config, rcpt: str) -> bool:
    """Whether ``rcpt`` is one of our DMARC or TLS reporting addresses."""
    return bool(dmarc_report_domains(cfg, rcpt)) or bool(tlsincoming.tls_report_address(cfg, rcpt))


async def process_report_delivery(
    cfg: Config,
    rcpt: str,
    data: bytes,
    *,
    from_domain: Domain | None,
    dmarc_pass: bool,
    dkim_pass_domains: Sequence[Domain],
    mail_from: str = "",
    now: float | None = None,
) -> list[tlsincoming.IncomingOutcome | IncomingOutcome]:
    """The SMTP delivery path's single call for a message delivered to ``rcpt``: when it
    is a DMARC and/or TLS reporting address, the report in the message is parsed
    and stored (see the two ``process_incoming_report`` functions). Returns the
    outcomes (empty for other addresses). Never raises."""
    out: list[tlsincoming.IncomingOutcome | IncomingOutcome] = []
    try:
        if dmarc_report_domains(cfg, rcpt):
            out.append(await process_incoming_report(cfg, rcpt, data, dmarc_pass=dmarc_pass, from_domain=from_domain, now=now))
        if tlsincoming.tls_report_address(cfg, rcpt):
            out.append(
                await tlsincoming.process_incoming_report(
                    cfg, rcpt, data, from_domain=from_domain, dkim_pass_domains=dkim_pass_domains, mail_from=mail_from, now=now
                )
            )
    except Exception as e:
        log.errorx("processing incoming report", e, rcpt=rcpt)
    return out
