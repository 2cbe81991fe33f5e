"""SCRAM-SHA-1 and SCRAM-SHA-256 SASL mechanisms, with the -PLUS variants: RFC 5802, RFC 7677, RFC 9266.

SCRAM lets a client prove it knows a password without sending it, and lets
the client check that the server knows (a derivative of) it too. The -PLUS
variants bind the exchange to the TLS channel, so a man in the middle that
terminates TLS is detected (RFC 5802 section 6).

Both sides are sans-IO state machines: messages in, messages out, no sockets.
The SASL framing (base64, "334 "/"+ " continuations) belongs to the protocol
servers and clients around them.

Server, three messages (RFC 5802 section 3)::

    server = ScramServer("SCRAM-SHA-256", lookup, channel_bindings={"tls-unique": data})
    send(server.server_first(client_first))      # raises ScramError: abort the exchange
    try:
        send(server.server_final(client_final))  # "v=...": authenticated
    except ScramError as e:
        send(e.server_final)                     # "e=...", then fail the exchange

``lookup(username)`` returns the stored :class:`ScramCredentials` or None; it
runs inside :meth:`ScramServer.server_first` (run that in a thread if the
lookup blocks). An unknown user gets a made-up salt that is the same on every
attempt, and fails like a wrong password ("invalid-proof"), so the exchange
does not reveal which accounts exist. RFC 5802 section 7 lets a server hide
the real reason of a failure; "unknown-user" would give it away.

Client::

    client = ScramClient("SCRAM-SHA-256", "mjl@mox.example", "password")
    server_first = exchange(client.client_first())
    server_final = exchange(client.client_final(server_first))
    client.check_server_final(server_final)      # raises ScramError

What is stored (RFC 5802 section 3): the server keeps only StoredKey and
ServerKey with the salt and iteration count (:class:`ScramCredentials`), the
minimum the RFC requires. Upstream mox stores SaltedPassword instead; from
that a client key follows directly, so a stolen database would let an
attacker log in with SCRAM without cracking anything. With StoredKey and
ServerKey an attacker also needs to observe one exchange or impersonate the
server (RFC 5802 section 9).

Channel binding data is supplied by the caller: "tls-unique" (RFC 5929
section 3, TLS 1.2 and earlier) or "tls-exporter" (RFC 9266, TLS 1.3).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mox.scram.prep import PrepError, opaque_string, saslprep

__all__ = [
    "CHANNEL_BINDING_TYPES",
    "MECHANISMS",
    "SHA1",
    "SHA256",
    "ErrorCode",
    "Lookup",
    "ScramClient",
    "ScramCredentials",
    "ScramError",
    "ScramHash",
    "ScramServer",
    "parse_mechanism",
    "salt_password",
]


@dataclass(frozen=True)
class ScramHash:
    """A hash function SCRAM is used with, and our default iteration count for it."""

    name: str  # As in the mechanism name: "SHA-1", "SHA-256".
    hashlib_name: str
    digest_size: int
    default_iterations: int

    @property
    def mechanism(self) -> str:
        return f"SCRAM-{self.name}"


# Iteration counts as upstream mox sets them (store.SetPassword). RFC 7677
# section 4 asks for at least 4096; SHA-1 is cheaper per iteration, upstream
# doubles its count.
SHA1 = ScramHash("SHA-1", "sha1", 20, default_iterations=2 * 4096)
SHA256 = ScramHash("SHA-256", "sha256", 32, default_iterations=4096)

# In the order upstream announces them: strongest first.
MECHANISMS = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1")

# RFC 5929 section 3 (tls-unique) and RFC 9266 section 2 (tls-exporter, for TLS 1.3).
CHANNEL_BINDING_TYPES = ("tls-unique", "tls-exporter")

# Random salt and server nonce sizes. RFC 5802 leaves them open; NIST SP
# 800-132 section 5.1 asks for salts of at least 128 bits.
SALT_LENGTH = 16
NONCE_RANDOM_BYTES = 18  # 24 base64 characters.

# Checks on what the other side chose, as upstream mox does: shorter nonces or
# salts than 8 characters/bytes are refused as unsafe.
MIN_NONCE_LENGTH = 8
MIN_SALT_LENGTH = 8
# The client refuses iteration counts below RFC 7677 section 4's 4096, and
# above a bound a server could use to burn the client's CPU (about half a
# second of PBKDF2-SHA-256 at 1,000,000).
CLIENT_MIN_ITERATIONS = 4096
CLIENT_MAX_ITERATIONS = 1_000_000
# A posit-number longer than this is refused before int() sees it.
_MAX_ITERATION_DIGITS = 10


def parse_mechanism(name: str) -> tuple[ScramHash, bool]:
    """The hash and whether it is a -PLUS variant, for a SASL mechanism name (case-insensitive).

    Raises:
        ValueError: not a SCRAM mechanism we implement.
    """
    upper = name.upper()
    plus = upper.endswith("-PLUS")
    base = upper.removesuffix("-PLUS")
    for h in (SHA1, SHA256):
        if base == h.mechanism:
            return h, plus
    raise ValueError(f"unsupported SCRAM mechanism {name!r}")


class ErrorCode(enum.StrEnum):
    """The server-error-value of RFC 5802 section 7, sent as "e=..." in the server-final-message."""

    INVALID_ENCODING = "invalid-encoding"
    EXTENSIONS_NOT_SUPPORTED = "extensions-not-supported"
    INVALID_PROOF = "invalid-proof"
    CHANNEL_BINDINGS_DONT_MATCH = "channel-bindings-dont-match"
    SERVER_DOES_SUPPORT_CHANNEL_BINDING = "server-does-support-channel-binding"
    CHANNEL_BINDING_NOT_SUPPORTED = "channel-binding-not-supported"
    UNSUPPORTED_CHANNEL_BINDING_TYPE = "unsupported-channel-binding-type"
    UNKNOWN_USER = "unknown-user"
    INVALID_USERNAME_ENCODING = "invalid-username-encoding"
    NO_RESOURCES = "no-resources"
    OTHER_ERROR = "other-error"


class ScramError(Exception):
    """A SCRAM exchange failed: malformed message, wrong proof, channel binding mismatch, ...

    Attributes:
        code: an RFC 5802 section 7 server-error-value (an :class:`ErrorCode`
            for the ones we raise; from a server, any value it sent).
        detail: what went wrong, for logs. Not for the peer: it may say more
            than the code does.
        from_server: True if the server sent this error ("e=...") to our client.
    """

    def __init__(self, code: str, detail: str = "", *, from_server: bool = False) -> None:
        self.code = code
        self.detail = detail or code
        self.from_server = from_server
        super().__init__(f"{code}: {self.detail}" if detail else code)

    @property
    def server_final(self) -> bytes:
        """The server-final-message reporting this error: ``e=<code>`` (RFC 5802 section 7)."""
        return f"e={self.code}".encode("ascii")


# ---------------------------------------------------------------------------
# Key derivation, RFC 5802 section 3.


def _hmac(h: ScramHash, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, h.hashlib_name).digest()


def _hash(h: ScramHash, data: bytes) -> bytes:
    return hashlib.new(h.hashlib_name, data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def salt_password(h: ScramHash, password: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 section 3).

    Hi is PBKDF2 with HMAC as its PRF (RFC 5802 section 2.2). Normalize is the
    PRECIS OpaqueString profile, as upstream mox uses (see :mod:`mox.scram.prep`);
    a password that profile refuses is used as it is, the peer may not
    enforce the profile either.
    """
    try:
        password = opaque_string(password)
    except PrepError:
        pass
    return hashlib.pbkdf2_hmac(h.hashlib_name, password.encode("utf-8"), salt, iterations)


