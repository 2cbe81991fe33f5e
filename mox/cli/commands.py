"""The subcommands of ``mox``. Names, arguments and output follow upstream mox."""

from __future__ import annotations

import errno
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mox
from mox import mlog
from mox.cli.main import COMMANDS, CommandError, Flag, Invocation, UsageError, command, global_usage
from mox.config import edit, model, sconf
from mox.config.load import LOG_LEVELS, Config, ConfigErrors, load_config, load_data_dir
from mox.ctl.client import CtlClient, CtlConnectError, CtlError


def _load(inv: Invocation) -> Config:
    try:
        return load_config(inv.opts.config)
    except ConfigErrors as e:
        raise CommandError("loading config:\n" + "\n".join(str(x) for x in e.errors)) from None


def _ctl_path(inv: Invocation) -> Path:
    """The ctl socket, from mox.conf alone (domains.conf may be broken while the server runs)."""
    try:
        return load_data_dir(inv.opts.config) / "ctl"
    except ConfigErrors as e:
        raise CommandError("loading config:\n" + "\n".join(str(x) for x in e.errors)) from None


def _connect(inv: Invocation) -> CtlClient:
    try:
        return CtlClient.connect(_ctl_path(inv))
    except CtlError as e:
        raise CommandError(str(e)) from None


def _server_running(e: CtlConnectError) -> bool:
    cause = e.__cause__
    return not (isinstance(cause, OSError) and cause.errno in (errno.ENOENT, errno.ECONNREFUSED))


def _ctl_call(inv: Invocation, cmd: str, args: list[str]) -> Any:
    try:
        return _connect(inv).call(cmd, args)
    except CtlError as e:
        raise CommandError(str(e)) from None


def _edit(inv: Invocation, cmd: str, args: list[str], direct: Callable[[Config], Any]) -> Any:
    """Run a config change through the running server, or directly on the files when none runs."""
    try:
        client = CtlClient.connect(_ctl_path(inv))
    except CtlConnectError as e:
        if _server_running(e):
            raise CommandError(str(e)) from None
        cfg = _load(inv)
        try:
            with edit.domains_lock(cfg):
                return direct(cfg)
        except edit.EditError as ee:
            raise CommandError(str(ee)) from None
    try:
        return client.call(cmd, args)
    except CtlError as e:
        raise CommandError(str(e)) from None


def run_store_command(inv: Invocation, cmd: str, args: list[str], direct: Callable[[Config], Any]) -> Any:
    """Run a command through the running server, or directly on the account data when none runs."""
    try:
        client = CtlClient.connect(_ctl_path(inv))
    except CtlConnectError as e:
        if _server_running(e):
            raise CommandError(str(e)) from None
        from mox.store.model import StoreError

        try:
            return direct(_load(inv))
        except StoreError as se:
            raise CommandError(str(se)) from None
    try:
        return client.call(cmd, args)
    except CtlError as e:
        raise CommandError(str(e)) from None


@command("version", help="Prints this mox version.")
def cmd_version(inv: Invocation) -> None:
    print(f"moxmail {mox.__version__}")
    print(f"python {platform.python_version()}")


@command(
    "help",
    params="[$command ...]",
    nargs=(0, None),
    help="""Prints help about matching commands.

Without arguments, all commands are listed. If several commands match, they are
listed with the first line of their help text. If one command matches, its usage
and full help text are printed.""",
)
def cmd_help(inv: Invocation) -> int:
    if not inv.args:
        sys.stdout.write(global_usage())
        return 0
    words = tuple(inv.args)
    for c in COMMANDS:
        if c.words == words:
            sys.stdout.write(c.full_help())
            return 0
    partial = [c for c in COMMANDS if c.words[: len(words)] == words]
    if not partial:
        sys.stderr.write(f"{' '.join(words)}: unknown command\n")
        return 2
    for c in partial:
        print(f"mox {c.name}")
        if c.help:
            print(f"\t{c.help.strip().splitlines()[0]}")
    return 0


