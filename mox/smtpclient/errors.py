"""Errors of the SMTP client. Each says whether it is permanent (bounce) or temporary (retry).

The hierarchy::

    SMTPClientError                 permanent, code, enhanced, command, reply
      ReplyError                    the server answered with an unexpected code (4xx/5xx)
        GreetingError               ... to the connection (its 220 greeting)
        AuthError                   ... during AUTH, or no usable mechanism
      ProtocolError                 malformed or over-long reply; connection unusable
      ConnectionLost                i/o error or the peer closed the connection
      CommandTimeout                the peer did not answer within the deadline
      TLSFailure                    TLS could not be set up or verified (result_type per RFC 8460)
      ExtensionUnsupported          the message needs an extension the server lacks
                                    (8BITMIME, SMTPUTF8, REQUIRETLS, SIZE)
      ConnectionUnusable            the client is closed or an earlier error left it out of sync
"""

from __future__ import annotations

from mox.smtpclient.reply import Reply

__all__ = [
    "RESULT_CERTIFICATE_EXPIRED",
    "RESULT_CERTIFICATE_HOST_MISMATCH",
    "RESULT_CERTIFICATE_NOT_TRUSTED",
    "RESULT_DANE_REQUIRED",
    "RESULT_STARTTLS_NOT_SUPPORTED",
    "RESULT_TLSA_INVALID",
    "RESULT_VALIDATION_FAILURE",
    "AuthError",
    "CommandTimeout",
    "ConnectionLost",
    "ConnectionUnusable",
    "ExtensionUnsupported",
    "GreetingError",
    "ProtocolError",
    "ReplyError",
    "SMTPClientError",
    "TLSFailure",
]

# RFC 8460 section 4.3 result types for TLS failures the client itself detects.
RESULT_STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
RESULT_CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
RESULT_CERTIFICATE_EXPIRED = "certificate-expired"
RESULT_CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
RESULT_VALIDATION_FAILURE = "validation-failure"
RESULT_TLSA_INVALID = "tlsa-invalid"
RESULT_DANE_REQUIRED = "dane-required"


class SMTPClientError(Exception):
    """A delivery attempt (or part of it) failed.

    Attributes:
        permanent: True when retrying will not help (a 5xx reply, a missing
            required extension); False for 4xx replies, i/o errors, timeouts,
            protocol errors, TLS failures.
        code: the reply code, 0 when the failure is not a reply.
        enhanced: the enhanced status code "class.subject.detail", or empty.
        command: the command the failure belongs to ("mail", "rcpt", "data",
            "bdat", "ehlo", "starttls", "auth", "rset", "connect", "greeting", ...).
        reply: the reply, when there was one.
    """

    def __init__(
        self,
        msg: str,
        *,
        permanent: bool = False,
        code: int = 0,
        enhanced: str = "",
        command: str = "",
        reply: Reply | None = None,
    ) -> None:
        super().__init__(msg)
        self.permanent = permanent
        self.code = code
        self.enhanced = enhanced
        self.command = command
        self.reply = reply

    @property
    def secode(self) -> str:
        """The enhanced code without its class, as upstream's Error.Secode."""
        return self.enhanced.partition(".")[2]

    def __str__(self) -> str:
        s = super().__str__()
        kind = "permanent" if self.permanent else "temporary"
        if self.reply is not None:
            return f"{s} ({kind}): {self.reply}"
        return f"{s} ({kind})"


class ReplyError(SMTPClientError):
    """The server answered a command with a code we did not expect; permanent for 5xx."""

    def __init__(self, command: str, reply: Reply, msg: str = "") -> None:
        super().__init__(
            msg or f"{command}: unexpected reply code {reply.code}",
            permanent=reply.permanent,
            code=reply.code,
            enhanced=reply.enhanced,
            command=command,
            reply=reply,
        )


class GreetingError(ReplyError):
    """The server's greeting was not 220 (e.g. 554 "no service", 421 "busy")."""


class AuthError(SMTPClientError):
    """Authentication failed, or no mechanism we may use is offered."""


class ProtocolError(SMTPClientError):
    """The server's reply is malformed or too long; the connection is out of sync."""


class ConnectionLost(SMTPClientError):
    """An i/o error, or the server closed the connection."""


class CommandTimeout(SMTPClientError):
    """No (complete) reply within the command's deadline, or the connection could not be made in time."""


class ConnectionUnusable(SMTPClientError):
    """The client is closed, or an earlier error left the protocol state unknown."""


class ExtensionUnsupported(SMTPClientError):
    """The message needs an extension the server does not offer.

    ``extension`` is "8BITMIME", "SMTPUTF8", "REQUIRETLS" or "SIZE".
    """

    def __init__(self, extension: str, msg: str, *, permanent: bool, enhanced: str) -> None:
        super().__init__(msg, permanent=permanent, enhanced=enhanced, command="mail")
        self.extension = extension


class TLSFailure(SMTPClientError):
    """TLS could not be used as required: not offered, handshake failed, or verification failed.

    Attributes:
        result_type: the RFC 8460 section 4.3 result type for TLS reporting,
            e.g. "certificate-expired" (the RESULT_* constants).
        reason: a short failure reason code for the report, e.g.
            "smtp-starttls-reply-code-502", "X509_V_ERR_CERT_HAS_EXPIRED".
        verify_code: OpenSSL's verification error code, when known.
        mx_helo: the host name from the server's greeting, when it got that
            far (RFC 8460 section 4.3 "receiving-mx-helo").
    """

    def __init__(self, msg: str, *, result_type: str, reason: str = "", verify_code: int = 0) -> None:
        super().__init__(msg, permanent=False, command="starttls")
        self.result_type = result_type
        self.reason = reason
        self.verify_code = verify_code
        self.mx_helo = ""
