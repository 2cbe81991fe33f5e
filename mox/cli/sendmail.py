"""``mox sendmail``: a stand-in for /usr/sbin/sendmail that submits over SMTP, and its config file.

Processes like cron hand a message to ``sendmail`` on standard input. This
command turns it into a message fit for submission (From set to the configured
address, line endings CRLF, To/Date/Message-ID added when missing) and submits
it to a real mail server with SMTP submission (RFC 6409) and authentication
(RFC 4954: SCRAM RFC 5802/7677, CRAM-MD5 RFC 2195, PLAIN RFC 4616, EXTERNAL
with a TLS client certificate), over implicit TLS (RFC 8314) or STARTTLS
(RFC 3207), optionally with REQUIRETLS (RFC 8689).

The server and credentials come from /etc/moxsubmit.conf (``mox config
describe-sendmail``), with upstream's keys. Upstream always reads that path; we
also accept the environment variable MOXSUBMITCONF (upstream has it as a todo),
ignored when running setgid, so a setgid install cannot be pointed at another
file holding a secret.

Differences from upstream, each deliberate and a superset of what it accepts:

- Several recipients may be given; with -t, recipients come from To, Cc and
  Bcc, and Bcc is removed (upstream takes a single To address and leaves Bcc).
- -F sets the display name of the From header (upstream ignores it).
- Input without a header (e.g. ``echo hi | sendmail root``) becomes the body
  of a message, as classic sendmail does; upstream refuses it.
- Date and Message-ID are added when missing (mox's submission would add them
  too; adding them here keeps a saved failed message complete).

When submission fails the message is saved in ~/moxsubmit.failures, as
upstream does, and the error is one line ``mox: ...`` (exit status 1), which
cron mails to the user.
"""

from __future__ import annotations

import base64
import email.utils
import hmac
import os
import re
import smtplib
import socket
import ssl
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mox.cli.main import CommandError, Invocation, UsageError, command
from mox.config import sconf
from mox.config.sconf import option, required
from mox.dns.domain import DomainError, parse_domain
from mox.message.address import parse_address_list
from mox.scram import ScramClient, ScramError
from mox.smtp.address import AddressError, parse_address

CONFIG_PATH = "/etc/moxsubmit.conf"
CONFIG_ENV = "MOXSUBMITCONF"
FAILURES_DIR = "moxsubmit.failures"

# As upstream: 30 seconds to connect; we use it for every read and write too.
TIMEOUT = 30.0

# Sendmail options that take a value, attached ("-Fname") or as the next
# argument ("-F name"), from sendmail(8)'s option list. Only -t and -F mean
# something here; the others are accepted and ignored so existing callers
# (cron passes e.g. "-FCronDaemon -i -B8BITMIME -oem") work.
_OPTIONS_WITH_VALUE = frozenset("BbCdeFfhLMNOopqRrVX")

REQUIRETLS_DEFAULT = ""
REQUIRETLS_YES = "yes"
REQUIRETLS_NO = "no"


