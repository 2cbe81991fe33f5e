"""``mox dane dialmx``: connect to a domain's MX hosts as the queue does, with STARTTLS verified by DANE."""

from __future__ import annotations

import asyncio
import sys

from mox.cli.main import CommandError, Flag, Invocation, UsageError, command
from mox.dns.domain import Domain, DomainError, parse_domain


def _domain(s: str, what: str) -> Domain:
    try:
        return parse_domain(s)
    except DomainError as e:
        raise UsageError(f"invalid {what} {s!r}: {e}") from None


@command(
    "dane dialmx",
    params="[-ehlohostname localhost] $domain [$desthost]",
    nargs=(1, 2),
    flags=[Flag("ehlohostname", "localhost", "host name to send in the smtp ehlo command")],
    help="""Connect to an MX host of a domain with STARTTLS, verified with DANE.

Without a destination host, the hosts come from the same routing as deliveries
from the queue: CNAMEs of the domain are followed, its MX records looked up,
and without MX records the domain itself is the host. Every lookup on the way
must be DNSSEC-authentic. With a destination host, only that host is tried.

Each host is tried until an SMTP session is set up, with EHLO and STARTTLS,
and the server's certificate verified against the host's TLSA records. Then
stdin and stdout are connected to the session until either side closes.

Port 25 is used. DNS goes to the system resolver, or to MOX_DNS.""",
)
def cmd_dane_dialmx(inv: Invocation) -> int:
    ehlo = _domain(str(inv.flags["ehlohostname"]), "ehlo host name")
    domain = _domain(inv.args[0], "domain")
    dest = _domain(inv.args[1], "destination host") if len(inv.args) == 2 else None
    return asyncio.run(_dialmx(ehlo, domain, dest))


def _say(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


async def _dialmx(ehlo: Domain, domain: Domain, dest: Domain | None) -> int:
    from mox import dane, smtpclient
    from mox.cli.outbound_policy_commands import _copy
    from mox.dns import default_resolver
    from mox.queue import remote

    resolver = default_resolver()
    if dest is None:
        try:
            dests = await remote.gather_destinations(resolver, domain)
        except remote.RouteError as e:
            raise CommandError(f"gathering destinations: {e} ({'permanent' if e.permanent else 'temporary'})") from None
        if dests.expanded != domain:
            _say(f"followed cnames to {dests.expanded}")
        _say("found mx record, trying mx hosts" if dests.have_mx else "no mx record found, will try to connect to domain directly")
        if not dests.orig_authentic:
            raise CommandError("initial domain not dnssec-secure")
        if not dests.expanded_authentic:
            raise CommandError("expanded domain not dnssec-secure")
        _say("destinations: " + ", ".join(h.name() + (f" (pref {h.pref})" if h.pref >= 0 else "") for h in dests.hosts))
    else:
        _say("skipping domain mx/cname lookups, assuming domain is dnssec-protected")
        dests = remote.Destinations(True, True, True, dest, [remote.HostPref(dest)])

    for hp in dests.hosts:
        assert hp.host is not None
        try:
            ips = await remote.gather_ips(resolver, hp)
        except remote.RouteError as e:
            _say(f"{hp.name()}: {e}")
            continue
        if not ips.authentic:
            _say(f"{hp.name()}: host addresses not dnssec-secure, skipping")
            continue
        lk, base = await dane.gather_tlsa(resolver, hp.host, ips.expanded, ips.expanded_authentic)
        if lk.status != dane.TLSAStatus.USABLE:
            _say(f"{hp.name()}: no usable tlsa records ({lk.status.value}{': ' + lk.error if lk.error else ''}), skipping")
            continue
        names = dane.tlsa_hostnames(
            have_mx=dests.have_mx,
            expanded_next_hop_authentic=dests.expanded_authentic,
            expanded_tlsa_base_authentic=ips.expanded_authentic,
            orig_next_hop=domain.ascii,
            expanded_next_hop=dests.expanded.ascii,
            orig_tlsa_base=hp.host.ascii,
            expanded_tlsa_base=base,
        )
        tls = smtpclient.TLSConfig(
            mode=smtpclient.TLSMode.REQUIRED_STARTTLS,
            server_name=names[0],
            dane_records=lk.records,
            dane_hostnames=names[1:],
            dane_verify=dane.verify,
        )
        for ip in ips.ips:
            _say(f"dialing {hp.name()} ({ip}) port {remote.SMTP_PORT}")
            try:
                client = await smtpclient.connect(str(ip), remote.SMTP_PORT, ehlo_hostname=ehlo.ascii, tls=tls)
            except smtpclient.SMTPClientError as e:
                _say(f"{hp.name()} ({ip}): {e}")
                continue
            rec = client.tls.dane_record
            _say(f"connected, tls {client.tls.version}, dane verified with record {dane.record_text(rec) if rec else '?'}")
            reader, writer, buffered = client.detach()
            if buffered:
                sys.stdout.buffer.write(buffered)
                sys.stdout.flush()
            await _copy(reader, writer)
            return 0
    raise CommandError("no host could be connected to with dane")
