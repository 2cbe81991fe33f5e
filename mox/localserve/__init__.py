"""``mox localserve``: a ready-to-use local mail server for developing and testing software that sends mail.

Behaviour as upstream's localserve: on first use it creates a directory
(``-dir``, default ``$XDG_CONFIG_HOME/mox-localserve`` or
``~/.config/mox-localserve``) holding ``mox.conf`` and ``domains.conf`` (data
in the same directory, ``DataDir: .``), a self-signed certificate for
localhost, a DKIM key, the admin password ``moxadmin`` and the account ``mox``
with address ``mox@localhost`` and password ``moxmoxmox``. It then serves on
localhost with the usual ports plus 1000 (SMTP 1025, submission 1587,
submissions 1465, IMAP 1143, IMAPS 1993, HTTP 1080, HTTPS 1443, metrics 1081)
and prints the URLs with credentials.

No DNS query leaves the machine: unless ``MOX_DNS`` names servers, the
server's resolver is :class:`mox.localserve.resolver.LocalOnlyResolver`.

The server runs with ``Server.localserve`` set (see :mod:`mox.serve.server`):
the protocol servers and the outgoing queue look at that flag to accept mail
for any address and to deliver outgoing mail to the local account instead of
sending it; :mod:`mox.localserve.failures` has the recipient local parts that
simulate failures.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import bcrypt

from mox import mlog
from mox.config import keys, model, sconf
from mox.config.example import LocalPorts
from mox.config.load import Config, ConfigErrors, load_config, write_file_atomic

ACCOUNT = "mox"
ADDRESS = "mox@localhost"
PASSWORD = "moxmoxmox"
ADMIN_PASSWORD = "moxadmin"
DIR_NAME = "mox-localserve"
CERT_FILE = "localhost.crt"
KEY_FILE = "localhost.key"
DKIM_FILE = "dkim.localserve.privatekey.pkcs8.pem"
ADMIN_PASSWORD_FILE = "adminpasswd"
# Go's bcrypt.DefaultCost, which upstream uses for the admin password.
ADMIN_BCRYPT_COST = 10
# Upstream's account settings for localserve.
KEEP_RETIRED = sconf.Duration(72 * 3600 * 10**9)

log = mlog.new("localserve")


class LocalserveError(Exception):
    """Setting up or starting localserve failed; the message says why."""


def default_dir(env: dict[str, str] | None = None) -> Path:
    """The user's config directory (as Go's os.UserConfigDir on Unix) joined with mox-localserve."""
    e = os.environ if env is None else env
    base = e.get("XDG_CONFIG_HOME", "")
    if not base:
        home = e.get("HOME", "")
        base = os.path.join(home, ".config") if home else "."
    return Path(base) / DIR_NAME


def local_static(ips: list[str], ports: LocalPorts) -> model.Static:
    """mox.conf as upstream's localserve writes it."""

    def web(port: int, path: str = "") -> model.WebService:
        return model.WebService(Enabled=True, Port=port, Path=path)

    listener = model.Listener(
        IPs=list(ips),
        TLS=model.ListenerTLS(KeyCerts=[model.KeyCert(CertFile=CERT_FILE, KeyFile=KEY_FILE)]),
        SMTP=model.SMTPListener(Enabled=True, Port=ports.smtp),
        Submission=model.SubmissionListener(Enabled=True, Port=ports.submission, NoRequireSTARTTLS=True),
        Submissions=model.SubmissionsListener(Enabled=True, Port=ports.submissions),
        IMAP=model.IMAPListener(Enabled=True, Port=ports.imap, NoRequireSTARTTLS=True),
        IMAPS=model.IMAPSListener(Enabled=True, Port=ports.imaps),
        AccountHTTP=web(ports.http, "/account/"),
        AccountHTTPS=web(ports.https, "/account/"),
        AdminHTTP=web(ports.http),
        AdminHTTPS=web(ports.https),
        WebmailHTTP=web(ports.http, "/webmail/"),
        WebmailHTTPS=web(ports.https, "/webmail/"),
        WebAPIHTTP=web(ports.http, "/webapi/"),
        WebAPIHTTPS=web(ports.https, "/webapi/"),
        MetricsHTTP=model.MetricsListener(Enabled=True, Port=ports.metrics),
        WebserverHTTP=model.WebserverListener(Enabled=True, Port=ports.http),
        WebserverHTTPS=model.WebserverListener(Enabled=True, Port=ports.https),
    )
    return model.Static(
        DataDir=".",
        LogLevel="traceauth",
        User=str(os.getuid()),
        Hostname="localhost",
        Pedantic=True,
        TLS=model.GlobalTLS(CA=model.CAConfig(AdditionalToSystem=True, CertFiles=[CERT_FILE])),
        AdminPasswordFile=ADMIN_PASSWORD_FILE,
        Listeners={"local": listener},
        Postmaster=model.Postmaster(Account=ACCOUNT, Mailbox="Inbox"),
    )