@dataclass
class SubmitConfig:
    """/etc/moxsubmit.conf; keys as upstream's sendmail config."""

    LocalHostname: str = required(
        "Our host name, sent in EHLO. Set explicitly: hosts often do not know their fully qualified name."
    )
    Host: str = required("Host name (or IP) of the submission server to connect to, e.g. mail.<domain>.")
    Port: int = required(
        "Port of the submission server: 465 for submissions (TLS), 587 for submission (STARTTLS), or perhaps 25.",
        default=0,
    )
    TLS: bool = required("Start with TLS right away (implicit TLS), usually for port 465.", default=False)
    STARTTLS: bool = required(
        "Start in plain text and require STARTTLS before authenticating, usually for port 587 (or 25).",
        default=False,
    )
    TLSInsecureSkipVerify: bool = option(
        "Do not verify the TLS certificate of the server. Not recommended.", default=False
    )
    Username: str = required("Username for SMTP authentication, usually an email address.")
    Password: str = option(
        "Password for authentication with SCRAM-SHA-256(-PLUS), SCRAM-SHA-1(-PLUS), CRAM-MD5 or PLAIN.",
        default="",
    )
    ClientAuthEd25519PrivateKey: str = option(
        "Authenticate with a TLS client certificate made from this ed25519 private key, as raw-url-base64 "
        "(the 32-byte seed). A minimal self-signed certificate is made for it; the server identifies the "
        "account by its public key.",
        default="",
    )
    ClientAuthCertPrivateKeyPEMFile: str = option(
        "Authenticate with a TLS client certificate: absolute path of a PEM file holding both the certificate "
        "and its unencrypted PKCS#8 private key.",
        default="",
    )
    AuthMethod: str = required(
        "Use only this authentication mechanism: EXTERNAL (with a TLS client certificate), SCRAM-SHA-256-PLUS, "
        "SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1, CRAM-MD5 or PLAIN. If empty, the most secure mechanism "
        "both sides support is used. Naming the strongest the server implements prevents downgrades. Exactly "
        "one of Password, ClientAuthEd25519PrivateKey and ClientAuthCertPrivateKeyPEMFile must be set."
    )
    From: str = required(
        "Address used for MAIL FROM and in the From header of every message, replacing the From given."
    )
    DefaultDestination: str = option(
        "Address to deliver to when a recipient has no @, e.g. a local user like root.", default=""
    )
    RequireTLS: str = option(
        "yes: the submission server must support REQUIRETLS and the connection to it must use verified TLS; "
        "the message then only travels over verified TLS. no: a 'TLS-Required: No' header is added, allowing "
        "delivery without (verified) TLS despite the recipient domain's MTA-STS or DANE policy. Empty (default): "
        "the server follows the recipient domain's policies.",
        default=REQUIRETLS_DEFAULT,
    )


AUTH_METHODS = (
    "EXTERNAL",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-1",
    "CRAM-MD5",
    "PLAIN",
)


def config_path() -> str:
    """The config file: $MOXSUBMITCONF, unless setgid (see the module docstring), else /etc/moxsubmit.conf."""
    env = os.environ.get(CONFIG_ENV, "")
    if env and os.getgid() == os.getegid() and os.getuid() == os.geteuid():
        return env
    return CONFIG_PATH


def load_submit_config(path: str) -> SubmitConfig:
    """Read and check a moxsubmit.conf.

    Raises:
        CommandError: unreadable file, syntax errors, or inconsistent settings.
    """
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CommandError(f"reading config: {e.strerror or e}: {path}") from None
    try:
        conf, _ = sconf.parse(SubmitConfig, text, path)
    except sconf.SconfError as e:
        raise CommandError(f"parsing config: {e}") from None

    def bad(msg: str) -> CommandError:
        return CommandError(f"config {path}: {msg}")

    secrets = [
        s
        for s in (conf.Password, conf.ClientAuthEd25519PrivateKey, conf.ClientAuthCertPrivateKeyPEMFile)
        if s
    ]
    if len(secrets) != 1:
        raise bad(
            "need exactly one of Password, ClientAuthEd25519PrivateKey and ClientAuthCertPrivateKeyPEMFile"
        )
    if conf.AuthMethod and conf.AuthMethod.upper() not in AUTH_METHODS:
        raise bad(f"unknown AuthMethod {conf.AuthMethod!r}, known: {', '.join(AUTH_METHODS)}")
    if conf.RequireTLS not in (REQUIRETLS_DEFAULT, REQUIRETLS_YES, REQUIRETLS_NO):
        raise bad(f"RequireTLS must be empty, yes or no, not {conf.RequireTLS!r}")
    if conf.TLS and conf.STARTTLS:
        raise bad("TLS and STARTTLS are mutually exclusive")
    if not 0 < conf.Port < 65536:
        raise bad(f"bad Port {conf.Port}")
    if conf.RequireTLS == REQUIRETLS_YES and not (conf.TLS or conf.STARTTLS):
        raise bad("RequireTLS yes needs TLS or STARTTLS to the submission server")
    if conf.RequireTLS == REQUIRETLS_YES and conf.TLSInsecureSkipVerify:
        raise bad("RequireTLS yes needs verified TLS, it cannot be combined with TLSInsecureSkipVerify")
    try:
        parse_domain(conf.LocalHostname)
    except DomainError as e:
        raise bad(f"LocalHostname: {e}") from None
    for name in ("From", "DefaultDestination"):
        value = getattr(conf, name)
        if value or name == "From":
            try:
                parse_address(value)
            except AddressError as e:
                raise bad(f"{name}: {e}") from None
    return conf


