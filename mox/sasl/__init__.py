"""Server side of SASL authentication mechanisms, shared by SMTP AUTH and IMAP AUTHENTICATE.

SASL (RFC 4422) is carried by SMTP AUTH (RFC 4954) and IMAP AUTHENTICATE
(RFC 9051 section 6.2.2, initial response per RFC 4959) with the same
shape: the client names a mechanism, optionally sends an initial response,
then server challenges and client responses alternate, each base64 on its
own line ("334 ..." in SMTP, "+ ..." in IMAP), until the server answers with
success or failure. The mechanisms here are sans-IO state machines for that
exchange; the protocol servers do the reading, writing and reply codes.

Mechanisms, in the order upstream mox announces them (:data:`MECHANISMS`):

- SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-1: RFC 5802,
  RFC 7677, wrapping :class:`mox.scram.ScramServer`. -PLUS binds to the TLS
  channel; the caller passes the binding data (:func:`channel_bindings`).
- CRAM-MD5: RFC 2195, verified with the stored HMAC-MD5 midstates.
- PLAIN: RFC 4616.
- LOGIN: draft-murchison-sasl-login-00, for old clients. Not in IMAP, which
  has its own LOGIN command.

Use::

    mech = new_server(name, hostname="mail.example.org", channel_bindings=channel_bindings(ssl_object))
    step = mech.respond(initial_arg, initial=True)  # None: no initial response
    while isinstance(step, Challenge | NeedCredentials):
        if isinstance(step, NeedCredentials):
            step = await provide_credentials(mech, step, lookup)
        else:
            write(f"334 {encode_challenge(step.data)}")
            step = mech.respond(read_line())
    if isinstance(step, Success):
        ...  # step.username, step.account
    else:
        ...  # step.code says which reply; SCRAM may first send step.server_data

The credential check is the only part that needs the store: the mechanism
returns :class:`NeedCredentials` with the login name, the server looks up the
account and its :class:`mox.store.password.PasswordSecrets`
(:mod:`mox.sasl.accounts` does that through :mod:`mox.store.auth`) and
passes them to :meth:`Mechanism.provide`, which checks them. For PLAIN and
LOGIN that is bcrypt, tens of milliseconds: :func:`provide_credentials` runs
it in a thread. An unknown user fails exactly like a wrong password, and
takes as long (a bcrypt check against a dummy hash; SCRAM continues with a
made-up salt).

Whatever the client sends, a mechanism answers with a :class:`Failure`
(:class:`FailureCode` says which kind: aborted, malformed, bad credentials,
...), never an exception. Exceptions are for the server's own mistakes:
calling a finished mechanism (:class:`SaslStateError`), asking for a
mechanism that is not offered (:class:`UnsupportedMechanism`).

Suggested replies, as upstream (smtpserver cmdAuth)::

    ABORTED              SMTP 501 5.0.0   IMAP BAD
    MALFORMED, TOO_LONG  SMTP 501 5.5.2   IMAP BAD
    BAD_CREDENTIALS      SMTP 535 5.7.8   IMAP NO [AUTHENTICATIONFAILED]
    AUTHZ_NOT_PERMITTED  SMTP 535 5.7.8   IMAP NO [AUTHORIZATIONFAILED]
    CHANNEL_BINDING      SMTP 535 5.7.7   IMAP NO [AUTHENTICATIONFAILED]
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import enum
import os
import re
import ssl
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import bcrypt

from mox.scram import ErrorCode, ScramCredentials, ScramError, ScramServer, parse_mechanism
from mox.store.password import BCRYPT_COST, PasswordSecrets, cram_md5_verify, verify_plain

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_LINE_LENGTH",
    "MECHANISMS",
    "AccountSecrets",
    "Challenge",
    "CredentialLookup",
    "Failure",
    "FailureCode",
    "Mechanism",
    "NeedCredentials",
    "SaslStateError",
    "Step",
    "Success",
    "UnsupportedMechanism",
    "channel_bindings",
    "encode_challenge",
    "mechanisms_offered",
    "new_server",
    "provide_credentials",
]

# In the order upstream announces them in EHLO and CAPABILITY: strongest first.
MECHANISMS = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-1",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
)
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})

# RFC 4954 section 4: an AUTH command line, and each response line, is at
# most 12288 octets, "sufficient for most SASL mechanisms". We hold every
# base64 line to that (IMAP has no such rule; its server limits lines too).
MAX_LINE_LENGTH = 12288
# Decoded data a mechanism accepts: what a line of MAX_LINE_LENGTH decodes to.
MAX_DATA_BYTES = MAX_LINE_LENGTH // 4 * 3

# RFC 4648 section 4 base64 with exactly the padding it requires. Python's
# decoder accepts excess padding ("dGlt=="), Go's (upstream) does not.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class UnsupportedMechanism(ValueError):
    """The client asked for a mechanism we do not implement, or a -PLUS one without channel binding."""


class SaslStateError(RuntimeError):
    """The server drove a mechanism wrongly: a step after the end, credentials nobody asked for."""


class FailureCode(enum.StrEnum):
    """Why an exchange failed, for the reply code and the login-attempt record."""

    ABORTED = "aborted"  # The client cancelled with "*" (RFC 4954 section 4, RFC 9051 section 6.2.2).
    MALFORMED = "malformed"  # Bad base64 or bad syntax for the mechanism.
    TOO_LONG = "too-long"  # Over MAX_LINE_LENGTH / MAX_DATA_BYTES.
    BAD_CREDENTIALS = "bad-credentials"  # Unknown user or wrong password; deliberately one code.
    AUTHZ_NOT_PERMITTED = "authz-not-permitted"  # Authorization identity other than the user's own.
    CHANNEL_BINDING = "channel-binding"  # SCRAM channel binding mismatch or downgrade: a possible MITM.


# --- Steps: what the server does next.


@dataclass(frozen=True)
class Challenge:
    """Send data (base64, :func:`encode_challenge`) as a continuation, then pass the reply to respond()."""

    data: bytes


@dataclass(frozen=True)
class NeedCredentials:
    """Look up the login name's account and secrets, then call :meth:`Mechanism.provide`."""

    username: str


