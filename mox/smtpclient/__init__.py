"""SMTP client for delivering from the queue and submitting to smarthosts.

The protocol is sans-IO (:mod:`mox.smtpclient.reply`, :mod:`mox.smtpclient.ehlo`,
:mod:`mox.smtpclient.protocol`): reply parsing with bounded memory, EHLO
extensions, command lines, the mail transaction with PIPELINING and CHUNKING.
:mod:`mox.smtpclient.client` is the asyncio driver around it, with TLS
(:mod:`mox.smtpclient.tls`: modes, PKIX, DANE through an injected verifier,
RFC 8460 result types) and AUTH (:mod:`mox.sasl.client`).

Delivery from the queue::

    tls = TLSConfig(mode=TLSMode.OPPORTUNISTIC, server_name="mx.example.org",
                    pkix=policy_enforced, dane_records=tlsa, dane_verify=mox.dane.verify)
    async with await connect("192.0.2.10", 25, ehlo_hostname="mail.example.com", tls=tls) as c:
        result = await c.deliver("a@example.com", ["b@example.org"], "/path/to/msg", MailOptions(has_8bit=True))
        c.tls       # TLSState: used, version, verified, ignored failures, for TLS reporting
"""

from mox.smtpclient.client import (
    BDAT_CHUNK_SIZE,
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    DATA_BLOCK_TIMEOUT,
    DATA_FINAL_TIMEOUT,
    DATA_INIT_TIMEOUT,
    GREETING_TIMEOUT,
    INLINE_MESSAGE_MAX,
    QUIT_TIMEOUT,
    TLS_HANDSHAKE_TIMEOUT,
    AuthConfig,
    Client,
    DeliveryResult,
    MessageSource,
    Timeouts,
    connect,
)
from mox.smtpclient.ehlo import Extensions, parse_ehlo, parse_limits
from mox.smtpclient.errors import (
    RESULT_CERTIFICATE_EXPIRED,
    RESULT_CERTIFICATE_HOST_MISMATCH,
    RESULT_CERTIFICATE_NOT_TRUSTED,
    RESULT_DANE_REQUIRED,
    RESULT_STARTTLS_NOT_SUPPORTED,
    RESULT_TLSA_INVALID,
    RESULT_VALIDATION_FAILURE,
    AuthError,
    CommandTimeout,
    ConnectionLost,
    ConnectionUnusable,
    ExtensionUnsupported,
    GreetingError,
    ProtocolError,
    ReplyError,
    SMTPClientError,
    TLSFailure,
)
from mox.smtpclient.protocol import MailOptions, Recipient, RecipientResult
from mox.smtpclient.reply import MAX_REPLY_LINE, Reply
from mox.smtpclient.tls import DaneVerifier, DaneVerifyResult, TLSConfig, TLSMode, TLSState

__all__ = [
    "BDAT_CHUNK_SIZE",
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "DATA_BLOCK_TIMEOUT",
    "DATA_FINAL_TIMEOUT",
    "DATA_INIT_TIMEOUT",
    "GREETING_TIMEOUT",
    "INLINE_MESSAGE_MAX",
    "MAX_REPLY_LINE",
    "QUIT_TIMEOUT",
    "RESULT_CERTIFICATE_EXPIRED",
    "RESULT_CERTIFICATE_HOST_MISMATCH",
    "RESULT_CERTIFICATE_NOT_TRUSTED",
    "RESULT_DANE_REQUIRED",
    "RESULT_STARTTLS_NOT_SUPPORTED",
    "RESULT_TLSA_INVALID",
    "RESULT_VALIDATION_FAILURE",
    "TLS_HANDSHAKE_TIMEOUT",
    "AuthConfig",
    "AuthError",
    "Client",
    "CommandTimeout",
    "ConnectionLost",
    "ConnectionUnusable",
    "DaneVerifier",
    "DaneVerifyResult",
    "DeliveryResult",
    "ExtensionUnsupported",
    "Extensions",
    "GreetingError",
    "MailOptions",
    "MessageSource",
    "ProtocolError",
    "Recipient",
    "RecipientResult",
    "Reply",
    "ReplyError",
    "SMTPClientError",
    "TLSConfig",
    "TLSFailure",
    "TLSMode",
    "TLSState",
    "Timeouts",
    "connect",
    "parse_ehlo",
    "parse_limits",
]
