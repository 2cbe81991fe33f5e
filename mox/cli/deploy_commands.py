"""Commands for getting a mail server running: ``localserve``, ``quickstart``, ``config dnsrecords``,
``config dnscheck``, ``config printservice``. Names, flags and output follow upstream mox."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mox.cli.main import CommandError, Flag, Invocation, command

if TYPE_CHECKING:
    from mox.dns import Domain


@command(
    "localserve",
    flags=[
        Flag("dir", "", "directory for configuration and data (default $XDG_CONFIG_HOME/mox-localserve or ~/.config/mox-localserve)"),
        Flag("ip", "", "IP to listen on instead of 127.0.0.1 and ::1; only used when a new configuration is written"),
        Flag("initonly", False, "only write the configuration, do not start serving"),
    ],
    help="""Run a local mail server for developing and testing software that sends email.

On first use, the directory (-dir) is created with a configuration for
localhost: account mox@localhost with password moxmoxmox, admin password
moxadmin, and a new self-signed TLS certificate. Later runs use what is there;
remove the directory to start afresh. The services listen on localhost, each
on its usual port plus 1000: SMTP 1025, submission 1587, submissions 1465,
IMAP 1143, IMAPS 1993, HTTP 1080, HTTPS 1443, metrics 1081. The URLs, with
credentials, are printed at start.

Nothing leaves the machine. DNS questions about localhost and loopback
addresses are answered without a query and other names do not exist (unless
MOX_DNS names DNS servers to use). Submitted messages for other domains are
delivered to the local account by the outgoing queue.

Incoming mail for an address that does not exist, in any domain, is delivered
to the mox account too.

To test error handling, a recipient local part ending in "temperror" or
"permerror" fails with a temporary or permanent error, one ending in three
digits from 400 to 600 with that reply code, and one ending in "timeout" gets
no answer. The failure comes at the end of DATA; with a local part beginning
with "mailfrom" (as the MAIL FROM address) or "rcptto" it comes at that
command instead, and with "queue" a submitted message is accepted and its
delivery from the queue fails (a permanent failure sends a DSN to the sender).""",
)
def cmd_localserve(inv: Invocation) -> int:
    from mox.localserve import run

    return run(
        str(inv.flags["dir"]) or None,
        ip=str(inv.flags["ip"]),
        init_only=bool(inv.flags["initonly"]),
        loglevel=inv.opts.loglevel,
    )


@command(
    "quickstart",
    params="[-skipdial] [-existing-webserver] [-hostname host] [-acme directory-url] $user@domain [$user | $uid]",
    nargs=(1, 2),
    flags=[
        Flag(
            "existing-webserver",
            False,
            "a web server already uses ports 80 and 443: mox does not listen there; you provide the TLS certificates "
            "and let that web server forward the MTA-STS and autoconfig requests to mox",
        ),
        Flag(
            "hostname",
            "",
            "host name mox will run under (default: this machine's name); the IPs it resolves to become the public listener's",
        ),
        Flag(
            "skipdial",
            False,
            "skip the checks that need the network: dnssec support, host IPs, outgoing smtp (port 25) connectivity, "
            "domain age with rdap, host IPs in dns block lists",
        ),
        Flag(
            "acme",
            "",
            "ACME directory URL for TLS certificates, instead of Let's Encrypt's (e.g. a test CA like pebble)",
        ),
    ],
    help="""Write the configuration of a new mail server and print its passwords and DNS records.

In the current directory, quickstart creates config/mox.conf and
config/domains.conf with the domain of the address and an account named after
its local part, DKIM keys, TLS host keys for DANE, and on Linux a systemd unit
mox.service. It prints the admin and account passwords (only now) and the DNS
records to create, and keeps a copy of everything it printed in
quickstart.log. It never overwrites existing files.

The optional last argument is the user (or numeric uid) that mox switches to
after binding its ports as root; "mox" by default.

The host name is taken from -hostname, else from the system if it is a full
domain name, else from the reverse DNS of the machine's public IPs, else the
system's short name is combined with the domain.

TLS certificates come automatically from Let's Encrypt with ACME, for which mox
needs ports 80 and 443 (-acme selects another ACME CA). With -existing-webserver,
a web server keeps those ports and forwards the MTA-STS and autoconfig requests
to mox, and you configure the certificate files.

