"""MTA-STS lookups: the ``_mta-sts`` TXT record through mox.dns and the policy over HTTPS (RFC 8461 section 3).

Errors are :class:`MTASTSError` subclasses; each carries the RFC 8460 result
type (section 4.3.2) and a short reason code for TLS reports.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from mox import mlog
from mox.dns import DNSError, Domain, NotFound, Resolver, parse_domain
from mox.mtasts.parse import (
    ParseError,
    Policy,
    Record,
    is_sts_record,
    parse_policy,
    parse_record,
)

log = mlog.new("mtasts")

# Time limit for fetching a policy, connection included. RFC 8461 section 3.3
# leaves it to the sender; upstream uses a minute, the issue asks for 10 seconds.
FETCH_TIMEOUT = 10.0
# RFC 8461 section 3.3: "senders SHOULD also impose a maximum size (e.g., 64 KB)".
MAX_POLICY_SIZE = 64 * 1024
WELL_KNOWN_PATH = "/.well-known/mta-sts.txt"

# RFC 8460 section 4.3.2 result types.
RESULT_STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
RESULT_STS_POLICY_INVALID = "sts-policy-invalid"
RESULT_STS_WEBPKI_INVALID = "sts-webpki-invalid"


class MTASTSError(Exception):
    """An MTA-STS lookup or fetch failed.

    Attributes:
        result_type: RFC 8460 result type to report ("" for "no policy found").
        reason: short failure reason code, e.g. "policy-syntax-error".
        temporary: a DNS failure that may go away; the caller may retry later.
    """

    result_type = RESULT_STS_POLICY_FETCH_ERROR
    reason = "mtasts-error"
    temporary = False


class NoRecordError(MTASTSError):
    """No ``_mta-sts`` TXT record starting with v=STSv1: the domain does not do MTA-STS."""

    result_type = ""
    reason = "no-mta-sts-dns-txt-record"


class MultipleRecordsError(MTASTSError):
    """More than one v=STSv1 record: treated as no MTA-STS (RFC 8461 section 3.1)."""

    reason = "multiple-mta-sts-records"


class RecordSyntaxError(MTASTSError):
    reason = "record-syntax-error"


class DNSLookupError(MTASTSError):
    """The TXT lookup failed temporarily (SERVFAIL, timeout)."""

    reason = "dns-lookup-error"
    temporary = True


class NoPolicyError(MTASTSError):
    """No policy served: mta-sts.<domain> does not exist or HTTP 404."""

    reason = "no-policy-served"


class PolicyFetchError(MTASTSError):
    """The policy could not be fetched: connection, timeout, HTTP status, redirect."""

    reason = "cannot-fetch-policy"


class PolicySyntaxError(MTASTSError):
    """The fetched policy is invalid: syntax, size or media type."""

    result_type = RESULT_STS_POLICY_INVALID
    reason = "policy-syntax-error"


class WebPKIError(MTASTSError):
    """The policy server's certificate did not verify (RFC 8461 section 3.3)."""

    result_type = RESULT_STS_WEBPKI_INVALID
    reason = "certificate-not-trusted"


def _domain(domain: Domain | str) -> Domain:
    if isinstance(domain, Domain):
        return domain
    return parse_domain(domain.rstrip(".").lower())


async def lookup_record(resolver: Resolver, domain: Domain | str) -> tuple[Record, str]:
    """The MTA-STS TXT record at ``_mta-sts.<domain>`` (CNAMEs followed) and its text.

    Raises:
        NoRecordError, MultipleRecordsError, RecordSyntaxError, DNSLookupError.
    """
    d = _domain(domain)
    name = "_mta-sts." + d.ascii
    try:
        result = await resolver.lookup_txt(name)
    except NotFound:
        raise NoRecordError(f"no mta-sts dns txt record at {name}") from None
    except DNSError as e:
        raise DNSLookupError(f"dns lookup of {name}: {e}") from None
    found: list[tuple[Record, str]] = []
    for txt in result.records:
        if not is_sts_record(txt):
            continue
        try:
            found.append((parse_record(txt), txt))
        except ParseError as e:
            raise RecordSyntaxError(f"mta-sts record at {name}: {e}") from None
    if not found:
        raise NoRecordError(f"no mta-sts dns txt record at {name}")
    if len(found) > 1:
        raise MultipleRecordsError(f"multiple mta-sts records at {name}")
    return found[0]


