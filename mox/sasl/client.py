"""Client side of SASL mechanisms, for SMTP AUTH to a smarthost (RFC 4954) and other clients.

Sans-IO like the server side: a mechanism gives the initial response, answers
each server challenge, and at the end says whether the exchange completed as
it should (SCRAM: the server proved it knows the password too). The SMTP
client does the base64 and "334"/"235" framing.

Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login-00),
CRAM-MD5 (RFC 2195), SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) with
their -PLUS variants, the SCRAM math from :mod:`mox.scram`.

Use::

    name = choose_mechanism(offered, tls=True, channel_binding=cb)
    mech = new_client(name, username, password, channel_binding=cb)
    send("AUTH", name, mech.initial_response())
    while reply is 334:
        send(mech.respond(decoded_challenge))
    mech.complete()     # on 235; raises SaslClientError if the exchange was cut short
"""

from __future__ import annotations

import abc
import hashlib
import hmac
from collections.abc import Sequence

from mox.scram import ScramClient, ScramError

__all__ = [
    "CLIENT_MECHANISMS",
    "SaslClient",
    "SaslClientError",
    "choose_mechanism",
    "new_client",
]

# Strongest first: SCRAM with channel binding, SCRAM, CRAM-MD5 (no password
# on the wire, but MD5), then the mechanisms that send the password.
CLIENT_MECHANISMS = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-1",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
)


class SaslClientError(Exception):
    """The exchange cannot continue: a malformed challenge, or the server failed to prove itself (SCRAM)."""


class SaslClient(abc.ABC):
    """One client-side SASL exchange.

    ``cleartext`` says whether messages carry the password as such (PLAIN,
    LOGIN), so protocol traces hide them at the "traceauth" level.
    """

    name: str = ""
    cleartext: bool = False

    def __init__(self) -> None:
        self.finished = False

    @abc.abstractmethod
    def initial_response(self) -> bytes | None:
        """The initial response sent with the AUTH command (RFC 4954 section 4), or None for none."""

    @abc.abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """The response to a server challenge (the decoded "334" text).

        Raises:
            SaslClientError: the challenge is wrong for this mechanism, or the
                server's SCRAM signature does not verify.
        """

    def complete(self) -> None:
        """Called on success (235): raises SaslClientError if the exchange was not complete from our side."""
        if not self.finished:
            raise SaslClientError(f"{self.name}: server reported success before the exchange was complete")


class _Plain(SaslClient):
    name = "PLAIN"
    cleartext = True

    def __init__(self, username: str, password: str, authzid: str = "") -> None:
        super().__init__()
        if "\x00" in username + password + authzid:
            raise ValueError("plain: nul byte in username, password or authzid")
        self._message = f"{authzid}\x00{username}\x00{password}".encode()

    def initial_response(self) -> bytes:
        # RFC 4616 section 2: [authzid] NUL authcid NUL passwd.
        self.finished = True
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        if not self.finished:
            self.finished = True
            return self._message
        raise SaslClientError("plain: unexpected challenge after the credentials")


class _Login(SaslClient):
    name = "LOGIN"
    cleartext = True

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._answers = [username.encode(), password.encode()]

    def initial_response(self) -> None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        # The server asks "Username:" then "Password:"; we answer in that order
        # whatever the prompt text is, as other clients do.
        if not self._answers:
            raise SaslClientError("login: unexpected third challenge")
        answer = self._answers.pop(0)
        self.finished = not self._answers
        return answer


class _CramMD5(SaslClient):
    name = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._username = username
        self._password = password

    def initial_response(self) -> None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self.finished:
            raise SaslClientError("cram-md5: unexpected second challenge")
        # RFC 2195 section 2: the challenge is a msg-id like "<1896.697170952@postoffice.example.net>".
        if not (challenge.startswith(b"<") and challenge.endswith(b">")):
            raise SaslClientError("cram-md5: challenge is not of the form <...>")
        digest = hmac.new(self._password.encode(), challenge, hashlib.md5).hexdigest()
        self.finished = True
        return f"{self._username} {digest}".encode()


