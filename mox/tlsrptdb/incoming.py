"""Incoming TLS reports delivered to our TLSRPT reporting addresses (RFC 8460 section 5.3).

The SMTP delivery path calls :func:`process_incoming_report` for a message
delivered to a domain's ``TLSRPT`` address (domains.conf) or to the host's
``HostTLSRPT`` address (mox.conf). The message itself is delivered as usual
whatever happens here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mox import mlog, publicsuffix, tlsrpt
from mox.config.load import canonical_localpart
from mox.dns import Domain, DomainError, parse_domain
from mox.tlsrptdb.db import TLSRPTDB, open_data_dir

if TYPE_CHECKING:
    from mox.config.load import Config

log = mlog.new("tlsrptdb")


@dataclass
class TLSReportAddress:
    """What a recipient address is for TLS reporting: the policy domains reports to it may be about."""

    domains: set[str] = field(default_factory=set)  # configured domains whose TLSRPT address this is (Unicode names)
    host: bool = False  # the HostTLSRPT address: reports about our host name

    def __bool__(self) -> bool:
        return self.host or bool(self.domains)


def _split(rcpt: str) -> tuple[str, Domain] | None:
    lp, sep, dom = rcpt.rpartition("@")
    if not sep:
        return None
    try:
        return lp, parse_domain(dom)
    except DomainError:
        return None


def tls_report_address(cfg: Config, rcpt: str) -> TLSReportAddress:
    """Whether ``rcpt`` (``localpart@domain``) is a TLS reporting address of ours, and for what."""
    out = TLSReportAddress()
    sp = _split(rcpt)
    if sp is None:
        return out
    lp, dom = sp
    dc = cfg.dynamic.Domains.get(dom.name)
    lpc = canonical_localpart(lp, dc) if dc is not None else lp.lower()
    for dname, d in cfg.dynamic.Domains.items():
        rep = d.TLSRPT
        if rep is None:
            continue
        rdom = rep.DNSDomain if rep.DNSDomain is not None else d.DNSDomain
        if rdom is None or rdom.name != dom.name:
            continue
        rdc = cfg.dynamic.Domains.get(rdom.name)
        want = canonical_localpart(rep.ParsedLocalpart, rdc) if rdc is not None else rep.ParsedLocalpart.lower()
        if want == lpc:
            out.domains.add(dname)
    h = cfg.static.HostTLSRPT
    hd = cfg.static.HostnameDomain
    if h.ParsedLocalpart and hd is not None and hd.name == dom.name and h.ParsedLocalpart.lower() == lp.lower():
        out.host = True
    return out


def dkim_acceptable(from_domain: Domain, dkim_pass_domains: Sequence[Domain]) -> bool:
    """RFC 8460 section 3: a report message must be DKIM-signed by the reporting domain.
    As upstream, a passing signature of the From domain, or of a parent domain
    in the same organizational domain, is accepted."""
    for d in dkim_pass_domains:
        if d.ascii == from_domain.ascii:
            return True
        if from_domain.ascii.endswith("." + d.ascii) and publicsuffix.lookup(from_domain) == publicsuffix.lookup(d):
            return True
    return False


@dataclass
class IncomingOutcome:
    """What happened to an incoming report message.

    ``header`` is a header line (with CRLF) the caller may add to the
    delivered message when the report was not used, as upstream does
    (``X-Mox-TLSReport-Error: ...``); empty when stored.
    """

    stored: bool
    ids: list[int] = field(default_factory=list)
    error: str = ""
    header: str = ""


def _refuse(msg: str, **fields: object) -> IncomingOutcome:
    log.info("tls report not stored: " + msg, **fields)
    return IncomingOutcome(False, error=msg, header=f"X-Mox-TLSReport-Error: {msg}\r\n")


async def process_incoming_report(
    cfg: Config,
    rcpt: str,
    data: bytes,
    *,
    from_domain: Domain | None,
    dkim_pass_domains: Sequence[Domain],
    mail_from: str = "",
    db: TLSRPTDB | None = None,
    now: float | None = None,
) -> IncomingOutcome:
    """Parse and store the TLS report in a message delivered to ``rcpt``.

    Args:
        cfg: the running config.
        rcpt: the recipient address the message was delivered to, ``localpart@domain``.
        data: the message as delivered.
        from_domain: domain of the message's From header (None if it had none).
        dkim_pass_domains: d= domains of the message's passing DKIM signatures
            (leave out signatures with l= and keys whose s= excludes "tlsrpt").
        mail_from: the SMTP MAIL FROM, stored with the report.
        db: the database; the data directory's shared one by default.
        now: time of receipt (tests).

    The report is stored once per policy domain in it that this address
    receives reports for (a domain whose TLSRPT address it is, or our host
    name for the HostTLSRPT address: a policy about our host name, or one
    listing it in mx-host, as upstream writes reports to MX hosts). Nothing is stored, with a log line,
    when the address is not a TLS reporting address, the message lacks an
    acceptable DKIM signature, has no parsable report, or is about none of
    those domains. Never raises (an unexpected error is logged and returned).
    """
    try:
        addr = tls_report_address(cfg, rcpt)
        if not addr:
            return _refuse("not a tls reporting address", rcpt=rcpt)
        if from_domain is None or not dkim_acceptable(from_domain, dkim_pass_domains):
            return _refuse("no acceptable DKIM signature", rcpt=rcpt, msgfrom=str(from_domain or ""))
        try:
            report = tlsrpt.parse_message(data)
        except tlsrpt.ReportError as e:
            return _refuse("could not parse TLS report", rcpt=rcpt, err=str(e))
        hostname = cfg.static.HostnameDomain.name if cfg.static.HostnameDomain is not None else ""
        ours: set[str] = set()
        for p in report.policies:
            try:
                d = parse_domain(p.policy.domain.rstrip("."))
            except DomainError:
                log.info("tls report with invalid policy domain, ignoring policy", domain=p.policy.domain)
                continue
            if d.name in addr.domains or (addr.host and d.name == hostname):
                ours.add(d.name)
            elif addr.host and hostname and any(m.rstrip(".").lower() == cfg.static.HostnameDomain.ascii for m in p.policy.mx_hosts):
                # Upstream (and our sender) write reports to an MX host with the recipient
                # domain as policy-domain and the host in mx-host: it is about our host.
                ours.add(hostname)
        if not ours:
            return _refuse("report for unknown domain", rcpt=rcpt, domains=",".join(p.policy.domain for p in report.policies))
        if db is None:
            db = await open_data_dir(cfg.data_dir)
        ids = await db.add_report(
            report,
            policy_domains=ours,
            from_domain=from_domain,
            mail_from=mail_from,
            host_report=addr.host and hostname in ours,
            received=time.time() if now is None else now,
        )
        log.info("tls report stored", rcpt=rcpt, domains=",".join(sorted(ours)), reportid=report.report_id, org=report.organization_name)
        return IncomingOutcome(True, ids)
    except Exception as e:
        log.errorx("processing incoming tls report", e, rcpt=rcpt)
        return IncomingOutcome(False, error=f"processing tls report: {e}")