@dataclass(frozen=True)
class Success:
    """Authenticated as username (the login address as the client gave it), of account."""

    username: str
    account: str


@dataclass(frozen=True)
class Failure:
    """The exchange failed; answer with a failure reply for code.

    Attributes:
        code: the kind of failure.
        reason: what went wrong, for logs; may say more than the reply should.
        username: the login name, if the client got that far (for the login-attempt record).
        server_data: SCRAM's server-final-message "e=..." (RFC 5802 section 7).
            Upstream sends it as a last continuation, reads the client's
            reply (normally "*") and then sends the failure reply. None for
            other failures.
    """

    code: FailureCode
    reason: str
    username: str | None = None
    server_data: bytes | None = None


Step = Challenge | NeedCredentials | Success | Failure


@dataclass(frozen=True)
class AccountSecrets:
    """An account and its stored password secrets, as a credential lookup returns them."""

    account: str
    secrets: PasswordSecrets


CredentialLookup = Callable[[str], Awaitable[AccountSecrets | None]]
"""Login name to its account's secrets; None for an unknown login or an account without password."""


def encode_challenge(data: bytes) -> str:
    """The base64 text of a challenge for "334 " or "+ " (empty for empty data, RFC 4954 section 4)."""
    return base64.b64encode(data).decode("ascii")


# --- Mechanisms.


class _State(enum.Enum):
    START = "start"
    RUNNING = "running"
    CREDENTIALS = "need-credentials"
    DONE = "done"