@command(
    "config test",
    help="""Parses and validates the configuration files.

If valid, prints "config OK" and exits with status 0. Otherwise every error is
printed, each with file, line and field, and the exit status is 1.""",
)
def cmd_config_test(inv: Invocation) -> int:
    try:
        load_config(inv.opts.config)
    except ConfigErrors as e:
        if len(e.errors) > 1:
            sys.stderr.write("multiple errors:\n")
        for err in e.errors:
            sys.stderr.write(f"{err}\n")
        return 1
    print("config OK")
    return 0


@command(
    "config describe-static",
    params=">mox.conf",
    help="""Prints an annotated empty configuration for use as mox.conf.

mox.conf is read at start; changes take effect after a restart. The printed
file needs values filled in (and unused list items removed) to be valid.""",
)
def cmd_config_describe_static(inv: Invocation) -> None:
    sys.stdout.write(sconf.describe(model.Static))


@command(
    "config describe-domains",
    params=">domains.conf",
    help="""Prints an annotated empty configuration for use as domains.conf.

domains.conf holds the domains and accounts with their addresses. The admin
web pages and the command line change it; mox reloads it when it changes.
The printed file needs values filled in to be valid.""",
)
def cmd_config_describe_domains(inv: Invocation) -> None:
    sys.stdout.write(sconf.describe(model.Dynamic))


@command(
    "serve",
    help="""Start mox, serving SMTP/IMAP/HTTPS.

Incoming email is accepted over SMTP. Email can be retrieved by users using
IMAP. HTTP listeners are started for the admin/account web interfaces, and for
automated TLS configuration. Missing essential TLS certificates are requested,
other TLS certificates are requested on demand.

Only implemented on unix systems, not Windows.""",
)
def cmd_serve(inv: Invocation) -> int:
    from mox.serve.server import run_serve

    return run_serve(inv.opts.config, loglevel=inv.opts.loglevel, pedantic=inv.opts.pedantic)


@command(
    "stop",
    help="""Shut mox down, giving connections at most 3 seconds to finish before closing them.

While shutting down, new connections are refused. Existing connections get
up to 3 seconds to finish their transaction.""",
)
def cmd_stop(inv: Invocation) -> None:
    client = _connect(inv)
    try:
        client.call("stop", [])
    except CtlError as e:
        raise CommandError(str(e)) from None
    print("mox stopped")


@command(
    "loglevels",
    params="[$level [$pkg]]",
    nargs=(0, 2),
    help=f"""Print the log levels, or set a new default log level, or a level for the given package.

By default, one log level applies to all logging. For each package (e.g.
smtpserver, smtpclient, queue, imapserver, spf, dkim, dmarc, junk), a level can
override it. Give a package and an empty level to remove the package's level.

Valid levels: {", ".join(LOG_LEVELS)}.""",
)
def cmd_loglevels(inv: Invocation) -> None:
    if not inv.args:
        levels = _ctl_call(inv, "loglevels", [])
        for pkg in sorted(levels):
            print(f"{pkg or '(default)'}: {levels[pkg]}")
        return
    level = inv.args[0]
    pkg = inv.args[1] if len(inv.args) > 1 else ""
    if level and level not in mlog.LEVELS:
        raise CommandError(f"unknown log level {level!r}, expected one of {', '.join(LOG_LEVELS)}")
    if not level and not pkg:
        raise UsageError("an empty level only makes sense with a package")
    _ctl_call(inv, "setloglevels", [pkg, level])


@command("config account list", help="List all accounts, one per line.")
def cmd_config_account_list(inv: Invocation) -> None:
    try:
        client = CtlClient.connect(_ctl_path(inv))
    except CtlConnectError as e:
        if _server_running(e):
            raise CommandError(str(e)) from None
        names = sorted(_load(inv).dynamic.Accounts)
    else:
        try:
            names = client.call("config account list", [])
        except CtlError as e:
            raise CommandError(str(e)) from None
    disabled = _disabled_accounts(inv)
    for name in names:
        print(f"{name}\t(disabled)" if name in disabled else name)


def _disabled_accounts(inv: Invocation) -> set[str]:
    # As upstream, disabled accounts are marked. Read from the files: it works with and without a server.
    try:
        cfg = _load(inv)
    except CommandError:
        return set()
    return {n for n, a in cfg.dynamic.Accounts.items() if a.LoginDisabled}