def local_dynamic() -> model.Dynamic:
    """domains.conf as upstream's localserve writes it."""
    from mox.config.edit import make_account_config

    account = make_account_config(ADDRESS, "localhost")
    account.Domain = ""
    account.KeepRetiredMessagePeriod = KEEP_RETIRED
    account.KeepRetiredWebhookPeriod = KEEP_RETIRED
    account.NoFirstTimeSenderDelay = True
    account.NoCustomPassword = False
    account.SubjectPass = model.SubjectPass()
    return model.Dynamic(
        Domains={
            "localhost": model.Domain(
                LocalpartCatchallSeparator="+",
                DKIM=model.DKIM(
                    Selectors={"localserve": model.Selector(Expiration="72h", PrivateKeyFile=DKIM_FILE)},
                    Sign=["localserve"],
                ),
            )
        },
        Accounts={ACCOUNT: account},
        WebHandlers=[
            model.WebHandler(
                LogName="workdir",
                Domain="localhost",
                PathRegexp="^/workdir/",
                DontRedirectPlainHTTP=True,
                WebStatic=model.WebStatic(StripPrefix="/workdir/", Root=".", ListFiles=True),
            )
        ],
    )


def _admin_hash() -> bytes:
    return bcrypt.hashpw(ADMIN_PASSWORD.encode(), bcrypt.gensalt(rounds=ADMIN_BCRYPT_COST))


async def write_config(
    root: Path, *, ip: str = "", ports: LocalPorts | None = None, meanwhile: Callable[[], None] | None = None
) -> Config:
    """Write a new localserve directory (config files, keys, certificate) and set the account password.

    Existing files in root are overwritten. Returns the loaded config.
    meanwhile is called while the password hashes are computed in other threads.

    Raises:
        LocalserveError: the files could not be written or the result does not load.
    """
    from mox.store import StoreError, close_all_accounts
    from mox.store.deliver import open_config_account
    from mox.store.password import make_secrets

    root.mkdir(mode=0o770, parents=True, exist_ok=True)
    ips = [ip] if ip else ["127.0.0.1", "::1"]
    # The slow part, two bcrypt hashes and the SCRAM keys, runs in threads meanwhile (bcrypt releases the GIL).
    loop = asyncio.get_running_loop()
    admin_hash = loop.run_in_executor(None, _admin_hash)
    secrets = loop.run_in_executor(None, make_secrets, PASSWORD)
    try:
        cert, key = keys.make_self_signed(["localhost"], ["127.0.0.1", "::1"])
        write_file_atomic(root / KEY_FILE, key, 0o600)
        write_file_atomic(root / CERT_FILE, cert, 0o644)
        write_file_atomic(root / DKIM_FILE, keys.make_dkim_ed25519_key(), 0o600)
        static = local_static(ips, ports or LocalPorts())
        write_file_atomic(root / "mox.conf", sconf.write(static, header=model.STATIC_HEADER).encode(), 0o660)
        write_file_atomic(
            root / "domains.conf", sconf.write(local_dynamic(), header=model.DYNAMIC_HEADER).encode(), 0o660
        )
        cfg = _load(root)
        if meanwhile is not None:
            meanwhile()
        write_file_atomic(root / ADMIN_PASSWORD_FILE, await admin_hash, 0o600)
        acc = await open_config_account(cfg, ACCOUNT)
        try:
            await acc.set_password_secrets((await secrets).to_json())
        finally:
            await acc.close()
            await close_all_accounts()
    except (OSError, ValueError) as e:
        raise LocalserveError(f"writing localserve config in {root}: {e}") from None
    except StoreError as e:
        raise LocalserveError(f"setting password of account {ACCOUNT}: {e}") from None
    finally:
        for fut in (admin_hash, secrets):
            if not fut.done():
                fut.cancel()
    return cfg


