"""``mox dmarc parsereportmsg``, ``mox tlsrpt parsereportmsg`` and ``mox tlsrpt lookup``, as upstream."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys

from mox import dmarcrpt, tlsrpt
from mox.cli.main import CommandError, Invocation, command
from mox.dns import DomainError, default_resolver, parse_domain


def _q(s: str) -> str:
    """s double-quoted with Go's escapes (upstream prints with %q)."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[c])
        elif not c.isprintable():
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x80 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _utc(t: int) -> str:
    """A Unix time as Go's time.Time.String() of a UTC time."""
    try:
        return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
    except (OverflowError, ValueError, OSError):
        return str(t)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CommandError(f"open {_q(path)}: {e.strerror or e}") from None


def format_feedback(f: dmarcrpt.Feedback) -> str:
    """The text upstream prints for a DMARC aggregate report."""
    m = f.report_metadata
    lines = [
        f"Report: period {_utc(m.date_range.begin)}-{_utc(m.date_range.end)}, organisation {_q(m.org_name)}, "
        f"reportID {_q(m.report_id)}, {m.email}"
    ]
    if m.errors:
        lines.append("Errors:")
        lines += [f"\t- {e}" for e in m.errors]
    p = f.policy_published
    lines.append(
        f"Policy: domain {_q(p.domain)}, policy {_q(p.p)}, subdomainpolicy {_q(p.sp)}, dkim {_q(p.adkim)}, "
        f"spf {_q(p.aspf)}, percentage {p.pct}, options {_q(p.fo)}"
    )
    for r in f.records:
        ids = r.identifiers
        lines.append(f"\theaderfrom {_q(ids.header_from)}, envelopes from {_q(ids.envelope_from)}, to {_q(ids.envelope_to)}")
        ev = r.row.policy_evaluated
        reasons = "".join(f"; {x.type}" + (f": {_q(x.comment)}" if x.comment else "") for x in ev.reasons)
        lines.append(f"\tresult {ev.disposition}: dkim {ev.dkim}, spf {ev.spf}; sourceIP {r.row.source_ip}, count {r.row.count}{reasons}")
        for d in r.auth_results.dkim:
            human = f": {_q(d.human_result)}" if d.human_result else ""
            lines.append(f"\t\tdkim {d.result}; domain {_q(d.domain)} selector {_q(d.selector)}{human}")
        for s in r.auth_results.spf:
            lines.append(f"\t\tspf {s.result}; domain {_q(s.domain)} scope {_q(s.scope)}")
    return "\n".join(lines) + "\n"


@command(
    "dmarc parsereportmsg",
    params="$messagefile ...",
    nargs=(1, None),
    help="""Parse a DMARC report from an email message, and print its extracted details.

DMARC reports are periodically mailed, if requested in the DMARC DNS record of
a domain. Reports are sent by mail servers that received messages with our
domain in a From header. They summarise the DMARC, DKIM and SPF evaluations of
those messages, which helps to understand deliverability problems.""",
)
def cmd_dmarc_parsereportmsg(inv: Invocation) -> None:
    for path in inv.args:
        try:
            f = dmarcrpt.parse_message(_read(path))
        except dmarcrpt.FeedbackError as e:
            raise CommandError(f"parse report in {_q(path)}: {e}") from None
        sys.stdout.write(format_feedback(f))


@command(
    "tlsrpt parsereportmsg",
    params="$messagefile ...",
    nargs=(1, None),
    help="""Parse and print the TLSRPT in the message.

The report is printed in formatted JSON.""",
)
def cmd_tlsrpt_parsereportmsg(inv: Invocation) -> None:
    for path in inv.args:
        try:
            rep = tlsrpt.parse_message(_read(path))
        except tlsrpt.ReportError as e:
            raise CommandError(f"parse report in {_q(path)}: {e}") from None
        sys.stdout.write(json.dumps(rep.to_json(), indent="\t", ensure_ascii=False) + "\n")


@command(
    "tlsrpt lookup",
    params="$domain",
    nargs=(1, 1),
    help="""Lookup the TLSRPT record for the domain.

A TLSRPT record typically contains an email address where reports about TLS
connectivity should be sent. Mail servers attempting delivery to our domain
should attempt to use TLS. TLSRPT lets them report how many connections
successfully used TLS, and what kind of errors occurred otherwise.""",
)
def cmd_tlsrpt_lookup(inv: Invocation) -> None:
    try:
        d = parse_domain(inv.args[0].removesuffix("."))
    except DomainError as e:
        raise CommandError(f"invalid domain {_q(inv.args[0])}: {e}") from None
    try:
        _, txt = asyncio.run(tlsrpt.lookup(d, default_resolver()))
    except tlsrpt.RecordLookupError as e:
        raise CommandError(f"tlsrpt lookup for {d.name}: {e}") from None
    print(txt)


def _ctl_call(inv: Invocation, name: str, args: list[str]) -> object:
    from mox.cli.commands import _ctl_path
    from mox.ctl.client import CtlClient, CtlConnectError, CtlError

    try:
        client = CtlClient.connect(_ctl_path(inv))
    except CtlConnectError as e:
        raise CommandError(f"{e} (sending reports needs a running mox serve, whose queue delivers them)") from None
    try:
        return client.call(name, args)
    except CtlError as e:
        raise CommandError(str(e)) from None
    finally:
        client.close()


@command(
    "dmarc sendreports",
    params="[end]",
    nargs=(0, 1),
    help="""Send DMARC aggregate reports now, as the hourly sender does.

Reports cover the reporting hour ending at end: a Unix time or RFC 3339
date-time (UTC when without zone), by default the last whole hour. Evaluations
of domains whose reporting interval ends at that hour are reported and then
removed. Prints, as JSON, what was done per policy domain.""",
)
def cmd_dmarc_sendreports(inv: Invocation) -> None:
    print(json.dumps(_ctl_call(inv, "dmarc sendreports", inv.args), indent="\t", ensure_ascii=False))


@command(
    "tlsrpt sendreports",
    params="[yyyy-mm-dd]",
    nargs=(0, 1),
    help="""Send TLS reports now, as the daily sender does.

Reports cover the given UTC day, by default yesterday (and results left over
from earlier days). Prints, as JSON, what was done per policy domain.""",
)
def cmd_tlsrpt_sendreports(inv: Invocation) -> None:
    print(json.dumps(_ctl_call(inv, "tlsrpt sendreports", inv.args), indent="\t", ensure_ascii=False))