@command(
    "config account add",
    params="$account $address",
    nargs=(2, 2),
    help="""Add an account with an email address and reload the configuration.

Email can be delivered to this address/account. A password has to be set
explicitly, see the setaccountpassword command.""",
)
def cmd_config_account_add(inv: Invocation) -> None:
    account, address = inv.args
    _edit(inv, "config account add", inv.args, lambda cfg: edit.account_add(cfg, account, address))
    print(f'account added, set a password with "mox setaccountpassword {account}"')


@command(
    "config account rm",
    params="$account",
    nargs=(1, 1),
    help="""Remove an account and reload the configuration.

The account's addresses are removed too; incoming email for them is rejected.
All data of the account is removed.""",
)
def cmd_config_account_rm(inv: Invocation) -> None:
    (account,) = inv.args

    def direct(cfg: Config) -> None:
        new = edit.account_remove(cfg, account)
        edit.remove_account_data(new, account)

    _edit(inv, "config account rm", inv.args, direct)
    print("account removed")


@command(
    "config address add",
    params="$address $account",
    nargs=(2, 2),
    help="""Adds an address to an account and reloads the configuration.

An address starting with @ (no local part) is a catchall address for the domain.""",
)
def cmd_config_address_add(inv: Invocation) -> None:
    address, account = inv.args
    _edit(inv, "config address add", inv.args, lambda cfg: edit.address_add(cfg, address, account))
    print("address added")


@command(
    "config address rm",
    params="$address",
    nargs=(1, 1),
    help="""Remove an address and reload the configuration.

Incoming email for the address is rejected after removal.""",
)
def cmd_config_address_rm(inv: Invocation) -> None:
    (address,) = inv.args
    _edit(inv, "config address rm", inv.args, lambda cfg: edit.address_remove(cfg, address))
    print("address removed")


@command(
    "config domain add",
    params="[-disabled] $domain $account [$localpart]",
    flags=[Flag("disabled", False, "disable the new domain")],
    nargs=(2, 3),
    help="""Adds a new domain to the configuration and reloads the configuration.

The account receives the domain's postmaster mail and its DMARC and TLS
reports. Localpart is the account's address at the new domain; give it if and
only if the account does not exist yet (it is then created).

A domain added with -disabled gets no TLS certificates through ACME and mail
to or from it is refused, while it can be configured further. DKIM keys are
created for the domain.""",
)
def cmd_config_domain_add(inv: Invocation) -> None:
    domain, account = inv.args[0], inv.args[1]
    localpart = inv.args[2] if len(inv.args) > 2 else ""
    disabled = bool(inv.flags["disabled"])
    args = [domain, account, localpart, "true" if disabled else "false"]
    _edit(inv, "config domain add", args, lambda cfg: edit.domain_add(cfg, domain, account, localpart, disabled=disabled))
    print(
        f"domain added, remember to add DNS records for {domain}: MX, SPF, DKIM (selectors in domains.conf), DMARC\n"
        "(printing them with 'mox config dnsrecords' comes in a later version)"
    )


@command(
    "config domain rm",
    params="$domain",
    nargs=(1, 1),
    help="""Remove a domain from the configuration and reload the configuration.

Refused while accounts still have addresses at the domain. Incoming email for
the domain is rejected afterwards.""",
)
def cmd_config_domain_rm(inv: Invocation) -> None:
    (domain,) = inv.args
    _edit(inv, "config domain rm", inv.args, lambda cfg: edit.domain_remove(cfg, domain))
    print(f"domain removed, remember to remove dns records for {domain}")