class Mechanism(abc.ABC):
    """One SASL exchange on the server. Create with :func:`new_server`.

    Attributes:
        name: the mechanism name, e.g. "SCRAM-SHA-256".
        plaintext: True if the password travels as it is (PLAIN, LOGIN): keep
            the client's lines out of protocol traces.
        client_first: True if the client speaks first (may send an initial
            response); False for CRAM-MD5, which starts with a challenge.
    """

    name: str
    plaintext: ClassVar[bool] = False
    client_first: ClassVar[bool] = True

    def __init__(self) -> None:
        self._state = _State.START
        self._username: str | None = None

    @property
    def done(self) -> bool:
        """Whether the exchange ended (in success or failure)."""
        return self._state is _State.DONE

    def _fail(self, code: FailureCode, reason: str, server_data: bytes | None = None) -> Failure:
        self._state = _State.DONE
        return Failure(code, reason, self._username, server_data)

    def _succeed(self, account: str) -> Success:
        self._state = _State.DONE
        assert self._username is not None
        return Success(self._username, account)

    def respond(self, line: bytes | str | None, *, initial: bool = False) -> Step:
        """Decode a client line (base64, "*" to cancel) and take the step it makes.

        Args:
            line: the line without its CRLF. For the initial response (the
                argument of AUTH or AUTHENTICATE, initial=True): None if the
                client sent none, "=" for an empty one (RFC 4954 section 4,
                RFC 4959 section 3).
            initial: whether line is the initial response.

        Returns:
            The next step; a :class:`Failure` for "*" (aborted), bad base64
            or an over-long line.
        """
        if self._state is _State.DONE or self._state is _State.CREDENTIALS:
            raise SaslStateError(f"{self.name}: respond() in state {self._state.value}")
        if line is None:
            if not initial:
                raise SaslStateError(f"{self.name}: only the initial response can be absent")
            return self.step(None)
        if isinstance(line, bytes):
            try:
                line = line.decode("ascii")
            except UnicodeDecodeError:
                return self._fail(FailureCode.MALFORMED, "invalid base64: not ascii")
        if len(line) > MAX_LINE_LENGTH:
            return self._fail(FailureCode.TOO_LONG, f"line longer than {MAX_LINE_LENGTH} characters")
        if initial:
            if line == "":
                return self._fail(FailureCode.MALFORMED, 'empty initial response, "=" means empty')
            if line == "=":
                return self.step(b"")
        elif line == "*":
            # RFC 4954 section 4, RFC 9051 section 6.2.2: the client cancels.
            return self._fail(FailureCode.ABORTED, "authentication aborted by client")
        if not _BASE64.fullmatch(line):
            return self._fail(FailureCode.MALFORMED, "invalid base64: bad character, length or padding")
        try:
            data = base64.b64decode(line, validate=True)
        except binascii.Error as e:  # pragma: no cover - the pattern let only valid base64 through.
            return self._fail(FailureCode.MALFORMED, f"invalid base64: {e}")
        return self.step(data)

    def step(self, data: bytes | None) -> Step:
        """Take the client's decoded data (None: no initial response) and return the next step.

        Raises:
            SaslStateError: the exchange is over, credentials are awaited,
                or data is None after the first step.
        """
        if self._state is _State.DONE or self._state is _State.CREDENTIALS:
            raise SaslStateError(f"{self.name}: step() in state {self._state.value}")
        first = self._state is _State.START
        self._state = _State.RUNNING
        if data is None:
            if not first:
                raise SaslStateError(f"{self.name}: data is required after the first step")
            return self._start()
        if len(data) > MAX_DATA_BYTES:
            return self._fail(FailureCode.TOO_LONG, f"response longer than {MAX_DATA_BYTES} bytes")
        if first and not self.client_first:
            return self._fail(FailureCode.MALFORMED, f"{self.name} does not take an initial response")
        return self._receive(data)

    def provide(self, credentials: AccountSecrets | None) -> Step:
        """Check the client's proof against the looked-up credentials (None: unknown login).

        May take bcrypt's time (PLAIN, LOGIN): call it off the event loop, as
        :func:`provide_credentials` does.

        Raises:
            SaslStateError: no :class:`NeedCredentials` step is pending.
        """
        if self._state is not _State.CREDENTIALS:
            raise SaslStateError(f"{self.name}: provide() in state {self._state.value}")
        self._state = _State.RUNNING
        return self._check(credentials)

    def _need_credentials(self, username: str) -> NeedCredentials:
        self._username = username
        self._state = _State.CREDENTIALS
        return NeedCredentials(username)

    # To implement per mechanism.

    def _start(self) -> Step:
        """The first step without an initial response."""
        return Challenge(b"")

    @abc.abstractmethod
    def _receive(self, data: bytes) -> Step: ...

    @abc.abstractmethod
    def _check(self, credentials: AccountSecrets | None) -> Step: ...


def _utf8_name(data: bytes) -> str | None:
    """A user name from the client, NFC-normalised as upstream; None if not UTF-8."""
    try:
        return unicodedata.normalize("NFC", data.decode("utf-8"))
    except UnicodeDecodeError:
        return None


_dummy_bcrypt_hash: bytes | None = None