@dataclass(frozen=True)
class ScramCredentials:
    """What a server stores to verify a SCRAM exchange for one hash (RFC 5802 section 3).

    Attributes:
        salt: random, sent to the client in the server-first-message.
        iterations: the PBKDF2 iteration count ("i=").
        stored_key: H(ClientKey), to verify the client's proof.
        server_key: HMAC(SaltedPassword, "Server Key"), to sign for the client.
    """

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    def __post_init__(self) -> None:
        if not self.salt:
            raise ValueError("scram credentials: empty salt")
        if self.iterations < 1:
            raise ValueError(f"scram credentials: iteration count {self.iterations} is not positive")
        if len(self.stored_key) != len(self.server_key) or len(self.stored_key) not in (
            SHA1.digest_size,
            SHA256.digest_size,
        ):
            raise ValueError("scram credentials: stored and server key are not both of a hash's digest size")

    @classmethod
    def from_salted_password(
        cls, h: ScramHash, salt: bytes, iterations: int, salted_password: bytes
    ) -> ScramCredentials:
        """Credentials from a SaltedPassword, e.g. one that upstream mox stored."""
        client_key = _hmac(h, salted_password, b"Client Key")
        return cls(
            salt=salt,
            iterations=iterations,
            stored_key=_hash(h, client_key),
            server_key=_hmac(h, salted_password, b"Server Key"),
        )

    @classmethod
    def derive(
        cls, h: ScramHash, password: str, *, salt: bytes | None = None, iterations: int | None = None
    ) -> ScramCredentials:
        """Credentials for a password: random salt and the hash's default iterations unless given."""
        salt = os.urandom(SALT_LENGTH) if salt is None else salt
        iterations = h.default_iterations if iterations is None else iterations
        return cls.from_salted_password(h, salt, iterations, salt_password(h, password, salt, iterations))