Unless -skipdial is given, quickstart checks through DNS (MOX_DNS applies)
whether the resolver validates DNSSEC, which IPs the host name has and whether
they resolve back to it, and tries a connection to gmail.com's MX on port 25 to
see whether outgoing SMTP is possible. It asks the domain's registry with RDAP
when the domain was registered (a recent registration gets a warning; the RDAP
bootstrap file is IANA's, or the URL in MOX_RDAP_BOOTSTRAP) and checks whether
the host's IPs are in the DNS block lists the config suggests. With -skipdial
nothing is looked up or connected to.""",
)
def cmd_quickstart(inv: Invocation) -> int:
    from mox.quickstart import LETSENCRYPT_DIRECTORY, Options, main

    opts = Options(
        address=inv.args[0],
        user=inv.args[1] if len(inv.args) > 1 else "mox",
        hostname=str(inv.flags["hostname"]),
        existing_webserver=bool(inv.flags["existing-webserver"]),
        skip_dial=bool(inv.flags["skipdial"]),
        acme_url=str(inv.flags["acme"]) or LETSENCRYPT_DIRECTORY,
    )
    return main(opts)


def _domain_arg(name: str) -> Domain:
    from mox.dns import DomainError, parse_domain

    try:
        return parse_domain(name)
    except DomainError as e:
        raise CommandError(f"parsing domain: {e}") from None


@command(
    "config dnsrecords",
    params="$domain",
    nargs=(1, 1),
    help="""Print the DNS records a configured domain needs, as a zone file with explanations.

The output can be loaded into DNS server software or typed into a DNS
operator's web interface. Check the records against what the domain has now
before replacing anything, in particular when it already receives or sends
mail elsewhere. The domain is looked up first: when it is not DNSSEC-signed,
the TLSA records for DANE are shown commented out.""",
)
def cmd_config_dnsrecords(inv: Invocation) -> None:
    import asyncio

    from mox.cli.commands import _load
    from mox.dns import DNSError, default_resolver
    from mox.dnsrecords import domain_dnssec, domain_records, zone_text

    d = _domain_arg(inv.args[0])
    cfg = _load(inv)
    if d.name not in cfg.dynamic.Domains:
        raise CommandError("unknown domain")
    try:
        has_dnssec = asyncio.run(domain_dnssec(default_resolver(), d))
    except DNSError as e:
        raise CommandError(f"looking up record for dnssec-status: {e}") from None
    issuer = ""
    public = cfg.static.Listeners.get("public")
    if public is not None and public.TLS is not None and public.TLS.ACME in cfg.static.ACME:
        issuer = cfg.static.ACME[public.TLS.ACME].IssuerDomainName
    try:
        groups = domain_records(cfg, d, has_dnssec=has_dnssec, cert_issuer=issuer)
    except (OSError, ValueError) as e:
        raise CommandError(f"making records: {e}") from None
    sys.stdout.write(zone_text(groups))


@command(
    "config dnscheck",
    params="$domain",
    nargs=(1, 1),
    help="""Compare the domain's records in DNS with what its configuration needs.

Every record "mox config dnsrecords" suggests is looked up (through the system
resolver, or the servers in MOX_DNS) and compared. Errors and warnings are
printed per section; the exit status is 1 when there are errors.""",
)
def cmd_config_dnscheck(inv: Invocation) -> int:
    import asyncio

    from mox.cli.commands import _load
    from mox.dns import default_resolver
    from mox.dnsrecords import check_domain

    d = _domain_arg(inv.args[0])
    cfg = _load(inv)
    if d.name not in cfg.dynamic.Domains:
        raise CommandError("unknown domain")
    try:
        results = asyncio.run(check_domain(cfg, d, default_resolver()))
    except (OSError, ValueError) as e:
        raise CommandError(f"checking records: {e}") from None
    nerrors = 0
    for r in results:
        if not r.errors and not r.warnings:
            continue
        print(f"# {r.section}")
        for s in r.errors:
            print(f"error: {s}")
        for s in r.warnings:
            print(f"warning: {s}")
        nerrors += len(r.errors)
    if nerrors:
        return 1
    print(f"no errors in the dns records of {d.name}")
    return 0


@command(
    "config printservice",
    params=">mox.service",
    help="""Print a systemd service unit for mox in the current directory (config/ and data/ below it).

Quickstart writes the same unit to mox.service; print it again after an
upgrade to pick up changes. The service starts mox as root with only the
capabilities needed to bind its ports and switch to the mox user, and with
systemd's sandboxing options.""",
)
def cmd_config_printservice(inv: Invocation) -> None:
    import os

    from mox.privileges import service_unit
    from mox.quickstart import mox_command

    try:
        wd = os.getcwd()
    except OSError as e:
        sys.stderr.write(f"current working directory: {e}\n")
        wd = "/home/mox"
    sys.stdout.write(service_unit(wd, mox_command()))
