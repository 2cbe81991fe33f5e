"""Outgoing TLS reports (RFC 8460) from the TLS results of our deliveries (:mod:`mox.tlsrptdb`).

Once a day, just after 00:00 UTC with jitter, :meth:`TLSReporter.send_reports`
runs for the UTC day that ended, as upstream:

- Recipient domains first: each gets one report with all results of its
  deliveries that day: its MTA-STS (or no-policy-found) results and the
  DANE results of its MX hosts.
- Then MX hosts that are not recipient domains: each gets a report with its
  DANE results, the recipient domains as policy-domain and the host in
  mx-host (upstream's choice, so the host's operator sees which domains are
  affected), leaving out recipient domains whose TLSRPT record has the same
  reporting addresses (they already got those results).
- The policy domain's ``_smtp._tls`` record gives the ``rua``: ``mailto:``
  addresses get a DKIM-signed message (section 5.3 headers and subject,
  gzip JSON attachment), ``https:`` URIs a POST of the gzip JSON
  (section 5.4).
- No report without results, none for results that only came from
  delivering TLS reports, and none when nothing failed unless
  ``OutgoingTLSReportsForAllSuccess``. Results are removed afterwards,
  except after temporary DNS errors; results older than two days are pruned.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mox import mlog, tlsrpt
from mox.dmarcdb.reportmsg import (
    OutgoingReport,
    SubmitFn,
    compose,
    dkim_sign,
    host_dkim_domain,
    message_id,
    queue_submit,
)
from mox.dns import DomainError, Resolver, default_resolver, parse_domain
from mox.smtp.address import AddressError, parse_address
from mox.tlsrptdb import TLSRPTDB, TLSResult

if TYPE_CHECKING:
    from mox.config.load import Config

log = mlog.new("tlsrptsend")

PostFn = Callable[[str, bytes], Awaitable[None]]

# Sending of a day's reports is spread over at most this long, at most 5 minutes apart (section 4.1 asks
# to avoid sending all at the same time).
SPREAD_SECONDS = 4 * 3600
# HTTPS POST timeout.
POST_TIMEOUT = 30.0


async def https_post(url: str, body: bytes) -> None:
    """POST a gzipped report to an https rua (RFC 8460 section 5.4). Raises on failure."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.post(
        url, data=body, headers={"Content-Type": "application/tlsrpt+gzip"}, allow_redirects=False
    ) as resp:
        if resp.status // 100 != 2:
            raise RuntimeError(f"http status {resp.status}")


