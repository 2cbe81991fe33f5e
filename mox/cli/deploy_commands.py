"""Commands for getting a mail server running: ``localserve``, ``quickstart``, ``config dnsrecords``,
``config dnscheck``, ``config printservice``. Names, flags and output follow upstream mox."""

from __future__ import annotations

from mox.cli.main import Flag, Invocation, command


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