@dataclass
class SendmailArgs:
    """What the command line says: read recipients from the header (-t), a From name (-F), recipients."""

    from_headers: bool = False
    full_name: str = ""
    recipients: list[str] = field(default_factory=list)


def parse_sendmail_args(args: Sequence[str]) -> SendmailArgs:
    """Parse sendmail's command line laxly, getopt-style: unknown options are ignored.

    Raises:
        UsageError: an option that needs a value is last.
    """
    out = SendmailArgs()
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            break
        if not a.startswith("-") or a == "-":
            i -= 1
            break
        letters = a[1:]
        while letters:
            opt, letters = letters[0], letters[1:]
            if opt not in _OPTIONS_WITH_VALUE:
                if opt == "t":
                    out.from_headers = True
                continue
            if not letters:
                if i >= len(args):
                    raise UsageError(f"option -{opt} needs a value")
                letters = args[i]
                i += 1
            if opt == "F":
                out.full_name = letters
            letters = ""
    out.recipients = list(args[i:])
    return out


@dataclass
class Composed:
    """The message to submit and its envelope recipients."""

    message: bytes
    recipients: list[str]


_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


def _resolve_recipient(addr: str, conf: SubmitConfig) -> str:
    if "@" not in addr:
        if not conf.DefaultDestination:
            raise CommandError(f"recipient {addr!r} has no @ and no DefaultDestination is configured")
        return conf.DefaultDestination
    try:
        parse_address(addr)
    except AddressError as e:
        raise CommandError(f"parsing recipient: {e}") from None
    return addr


