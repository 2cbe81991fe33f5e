"""A ready-to-run local configuration, like upstream's ``mox localserve`` writes.

``write_local_config(dir)`` creates ``dir/config/mox.conf``, ``domains.conf``,
a self-signed TLS certificate, a DKIM key and an admin password file, for
account ``mox@localhost`` on localhost with the usual ports plus 1000 (SMTP
1025, submission 1587, submissions 1465, IMAP 1143, IMAPS 1993, HTTP 1080,
HTTPS 1443, metrics 1081). Used by the README's run command, tests and
benchmarks: ``python -m mox.config.example DIR``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mox.config import keys, model, sconf
from mox.config.load import write_file_atomic


@dataclass
class LocalPorts:
    smtp: int = 1025
    submission: int = 1587
    submissions: int = 1465
    imap: int = 1143
    imaps: int = 1993
    http: int = 1080
    https: int = 1443
    metrics: int = 1081


ADMIN_PASSWORD = "moxadmin"


def free_local_ports() -> LocalPorts:
    """Ports free on 127.0.0.1 right now, for tests and benchmarks that run several servers."""
    import socket

    socks = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return LocalPorts(*(int(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()


def local_static(ports: LocalPorts, ips: list[str], log_level: str = "info") -> model.Static:
    web = {
        name: model.WebService(Enabled=True, Port=ports.https if name.endswith("HTTPS") else ports.http, Path=path)
        for name, path in (
            ("AccountHTTP", "/account/"),
            ("AccountHTTPS", "/account/"),
            ("AdminHTTP", "/admin/"),
            ("AdminHTTPS", "/admin/"),
            ("WebmailHTTP", "/webmail/"),
            ("WebmailHTTPS", "/webmail/"),
            ("WebAPIHTTP", "/webapi/"),
            ("WebAPIHTTPS", "/webapi/"),
        )
    }
    listener = model.Listener(
        IPs=list(ips),
        TLS=model.ListenerTLS(KeyCerts=[model.KeyCert(CertFile="localhost.crt", KeyFile="localhost.key")]),
        SMTP=model.SMTPListener(Enabled=True, Port=ports.smtp),
        Submission=model.SubmissionListener(Enabled=True, Port=ports.submission, NoRequireSTARTTLS=True),
        Submissions=model.SubmissionsListener(Enabled=True, Port=ports.submissions),
        IMAP=model.IMAPListener(Enabled=True, Port=ports.imap, NoRequireSTARTTLS=True),
        IMAPS=model.IMAPSListener(Enabled=True, Port=ports.imaps),
        MetricsHTTP=model.MetricsListener(Enabled=True, Port=ports.metrics),
    )
    for name, ws in web.items():
        setattr(listener, name, ws)
    return model.Static(
        DataDir="../data",
        LogLevel=log_level,
        User=str(os.getuid()),
        Hostname="localhost",
        TLS=model.GlobalTLS(CA=model.CAConfig(AdditionalToSystem=True, CertFiles=["localhost.crt"])),
        AdminPasswordFile="adminpasswd",
        Listeners={"local": listener},
        Postmaster=model.Postmaster(Account="mox", Mailbox="Inbox"),
    )


def local_dynamic() -> model.Dynamic:
    from mox.config.edit import make_account_config

    account = make_account_config("mox@localhost", "localhost")
    account.Domain = ""
    account.KeepRetiredMessagePeriod = sconf.Duration(72 * 3600 * 10**9)
    account.KeepRetiredWebhookPeriod = sconf.Duration(72 * 3600 * 10**9)
    account.NoFirstTimeSenderDelay = True
    account.NoCustomPassword = False
    return model.Dynamic(
        Domains={
            "localhost": model.Domain(
                LocalpartCatchallSeparator="+",
                DKIM=model.DKIM(
                    Selectors={"localserve": model.Selector(Expiration="72h", PrivateKeyFile="dkim.localserve.privatekey.pkcs8.pem")},
                    Sign=["localserve"],
                ),
            )
        },
        Accounts={"mox": account},
    )


def write_local_config(
    root: str | os.PathLike[str],
    *,
    ports: LocalPorts | None = None,
    ips: list[str] | None = None,
    log_level: str = "info",
) -> Path:
    """Write a complete local configuration under root; returns the path of mox.conf.

    Existing key and certificate files are kept, config files are rewritten.
    """
    cdir = Path(root) / "config"
    cdir.mkdir(mode=0o770, parents=True, exist_ok=True)
    (Path(root) / "data").mkdir(mode=0o770, exist_ok=True)
    crt, key = cdir / "localhost.crt", cdir / "localhost.key"
    if not crt.exists() or not key.exists():
        c, k = keys.make_self_signed(["localhost"], ["127.0.0.1", "::1"])
        write_file_atomic(key, k, 0o600)
        write_file_atomic(crt, c, 0o644)
    dkim = cdir / "dkim.localserve.privatekey.pkcs8.pem"
    if not dkim.exists():
        write_file_atomic(dkim, keys.make_dkim_ed25519_key(), 0o600)
    pw = cdir / "adminpasswd"
    if not pw.exists():
        write_file_atomic(pw, keys.hash_admin_password(ADMIN_PASSWORD) + b"\n", 0o600)
    static = local_static(ports or LocalPorts(), ips or ["127.0.0.1", "::1"], log_level)
    write_file_atomic(cdir / "mox.conf", sconf.write(static, header=model.STATIC_HEADER).encode(), 0o660)
    write_file_atomic(cdir / "domains.conf", sconf.write(local_dynamic(), header=model.DYNAMIC_HEADER).encode(), 0o660)
    return cdir / "mox.conf"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m mox.config.example DIR\n")
        return 2
    print(write_local_config(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