Lookup = Callable[[str], ScramCredentials | None]
"""Maps a (SASLprep'd) username to its stored credentials for the server's hash, or None if unknown."""


# ---------------------------------------------------------------------------
# Message grammar, RFC 5802 section 7. Every attribute value excludes ",", so
# a message splits on "," into its attributes (the gs2-header's empty authzid
# gives an empty part).

_CB_NAME = re.compile(r"[A-Za-z0-9.-]+")  # cb-name
_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable, for nonces
_POSIT_NUMBER = re.compile(r"[1-9][0-9]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _decode_message(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError(ErrorCode.INVALID_ENCODING, "message is not utf-8") from None
    if "\x00" in text:
        # value-safe-char starts at %x01.
        raise ScramError(ErrorCode.INVALID_ENCODING, "nul byte in message")
    return text


def _attribute(part: str, name: str) -> str:
    """The value of attribute "name=value"; attribute names are case-sensitive (RFC 5802 section 5.1)."""
    if not part.startswith(name + "="):
        raise ScramError(ErrorCode.INVALID_ENCODING, f"expected attribute {name!r}, got {part[:20]!r}")
    return part[len(name) + 1 :]


def _check_extension(part: str) -> None:
    """An attr-val extension, which is ignored (RFC 5802 section 7: "extensions")."""
    if len(part) < 3 or part[0] not in string.ascii_letters or part[1] != "=":
        raise ScramError(ErrorCode.INVALID_ENCODING, f"malformed extension {part[:20]!r}")


def _decode_saslname(value: str) -> str:
    """RFC 5802 section 7 saslname: "," and "=" arrive as "=2C" and "=3D"; any other "=" fails (section 5.1)."""
    if not value:
        raise ScramError(ErrorCode.INVALID_ENCODING, "empty saslname")
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "=":
            # ABNF strings are case-insensitive (RFC 5234 section 2.3): "=2c" is "=2C".
            esc = value[i + 1 : i + 3].upper()
            if esc == "2C":
                out.append(",")
            elif esc == "3D":
                out.append("=")
            else:
                raise ScramError(ErrorCode.INVALID_ENCODING, f"bad escape {value[i : i + 3]!r} in saslname")
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _encode_saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _prepare_name(value: str, what: str) -> str:
    # RFC 5802 section 5.1: the server prepares the username with SASLprep as
    # a query (unassigned code points allowed), failing the exchange if that
    # fails or gives an empty string.
    try:
        return saslprep(_decode_saslname(value), allow_unassigned=True)
    except PrepError as e:
        raise ScramError(ErrorCode.INVALID_USERNAME_ENCODING, f"{what}: {e}") from None


def _nonce(part: str) -> str:
    value = _attribute(part, "r")
    if not _PRINTABLE.fullmatch(value):
        raise ScramError(ErrorCode.INVALID_ENCODING, "nonce empty or not printable")
    return value


def _base64_attribute(part: str, name: str) -> bytes:
    value = _attribute(part, name)
    if not _BASE64.fullmatch(value):
        raise ScramError(ErrorCode.INVALID_ENCODING, f"attribute {name!r} is not base64")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ScramError(ErrorCode.INVALID_ENCODING, f"attribute {name!r} is not valid base64") from None


def _random_nonce() -> str:
    return _b64(os.urandom(NONCE_RANDOM_BYTES))


def _check_nonce_override(nonce: str | None) -> None:
    if nonce is not None and not _PRINTABLE.fullmatch(nonce):
        raise ValueError("nonce must be printable ascii without ','")


# ---------------------------------------------------------------------------
# Server.

# Key for the made-up salts of unknown users; per process, so the salt for a
# name is stable while the server runs.
_UNKNOWN_USER_KEY = os.urandom(32)


class _State(enum.Enum):
    START = "start"
    FIRST_SENT = "first-sent"
    FINAL_SENT = "final-sent"  # Client only: awaiting the server-final-message.
    DONE = "done"
    FAILED = "failed"


class ScramServer:
    """The server side of one SCRAM exchange (RFC 5802 section 3 and 5).

    Args:
        mechanism: the SASL mechanism the client chose, e.g. "SCRAM-SHA-256-PLUS".
        lookup: username (after SASLprep) to stored credentials, or None.
        channel_bindings: binding type ("tls-unique", "tls-exporter") to the
            binding data of this connection; empty without TLS or without
            binding data. A non-empty mapping means we support channel
            binding and advertised the -PLUS mechanisms (RFC 5802 section 6).
        nonce: the server's part of the nonce; random unless given (tests).
        unknown_user_key: key for the made-up salt of unknown users (tests).

    Raises:
        ValueError: unknown mechanism; a -PLUS mechanism without channel
            binding data (RFC 5802 section 6: PLUS only with a channel binding).
    """

    def __init__(
        self,
        mechanism: str,
        lookup: Lookup,
        *,
        channel_bindings: Mapping[str, bytes] | None = None,
        nonce: str | None = None,
        unknown_user_key: bytes | None = None,
    ) -> None:
        self.hash, self.plus = parse_mechanism(mechanism)
        self._bindings = dict(channel_bindings or {})
        if self.plus and not self._bindings:
            raise ValueError(f"{mechanism} needs channel binding data")
        _check_nonce_override(nonce)
        self._lookup = lookup
        self._server_nonce = nonce
        self._unknown_user_key = _UNKNOWN_USER_KEY if unknown_user_key is None else unknown_user_key
        self._state = _State.START

        self.username = ""  # Authentication identity, after SASLprep.
        self.authzid = ""  # Requested authorization identity ("a="), empty if none; the caller decides.
        self.channel_binding_type: str | None = None  # "tls-unique"/"tls-exporter" if bound.
        self.user_found = False  # False while the exchange runs with a made-up salt.
        self.authenticated = False

        self._gs2_header = ""
        self._binding_data = b""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._credentials: ScramCredentials | None = None

    def _fail(self, code: str, detail: str) -> ScramError:
        self._state = _State.FAILED
        return ScramError(code, detail)

    def server_first(self, client_first: bytes) -> bytes:
        """Process the client-first-message, look up the user, return the server-first-message.

        Raises:
            ScramError: malformed message, unusable channel binding, ... The
                exchange is over; there is no message to send for it.
            RuntimeError: called in the wrong state.

        Exceptions from ``lookup`` (e.g. a database error) propagate.
        """
        if self._state is not _State.START:
            raise RuntimeError(f"server_first called in state {self._state.value}")
        try:
            self._parse_client_first(client_first)
        except ScramError:
            self._state = _State.FAILED
            raise

        credentials = self._lookup(self.username)
        if credentials is None:
            credentials = self._made_up_credentials()
        else:
            self.user_found = True
            if len(credentials.stored_key) != self.hash.digest_size:
                raise ValueError(f"credentials for {self.username!r} are not for {self.hash.mechanism}")
        self._credentials = credentials

        # RFC 5802 section 5.1 "r": the server appends its own nonce.
        self._nonce += self._server_nonce or _random_nonce()
        self._server_first = f"r={self._nonce},s={_b64(credentials.salt)},i={credentials.iterations}"
        self._state = _State.FIRST_SENT
        return self._server_first.encode("ascii")

    def _parse_client_first(self, data: bytes) -> None:
        parts = _decode_message(data).split(",")
        if len(parts) < 4:
            raise ScramError(ErrorCode.INVALID_ENCODING, "client-first-message too short")
        flag, authz = parts[0], parts[1]

        # RFC 5802 section 6: the gs2-cbind-flag.
        if flag == "n":
            # The client does not support channel binding.
            if self.plus:
                raise ScramError(
                    ErrorCode.CHANNEL_BINDINGS_DONT_MATCH, "-PLUS mechanism without channel binding"
                )
        elif flag == "y":
            # The client supports binding but thinks we do not: if we do, a
            # man in the middle may have removed our -PLUS mechanisms.
            if self._bindings:
                raise ScramError(
                    ErrorCode.SERVER_DOES_SUPPORT_CHANNEL_BINDING,
                    "client thinks server does not support channel binding, possible downgrade attack",
                )
        elif flag.startswith("p="):
            cb_name = flag[2:]
            if not _CB_NAME.fullmatch(cb_name):
                raise ScramError(ErrorCode.INVALID_ENCODING, "malformed channel binding name")
            if not self._bindings:
                raise ScramError(
                    ErrorCode.CHANNEL_BINDING_NOT_SUPPORTED, "no channel binding on this connection"
                )
            # Accepted with the non-PLUS mechanism too, as upstream does: some
            # clients (cyrus-sasl) bind while naming the plain mechanism.
            data_ = self._bindings.get(cb_name)
            if data_ is None:
                raise ScramError(
                    ErrorCode.UNSUPPORTED_CHANNEL_BINDING_TYPE,
                    f"channel binding type {cb_name!r} not available",
                )
            self.channel_binding_type = cb_name
            self._binding_data = data_
        else:
            raise ScramError(ErrorCode.INVALID_ENCODING, "bad gs2 channel binding flag")

        if authz:
            self.authzid = _prepare_name(_attribute(authz, "a"), "authzid")
        self._gs2_header = f"{flag},{authz},"

        bare = parts[2:]
        if bare[0].startswith("m="):
            # RFC 5802 section 5.1 "m": mandatory extensions, none defined.
            raise ScramError(ErrorCode.EXTENSIONS_NOT_SUPPORTED, "mandatory extension not supported")
        self.username = _prepare_name(_attribute(bare[0], "n"), "username")
        client_nonce = _nonce(bare[1])
        if len(client_nonce) < MIN_NONCE_LENGTH:
            raise ScramError(
                ErrorCode.OTHER_ERROR, f"client nonce shorter than {MIN_NONCE_LENGTH} characters"
            )
        for ext in bare[2:]:
            _check_extension(ext)
        self._nonce = client_nonce
        self._client_first_bare = ",".join(bare)

    def _made_up_credentials(self) -> ScramCredentials:
        # Same salt for the same name every time, so probing twice does not
        # tell an unknown user from a known one. The keys are never matched.
        salt = hmac.new(
            self._unknown_user_key,
            f"{self.hash.mechanism}\x00{self.username}".encode(),
            "sha256",
        ).digest()[:SALT_LENGTH]
        key = os.urandom(self.hash.digest_size)
        return ScramCredentials(salt, self.hash.default_iterations, key, key)

    def server_final(self, client_final: bytes) -> bytes:
        """Verify the client-final-message; return the server-final-message "v=..." on success.

        Raises:
            ScramError: authentication failed (code "invalid-proof" for a
                wrong password or unknown user). Send ``e.server_final`` to
                the client, then fail the exchange.
            RuntimeError: called in the wrong state.
        """
        if self._state is not _State.FIRST_SENT:
            raise RuntimeError(f"server_final called in state {self._state.value}")
        assert self._credentials is not None
        try:
            text = _decode_message(client_final)
        except ScramError as e:
            raise self._fail(e.code, e.detail) from None
        parts = text.split(",")
        if len(parts) < 3:
            raise self._fail(ErrorCode.INVALID_ENCODING, "client-final-message too short")
        try:
            binding = _base64_attribute(parts[0], "c")
            nonce = _nonce(parts[1])
            for ext in parts[2:-1]:
                _check_extension(ext)
            proof = _base64_attribute(parts[-1], "p")
        except ScramError as e:
            raise self._fail(e.code, e.detail) from None

        # RFC 5802 section 6: "c=" is the gs2-header and, with "p", the binding data.
        expected_binding = self._gs2_header.encode("utf-8") + self._binding_data
        if not hmac.compare_digest(binding, expected_binding):
            raise self._fail(ErrorCode.CHANNEL_BINDINGS_DONT_MATCH, "channel binding or gs2 header differs")
        # RFC 5802 section 5.1 "r": the nonce must be the one we sent.
        if not hmac.compare_digest(nonce.encode("ascii"), self._nonce.encode("ascii")):
            raise self._fail(ErrorCode.INVALID_PROOF, "nonce differs from the one sent")

        without_proof = text[: len(text) - len(parts[-1]) - 1]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        creds = self._credentials
        # RFC 5802 section 3: ClientKey := ClientProof XOR HMAC(StoredKey, AuthMessage),
        # and StoredKey must be H(ClientKey).
        signature = _hmac(self.hash, creds.stored_key, auth_message)
        if len(proof) != len(signature):
            raise self._fail(ErrorCode.INVALID_PROOF, "proof has the wrong length")
        client_key = _xor(proof, signature)
        if not hmac.compare_digest(_hash(self.hash, client_key), creds.stored_key) or not self.user_found:
            raise self._fail(ErrorCode.INVALID_PROOF, "wrong password" if self.user_found else "unknown user")

        self._state = _State.DONE
        self.authenticated = True
        verifier = _hmac(self.hash, creds.server_key, auth_message)
        return f"v={_b64(verifier)}".encode("ascii")


# ---------------------------------------------------------------------------
# Client.


class ScramClient:
    """The client side of one SCRAM exchange.

    Args:
        mechanism: e.g. "SCRAM-SHA-256" or "SCRAM-SHA-256-PLUS".
        username: the authentication identity, prepared with SASLprep (query)
            before sending (RFC 5802 section 5.1).
        password: the password; normalized as :func:`salt_password` does.
        authzid: authorization identity to request ("a="), empty for none.
        channel_binding: (type, data) for a -PLUS mechanism, e.g.
            ("tls-unique", data). Required for -PLUS, refused otherwise.
        binding_supported: for a non-PLUS mechanism: True if we could have
            bound the channel but the server did not offer a -PLUS mechanism,
            sending flag "y" so a server that does support binding detects the
            downgrade (RFC 5802 section 6).
        nonce: our nonce; random unless given (tests).

    Raises:
        ValueError: unknown mechanism, inconsistent channel binding
            arguments, or a username SASLprep refuses.
    """

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        authzid: str = "",
        channel_binding: tuple[str, bytes] | None = None,
        binding_supported: bool = False,
        nonce: str | None = None,
    ) -> None:
        self.hash, plus = parse_mechanism(mechanism)
        if plus and channel_binding is None:
            raise ValueError(f"{mechanism} needs channel binding data")
        if not plus and channel_binding is not None:
            raise ValueError(f"{mechanism} does not bind the channel, use the -PLUS variant")
        if channel_binding is not None and not _CB_NAME.fullmatch(channel_binding[0]):
            raise ValueError(f"bad channel binding type {channel_binding[0]!r}")
        _check_nonce_override(nonce)
        self._username = saslprep(username, allow_unassigned=True)
        self._authzid = saslprep(authzid, allow_unassigned=True) if authzid else ""
        self._password = password
        self._channel_binding = channel_binding
        self._binding_supported = binding_supported
        self._client_nonce = nonce or _random_nonce()
        self._state = _State.START

        self._gs2_header = ""
        self._client_first_bare = ""
        self._auth_message = b""
        self._server_key = b""

    def client_first(self) -> bytes:
        """The client-first-message."""
        if self._state is not _State.START:
            raise RuntimeError(f"client_first called in state {self._state.value}")
        # RFC 5802 section 6 and 7: gs2-cbind-flag "p=type", "y" or "n".
        if self._channel_binding is not None:
            flag = f"p={self._channel_binding[0]}"
        elif self._binding_supported:
            flag = "y"
        else:
            flag = "n"
        authz = f"a={_encode_saslname(self._authzid)}" if self._authzid else ""
        self._gs2_header = f"{flag},{authz},"
        self._client_first_bare = f"n={_encode_saslname(self._username)},r={self._client_nonce}"
        self._state = _State.FIRST_SENT
        return (self._gs2_header + self._client_first_bare).encode("utf-8")

    def client_final(self, server_first: bytes) -> bytes:
        """Check the server-first-message, return the client-final-message with our proof.

        Raises:
            ScramError: malformed message, a nonce that does not extend ours,
                or unsafe parameters (short salt, too few or many iterations).
        """
        if self._state is not _State.FIRST_SENT:
            raise RuntimeError(f"client_final called in state {self._state.value}")
        self._state = _State.FAILED
        text = _decode_message(server_first)
        parts = text.split(",")
        if parts[0].startswith("m="):
            raise ScramError(ErrorCode.EXTENSIONS_NOT_SUPPORTED, "mandatory extension not supported")
        if len(parts) < 3:
            raise ScramError(ErrorCode.INVALID_ENCODING, "server-first-message too short")
        nonce = _nonce(parts[0])
        salt = _base64_attribute(parts[1], "s")
        iterations_text = _attribute(parts[2], "i")
        if len(iterations_text) > _MAX_ITERATION_DIGITS or not _POSIT_NUMBER.fullmatch(iterations_text):
            raise ScramError(ErrorCode.INVALID_ENCODING, "bad iteration count")
        iterations = int(iterations_text)
        for ext in parts[3:]:
            _check_extension(ext)

        if not nonce.startswith(self._client_nonce):
            raise ScramError(ErrorCode.OTHER_ERROR, "server nonce does not start with our nonce")
        if len(nonce) - len(self._client_nonce) < MIN_NONCE_LENGTH:
            raise ScramError(ErrorCode.OTHER_ERROR, "server part of nonce too short")
        if len(salt) < MIN_SALT_LENGTH:
            raise ScramError(ErrorCode.OTHER_ERROR, "salt too short")
        if not CLIENT_MIN_ITERATIONS <= iterations <= CLIENT_MAX_ITERATIONS:
            raise ScramError(
                ErrorCode.OTHER_ERROR,
                f"iteration count {iterations} outside {CLIENT_MIN_ITERATIONS}..{CLIENT_MAX_ITERATIONS}",
            )

        # RFC 5802 section 7: channel-binding is base64 of the gs2-header and,
        # with "p", the binding data.
        binding = self._gs2_header.encode("utf-8")
        if self._channel_binding is not None:
            binding += self._channel_binding[1]
        without_proof = f"c={_b64(binding)},r={nonce}"
        self._auth_message = f"{self._client_first_bare},{text},{without_proof}".encode()

        # RFC 5802 section 3.
        salted = salt_password(self.hash, self._password, salt, iterations)
        client_key = _hmac(self.hash, salted, b"Client Key")
        stored_key = _hash(self.hash, client_key)
        proof = _xor(client_key, _hmac(self.hash, stored_key, self._auth_message))
        self._server_key = _hmac(self.hash, salted, b"Server Key")
        self._state = _State.FINAL_SENT
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def check_server_final(self, server_final: bytes) -> None:
        """Check the server-final-message: the server's signature, or its error.

        Raises:
            ScramError: the server reported an error (``from_server`` set), or
                its signature is wrong: it does not know the password.
        """
        if self._state is not _State.FINAL_SENT:
            raise RuntimeError(f"check_server_final called in state {self._state.value}")
        self._state = _State.FAILED
        parts = _decode_message(server_final).split(",")
        for ext in parts[1:]:
            _check_extension(ext)
        if parts[0].startswith("e="):
            code = parts[0][2:]
            raise ScramError(code or ErrorCode.OTHER_ERROR, "error from server", from_server=True)
        verifier = _base64_attribute(parts[0], "v")
        expected = _hmac(self.hash, self._server_key, self._auth_message)
        if not hmac.compare_digest(verifier, expected):
            raise ScramError(
                ErrorCode.INVALID_PROOF, "server signature wrong: server does not know the password"
            )
        self._state = _State.DONE