class _Scram(SaslClient):
    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        authzid: str,
        channel_binding: tuple[str, bytes] | None,
        binding_supported: bool,
        nonce: str | None,
    ) -> None:
        super().__init__()
        self.name = mechanism.upper()
        self._client = ScramClient(
            mechanism,
            username,
            password,
            authzid=authzid,
            channel_binding=channel_binding,
            binding_supported=binding_supported,
            nonce=nonce,
        )
        self._step = 0

    def initial_response(self) -> bytes:
        self._step = 1
        return self._client.client_first()

    def respond(self, challenge: bytes) -> bytes:
        try:
            if self._step == 0:
                # No initial response was sent: the server asks with an empty challenge (RFC 4954 section 4).
                self._step = 1
                return self._client.client_first()
            if self._step == 1:
                self._step = 2
                return self._client.client_final(challenge)
            if self._step == 2:
                self._step = 3
                self._client.check_server_final(challenge)
                self.finished = True
                # RFC 4954 section 4: the server sent its final data in a 334 challenge; we answer empty.
                return b""
        except ScramError as e:
            raise SaslClientError(f"{self.name}: {e}") from e
        raise SaslClientError(f"{self.name}: unexpected challenge after the exchange")


def new_client(
    mechanism: str,
    username: str,
    password: str,
    *,
    authzid: str = "",
    channel_binding: bytes | None = None,
    nonce: str | None = None,
) -> SaslClient:
    """A client for mechanism (case-insensitive).

    channel_binding: the "tls-unique" data of the TLS connection (RFC 5929,
    TLS 1.2 only; see :func:`mox.sasl.channel_bindings`), required for the
    -PLUS mechanisms. For plain SCRAM its presence makes us send the "y" flag
    (we could bind, the server did not offer it; RFC 5802 section 6).

    Raises:
        ValueError: unknown mechanism, or -PLUS without binding data.
    """
    name = mechanism.upper()
    if name == "PLAIN":
        return _Plain(username, password, authzid)
    if authzid:
        if not name.startswith("SCRAM-"):
            raise ValueError(f"{name} cannot carry an authorization identity")
    if name == "LOGIN":
        return _Login(username, password)
    if name == "CRAM-MD5":
        return _CramMD5(username, password)
    if name in ("SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"):
        plus = name.endswith("-PLUS")
        if plus and not channel_binding:
            raise ValueError(f"{name} needs tls channel binding data")
        return _Scram(
            name,
            username,
            password,
            authzid=authzid,
            channel_binding=("tls-unique", channel_binding) if plus and channel_binding else None,
            binding_supported=not plus and bool(channel_binding),
            nonce=nonce,
        )
    raise ValueError(f"unsupported sasl mechanism {mechanism!r}")


def choose_mechanism(
    offered: Sequence[str],
    *,
    tls: bool,
    channel_binding: bytes | None = None,
    allowed: Sequence[str] | None = None,
    allow_insecure: bool = False,
) -> str | None:
    """The strongest mechanism we implement that the server offers, or None.

    Without TLS no mechanism is chosen unless allow_insecure: the password,
    or material for an offline guessing attack, would cross the network
    unprotected, and an active attacker could strip the stronger mechanisms.
    -PLUS variants only with channel binding data. ``allowed`` limits the
    choice (e.g. a transport configured for one mechanism).
    """
    if not tls and not allow_insecure:
        return None
    offered_upper = {m.upper() for m in offered}
    allowed_upper = None if allowed is None else {m.upper() for m in allowed}
    for m in CLIENT_MECHANISMS:
        if m not in offered_upper or (allowed_upper is not None and m not in allowed_upper):
            continue
        if m.endswith("-PLUS") and not channel_binding:
            continue
        return m
    return None
