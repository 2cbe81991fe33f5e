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
        Flag(
            "dir",
            "",
            "configuration storage directory (default $XDG_CONFIG_HOME/mox-localserve or ~/.config/mox-localserve)",
        ),
        Flag(
            "ip",
            "",
            "serve on this ip instead of default 127.0.0.1 and ::1. only used when writing configuration, at first launch.",
        ),
        Flag("initonly", False, "write configuration files and exit"),
    ],
    help="""Start a local SMTP/IMAP server that accepts all messages, useful when testing/developing software that sends email.

Localserve starts mox with a configuration suitable for local email-related
software development and testing. It listens for SMTP, submission(s), IMAP(s)
and HTTP(S) on localhost, on the usual port numbers + 1000.

The configuration and data are stored in the user's configuration directory
under "mox-localserve" (e.g. ~/.config/mox-localserve), or in the directory
given with -dir. If the directory does not exist yet, it is created with
configuration files, an account with email address mox@localhost and password
moxmoxmox, admin password moxadmin, and a new self-signed TLS certificate.

No DNS query leaves the machine: localhost and loopback addresses are answered
locally, other names do not exist (unless MOX_DNS names DNS servers to use).

Recipient addresses whose localpart ends in the following are handled specially:

- "temperror": fail with a temporary error code
- "permerror": fail with a permanent error code
- [45][0-9][0-9]: fail with that error code
- "timeout": no response

If the localpart begins with "mailfrom" or "rcptto", the error is returned
during those commands instead of during "data".""",
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
            "use if a webserver is already running, so mox won't listen on port 80 and 443; you'll have to provide tls "
            "certificates/keys, and configure the existing webserver as reverse proxy, forwarding requests to mox.",
        ),
        Flag(
            "hostname",
            "",
            "hostname mox will run on, by default the hostname of the machine quickstart runs on; if specified, the IPs "
            "for the hostname are configured for the public listener",
        ),
        Flag(
            "skipdial",
            False,
            "skip the checks that need the network: dnssec support, host IPs, outgoing smtp (port 25) connectivity",
        ),
        Flag(
            "acme",
            "",
            "ACME directory URL for TLS certificates, instead of Let's Encrypt's (e.g. a test CA like pebble)",
        ),
    ],
    help="""Quickstart generates configuration files and prints instructions to quickly set up a mox instance.

Quickstart writes configuration files to config/ in the current directory,
prints the initial admin and account passwords and the DNS records you should
create. On Linux it writes a systemd service file mox.service and prints the
commands to enable and start mox as a service. All output is also written to
quickstart.log for later reference.

The user or uid is optional, defaults to "mox", and is the user or uid/gid mox
will run as after binding its ports as root.

Quickstart assumes mox will run on the machine it runs on, and uses its host
name and IPs. When the system's host name is not a full domain name, it looks
up the names of the public IPs, and otherwise takes the name plus the domain of
the email address. Use -hostname to say which host name mox will run on.

Mox is easiest to run listening on ports 443 (HTTPS) and 80 (HTTP): TLS is then
automatic with ACME (Let's Encrypt by default, -acme for another CA). With
-existing-webserver, mox is configured to run next to a webserver that keeps
those ports and forwards the MTA-STS and autoconfig requests to mox.

Without -skipdial, quickstart checks through DNS (MOX_DNS applies) whether the
resolver verifies DNSSEC, what the host's IPs are and whether they resolve back
to its name, and connects to gmail.com's MX on port 25 to see whether outgoing
SMTP works. With -skipdial it does none of that.""",
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
    help="""Prints annotated DNS records as zone file that should be created for the domain.

The zone file can be imported into existing DNS software. You should review the
DNS records, especially if your domain previously/currently has email
configured. Whether the domain is DNSSEC-signed is looked up first: without
DNSSEC, the TLSA records for DANE are commented out.""",
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
    help="""Check the DNS records with the configuration for the domain, and print any errors/warnings.

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
    help="""Prints a systemd unit service file for mox.

This is the same file as generated using quickstart, for mox in the current
directory (config/ and data/ below it). If the service file has changed with a
newer version of mox, use this command to generate an up to date version.
The service starts mox as root with only the capabilities it needs to bind its
ports and switch to the mox user, and with systemd's hardening options.""",
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
