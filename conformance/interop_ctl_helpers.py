"""Helpers for test_interop_ctl.py: the mox command line run in an instance's container as the user
the server runs as, and client connections for accounts the tests create.

Commands run with ``podman exec --user mox`` (through testcontainers' docker client), so files the
command line writes (exports, maildirs) belong to the same user as the server's. Accounts made here
carry unique names so tests sharing the interop network never touch each other's data.
"""

from __future__ import annotations

import contextlib
import imaplib
import shlex
import smtplib
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

from interop_net import MOX1_DOMAIN, MOX1_HOST, MOX2_DOMAIN, MOX2_HOST, Network, wait_for

# The image's user that `mox serve` switches to (docker/Dockerfile, User in mox.conf).
MOX_USER = "mox"
DOMAINS = {"mox1": MOX1_DOMAIN, "mox2": MOX2_DOMAIN}
HOSTNAMES = {"mox1": MOX1_HOST, "mox2": MOX2_HOST}


def unique(prefix: str) -> str:
    """A name no other test uses: prefix and 8 hex digits (valid as account name and local part)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def run(net: Network, host: str, cmd: list[str], user: str = MOX_USER) -> tuple[int, str]:
    """Run cmd in host's container as user, in /mox (where config/mox.conf is); (exit code, output)."""
    res: Any = net.hosts[host].container.get_wrapped_container().exec_run(cmd, user=user, workdir="/mox")
    out = res.output.decode(errors="replace") if isinstance(res.output, bytes) else str(res.output)
    return int(res.exit_code), out


def sh(net: Network, host: str, script: str, user: str = MOX_USER, check: bool = True) -> str:
    """Run a shell script in host's container; output, or AssertionError when it fails and check."""
    code, out = run(net, host, ["sh", "-c", script], user)
    if check and code != 0:
        raise AssertionError(f"{host}: script exited {code}:\n{script}\n--- output:\n{out}")
    return out


