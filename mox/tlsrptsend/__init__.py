"""Daily outgoing TLS reports (RFC 8460) from the TLS results the queue records; see :mod:`mox.tlsrptsend.send`."""

from mox.tlsrptsend.send import DomainResult, PostFn, TLSReporter, https_post, midnight_utc

__all__ = ["DomainResult", "PostFn", "TLSReporter", "https_post", "midnight_utc"]