def _verify_password(credentials: AccountSecrets | None, password: str) -> bool:
    """bcrypt check of password; for an unknown user against a dummy hash, so both take as long."""
    global _dummy_bcrypt_hash
    if credentials is not None:
        return verify_plain(credentials.secrets, password)
    if _dummy_bcrypt_hash is None:
        _dummy_bcrypt_hash = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(BCRYPT_COST))
    bcrypt.checkpw(password.encode("utf-8")[:72], _dummy_bcrypt_hash)
    return False


class _PasswordMechanism(Mechanism):
    """A mechanism that receives the password itself (PLAIN, LOGIN), checked with bcrypt."""

    plaintext = True

    def __init__(self) -> None:
        super().__init__()
        self._password = ""

    def _check(self, credentials: AccountSecrets | None) -> Step:
        ok = _verify_password(credentials, self._password)
        self._password = ""
        if not ok or credentials is None:
            return self._fail(FailureCode.BAD_CREDENTIALS, "bad user/pass")
        return self._succeed(credentials.account)


class _Plain(_PasswordMechanism):
    """PLAIN, RFC 4616: one message "authzid NUL authcid NUL passwd"."""

    name = "PLAIN"

    def _receive(self, data: bytes) -> Step:
        # RFC 4616 section 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd.
        parts = data.split(b"\x00")
        if len(parts) != 3:
            return self._fail(FailureCode.MALFORMED, f"expected 3 NUL-separated tokens, got {len(parts)}")
        authzid, authcid, password = (_utf8_name(p) for p in parts)
        if authzid is None or authcid is None or password is None:
            return self._fail(FailureCode.MALFORMED, "authzid, authcid or password not utf-8")
        if not authcid or not password:
            # authcid and passwd are 1*SAFE.
            return self._fail(FailureCode.MALFORMED, "empty authentication identity or password")
        self._username = authcid
        # RFC 4616 section 2: an authzid other than the one the authcid
        # derives to is an authorization request; upstream allows only the same.
        if authzid and authzid != authcid:
            return self._fail(FailureCode.AUTHZ_NOT_PERMITTED, "cannot assume other role")
        # The password is normalised by verify_plain (OpaqueString), not NFC here.
        self._password = parts[2].decode("utf-8")
        return self._need_credentials(authcid)


class _Login(_PasswordMechanism):
    """LOGIN, draft-murchison-sasl-login-00: user name and password, each after a prompt."""

    name = "LOGIN"

    # The draft says clients ignore the prompts' text, but that some expect
    # "Username:" rather than the "User Name" the draft uses; upstream, like
    # most servers, sends "Username:" and "Password:".
    USERNAME_PROMPT = b"Username:"
    PASSWORD_PROMPT = b"Password:"

    def _start(self) -> Step:
        return Challenge(self.USERNAME_PROMPT)

    def _receive(self, data: bytes) -> Step:
        if self._username is None:
            # The initial response, if any, is the user name (as upstream).
            name = _utf8_name(data)
            if name is None:
                return self._fail(FailureCode.MALFORMED, "user name not utf-8")
            self._username = name
            return Challenge(self.PASSWORD_PROMPT)
        try:
            self._password = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail(FailureCode.MALFORMED, "password not utf-8")
        return self._need_credentials(self._username)


class _CramMD5(Mechanism):
    """CRAM-MD5, RFC 2195: the server's challenge, answered with "user HMAC-MD5(password, challenge)"."""

    name = "CRAM-MD5"
    client_first = False

    def __init__(self, hostname: str, challenge: bytes | None = None) -> None:
        super().__init__()
        if challenge is None:
            # RFC 2195 section 2: "presumptively arbitrary string of random
            # digits, a timestamp, and the fully-qualified primary host name
            # of the server", in msg-id form; as upstream: <random.nanoseconds@host>.
            rand = int.from_bytes(os.urandom(8), "big")
            challenge = f"<{rand}.{time.time_ns()}@{hostname}>".encode("ascii")
        self.challenge = challenge
        self._digest = ""

    def _start(self) -> Step:
        return Challenge(self.challenge)

    def _receive(self, data: bytes) -> Step:
        # RFC 2195 section 2: "the user name, a space, and a digest". The
        # last space separates: a user name may contain spaces.
        name_bytes, sep, digest = data.rpartition(b" ")
        if not sep or len(digest) != 32:
            return self._fail(FailureCode.MALFORMED, "malformed cram-md5 response")
        name = _utf8_name(name_bytes)
        if name is None or not name:
            return self._fail(FailureCode.MALFORMED, "cram-md5 user name empty or not utf-8")
        self._digest = digest.decode("ascii", "replace")
        return self._need_credentials(name)

    def _check(self, credentials: AccountSecrets | None) -> Step:
        if credentials is None or not cram_md5_verify(
            credentials.secrets.cram_md5, self.challenge, self._digest
        ):
            return self._fail(FailureCode.BAD_CREDENTIALS, "bad user/pass")
        return self._succeed(credentials.account)