def mox_rc(net: Network, host: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    """``mox ARGS`` against the instance's running server; (exit code, output). stdin is piped in."""
    cmd = "mox " + " ".join(shlex.quote(a) for a in args)
    if stdin is not None:
        cmd = f"printf %s {shlex.quote(stdin)} | {cmd}"
    return run(net, host, ["sh", "-c", cmd])


def mox_batch(net: Network, host: str, commands: list[list[str]]) -> list[tuple[int, str]]:
    """Several ``mox`` commands in one exec (each exec costs a few tenths of a second); (exit code,
    output) of each, in order. All run, also after one fails."""
    sep = f"--ctl-batch-{uuid.uuid4().hex}--"
    script = "; ".join(f"mox {' '.join(shlex.quote(a) for a in args)} 2>&1; rc=$?; echo; echo {sep} $rc" for args in commands)
    _code, out = run(net, host, ["sh", "-c", script])
    results: list[tuple[int, str]] = []
    rest = out
    for _ in commands:
        text, found, rest = rest.partition(f"\n{sep} ")
        assert found, f"{host}: batch output incomplete:\n{out}"
        code, _, rest = rest.partition("\n")
        results.append((int(code), text))
    return results


def mox(net: Network, host: str, *args: str, stdin: str | None = None) -> str:
    """``mox ARGS``, which must succeed; its output."""
    code, out = mox_rc(net, host, *args, stdin=stdin)
    if code != 0:
        raise AssertionError(f"{host}: mox {' '.join(args)} exited {code}:\n{out}")
    return out


def mox_fails(net: Network, host: str, *args: str) -> str:
    """``mox ARGS``, which must fail with status 1 (a refused command, not a usage error); its output."""
    code, out = mox_rc(net, host, *args)
    if code != 1:
        raise AssertionError(f"{host}: mox {' '.join(args)} exited {code}, expected failure 1:\n{out}")
    return out


def wait_mox1_certificates(net: Network) -> None:
    """Wait until mox1 has its certificates from pebble (its host name and mta-sts.mox1.example). Before,
    it serves a fallback certificate: mail to mox1 then goes without PKIX verification and mox2 cannot
    fetch mox1.example's MTA-STS policy, which other interop tests check."""
    for name in (MOX1_HOST, f"mta-sts.{MOX1_DOMAIN}"):
        wait_for(
            f"mox1: certificate obtained for {name}",
            lambda n=name: any('m="certificate obtained"' in x and f"host={n}" in x for x in net.hosts["mox1"].logs().splitlines()),  # type: ignore[misc]
            120,
            net.all_logs,
        )


def tls_context(net: Network, host: str) -> ssl.SSLContext:
    """A client context verifying host's certificate: the test CA (mox2) or this run's pebble root (mox1)."""
    if host == "mox1":
        wait_mox1_certificates(net)
        return ssl.create_default_context(cadata=(net.state / "acme" / "root.pem").read_text())
    return net.ssl_context()


def imap_login(net: Network, host: str, address: str, password: str) -> imaplib.IMAP4:
    """IMAP to host:143, STARTTLS verified against host's name, LOGIN; raises imaplib.IMAP4.error when refused."""
    im = imaplib.IMAP4(net.ip(host), 143, timeout=20)
    try:
        im.host = HOSTNAMES[host]  # the name the certificate is checked against
        im.starttls(tls_context(net, host))
        im.login(address, password)
    except BaseException:
        with contextlib.suppress(Exception):
            im.shutdown()
        raise
    return im


def login_refused(net: Network, host: str, address: str, password: str) -> str:
    """The error text of a refused IMAP login (AssertionError if it succeeds)."""
    try:
        im = imap_login(net, host, address, password)
    except imaplib.IMAP4.error as e:
        return str(e)
    im.logout()
    raise AssertionError(f"imap login of {address} on {host} succeeded, expected refusal")


def message(sender: str, rcpts: list[str], subject: str, body: str = "test\r\n", headers: str = "") -> bytes:
    to = ", ".join(f"<{r}>" for r in rcpts)
    return (
        f"From: <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{sender.rsplit('@', 1)[1]}>\r\n{headers}\r\n{body}"
    ).encode()


def submit(net: Network, host: str, sender: str, password: str, rcpts: list[str], subject: str, body: str = "test\r\n") -> None:
    """Submission on host:587 after STARTTLS verified against host's name, AUTH as sender; all accepted."""
    with smtplib.SMTP(net.ip(host), 587, local_hostname="client.example", timeout=20) as s:
        s._host = HOSTNAMES[host]  # type: ignore[attr-defined]  # the name the certificate is checked against
        s.starttls(context=tls_context(net, host))
        s.login(sender, password)
        refused = s.sendmail(sender, rcpts, message(sender, rcpts, subject, body))
        assert refused == {}, refused


def rcpt_reply(net: Network, host: str, rcpt: str, mail_from: str = "sender@postfix.example") -> tuple[int, str]:
    """Reply code and text to RCPT TO:<rcpt> on host's port 25 (plain incoming SMTP from the test host)."""
    with smtplib.SMTP(net.ip(host), 25, local_hostname="client.example", timeout=20) as s:
        s.ehlo()
        code, text = s.mail(mail_from)
        assert code == 250, (code, text)
        code, text = s.rcpt(rcpt)
        with contextlib.suppress(smtplib.SMTPException):
            s.rset()
        return code, text.decode(errors="replace")


def search(im: imaplib.IMAP4, mailbox: str, *criteria: str) -> list[bytes]:
    """Message sequence numbers in mailbox (selected read-only) matching criteria."""
    typ, data = im.select(mailbox, readonly=True)
    assert typ == "OK", data
    typ, data = im.search(None, *criteria)
    assert typ == "OK", data
    return data[0].split() if data and isinstance(data[0], bytes) else []


def wait_message(
    net: Network, host: str, address: str, password: str, criteria: list[str], mailbox: str = "INBOX", timeout: float = 60
) -> bytes:
    """The newest message in address's mailbox matching IMAP SEARCH criteria; waits for it to be delivered."""
    deadline = time.monotonic() + timeout
    im = imap_login(net, host, address, password)
    try:
        while True:
            nums = search(im, mailbox, *criteria)
            if nums:
                typ, data = im.fetch(nums[-1].decode(), "(BODY.PEEK[])")
                assert typ == "OK", data
                part = data[0]
                assert isinstance(part, tuple)
                return bytes(part[1])
            if time.monotonic() > deadline:
                raise AssertionError(f"no message matching {criteria} in {address}'s {mailbox} on {host} within {timeout}s\n{net.all_logs()}")
            time.sleep(0.2)
    finally:
        im.logout()


def wait_exported(net: Network, host: str, account_name: str, mailbox: str, needle: str, timeout: float = 60) -> str:
    """The mailbox of account_name, exported with ``mox export mbox`` in host's container (the account's
    files, read without the server; no TLS or password involved), once it contains needle."""
    d = f"/tmp/{unique('ctlexport')}"
    script = (
        f"for i in $(seq 1 {int(timeout * 4)}); do rm -rf {d}; "
        f"mox export mbox -single {d} data/accounts/{shlex.quote(account_name)} {shlex.quote(mailbox)} >/dev/null 2>&1 "
        f"&& grep -qF -- {shlex.quote(needle)} {d}/*.mbox && cat {d}/*.mbox && rm -rf {d} && exit 0; sleep 0.25; done; "
        f"rm -rf {d}; exit 1"
    )
    code, out = run(net, host, ["sh", "-c", script])
    if code != 0:
        raise AssertionError(f"{needle!r} not in {account_name}'s {mailbox} on {host} within {timeout}s\n{net.hosts[host].logs()}")
    return out


def count_exported(net: Network, host: str, account_name: str, mailbox: str, needle: str) -> int:
    """How many lines of account_name's mailbox (exported in host's container) contain needle; 0 when
    the mailbox does not exist (yet)."""
    d = f"/tmp/{unique('ctlexport')}"
    script = (
        f"mox export mbox -single {d} data/accounts/{shlex.quote(account_name)} {shlex.quote(mailbox)} >/dev/null 2>&1 "
        f"&& cat {d}/*.mbox | grep -cF -- {shlex.quote(needle)}; rm -rf {d}; true"
    )
    out = sh(net, host, script).strip()
    return int(out) if out.isdigit() else 0


def quoted(s: str) -> str:
    """An IMAP quoted string (for SEARCH arguments with spaces)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Account:
    """An account made through ctl (``config account add``, ``setaccountpassword``) with a unique name."""

    def __init__(self, net: Network, host: str, prefix: str = "ctl") -> None:
        self.net, self.host = net, host
        self.name = unique(prefix)
        self.address = f"{self.name}@{DOMAINS[host]}"
        self.password = f"pw-{uuid.uuid4().hex}"

    def create(self) -> Account:
        """config account add and setaccountpassword, in one exec."""
        add = f"mox config account add {shlex.quote(self.name)} {shlex.quote(self.address)}"
        setpw = f"printf '%s\\n' {shlex.quote(self.password)} | mox setaccountpassword {shlex.quote(self.name)}"
        out = sh(self.net, self.host, f"set -e; {add}; {setpw}")
        assert "account added" in out, out
        return self

    def remove(self) -> None:
        """Remove the account if it still exists (cleanup; no check)."""
        mox_rc(self.net, self.host, "config", "account", "rm", self.name)

    def imap(self) -> imaplib.IMAP4:
        return imap_login(self.net, self.host, self.address, self.password)

    def submit(self, rcpts: list[str], subject: str, body: str = "test\r\n") -> None:
        submit(self.net, self.host, self.address, self.password, rcpts, subject, body)

    def wait_message(self, criteria: list[str], mailbox: str = "INBOX", timeout: float = 60) -> bytes:
        return wait_message(self.net, self.host, self.address, self.password, criteria, mailbox, timeout)

    def wait_exported(self, needle: str, mailbox: str = "Inbox", timeout: float = 60) -> str:
        return wait_exported(self.net, self.host, self.name, mailbox, needle, timeout)


@contextlib.contextmanager
def account(net: Network, host: str, prefix: str = "ctl") -> Iterator[Account]:
    """A new account on host for the duration of the block, removed afterwards."""
    acc = Account(net, host, prefix)
    try:
        yield acc.create()
    finally:
        acc.remove()
