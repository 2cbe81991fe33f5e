"""Outgoing DMARC aggregate reports (RFC 7489 section 7.2) from the stored evaluations.

Every hour (just after the whole hour, with jitter) :meth:`DMARCReporter.send_reports`
runs for the hour that just ended: for each policy domain with evaluations
whose reporting interval (``ri``, rounded to hours dividing a day) ends at
this hour, one report covering whole intervals is composed and queued to
each ``rua`` address of the domain's current DMARC record:

- addresses outside the policy domain's organizational domain must opt in
  with a ``<policy-domain>._report._dmarc.<rua-domain>`` record (section 7.1;
  the organizational domain's name is accepted too, as upstream checks that),
  which may name replacement addresses at the same host;
- ``!size`` limits are respected (the size of the whole message counts, as
  upstream); when no address takes the report, a short error report is sent;
- the XML is gzipped and attached; the message is DKIM-signed and sent from
  ``postmaster@<hostname>``; suppressed addresses are skipped;
- evaluations are removed afterwards, except after temporary errors; those
  older than 48 hours are pruned whatever happened.

Domains with only "optional" evaluations (e.g. from incoming reports) get no
report. Time, the resolver, the sleep and the submit function are injectable.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import gzip
import hashlib
import json
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from mox import dmarc, dmarcrpt, mlog, publicsuffix
from mox.dmarcdb.evaluations import Evaluation, EvaluationDB
from mox.dmarcdb.reportmsg import OutgoingReport, SubmitFn, compose, dkim_sign, message_id, queue_submit
from mox.dns import Domain, DomainError, Resolver, default_resolver, parse_domain
from mox.smtp.address import AddressError, parse_address

if TYPE_CHECKING:
    from mox.config.load import Config

log = mlog.new("dmarcdb")

# Evaluations older than this are removed before each run (two reports of the longest interval).
STALE_SECONDS = 48 * 3600
# Intervals (hours) dividing a day, longest first, as upstream tries them at each whole hour.
INTERVALS = (24, 12, 8, 6, 4, 3, 2)


def intervals_for_hour(end: float) -> list[int]:
    """The reporting intervals (hours) that end at the UTC hour of ``end``: those whose
    multiples, counted from 00:00 UTC, include it (section 7.2 asks for UTC-aligned
    periods); 1 always."""
    h = datetime.datetime.fromtimestamp(end, datetime.UTC).hour or 24
    return [i for i in INTERVALS if h % i == 0] + [1]


def next_whole_hour(now: float) -> float:
    return (int(now) // 3600 + 1) * 3600.0


@dataclass
class Recipient:
    address: str  # ASCII or UTF-8 local part, domain as given
    domain: Domain
    max_size: int = 0  # bytes, 0: no limit


def parse_rua(uri: dmarc.URI) -> Recipient | None:
    """A mailto: rua destination as a recipient; None for other schemes or bad addresses."""
    addr = uri.address
    scheme, sep, rest = addr.partition(":")
    if not sep or scheme.lower() != "mailto":
        return None
    a = urllib.parse.unquote(rest.split("?", 1)[0])
    try:
        pa = parse_address(a)
    except AddressError:
        return None
    return Recipient(pa.pack(False), pa.domain, uri.max_bytes)


def evaluation_record(e: Evaluation) -> dmarcrpt.ReportRecord:
    """The report row for one evaluation (count 1)."""
    return dmarcrpt.ReportRecord(
        row=dmarcrpt.Row(
            e.source_ip,
            1,
            dmarcrpt.PolicyEvaluated(
                e.disposition or "none",
                "pass" if e.aligned_dkim_pass else "fail",
                "pass" if e.aligned_spf_pass else "fail",
                [dmarcrpt.PolicyOverrideReason(r.get("type", "other"), r.get("comment", "")) for r in e.override_reasons],
            ),
        ),
        identifiers=dmarcrpt.Identifiers(header_from=e.header_from, envelope_to=e.envelope_to, envelope_from=e.envelope_from),
        auth_results=dmarcrpt.AuthResults(
            dkim=[dmarcrpt.DKIMAuthResult(d.get("domain", ""), d.get("result", ""), d.get("selector", "")) for d in e.dkim_results],
            spf=[dmarcrpt.SPFAuthResult(s.get("domain", ""), s.get("result", ""), s.get("scope", "mfrom")) for s in e.spf_results],
        ),
    )


@dataclass
class DomainResult:
    """What a report run did for one policy domain (for logs, tests and the ctl command)."""

    domain: str
    report_id: str = ""
    queued: list[str] = field(default_factory=list)  # recipient addresses
    skipped: list[str] = field(default_factory=list)  # "address: reason"
    errors: list[str] = field(default_factory=list)  # the report's <error> entries
    error: str = ""  # why no report was sent, if none was
    error_report: list[str] = field(default_factory=list)  # recipients of the size error report
    cleaned: bool = False  # evaluations removed
    size: int = 0


class DMARCReporter:
    """Composes and queues the hourly aggregate reports.

    Args:
        config: returns the current config (domains.conf reloads).
        evaldb: the evaluations database the SMTP server fills.
        resolver: for DMARC records; the default resolver when None.
        submit: queues one report message; :func:`mox.dmarcdb.reportmsg.queue_submit` by default.
        now: the clock.
        sleep: waiting (between reports, until the next hour).
    """

    def __init__(
        self,
        config: Callable[[], Config],
        evaldb: EvaluationDB,
        *,
        resolver: Resolver | None = None,
        submit: SubmitFn | None = None,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.evaldb = evaldb
        self.resolver = resolver
        self.submit: SubmitFn = submit or queue_submit
        self.now = now
        self.sleep = sleep

    async def run_forever(self) -> None:
        """The hourly loop (``mox serve``); cancel the task to stop."""
        while True:
            end = next_whole_hour(self.now())
            await self.sleep(max(0.0, end - self.now()) + 30 + random.random() * 60)
            if self.config().static.NoOutgoingDMARCReports:
                continue
            try:
                await self.send_reports(end, spread=45 * 60)
            except Exception as e:
                log.errorx("sending dmarc aggregate reports", e)

    async def send_reports(self, end: float, *, spread: float = 0.0) -> list[DomainResult]:
        """Send the reports for the hour ending at ``end`` (a whole hour, Unix time).

        Evaluations before ``end`` whose interval ends at this hour are
        reported. With spread > 0, reports to different domains are spaced
        over that many seconds (at most 5 minutes apart), as upstream.
        """
        end = float(int(end) // 3600 * 3600)
        await self.evaldb.prune(end - STALE_SECONDS)
        intervals = set(intervals_for_hour(end))
        send: dict[str, bool] = {}
        for e in await self.evaldb.evaluations(before=end):
            if e.interval_hours in intervals:
                send[e.policy_domain] = send.get(e.policy_domain, False) or not e.optional
        out = []
        nsend = sum(1 for v in send.values() if v)
        between = min(300.0, spread / nsend) if nsend and spread > 0 else 0.0
        n = 0
        for domain, do_send in sorted(send.items()):
            if not do_send:
                await self.evaldb.remove(domain, before=end)
                out.append(DomainResult(domain, error="only optional evaluations", cleaned=True))
                continue
            if n > 0 and between > 0:
                await self.sleep(between)
            n += 1
            try:
                out.append(await self.send_report_domain(domain, end))
            except Exception as e:
                log.errorx("sending dmarc aggregate report", e, domain=domain)
                out.append(DomainResult(domain, error=str(e)))
        return out

    async def _recipients(self, dom: Domain, record: dmarc.Record, res: DomainResult) -> tuple[list[Recipient], bool]:
        """The rua recipients after external-destination verification; and whether a temporary error happened."""
        resolver = self.resolver or default_resolver()
        recipients: list[Recipient] = []
        temp = False
        org = publicsuffix.lookup(dom)
        for uri in record.aggregate_report_addresses:
            r = parse_rua(uri)
            if r is None:
                res.skipped.append(f"{uri.address}: not a usable mailto uri")
                continue
            if publicsuffix.lookup(r.domain) == org:
                recipients.append(r)
                continue
            # Section 7.1: the destination must accept reports for the policy domain.
            ext = await dmarc.lookup_external_reports_accepted(dom, r.domain, resolver)
            if not ext.accepts and ext.status != dmarc.Status.TEMPERROR and org != dom:
                ext = await dmarc.lookup_external_reports_accepted(org, r.domain, resolver)
            if ext.status == dmarc.Status.TEMPERROR:
                temp = True
                res.errors.append("temporary error checking authorization for report delegation to external address")
            if not ext.accepts:
                res.errors.append(f"rua {r.address} is external domain that does not opt-in to receiving dmarc records through _report dmarc record")
                continue
            # The external record may name replacement addresses, at the same host only (section 7.1).
            replaced = False
            for xr in ext.records:
                for xuri in xr.aggregate_report_addresses:
                    x = parse_rua(xuri)
                    if x is None:
                        continue
                    if x.domain != r.domain:
                        res.errors.append(f"rua {r.address} is external domain with a replacement address {x.address} with different host")
                        continue
                    recipients.append(x)
                    replaced = True
            if not replaced:
                recipients.append(r)
        return recipients, temp

    async def send_report_domain(self, domain: str, end: float) -> DomainResult:
        """Compose and queue the report for one policy domain, for evaluations before ``end``."""
        cfg = self.config()
        res = DomainResult(domain)
        try:
            dom = parse_domain(domain)
        except DomainError as e:
            await self.evaldb.remove(domain, before=end)
            res.error, res.cleaned = f"invalid domain: {e}", True
            return res
        rlog = log.with_fields(domain=dom.name)

        # The current record decides whether and where to send (section 7.2: the rua at sending time).
        lk = await dmarc.lookup(dom, self.resolver or default_resolver())
        if lk.record is None or lk.domain != dom:
            if lk.status == dmarc.Status.TEMPERROR:
                res.error = f"temporary error looking up dmarc record: {lk.error}"
                return res
            await self.evaldb.remove(domain, before=end)
            res.error, res.cleaned = f"no dmarc record for reporting: {lk.error or 'record at other domain'}", True
            return res
        recipients, temp = await self._recipients(dom, lk.record, res)
        if not recipients:
            if not temp:
                await self.evaldb.remove(domain, before=end)
                res.cleaned = True
            res.error = "no aggregate reporting addresses"
            return res

        evals = await self.evaldb.evaluations(domain, before=end)
        if not any(not e.optional for e in evals):
            await self.evaldb.remove(domain, before=end)
            res.error, res.cleaned = "only optional evaluations", True
            return res
        first, last = evals[0], evals[-1]
        counts: dict[str, tuple[dmarcrpt.ReportRecord, int]] = {}
        for ev in evals:
            rec = evaluation_record(ev)
            key = json.dumps(asdict(rec), sort_keys=True)
            prev = counts.get(key)
            counts[key] = (rec, (prev[1] if prev else 0) + 1)
        records = []
        for key in sorted(counts):
            rec, n = counts[key]
            rec.row.count = n
            records.append(rec)

        # Whole intervals, UTC-aligned, going back to include evaluations left from earlier failed runs.
        interval = max(1, first.interval_hours) * 3600
        begin = end - interval
        while first.evaluated < begin:
            begin -= interval
        host = cfg.static.HostnameDomain
        stamp = datetime.datetime.fromtimestamp(end, datetime.UTC).strftime("%Y%m%d.%H")
        unique = hashlib.sha256(f"{host.ascii} {domain} {first.id} {first.evaluated}".encode()).hexdigest()[:12]
        report_id = f"{stamp}.{unique}"
        pp = last.policy_published
        feedback = dmarcrpt.Feedback(
            dmarcrpt.ReportMetadata(
                org_name=host.ascii,
                email=f"postmaster@{host.ascii}",
                report_id=report_id,
                date_range=dmarcrpt.DateRange(int(begin), int(end) - 1),
                errors=res.errors,
            ),
            dmarcrpt.PolicyPublished(
                domain=str(pp.get("domain") or dom.name),
                adkim=str(pp.get("adkim", "")),
                aspf=str(pp.get("aspf", "")),
                p=str(pp.get("p", "none")),
                sp=str(pp.get("sp", "")),
                pct=int(pp.get("pct", 100)),
                fo=str(pp.get("fo", "")),
            ),
            records,
        )
        res.report_id = report_id
        xml_gz = gzip.compress(dmarcrpt.feedback_xml(feedback), mtime=0)

        from_addr = f"postmaster@{host.ascii}"
        subject = f"Report Domain: {dom.ascii} Submitter: {host.ascii} Report-ID: <{report_id}>"
        text = (
            "Attached is an aggregate DMARC report with results of evaluations of the DMARC\n"
            "policy of your domain for messages we received with your domain in the message\n"
            'From header. You receive this message because your address is in the "rua"\n'
            "field of the DMARC record of your domain.\n\n"
            f"Report domain: {dom.name}\nSubmitter: {host.name}\nReport-ID: {report_id}\n"
            f"Period: {_fmt(begin)} - {_fmt(end)} UTC\n"
        )
        # File name as section 7.2.1.1 recommends: receiver!policy-domain!begin!end.xml.gz
        filename = f"{host.ascii}!{dom.ascii}!{int(begin)}!{int(end) - 1}.xml.gz"
        mid = message_id(host.ascii)
        now = self.now()
        msg = compose(
            from_addr=from_addr, to=[r.address for r in recipients], subject=subject, msg_id=mid, date=now, text=text,
            attachment=xml_gz, attachment_type="application/gzip", filename=filename,
        )  # fmt: skip
        sig, why = dkim_sign(cfg, msg, now=now)
        if not sig:
            rlog.info("dmarc report not dkim-signed", reason=why)
        data = sig.encode() + msg
        res.size = len(data)

        queued = False
        too_big: list[Recipient] = []
        for r in recipients:
            if await self.evaldb.is_suppressed(r.address, now):
                res.skipped.append(f"{r.address}: suppressed")
                continue
            if r.max_size and len(data) > r.max_size:
                res.skipped.append(f"{r.address}: report of {len(data)} bytes exceeds limit of {r.max_size}")
                too_big.append(r)
                continue
            try:
                await self.submit(OutgoingReport(cfg.static.Postmaster.Account, from_addr, r.address, data, mid, subject, is_dmarc_report=True))
            except Exception as e:
                temp = True
                rlog.errorx("queueing dmarc report", e, rcpt=r.address)
                res.skipped.append(f"{r.address}: queueing: {e}")
                continue
            queued = True
            res.queued.append(r.address)
        if not queued and too_big:
            await self._send_error_report(cfg, dom, report_id, len(data), too_big, res)

        if not temp:
            await self.evaldb.remove(domain, before=end)
            res.cleaned = True
        rlog.info("dmarc aggregate report processed", reportid=report_id, queued=",".join(res.queued), skipped=len(res.skipped))
        return res

    async def _send_error_report(self, cfg: Config, dom: Domain, report_id: str, size: int, rcpts: list[Recipient], res: DomainResult) -> None:
        """Section 7.2.2: tell the report destinations a report was too large for them."""
        host = cfg.static.HostnameDomain
        from_addr = f"postmaster@{host.ascii}"
        now = self.now()
        dt = datetime.datetime.fromtimestamp(now, datetime.UTC)
        text = (
            f"Report-Date: {email.utils.format_datetime(dt)}\nReport-Domain: {dom.ascii}\nReport-ID: {report_id}\n"
            f"Report-Size: {size}\nSubmitter: {host.ascii}\nSubmitting-URI: {','.join('mailto:' + r.address for r in rcpts)}\n"
        )
        subject = f"DMARC aggregate reporting error report for {dom.ascii}"
        mid = message_id(host.ascii)
        msg = compose(from_addr=from_addr, to=[r.address for r in rcpts], subject=subject, msg_id=mid, date=now, text=text)
        sig, _ = dkim_sign(cfg, msg, now=now)
        data = sig.encode() + msg
        for r in rcpts:
            try:
                await self.submit(OutgoingReport(cfg.static.Postmaster.Account, from_addr, r.address, data, mid, subject, is_dmarc_report=True))
                res.error_report.append(r.address)
            except Exception as e:
                log.errorx("queueing dmarc error report", e, rcpt=r.address)


def _fmt(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