class DNSResolver(AbstractResolver):
    """aiohttp host resolution through a mox.dns Resolver (so MOX_DNS and test resolvers apply)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        result = await self.resolver.lookup_ip(host)
        out: list[ResolveResult] = []
        for ip in result.records:
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, fam):
                continue
            out.append(
                {"hostname": host, "host": str(ip), "port": port, "family": fam, "proto": 0, "flags": 0}
            )
        if not out:
            raise OSError(f"no addresses for {host}")
        return out

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class FetchOptions:
    """How fetch_policy reaches the policy server; tests point it at 127.0.0.1.

    Attributes:
        ssl_context: context with the trusted CAs (default: the system's).
        port: HTTPS port (443; tests use their server's).
        timeout: whole-fetch limit in seconds; None: FETCH_TIMEOUT at the time of the fetch.
    """

    ssl_context: ssl.SSLContext | None = None
    port: int = 443
    timeout: float | None = None


def _is_text_plain(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "text/plain"


async def fetch_policy(
    resolver: Resolver, domain: Domain | str, options: FetchOptions | None = None
) -> tuple[Policy, str]:
    """Fetch and parse ``https://mta-sts.<domain>/.well-known/mta-sts.txt``.

    RFC 8461 section 3.3: PKIX-verified HTTPS, the host name checked, HTTP 200
    only, no redirects, media type text/plain; plus a size limit and time limit.
    Returns the policy and its text.

    Raises:
        NoPolicyError, PolicyFetchError, PolicySyntaxError, WebPKIError.
    """
    opts = options or FetchOptions()
    d = _domain(domain)
    host = "mta-sts." + d.ascii
    portpart = "" if opts.port == 443 else f":{opts.port}"
    url = f"https://{host}{portpart}{WELL_KNOWN_PATH}"
    ctx = opts.ssl_context or ssl.create_default_context()
    limit = FETCH_TIMEOUT if opts.timeout is None else opts.timeout
    start = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            body = await _get(resolver, host, url, ctx, limit)
    except aiohttp.ClientConnectorCertificateError as e:
        raise WebPKIError(f"{url}: certificate verification: {e.certificate_error}") from None
    except aiohttp.ClientSSLError as e:
        raise PolicyFetchError(f"{url}: tls: {e}") from None
    except TimeoutError:
        raise PolicyFetchError(f"{url}: no policy within {limit:g}s") from None
    except (aiohttp.ClientError, OSError) as e:
        raise PolicyFetchError(f"{url}: {type(e).__name__}: {e}") from None
    try:
        # RFC 8461 section 3.2: ASCII, or UTF-8 in extension values.
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicySyntaxError(f"{url}: policy is not utf-8") from None
    try:
        policy = parse_policy(text)
    except ParseError as e:
        raise PolicySyntaxError(f"{url}: {e}") from None
    log.debug("mtasts policy fetched", domain=d.ascii, duration=time.monotonic() - start)
    return policy, text


async def _get(resolver: Resolver, host: str, url: str, ctx: ssl.SSLContext, timeout_s: float) -> bytes:
    """GET the policy: the checks of RFC 8461 section 3.3 that need the response."""
    # Look the host up first, to tell "no policy host" (not an error for the
    # domain) from other failures, as upstream does.
    try:
        await resolver.lookup_ip(host)
    except NotFound:
        raise NoPolicyError(f"no policy host {host} in dns") from None
    except DNSError as e:
        raise PolicyFetchError(f"resolving {host}: {e}") from None
    connector = aiohttp.TCPConnector(resolver=DNSResolver(resolver), ssl=ctx, force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.get(url, allow_redirects=False, headers={"Accept": "text/plain"}) as resp,
    ):
        if resp.status == 404:
            raise NoPolicyError(f"{url}: http status 404, no policy")
        if 300 <= resp.status < 400:
            # RFC 8461 section 3.3: "HTTP 3xx redirects MUST NOT be followed".
            raise PolicyFetchError(f"{url}: redirect (http status {resp.status}) not allowed")
        if resp.status != 200:
            raise PolicyFetchError(f"{url}: http status {resp.status}, expected 200")
        ctype = resp.headers.get("Content-Type", "")
        if not _is_text_plain(ctype):
            # RFC 8461 section 3.2: the policy is served as text/plain.
            raise PolicySyntaxError(f"{url}: content-type {ctype!r}, expected text/plain")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(8192):
            body += chunk
            if len(body) > MAX_POLICY_SIZE:
                raise PolicySyntaxError(f"{url}: policy larger than {MAX_POLICY_SIZE} bytes")
    return bytes(body)


@dataclass(frozen=True)
class LookupResult:
    """Result of :func:`lookup`.

    Attributes:
        record: the TXT record, if one was found.
        record_text: its text.
        policy, policy_text: the fetched policy, if fetched and valid.
        error: why there is no policy, else None.
    """

    record: Record | None
    record_text: str = ""
    policy: Policy | None = None
    policy_text: str = ""
    error: MTASTSError | None = None

    @property
    def record_id(self) -> str:
        return self.record.id if self.record is not None else ""

    @property
    def result_type(self) -> str:
        """RFC 8460 failure result type, "" when a policy was fetched or none is published."""
        return self.error.result_type if self.error is not None else ""


async def lookup(resolver: Resolver, domain: Domain | str, options: FetchOptions | None = None) -> LookupResult:
    """Look up the TXT record and, if present, fetch the policy (not cached; see mox.mtastsdb).

    Never raises MTASTSError: the error is in the result. A domain name that is
    not valid raises ValueError (DomainError).
    """
    d = _domain(domain)
    try:
        record, txt = await lookup_record(resolver, d)
    except MTASTSError as e:
        return LookupResult(None, error=e)
    try:
        policy, text = await fetch_policy(resolver, d, options)
    except MTASTSError as e:
        return LookupResult(record, txt, error=e)
    return LookupResult(record, txt, policy, text)