class _NeedLookup(Exception):
    """Raised from the probing ScramServer's lookup: the username is parsed, credentials are needed."""


_SCRAM_BINDING_ERRORS = frozenset(
    {
        ErrorCode.CHANNEL_BINDINGS_DONT_MATCH,
        ErrorCode.SERVER_DOES_SUPPORT_CHANNEL_BINDING,
        ErrorCode.CHANNEL_BINDING_NOT_SUPPORTED,
        ErrorCode.UNSUPPORTED_CHANNEL_BINDING_TYPE,
    }
)


def _scram_failure_code(e: ScramError) -> FailureCode:
    if e.code == ErrorCode.INVALID_PROOF:
        return FailureCode.BAD_CREDENTIALS
    if e.code in _SCRAM_BINDING_ERRORS:
        return FailureCode.CHANNEL_BINDING
    return FailureCode.MALFORMED


class _Scram(Mechanism):
    """SCRAM-SHA-1/256 and -PLUS, RFC 5802 and RFC 7677, over :class:`mox.scram.ScramServer`.

    Client-first, server-first, client-final, server-final; then the client
    answers the server-final "v=..." with an empty response, after which the
    server reports success (RFC 4954 section 4 has no data with 235; RFC 9051
    section 6.2.2 sends it as a continuation too, as upstream does).
    """

    def __init__(self, name: str, bindings: Mapping[str, bytes], nonce: str | None = None) -> None:
        super().__init__()
        self.name = name  # Per instance: four variants.
        self.hash, _ = parse_mechanism(name)
        self._bindings = dict(bindings)
        self._nonce = nonce
        self._client_first = b""
        self._server: ScramServer | None = None
        self._account = ""
        self._final_sent = False

    def _lookup_unavailable(self, username: str) -> ScramCredentials | None:
        raise _NeedLookup(username)

    def _receive(self, data: bytes) -> Step:
        if self._server is None:
            return self._receive_first(data)
        if not self._final_sent:
            try:
                server_final = self._server.server_final(data)
            except ScramError as e:
                return self._fail(_scram_failure_code(e), f"scram: {e}", e.server_final)
            self._final_sent = True
            return Challenge(server_final)
        # The client's reply to the server-final-message carries nothing
        # (RFC 5802 section 5, RFC 4422 section 5); like upstream we accept
        # whatever it is.
        return self._succeed(self._account)

    def _receive_first(self, data: bytes) -> Step:
        # A first ScramServer only parses the client-first-message: its
        # lookup raises as soon as the username is known, so the lookup can
        # be done by the caller (asynchronously). The real exchange then runs
        # on a fresh ScramServer that gets the credentials.
        probe = ScramServer(self.name, self._lookup_unavailable, channel_bindings=self._bindings)
        try:
            probe.server_first(data)
        except _NeedLookup:
            pass
        except ScramError as e:
            return self._fail(_scram_failure_code(e), f"scram: {e}")
        else:  # pragma: no cover - the probe's lookup always raises.
            raise AssertionError("scram probe did not look up the user")
        self._username = probe.username
        # As upstream: an authorization identity is allowed only if it is the user's own.
        if probe.authzid and probe.authzid != probe.username:
            return self._fail(
                FailureCode.AUTHZ_NOT_PERMITTED, "authentication with authorization for different user"
            )
        self._client_first = data
        return self._need_credentials(probe.username)

    def _check(self, credentials: AccountSecrets | None) -> Step:
        # For an unknown user (None), ScramServer continues with a made-up
        # salt and fails at the proof, like a wrong password.
        creds = credentials.secrets.scram(self.hash) if credentials is not None else None
        self._account = credentials.account if credentials is not None else ""
        self._server = ScramServer(
            self.name, lambda _: creds, channel_bindings=self._bindings, nonce=self._nonce
        )
        try:
            return Challenge(self._server.server_first(self._client_first))
        except ScramError as e:  # pragma: no cover - parsed fine by the probe already.
            return self._fail(_scram_failure_code(e), f"scram: {e}")