@command(
    "clientconfig",
    params="$domain",
    nargs=(1, 1),
    help="""Print the IMAP and submission settings mail clients use for a domain.

Each listener serving IMAP or SMTP submission is listed with host, port and TLS
mode. Prefer the implicit-TLS ports (submissions 465, IMAPS 993) over STARTTLS
(587, 143). Ports without any TLS send passwords readably over the network; use
them only on networks protected otherwise, e.g. a VPN.""",
)
def cmd_clientconfig(inv: Invocation) -> None:
    from mox.dns.domain import DomainError, parse_domain
    from mox.http.clientconfig import ClientConfigError, client_configs_domain

    try:
        d = parse_domain(inv.args[0])
    except DomainError as e:
        raise UsageError(f"invalid domain {inv.args[0]!r}: {e}") from None
    cfg = _load(inv)
    try:
        entries = client_configs_domain(cfg, d)
    except ClientConfigError as e:
        raise CommandError(f"getting client config: {e}") from None
    out = [f"{'Protocol':<20} {'Host':<30} {'Port':>5} {'Listener':<15} Note"]
    out += [f"{e.protocol:<20} {e.host.name:<30} {e.port:>5} {e.listener:<15} {e.note}" for e in entries]
    out.append(
        "\nConfigure clients with the strongest authentication mechanism explicitly, in this order of\n"
        "preference: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5. A client that\n"
        "picks a mechanism from what the server offers can be downgraded to a weaker one by an attacker on the path."
    )
    sys.stdout.write("\n".join(out) + "\n")


@command(
    "config ensureacmehostprivatekeys",
    help="""Make sure every listener with ACME has long-lived host private keys.

Certificates from ACME are normally requested with a new key each time, which
makes DANE TLSA records (which pin a key) go stale at every renewal. With host
private keys listed in a listener's TLS.HostPrivateKeyFiles, every certificate
uses the same keys, so TLSA records can be published before the first
certificate exists and stay valid.

For each listener with TLS.ACME, an RSA 2048 and an ECDSA P-256 key are written
to config/hostkeys/ when the listener has none of that kind yet. A key of a
certificate already in the ACME cache is reused, so existing TLSA records stay
valid. mox.conf is not changed: the lines to add are printed. Afterwards, run
"mox config dnsrecords" for the TLSA records to publish.""",
)
def cmd_config_ensureacmehostprivatekeys(inv: Invocation) -> None:
    import time

    from mox.autotls import certs
    from mox.config.load import config_dir_path, write_file_atomic

    cfg = _load(inv)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    created_any = False
    for name in sorted(cfg.static.Listeners):
        lst = cfg.static.Listeners[name]
        if lst.TLS is None or not lst.TLS.ACME:
            continue
        have: set[str] = set()
        for f in lst.TLS.HostPrivateKeyFiles:
            p = config_dir_path(cfg.static_path, f)
            try:
                have.add(certs.key_type(certs.load_key(p.read_bytes(), f"host private key {p}")))
            except (OSError, certs.CertError) as e:
                raise CommandError(f"listener {name}: {e}") from None
        host = lst.HostnameDomain if lst.Hostname and lst.HostnameDomain else cfg.static.HostnameDomain
        cache = cfg.data_dir / "acme" / "keycerts" / lst.TLS.ACME
        created: list[str] = []
        for kind, label in (("rsa", "rsa2048"), ("ecdsa", "ecdsap256")):
            if kind in have:
                continue
            key = certs.cached_key(cache, host.ascii, kind)
            if key is None or (kind == "rsa" and key.key_size != 2048):
                key = certs.generate_key(kind)
            rel = f"hostkeys/{host.name}.{stamp}.{label}.privatekey.pkcs8.pem"
            dest = config_dir_path(cfg.static_path, rel)
            if dest.exists():
                raise CommandError(f"{dest} already exists")
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_file_atomic(dest, certs.key_pem(key), 0o600)
            sys.stdout.write(f"Wrote host private key: {dest}\n")
            created.append(rel)
        if created:
            created_any = True
            files = "".join(f"\t\t- {f}\n" for f in [*lst.TLS.HostPrivateKeyFiles, *created])
            sys.stdout.write(
                f'\nAdd to the TLS section of listener "{name}" in {cfg.static_path}, below "ACME: {lst.TLS.ACME}"'
                f" (indent with tabs):\n\n\tHostPrivateKeyFiles:\n{files}\n"
            )
    if created_any:
        sys.stdout.write('\nThen restart mox and run "mox config dnsrecords DOMAIN" for the TLSA records that enable DANE.\n')