def compose_message(raw: bytes, conf: SubmitConfig, args: SendmailArgs, hostname: str = "") -> Composed:
    """Build the message to submit from what was read on stdin.

    Lines end in CRLF afterwards (bare LF and CRLF are both accepted). The
    From header is replaced by the configured From; To (with recipients from
    the command line), Date, Message-ID and, with RequireTLS no, TLS-Required
    are added when missing. With -t recipients are taken from To, Cc and Bcc,
    and Bcc is removed.

    Raises:
        CommandError: no or bad recipients.
    """
    if args.from_headers and args.recipients:
        raise CommandError(
            "-t takes the recipients from the message header, do not also give them as arguments"
        )
    if not args.from_headers and not args.recipients:
        raise CommandError("need recipients as arguments, or -t to take them from the message header")

    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # The final newline ends the last line, it does not start another.
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]

    # Header fields with their continuation lines; the header ends at the first
    # empty line, or at a line that is not a header line (then it is body).
    fields: list[tuple[str, list[bytes]]] = []
    n = 0
    while n < len(lines):
        ln = lines[n]
        if ln == b"":
            n += 1
            break
        if ln[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(ln)
        elif _FIELD_NAME.match(ln):
            fields.append((ln.split(b":", 1)[0].strip().decode("ascii").lower(), [ln]))
        else:
            break
        n += 1
    body = lines[n:]

    def values(name: str) -> list[bytes]:
        return [b"\r\n".join(v).split(b":", 1)[1] for k, v in fields if k == name]

    if args.from_headers:
        recipients = []
        for name in ("to", "cc", "bcc"):
            for value in values(name):
                for a in parse_address_list(value):
                    recipients.append(f"{a.user}@{a.host}" if a.host else a.user)
        if not recipients:
            raise CommandError("no recipients in To, Cc or Bcc header")
    else:
        recipients = list(args.recipients)
    envelope: list[str] = []
    for r in recipients:
        r = _resolve_recipient(r, conf)
        if r not in envelope:
            envelope.append(r)

    from_value = email.utils.formataddr((args.full_name, conf.From)) if args.full_name else f"<{conf.From}>"
    out = [f"From: {from_value}".encode()]
    drop = {"from", "bcc"} if args.from_headers else {"from"}
    for k, v in fields:
        if k not in drop:
            out.extend(v)
    present = {k for k, _ in fields}
    if "to" not in present and not args.from_headers:
        out.append(("To: " + ", ".join(f"<{r}>" for r in envelope)).encode())
    if "date" not in present:
        out.append(f"Date: {email.utils.formatdate(localtime=True)}".encode())
    if "message-id" not in present:
        out.append(f"Message-ID: {email.utils.make_msgid(domain=hostname or conf.LocalHostname)}".encode())
    if conf.RequireTLS == REQUIRETLS_NO and "tls-required" not in present:
        out.append(b"TLS-Required: No")  # RFC 8689 section 5
    out.append(b"")
    out.extend(body)
    return Composed(b"\r\n".join(out) + b"\r\n", envelope)


class SubmitError(Exception):
    """Submitting failed; the message says at which step."""


def _tls_context(conf: SubmitConfig, workdir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if conf.TLSInsecureSkipVerify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if conf.ClientAuthCertPrivateKeyPEMFile:
        try:
            ctx.load_cert_chain(conf.ClientAuthCertPrivateKeyPEMFile)
        except (OSError, ssl.SSLError) as e:
            raise SubmitError(
                f"loading client certificate and key from {conf.ClientAuthCertPrivateKeyPEMFile}: {e}"
            ) from None
    elif conf.ClientAuthEd25519PrivateKey:
        pem = _minimal_ed25519_cert(conf.ClientAuthEd25519PrivateKey)
        path = workdir / "client.pem"
        path.write_bytes(pem)
        ctx.load_cert_chain(str(path))
    return ctx


def _minimal_ed25519_cert(key_b64: str) -> bytes:
    """PEM with a minimal self-signed certificate and the key, for TLS client authentication."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.x509.oid import NameOID

    try:
        seed = base64.urlsafe_b64decode(key_b64 + "=" * (-len(key_b64) % 4))
    except ValueError as e:
        raise SubmitError(f"parsing ed25519 private key: {e}") from None
    if len(seed) != 32:
        raise SubmitError(f"parsing ed25519 private key: got {len(seed)} bytes, need 32")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    now = datetime.datetime.now(datetime.UTC)
    # Only the public key matters to the server; the rest is what a parser requires.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moxsubmit")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int(now.timestamp()))
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, None)
    )
    keypem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM) + keypem


class _AuthClient:
    """Client side of one SASL mechanism: an optional initial response, then one answer per challenge."""

    def __init__(
        self, mechanism: str, conf: SubmitConfig, channel_binding: bytes | None, offered: list[str]
    ) -> None:
        self.mechanism = mechanism
        self.conf = conf
        self.scram: ScramClient | None = None
        self.scram_done = False
        self.challenges = 0
        if mechanism.startswith("SCRAM-"):
            plus = mechanism.endswith("-PLUS")
            self.scram = ScramClient(
                mechanism,
                conf.Username,
                conf.Password,
                channel_binding=("tls-unique", channel_binding) if plus and channel_binding else None,
                # RFC 5802 section 6: flag "y" only when we could bind but the server
                # did not offer -PLUS; when it did and we do not bind (an explicit
                # AuthMethod), "n", or the server would see a downgrade.
                binding_supported=channel_binding is not None
                and not plus
                and f"{mechanism}-PLUS" not in offered,
            )

    def initial(self) -> bytes | None:
        if self.scram is not None:
            return self.scram.client_first()
        if self.mechanism == "PLAIN":
            return f"\0{self.conf.Username}\0{self.conf.Password}".encode()  # RFC 4616 section 2
        if self.mechanism == "EXTERNAL":
            return self.conf.Username.encode()  # RFC 4422 appendix A: the authorization identity
        return None

    def answer(self, challenge: bytes) -> bytes:
        self.challenges += 1
        if self.scram is not None:
            # RFC 5802 section 5: server-first, then server-final (answered empty, RFC 4954 section 4).
            if self.challenges == 1:
                return self.scram.client_final(challenge)
            if self.challenges > 2:
                raise SubmitError(f"unexpected challenge for {self.mechanism}")
            self.scram.check_server_final(challenge)
            self.scram_done = True
            return b""
        if self.mechanism == "CRAM-MD5":  # RFC 2195 section 2
            digest = hmac.new(self.conf.Password.encode(), challenge, "md5").hexdigest()
            return f"{self.conf.Username} {digest}".encode()
        raise SubmitError(f"unexpected challenge for {self.mechanism}")


def _choose_mechanism(
    conf: SubmitConfig, offered: list[str], tls: bool, channel_binding: bytes | None
) -> str:
    """The mechanism to use: the configured one, or the best offered, as upstream orders them."""
    if conf.AuthMethod:
        m = conf.AuthMethod.upper()
        if m.endswith("-PLUS") and channel_binding is None:
            raise SubmitError(f"{m} needs a TLS connection with tls-unique channel binding (TLS 1.2)")
        return m
    client_cert = bool(conf.ClientAuthCertPrivateKeyPEMFile or conf.ClientAuthEd25519PrivateKey)
    if tls and client_cert:
        return "EXTERNAL"
    for m in AUTH_METHODS[1:]:
        if m.endswith("-PLUS") and channel_binding is None:
            continue
        if m in offered:
            return m
    raise SubmitError(
        f"no supported authentication mechanism offered by server (offered: {' '.join(offered) or 'none'})"
    )


def _authenticate(s: smtplib.SMTP, conf: SubmitConfig) -> None:
    """RFC 4954 AUTH, with the challenge loop done here: smtplib knows no SCRAM."""
    offered = s.esmtp_features.get("auth", "").upper().split()
    sock = s.sock
    tls = isinstance(sock, ssl.SSLSocket)
    binding = sock.get_channel_binding("tls-unique") if isinstance(sock, ssl.SSLSocket) else None
    mech = _choose_mechanism(conf, offered, tls, binding)
    client = _AuthClient(mech, conf, binding, offered)
    try:
        initial = client.initial()
        if initial is None:
            code, resp = s.docmd("AUTH", mech)
        else:
            # RFC 4954 section 4: "=" is an empty initial response.
            code, resp = s.docmd("AUTH", f"{mech} {base64.b64encode(initial).decode() or '='}")
        while code == 334:
            try:
                answer = client.answer(base64.b64decode(resp, validate=True))
            except (ValueError, ScramError) as e:
                s.docmd("*")  # RFC 4954 section 4: cancel the exchange.
                raise SubmitError(f"authentication with {mech}: {e}") from None
            code, resp = s.docmd(base64.b64encode(answer).decode())
    except ScramError as e:
        raise SubmitError(f"authentication with {mech}: {e}") from None
    if code != 235:
        raise SubmitError(f"authentication with {mech} failed: {code} {resp.decode(errors='replace')}")
    if client.scram is not None and not client.scram_done:
        raise SubmitError(f"authentication with {mech}: server did not prove it knows the password")


def submit(conf: SubmitConfig, composed: Composed) -> None:
    """Connect, secure, authenticate and submit.

    Raises:
        SubmitError: at any step; the message names it.
    """
    with tempfile.TemporaryDirectory(prefix="moxsubmit") as tmp:
        ctx = _tls_context(conf, Path(tmp))
        try:
            s: smtplib.SMTP
            if conf.TLS:
                s = smtplib.SMTP_SSL(
                    conf.Host, conf.Port, local_hostname=conf.LocalHostname, timeout=TIMEOUT, context=ctx
                )
            else:
                s = smtplib.SMTP(conf.Host, conf.Port, local_hostname=conf.LocalHostname, timeout=TIMEOUT)
        except (OSError, smtplib.SMTPException) as e:
            raise SubmitError(f"connecting to {conf.Host}:{conf.Port}: {e}") from None
        try:
            _submit_session(s, conf, ctx, composed)
        except smtplib.SMTPServerDisconnected as e:
            raise SubmitError(f"connection closed by server: {e}") from None
        except (OSError, smtplib.SMTPException) as e:
            raise SubmitError(f"smtp session: {e}") from None
        finally:
            s.close()


def _smtp_error(e: smtplib.SMTPResponseException) -> str:
    text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
    return f"{e.smtp_code} {text}"


def _submit_session(s: smtplib.SMTP, conf: SubmitConfig, ctx: ssl.SSLContext, composed: Composed) -> None:
    s.ehlo()
    if conf.STARTTLS:
        if not s.has_extn("starttls"):
            raise SubmitError("server does not offer STARTTLS")
        try:
            s.starttls(context=ctx)
        except ssl.SSLError as e:
            raise SubmitError(f"starttls: {e}") from None
        s.ehlo()
    if not s.has_extn("auth"):
        raise SubmitError("server does not offer authentication (AUTH)")
    _authenticate(s, conf)

    options = []
    if conf.RequireTLS == REQUIRETLS_YES:
        if not s.has_extn("requiretls"):
            raise SubmitError("RequireTLS is yes but the server does not offer REQUIRETLS")
        options.append("REQUIRETLS")  # RFC 8689 section 4.2
    if any(b >= 0x80 for b in composed.message) and s.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")  # RFC 6152
    if not (conf.From + "".join(composed.recipients)).isascii():
        if not s.has_extn("smtputf8"):
            raise SubmitError("addresses need SMTPUTF8, which the server does not offer")
        options.append("SMTPUTF8")  # RFC 6531
    try:
        refused = s.sendmail(conf.From, composed.recipients, composed.message, options)
    except smtplib.SMTPRecipientsRefused as e:
        raise SubmitError(
            "recipients refused: "
            + "; ".join(f"{r}: {_smtp_error_parts(v)}" for r, v in e.recipients.items())
        ) from None
    except smtplib.SMTPSenderRefused as e:
        raise SubmitError(f"MAIL FROM refused: {_smtp_error(e)}") from None
    except smtplib.SMTPDataError as e:
        raise SubmitError(f"message refused: {_smtp_error(e)}") from None
    if refused:
        raise SubmitError(
            "some recipients refused: "
            + "; ".join(f"{r}: {_smtp_error_parts(v)}" for r, v in refused.items())
            + "; the message was submitted for the others"
        )
    try:
        s.quit()
    except (OSError, smtplib.SMTPException):
        pass  # The message was accepted; upstream only logs this.


def _smtp_error_parts(v: tuple[int, bytes]) -> str:
    return f"{v[0]} {v[1].decode(errors='replace')}"


def save_failed(message: bytes) -> Path:
    """Keep a message that could not be submitted in ~/moxsubmit.failures, as upstream does."""
    d = Path.home() / FAILURES_DIR
    d.mkdir(mode=0o700, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="newmsg.", dir=d)
    with os.fdopen(fd, "wb") as f:
        f.write(message)
    return Path(name)


@command(
    "sendmail",
    params="[-Fname] [ignoredflags] [-t] [recipient ...] [< messagefile]",
    help="""
Sendmail is a stand-in for /usr/sbin/sendmail, for programs like cron that
send mail by running sendmail.

The message is read from standard input and submitted to a mail server with
SMTP submission and authentication. The server and credentials are configured
in /etc/moxsubmit.conf (or the file named by $MOXSUBMITCONF), see "mox config
describe-sendmail". The From header is replaced by the configured From address
(with the name given with -F). Recipients without @, like local users such as
root, are replaced by the configured DefaultDestination. To, Date and
Message-ID headers are added when missing.

With -t the recipients are taken from the To, Cc and Bcc headers, and the Bcc
header is removed. Other flags are accepted and ignored, for compatibility with
other sendmail implementations.

If submitting fails, the message is saved in the directory moxsubmit.failures
in the user's home directory, and the command exits with status 1.

/etc/moxsubmit.conf holds a secret: make it readable only by the users that may
send, e.g. by a group:

	groupadd moxsubmit
	touch /etc/moxsubmit.conf
	chown root:moxsubmit /etc/moxsubmit.conf
	chmod 640 /etc/moxsubmit.conf
""",
    nargs=(0, None),
    raw_args=True,
)
def cmd_sendmail(inv: Invocation) -> None:
    args = parse_sendmail_args(inv.args)
    conf = load_submit_config(config_path())
    raw = sys.stdin.buffer.read()
    composed = compose_message(raw, conf, args, hostname=_hostname(conf))
    try:
        submit(conf, composed)
    except SubmitError as e:
        try:
            path = save_failed(composed.message)
        except OSError as oe:
            raise CommandError(f"submit failed: {e}; saving message failed too: {oe}") from None
        raise CommandError(f"submit failed: {e}; message saved in {path}") from None


def _hostname(conf: SubmitConfig) -> str:
    """Domain for a Message-ID we add: of the From address, which is ours."""
    return conf.From.rpartition("@")[2] or conf.LocalHostname or socket.getfqdn()


@command(
    "config describe-sendmail",
    params=">/etc/moxsubmit.conf",
    help="Describe the configuration file of mox sendmail, /etc/moxsubmit.conf.",
)
def cmd_config_describe_sendmail(inv: Invocation) -> None:
    sys.stdout.write(sconf.describe(SubmitConfig))