def midnight_utc(t: float) -> float:
    return float(int(t) // 86400 * 86400)


@dataclass
class DomainResult:
    """What a run did for one policy domain."""

    policy_domain: str
    is_recipient_domain: bool
    report_id: str = ""
    queued: list[str] = field(default_factory=list)  # mailto recipients
    posted: list[str] = field(default_factory=list)  # https urls
    skipped: list[str] = field(default_factory=list)
    error: str = ""
    report: tlsrpt.Report | None = None


class TLSReporter:
    """Composes and sends the daily TLS reports.

    Args:
        config: returns the current config.
        db: the TLSRPT database (results recorded by the queue).
        resolver: for TLSRPT records; the default resolver when None.
        submit: queues one report message (default :func:`mox.dmarcdb.reportmsg.queue_submit`).
        post: posts a report to an https rua (default :func:`https_post`).
        now, sleep: the clock and waiting.
    """

    def __init__(
        self,
        config: Callable[[], Config],
        db: TLSRPTDB,
        *,
        resolver: Resolver | None = None,
        submit: SubmitFn | None = None,
        post: PostFn | None = None,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.db = db
        self.resolver = resolver
        self.submit: SubmitFn = submit or queue_submit
        self.post: PostFn = post or https_post
        self.now = now
        self.sleep = sleep

    async def run_forever(self) -> None:
        """The daily loop (``mox serve``): first for leftovers of the previous day, then after each midnight UTC."""
        end = midnight_utc(self.now())
        while True:
            if not self.config().static.NoOutgoingTLSReports:
                try:
                    await self.send_reports(end, spread=SPREAD_SECONDS)
                except Exception as e:
                    log.errorx("sending tls reports", e)
            end += 86400
            await self.sleep(max(0.0, end - self.now()) + 240 + random.random() * 120)

    async def send_reports(self, end: float, *, spread: float = 0.0) -> list[DomainResult]:
        """Send the reports for the UTC day ending at ``end`` (a midnight UTC; earlier days left over are included)."""
        end = midnight_utc(end)
        day = datetime.datetime.fromtimestamp(end - 43200, datetime.UTC).strftime("%Y%m%d")
        stale = datetime.datetime.fromtimestamp(end - 48 * 3600 - 43200, datetime.UTC).strftime("%Y%m%d")
        await self.db.prune_results(stale)

        rcpt_doms: dict[tuple[str, str], bool] = {}
        host_doms: dict[tuple[str, str], bool] = {}
        for r in await self.db.results_until_day(day):
            doms = rcpt_doms if r.policy_domain == r.recipient_domain else host_doms
            k = (r.policy_domain, r.day_utc)
            doms[k] = doms.get(k, False) or r.send_report
        nsend = sum(1 for v in (*rcpt_doms.values(), *host_doms.values()) if v)
        between = min(300.0, spread / nsend) if nsend and spread > 0 else 0.0

        out: list[DomainResult] = []
        remove: set[tuple[str, str]] = set()
        n = 0
        for is_rcpt, doms in ((True, rcpt_doms), (False, host_doms)):
            for (pd, d), send in sorted(doms.items()):
                if not send:
                    remove.add((pd, d))
                    continue
                if n > 0 and between > 0:
                    await self.sleep(between)
                n += 1
                try:
                    res, cleanup = await self.send_report_domain(pd, d, end, is_recipient_domain=is_rcpt)
                except Exception as e:
                    log.errorx("sending tls report", e, policydomain=pd)
                    res, cleanup = DomainResult(pd, is_rcpt, error=str(e)), False
                out.append(res)
                if cleanup:
                    remove.add((pd, d))
        for pd, d in sorted(remove):
            await self.db.remove_results_policy_domain(pd, d)
        return out

    async def send_report_domain(self, policy_domain: str, day: str, end: float, *, is_recipient_domain: bool) -> tuple[DomainResult, bool]:
        """Compose and send the report for one policy domain and day; returns (result, whether to remove the results)."""
        cfg = self.config()
        res = DomainResult(policy_domain, is_recipient_domain)
        try:
            pol = parse_domain(policy_domain)
        except DomainError as e:
            res.error = f"invalid policy domain: {e}"
            return res, True
        rlog = log.with_fields(policydomain=pol.name, day=day, isrcptdom=is_recipient_domain)

        # Reports must be DKIM-signed (section 3); without keys for the host there is no point.
        from_dom, dkim_conf, why = host_dkim_domain(cfg)
        if dkim_conf is None:
            res.error = f"report cannot be dkim-signed: {why}"
            return res, True

        try:
            record, _ = await tlsrpt.lookup(pol, self.resolver or default_resolver())
        except tlsrpt.NoRecordError:
            res.error = "no tlsrpt record"
            return res, True
        except tlsrpt.DNSLookupError as e:
            res.error = str(e)
            return res, False
        except tlsrpt.RecordLookupError as e:
            res.error = str(e)
            return res, True

        mailto: list[str] = []
        https: list[str] = []
        rua_strs: list[str] = []
        for uri in record.addresses():
            scheme, _, rest = uri.partition(":")
            if scheme.lower() == "mailto":
                try:
                    mailto.append(parse_address(urllib.parse.unquote(rest.split("?", 1)[0])).pack(False))
                except AddressError:
                    res.skipped.append(f"{uri}: invalid mailto address")
                    continue
                rua_strs.append(uri)
            elif scheme.lower() == "https":
                https.append(uri)
                rua_strs.append(uri)
            else:
                res.skipped.append(f"{uri}: unsupported scheme")
        if not mailto and not https:
            res.error = "no usable reporting addresses"
            return res, True

        if is_recipient_domain:
            results = await self.db.results_recipient_domain(pol, day)
        else:
            results = await self.db.results_policy_domain(pol, day)
        if not results:
            res.error = "no tls results"
            return res, True
        for r in results:
            if r.policy_domain == r.recipient_domain and (
                (is_recipient_domain and r.sent_to_recipient_domain) or (not is_recipient_domain and r.sent_to_policy_domain)
            ):
                res.error = "already sent"
                return res, True

        # The period is the results' UTC day (normally the day that just ended; older for leftovers).
        begin = datetime.datetime.strptime(day, "%Y%m%d").replace(tzinfo=datetime.UTC).timestamp()
        end = begin + 86400
        report = tlsrpt.Report(
            organization_name=from_dom.ascii,
            start=datetime.datetime.fromtimestamp(begin, datetime.UTC),
            end=datetime.datetime.fromtimestamp(end - 1, datetime.UTC),
            contact_info=f"postmaster@{from_dom.ascii}",
            # Unique per policy domain, day and submitter; also the subject's Report-ID (section 5.3).
            report_id=f"{day}.{pol.ascii}@{from_dom.ascii}",
        )
        rcpt_addrs = {r.recipient_domain: r.recipient_domain_reporting_addresses for r in results}
        for tr in results:
            report.merge(*self._results_for(tr, is_recipient_domain, rcpt_addrs, rua_strs))
        if not report.policies:
            res.error = "all results already reported to the recipient domains"
            return res, True
        if not cfg.static.OutgoingTLSReportsForAllSuccess and not report.has_failures():
            res.error = "no failures"
            return res, True
        res.report, res.report_id = report, report.report_id

        host = cfg.static.HostnameDomain
        from_addr = f"postmaster@{host.ascii}"
        report_gz = gzip.compress(report.dumps(indent=None).encode(), mtime=0)
        # Mark as sent before sending: a failure now will not get better with retries, and
        # marking after sending could make for duplicate reports (as upstream).
        if is_recipient_domain:
            await self.db.mark_sent(day=day, recipient_domain=pol.name, reporting_addresses=rua_strs)
        else:
            await self.db.mark_sent(day=day, policy_domain=pol.name)

        for url in https:
            try:
                await self.post(url, report_gz)
                res.posted.append(url)
            except Exception as e:
                rlog.infox("posting tls report", e, url=url)
                res.skipped.append(f"{url}: {e}")

        if mailto:
            subject = f"Report Domain: {pol.ascii} Submitter: {from_dom.ascii} Report-ID: <{report.report_id}>"
            text = (
                "Attached is a TLS report with a summary of connection successes and failures\n"
                "during attempts to securely deliver messages to your mail server, with details\n"
                "about errors encountered. You receive this message because your address is in\n"
                'the "rua" field of the TLSRPT record of your domain or host.\n\n'
                f"Policy Domain: {pol.name}\nSubmitter: {from_dom.name}\nReport-ID: {report.report_id}\n"
                f"Period: {_fmt(begin)} - {_fmt(end)} UTC\n"
            )
            # Section 5.1 file name: sender!policy-domain!begin!end.json.gz
            filename = f"{from_dom.ascii}!{pol.ascii}!{int(begin)}!{int(end) - 1}.json.gz"
            mid = message_id(host.ascii)
            now = self.now()
            msg = compose(
                from_addr=from_addr, to=mailto, subject=subject, msg_id=mid, date=now, text=text,
                attachment=report_gz, attachment_type="application/tlsrpt+gzip", filename=filename,
                # Section 5.3 headers; TLS-Required: No (RFC 8689) so TLS problems do not block the report.
                extra_headers=[("TLS-Report-Domain", pol.ascii), ("TLS-Report-Submitter", from_dom.ascii), ("TLS-Required", "No")],
                report_type="tlsrpt",
            )  # fmt: skip
            sig, why = dkim_sign(cfg, msg, ["TLS-Report-Domain", "TLS-Report-Submitter"], now=now)
            if not sig:
                res.error = f"dkim signing failed: {why}"
                return res, True
            data = sig.encode() + msg
            for a in mailto:
                if await self.db.is_suppressed(a, now):
                    res.skipped.append(f"{a}: suppressed")
                    continue
                try:
                    await self.submit(
                        OutgoingReport(cfg.static.Postmaster.Account, from_addr, a, data, mid, subject, is_tls_report=True, requiretls=False)
                    )
                    res.queued.append(a)
                except Exception as e:
                    rlog.errorx("queueing tls report", e, rcpt=a)
                    res.skipped.append(f"{a}: queueing: {e}")
        rlog.info("tls report processed", reportid=report.report_id, queued=",".join(res.queued), posted=",".join(res.posted))
        return res, True

    @staticmethod
    def _results_for(tr: TLSResult, is_rcpt: bool, rcpt_addrs: dict[str, list[str]], rua_strs: list[str]) -> list[tlsrpt.Result]:
        """The results of one stored row as they go into the report."""
        if is_rcpt:
            return tr.results
        # To an MX host: skip what the recipient domain already got at the same addresses.
        if sorted(rcpt_addrs.get(tr.recipient_domain) or []) == sorted(rua_strs) and tr.recipient_domain_reporting_addresses:
            return []
        try:
            rd = parse_domain(tr.recipient_domain).ascii
        except DomainError:
            rd = tr.recipient_domain
        out = []
        for r in tr.results:
            p = tlsrpt.ResultPolicy(r.policy.type, rd, list(r.policy.strings), [r.policy.domain] if tr.is_host else list(r.policy.mx_hosts))
            out.append(tlsrpt.Result(p, r.summary, r.failure_details))
        return out


def _fmt(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