def new_server(
    name: str,
    *,
    hostname: str = "localhost",
    channel_bindings: Mapping[str, bytes] | None = None,
    cram_md5_challenge: bytes | None = None,
    scram_nonce: str | None = None,
) -> Mechanism:
    """A server for one exchange of mechanism name (case-insensitive).

    Args:
        name: the mechanism the client asked for.
        hostname: our host name (ASCII), for the CRAM-MD5 challenge.
        channel_bindings: the connection's channel binding data by type
            (:func:`channel_bindings`); empty or None without TLS.
        cram_md5_challenge: a fixed CRAM-MD5 challenge (tests).
        scram_nonce: a fixed SCRAM server nonce (tests).

    Raises:
        UnsupportedMechanism: not one of :data:`MECHANISMS`, or a -PLUS
            mechanism without channel binding data (RFC 5802 section 6).
    """
    upper = name.upper()
    if upper not in MECHANISMS:
        raise UnsupportedMechanism(f"mechanism {name!r} not supported")
    if upper == "PLAIN":
        return _Plain()
    if upper == "LOGIN":
        return _Login()
    if upper == "CRAM-MD5":
        return _CramMD5(hostname, cram_md5_challenge)
    if upper.endswith("-PLUS") and not channel_bindings:
        raise UnsupportedMechanism(f"{upper} needs a tls connection with channel binding")
    return _Scram(upper, channel_bindings or {}, scram_nonce)


def mechanisms_offered(
    tls: bool, channel_binding_available: bool, allow_plaintext: bool, *, login: bool = True
) -> list[str]:
    """The mechanisms to announce, in upstream's order.

    Args:
        tls: whether the connection is under TLS.
        channel_binding_available: whether :func:`channel_bindings` gave data.
        allow_plaintext: whether PLAIN and LOGIN may be used without TLS
            (RFC 4954 section 4: "SHOULD NOT" without a security layer; a
            listener setting).
        login: include LOGIN (SMTP); IMAP has its own LOGIN command and
            upstream does not announce AUTH=LOGIN there.

    Unlike upstream, which always names the -PLUS variants as a hint that TLS
    would allow binding, they are offered only when a binding exists
    (DESIGN.md section 5): a client that sees them without one would have
    to fall back, and RFC 5802 section 6 ties -PLUS to the channel.

    SCRAM and CRAM-MD5 never expose the password, so they are offered
    without TLS too, as upstream's IMAP server does. Upstream's SMTP server
    announces no AUTH at all before STARTTLS when plaintext is not allowed;
    an SMTP server that wants that behaviour leaves the AUTH line out itself.
    """
    out = []
    for mech in MECHANISMS:
        if mech.endswith("-PLUS") and not (tls and channel_binding_available):
            continue
        if mech in PLAINTEXT_MECHANISMS and not (tls or allow_plaintext):
            continue
        if mech == "LOGIN" and not login:
            continue
        out.append(mech)
    return out


def channel_bindings(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, bytes]:
    """Channel binding data of a TLS connection, by type, for SCRAM -PLUS.

    Only "tls-unique" (RFC 5929 section 3.1) and only for TLS 1.2 and
    earlier: it is not defined for TLS 1.3 (RFC 8446 appendix C.5), where
    "tls-exporter" (RFC 9266) applies, which Python's ssl module cannot
    produce. So on TLS 1.3 there is no binding and no -PLUS.
    """
    if ssl_object is None:
        return {}
    if ssl_object.version() not in ("TLSv1.2", "TLSv1.1", "TLSv1"):
        return {}
    data = ssl_object.get_channel_binding("tls-unique")
    return {"tls-unique": data} if data else {}


async def provide_credentials(mech: Mechanism, step: NeedCredentials, lookup: CredentialLookup) -> Step:
    """Look up step's user with lookup and check the credentials in a thread; the next step.

    Exceptions from lookup (e.g. :class:`mox.store.auth.LoginDisabled`) propagate.
    """
    credentials = await lookup(step.username)
    return await asyncio.to_thread(mech.provide, credentials)