def _prewarm() -> None:
    """Import what the server needs, in a thread while the keys and hashes are made on a fresh start.

    Not aiohttp: the HTTP ports import it at their first connection (mox.serve.server).
    """
    import mox.imapserver.server
    import mox.smtpserver.server  # noqa: F401


def _load(root: Path) -> Config:
    try:
        return load_config(root / "mox.conf")
    except ConfigErrors as e:
        raise LocalserveError(
            f"loading localserve config in {root} (to start afresh, remove the directory or use another -dir):\n"
            + "\n".join(str(x) for x in e.errors)
        ) from None


def _url_host(ip: str) -> str:
    if ip in ("127.0.0.1", "::1"):
        return "localhost"
    return f"[{ip}]" if ":" in ip else ip


def banner(cfg: Config, root: Path, existing: bool) -> str:
    """What localserve prints at start: credentials, special recipients and the URLs."""
    import mox

    lst = cfg.static.Listeners["local"]
    h = _url_host(lst.IPs[0] if lst.IPs else "127.0.0.1")
    user = "mox%40localhost:moxmoxmox"
    https, http = lst.AccountHTTPS.Port, lst.AccountHTTP.Port
    lines = [
        f"moxmail {mox.__version__}, mox localserve",
        "",
        f"account: {ADDRESS}, password {PASSWORD}",
        f"admin password: {ADMIN_PASSWORD}",
        "ports: the usual ones plus 1000",
        f"tls: self-signed certificate {root / CERT_FILE}",
        "no dns query leaves this machine"
        + ("" if "MOX_DNS" not in os.environ else " other than to the servers in MOX_DNS"),
        "submitted messages for other domains are delivered to this account, except that",
        'recipients whose localpart ends in "temperror", "permerror", [45][0-9][0-9] or "timeout"',
        "fail on purpose: a temporary error, a permanent error (with a DSN), that code, no answer.",
        "",
    ]
    urls = [
        (f"smtp://{h}:{lst.SMTP.Port}", "receive email"),
        (f"smtps://{user}@{h}:{lst.Submissions.Port}", "send email"),
        (f"smtp://{user}@{h}:{lst.Submission.Port}", "send email (without tls)"),
        (f"imaps://{user}@{h}:{lst.IMAPS.Port}", "read email"),
        (f"imap://{user}@{h}:{lst.IMAP.Port}", "read email (without tls)"),
        (f"https://{h}:{https}/account/", f"account https (email {ADDRESS}, password {PASSWORD})"),
        (f"http://{h}:{http}/account/", "account http (without tls)"),
        (f"https://{h}:{https}/webmail/", f"webmail https (email {ADDRESS}, password {PASSWORD})"),
        (f"http://{h}:{http}/webmail/", "webmail http (without tls)"),
        (f"https://{h}:{https}/webapi/", f"webapi https (email {ADDRESS}, password {PASSWORD})"),
        (f"http://{h}:{http}/webapi/", "webapi http (without tls)"),
        (f"https://{h}:{https}/admin/", f"admin https (password {ADMIN_PASSWORD})"),
        (f"http://{h}:{http}/admin/", "admin http (without tls)"),
    ]
    # Aligned on the "://", as upstream prints them.
    scheme = max(u.index("://") for u, _ in urls)
    shifted = [(" " * (scheme - u.index("://")) + u, what) for u, what in urls]
    width = max(len(u) for u, _ in shifted)
    lines += [f"{u:<{width}} - {what}" for u, what in shifted]
    lines.append("")
    if existing:
        lines.append(f"serving from existing directory {root}/ (remove it to start afresh)")
    else:
        lines.append(f"serving from new directory {root}/")
    return "\n".join(lines) + "\n"


