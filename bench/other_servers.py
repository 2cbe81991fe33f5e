"""Non-mox servers on loopback to point the benchmarks at (their --host/--port/--pid options).

Each runs in the foreground on a private configuration in a fresh temporary
directory (no system configuration is read or changed, nothing listens beyond
127.0.0.1), prints one line with its ports, user and process id, and stops on
Ctrl-C or SIGTERM, removing its directory.

- ``dovecot``: Dovecot (Debian packages dovecot-imapd and dovecot-lmtpd) with
  IMAP and LMTP, one user ``bench@localhost`` / ``bench`` whose mail is in a
  Maildir. For imap_fetch, imap_idle (--lmtp), import_mbox (--method append)
  and localserve_start (--command, see --print-command).
- ``postfix``: a private Postfix instance (Debian package postfix; its own
  main.cf/master.cf, queue and log under the temporary directory; the system's
  instance is neither used nor started) accepting SMTP on loopback for
  ``@localhost`` and delivering it over LMTP to the ``dovecot`` instance, with
  DNS lookups disabled and every other destination refused: Postfix+Dovecot
  for smtp_deliver, smtp_conns, queue_deliver and imap_idle (without --lmtp).
- ``aiosmtpd``: the aiosmtpd SMTP server (a Python package of the test
  environment) storing every accepted message in a Maildir, not synced to
  disk: a receiving SMTP server for smtp_deliver, smtp_conns and queue_deliver.

    .venv/bin/python bench/other_servers.py dovecot --imap-port 10143 --lmtp-port 10024
    .venv/bin/python bench/other_servers.py aiosmtpd --port 10025
    .venv/bin/python bench/other_servers.py postfix --port 10026 --lmtp-port 10024
    .venv/bin/python bench/other_servers.py dovecot --print-command   # a start-up command for localserve_start
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import wait_port

DOVECOT_USER = "bench@localhost"
DOVECOT_PASSWORD = "bench"


def dovecot_config(root: Path, imap_port: int, lmtp_port: int) -> Path:
    """Write a self-contained dovecot.conf under root (mail owned by nobody); returns its path."""
    mail = root / "mail"
    mail.mkdir(parents=True, exist_ok=True)
    os.chown(mail, 65534, 65534)
    (root / "passwd").write_text(f"{DOVECOT_USER}:{{PLAIN}}{DOVECOT_PASSWORD}::::::\n")
    conf = root / "dovecot.conf"
    conf.write_text(f"""# Written by bench/other_servers.py for benchmarks on loopback.
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{mail}/%n
first_valid_uid = 100
default_internal_user = dovecot
default_login_user = dovenull
mail_max_userip_connections = 10000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={mail}/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
""")
    os.chmod(root, 0o755)
    return conf


def run_dovecot(args: argparse.Namespace) -> None:
    if shutil.which("dovecot") is None:
        raise SystemExit("dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)")
    root = Path(tempfile.mkdtemp(prefix="bench-dovecot-"))
    try:
        conf = dovecot_config(root, args.imap_port, args.lmtp_port)
        if args.print_command:
            print(f"dovecot -F -c {conf}")
            return
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)])
        deadline = time.monotonic() + 30
        wait_port("127.0.0.1", args.imap_port, deadline, proc, root / "dovecot.log")
        wait_port("127.0.0.1", args.lmtp_port, deadline, proc, root / "dovecot.log")
        print(f"dovecot {dovecot_version()} pid {proc.pid}: IMAP 127.0.0.1:{args.imap_port}, LMTP 127.0.0.1:{args.lmtp_port}, "
              f"user {DOVECOT_USER} password {DOVECOT_PASSWORD}, config {conf}", flush=True)  # fmt: skip
        wait_for_stop(proc)
    finally:
        if not args.print_command:
            shutil.rmtree(root, ignore_errors=True)


def dovecot_version() -> str:
    return subprocess.run(["dovecot", "--version"], capture_output=True, text=True, timeout=10).stdout.split()[0]


def wait_for_stop(proc: subprocess.Popen[bytes]) -> None:
    stop = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop and proc.poll() is None:
        time.sleep(0.2)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


POSTFIX_SERVICES = """\
# service type private unpriv chroot wakeup maxproc command
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_config(root: Path, port: int, lmtp_port: int) -> Path:
    """A private Postfix instance under root: SMTP on 127.0.0.1:port, mail for @localhost to LMTP
    127.0.0.1:lmtp_port (bench/other_servers.py dovecot), no DNS, nothing relayed elsewhere."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    for d in ("spool", "data"):
        (root / d).mkdir()
    os.chown(root / "data", pwd_uid("postfix"), -1)
    (etc / "main.cf").write_text(f"""# Written by bench/other_servers.py for benchmarks on loopback.
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = localhost
mydomain = localhost
myorigin = localhost
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtp_host_lookup = native
lmtp_host_lookup = native
virtual_mailbox_domains = localhost
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
relay_transport = error:no relaying from this benchmark instance
default_transport = error:no relaying from this benchmark instance
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_count_limit = 0
# One smtpd process per connection; the default limit of 100 would hold the benchmarks' 1,000.
default_process_limit = 1200
smtpd_client_connection_rate_limit = 0
""")
    (etc / "master.cf").write_text(f"127.0.0.1:{port} inet n - n - - smtpd\n" + POSTFIX_SERVICES)
    os.chmod(root, 0o755)
    return etc


def pwd_uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def run_postfix(args: argparse.Namespace) -> None:
    if not Path("/usr/lib/postfix/sbin/master").exists():
        raise SystemExit("postfix is not installed (apt-get install postfix)")
    root = Path(tempfile.mkdtemp(prefix="bench-postfix-"))
    try:
        etc = postfix_config(root, args.port, args.lmtp_port)
        # "check" creates the queue directories. It reports problems only to a terminal or syslog.
        r = subprocess.run(["postfix", "-c", str(etc), "check"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise SystemExit(f"postfix -c {etc} check failed (run it on a terminal to see why): {r.stdout}{r.stderr}")
        proc = subprocess.Popen(["/usr/lib/postfix/sbin/master", "-c", str(etc), "-d"])
        wait_port("127.0.0.1", args.port, time.monotonic() + 30, proc, root / "maillog")
        print(f"postfix {subprocess.run(['postconf', '-h', 'mail_version'], capture_output=True, text=True).stdout.strip()} "
              f"pid {proc.pid}: SMTP 127.0.0.1:{args.port}, mail for @localhost to LMTP 127.0.0.1:{args.lmtp_port}, "
              f"log {root / 'maillog'}", flush=True)  # fmt: skip
        wait_for_stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_aiosmtpd(args: argparse.Namespace) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox

    root = Path(tempfile.mkdtemp(prefix="bench-aiosmtpd-"))
    try:
        ctl = Controller(Mailbox(root / "Maildir"), hostname="127.0.0.1", port=args.port, server_hostname="localhost",
                         data_size_limit=64 * 1024 * 1024)  # fmt: skip
        ctl.start()
        import aiosmtpd

        print(f"aiosmtpd {aiosmtpd.__version__} pid {os.getpid()}: SMTP 127.0.0.1:{args.port}, Maildir {root / 'Maildir'}", flush=True)
        stop = False

        def handler(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        while not stop:
            time.sleep(0.2)
        ctl.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="server", required=True)
    d = sub.add_parser("dovecot", help="Dovecot IMAP and LMTP")
    d.add_argument("--imap-port", type=int, default=10143)
    d.add_argument("--lmtp-port", type=int, default=10024)
    d.add_argument("--print-command", action="store_true", help="write a config and print the command starting dovecot with it")
    s = sub.add_parser("aiosmtpd", help="aiosmtpd SMTP server delivering to a Maildir")
    s.add_argument("--port", type=int, default=10025)
    pf = sub.add_parser("postfix", help="Postfix delivering mail for @localhost to the dovecot instance's LMTP")
    pf.add_argument("--port", type=int, default=10026)
    pf.add_argument("--lmtp-port", type=int, default=10024)
    args = ap.parse_args()
    if args.server == "dovecot":
        run_dovecot(args)
    elif args.server == "postfix":
        run_postfix(args)
    else:
        run_aiosmtpd(args)


if __name__ == "__main__":
    main()
