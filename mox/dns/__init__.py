"""Domain names and DNS lookups for moxmail.

- :mod:`mox.dns.domain`: domain names with ASCII and Unicode forms (IDNA,
  RFC 5891), pure, no I/O.
- :mod:`mox.dns.resolver`: the :class:`Resolver` interface every DNS user
  calls, and :class:`StubResolver`, which queries recursive name servers
  (RFC 1035) and reports whether an answer was DNSSEC-validated from the AD bit
  (RFC 4035 section 3.2.3, asked for per RFC 6840 section 5.7). Name servers
  come from /etc/resolv.conf, or from ``MOX_DNS=host:port[,host:port]``.
  ``localhost`` and loopback reverse lookups are answered locally (RFC 6761
  section 6.3).
- :mod:`mox.dns.mock`: :class:`MockResolver`, in-memory answers for unit tests.
- :mod:`mox.dns.testserver`: a loopback DNS server for tests and benchmarks
  (not imported here).

Callers take a :class:`Resolver` argument and default to
:func:`default_resolver`, so tests inject their own.
"""

from mox.dns.domain import Domain, DomainError, parse_domain
from mox.dns.mock import MockFailure, MockResolver
from mox.dns.resolver import (
    ATTEMPT_TIMEOUT,
    LOOKUP_TIMEOUT,
    MOX_DNS_ENV,
    MX,
    SRV,
    TLSA,
    DNSError,
    IPAddress,
    LookupTimeout,
    Name,
    NotFound,
    PermanentError,
    Resolver,
    Result,
    StubResolver,
    TemporaryError,
    default_resolver,
    dnssec_status,
    parse_nameservers,
    set_default_resolver,
    tlsa_name,
)

__all__ = [
    "ATTEMPT_TIMEOUT",
    "LOOKUP_TIMEOUT",
    "MOX_DNS_ENV",
    "MX",
    "SRV",
    "TLSA",
    "DNSError",
    "Domain",
    "DomainError",
    "IPAddress",
    "LookupTimeout",
    "MockFailure",
    "MockResolver",
    "Name",
    "NotFound",
    "PermanentError",
    "Resolver",
    "Result",
    "StubResolver",
    "TemporaryError",
    "default_resolver",
    "dnssec_status",
    "parse_domain",
    "parse_nameservers",
    "set_default_resolver",
    "tlsa_name",
]