def _apply_levels(cfg: Config, override: str) -> None:
    from mox.serve.server import configure_logging

    configure_logging(cfg, override)


async def _serve(cfg: Config, root: Path, existing: bool, loglevel: str) -> None:
    from mox.localserve.resolver import LocalOnlyResolver
    from mox.serve.server import Server, tune_gc

    resolver = None if "MOX_DNS" in os.environ else LocalOnlyResolver()
    server = Server(cfg, loglevel_override=loglevel, localserve=True, resolver=resolver)
    await server.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop_requested.set)
    tune_gc()
    _trim_heap()
    sys.stderr.write(banner(cfg, root, existing))
    sys.stderr.flush()
    try:
        await server.stop_requested.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.shutdown()


async def _main(root: Path, ip: str, init_only: bool, loglevel: str, ports: LocalPorts | None) -> int:
    if init_only:
        if root.exists():
            log.print("directory for configuration files already exists, continuing", dir=str(root))
        log.print("creating mox localserve config", dir=str(root))
        await write_config(root, ip=ip, ports=ports)
        sys.stderr.write(f"config created in {root}\n")
        return 0
    existing = root.exists()
    if not existing:
        # What the server imports is imported while the hashes are made (bcrypt releases the GIL);
        # in a thread of its own instead, the imports would cost 4 MB more resident memory.
        try:
            cfg = await write_config(root, ip=ip, ports=ports, meanwhile=_prewarm)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        sys.stderr.write(f"config created in {root}\n")
    elif ip:
        raise LocalserveError("can only use -ip when writing a new config directory")
    else:
        cfg = _load(root)
    _apply_levels(cfg, loglevel)
    await _serve(cfg, root, existing, loglevel)
    return 0


def _trim_heap() -> None:
    """Give the memory freed during start-up (imports, key generation) back to the system.

    glibc keeps freed heap memory resident until malloc_trim; for a small local
    server that is 2-3 MB of its resident size.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run(
    root: Path | str | None = None,
    *,
    ip: str = "",
    init_only: bool = False,
    loglevel: str = "",
    ports: LocalPorts | None = None,
) -> int:
    """Entry point of ``mox localserve``: returns the exit status.

    ports is for tests and benchmarks that cannot take the fixed ports; it only
    applies when a new config is written.
    """
    from mox.serve.listeners import ListenError

    mlog.set_logfmt(True)
    mlog.install_stdlib_bridge()
    if loglevel:
        try:
            mlog.parse_level(loglevel)
        except ValueError as e:
            sys.stderr.write(f"mox: {e}\n")
            return 2
    if ip:
        import ipaddress

        try:
            ipaddress.ip_address(ip)
        except ValueError:
            sys.stderr.write(f"mox: -ip: {ip!r} is not an IP address\n")
            return 2
    # Quiet until the config's level applies (upstream: info while initialising).
    mlog.set_config({"": mlog.parse_level(loglevel or "info")})
    path = Path(root).absolute() if root else default_dir()
    try:
        return asyncio.run(_main(path, ip, init_only, loglevel, ports))
    except (LocalserveError, ListenError) as e:
        sys.stderr.write(f"mox: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"mox: {e}\n")
        return 1
