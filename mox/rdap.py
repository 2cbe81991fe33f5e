"""RDAP: when was a domain last registered? For quickstart's "recently registered domain" warning.

Two HTTP requests, as upstream's rdap package:

1. The IANA bootstrap file for DNS (RFC 9224), by default
   :data:`BOOTSTRAP_URL`, or the URL in the environment variable
   ``MOX_RDAP_BOOTSTRAP`` (tests point it at a loopback server). Its
   ``services`` map top-level domains to the base URLs of the registries' RDAP
   servers (RFC 9224 section 4).
2. The domain at the registry: ``<base URL>domain/<name>`` (RFC 9082 section
   3.1.3), whose ``events`` (RFC 9083 section 4.5) have the registration date.

Like upstream, the bootstrap file is not cached (RFC 9224 section 8 asks
clients to cache it; quickstart runs once and has no place to keep it).

The parsers (:func:`parse_bootstrap`, :func:`service_urls`,
:func:`parse_events`, :func:`last_registration`) are pure; :func:`lookup_last_registration`
does the requests with aiohttp, resolving host names through :mod:`mox.dns`
(so ``MOX_DNS`` applies and tests never reach the system resolver).
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from typing import Any

from mox.dns import Domain, Resolver

# https://www.iana.org/assignments/rdap-dns/ (RFC 9224 section 4).
BOOTSTRAP_URL = "https://data.iana.org/rdap/dns.json"
BOOTSTRAP_ENV = "MOX_RDAP_BOOTSTRAP"
# Both requests together, as upstream's quickstart.
LOOKUP_TIMEOUT = 10.0
# The bootstrap file is about 40 kB, a domain object a few kB; anything far larger is not what we asked for.
MAX_RESPONSE = 1024 * 1024
# RFC 9083 section 10.2.3 event actions that (re)start a domain's registration, as upstream counts them.
REGISTRATION_ACTIONS = ("registration", "reregistration", "reinstantiation")


class RDAPError(Exception):
    """The registration date could not be found; the message says why."""


class NoRDAPError(RDAPError):
    """The bootstrap file has no RDAP service for the domain's top-level domain."""


class NoDomainError(RDAPError):
    """The registry does not know the domain (HTTP 404, RFC 7480 section 5.3)."""


class NoRegistrationError(RDAPError):
    """The registry's answer has no (re)registration event in the past."""


class RDAPSyntaxError(RDAPError):
    """A response is not the JSON that RFC 9224 or RFC 9083 describe."""


@dataclass(frozen=True)
class Service:
    """One bootstrap entry: domain labels (e.g. "org") and their RDAP base URLs."""

    entries: tuple[str, ...]
    urls: tuple[str, ...]


@dataclass(frozen=True)
class Event:
    """An RDAP event (RFC 9083 section 4.5): what happened, and when."""

    action: str
    date: datetime.datetime


def bootstrap_url(env: dict[str, str] | None = None) -> str:
    """The bootstrap URL: MOX_RDAP_BOOTSTRAP if set, else IANA's."""
    e = os.environ if env is None else env
    return e.get(BOOTSTRAP_ENV, "") or BOOTSTRAP_URL


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise RDAPSyntaxError(f"{what}: not JSON: {e}") from None


def _str_list(v: Any, what: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise RDAPSyntaxError(f"{what}: expected a list of strings")
    return tuple(v)


def parse_bootstrap(data: bytes) -> list[Service]:
    """The services of an RDAP bootstrap file (RFC 9224 section 4); pure.

    The version and publication fields are not checked, as upstream: a changed
    format shows up as a syntax error here.
    """
    doc = _json(data, "bootstrap file")
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), list):
        raise RDAPSyntaxError('bootstrap file: expected an object with a "services" list')
    out: list[Service] = []
    for i, svc in enumerate(doc["services"]):
        # Each service is an array of two arrays: the entries, then the base URLs.
        if not isinstance(svc, list) or len(svc) < 2:
            raise RDAPSyntaxError(f"bootstrap file: service {i}: expected [[entries], [urls]]")
        out.append(Service(_str_list(svc[0], f"service {i} entries"), _str_list(svc[1], f"service {i} urls")))
    return out


def service_urls(services: list[Service], domain: str) -> list[str]:
    """The RDAP base URLs for an ASCII domain name, https first; pure.

    RFC 9224 section 4: the entry that matches the most labels at the end of
    the name wins (entries are lower-case A-labels, section 3); section 3: a
    secure URL is preferred over a plain one; base URLs end in "/" (section 3),
    added when missing.
    """
    name = domain.rstrip(".").lower()
    best: tuple[str, ...] = ()
    best_len = -1
    for svc in services:
        for entry in svc.entries:
            e = entry.rstrip(".").lower()
            if e and (name == e or name.endswith("." + e)) and e.count(".") > best_len:
                best, best_len = svc.urls, e.count(".")
    urls = [u if u.endswith("/") else u + "/" for u in best]
    return sorted(urls, key=lambda u: not u.lower().startswith("https://"))


def _parse_date(s: str) -> datetime.datetime:
    # RFC 9083 section 4.5: eventDate is an RFC 3339 date-time, with a UTC offset.
    try:
        t = datetime.datetime.fromisoformat(s.replace("z", "Z"))
    except ValueError:
        raise RDAPSyntaxError(f"event date {s!r} is not an RFC 3339 date-time") from None
    if t.tzinfo is None:
        raise RDAPSyntaxError(f"event date {s!r} has no UTC offset (RFC 3339 section 5.6)")
    return t


def parse_events(data: bytes) -> list[Event]:
    """The events of an RDAP domain object (RFC 9083 sections 4.5 and 5.3); pure.

    Member names are case-sensitive (RFC 9083 section 1.3). A domain without
    events gives an empty list.
    """
    doc = _json(data, "domain response")
    if not isinstance(doc, dict):
        raise RDAPSyntaxError("domain response: expected a JSON object")
    events = doc.get("events", [])
    if not isinstance(events, list):
        raise RDAPSyntaxError('domain response: "events" is not a list')
    out: list[Event] = []
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            raise RDAPSyntaxError(f"domain response: event {i} is not an object")
        action, date = ev.get("eventAction"), ev.get("eventDate")
        if not isinstance(action, str) or not isinstance(date, str):
            raise RDAPSyntaxError(f"domain response: event {i} lacks eventAction or eventDate strings")
        out.append(Event(action, _parse_date(date)))
    return out


def last_registration(events: list[Event], now: datetime.datetime) -> datetime.datetime:
    """The most recent (re)registration not after now (future events, like expiration, are skipped); pure.

    Raises:
        NoRegistrationError: there is none.
    """
    dates = [e.date for e in events if e.action in REGISTRATION_ACTIONS and e.date <= now]
    if not dates:
        raise NoRegistrationError("registration date not found in rdap response")
    return max(dates)


def _error_message(status: int, body: bytes) -> str:
    """An RDAP error response (RFC 9083 section 6) in short: its title and description, or raw text."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict):
        parts = [doc["title"]] if isinstance(doc.get("title"), str) else []
        desc = doc.get("description")
        if isinstance(desc, list):
            parts.append(" ".join(x for x in desc if isinstance(x, str)))
        msg = "; ".join(p for p in parts if p)
        if msg:
            return f"http status {status}: {msg[:200]!r}"
    return f"http status {status}: {body[:200].decode('utf-8', 'replace')!r}"


async def _get(session: Any, url: str, accept: str) -> tuple[int, bytes]:
    import aiohttp

    # RFC 7480 section 5.2: redirects are followed (aiohttp does, up to 10).
    try:
        async with session.get(url, headers={"Accept": accept}) as resp:
            body = bytearray()
            async for chunk in resp.content.iter_chunked(16384):
                body += chunk
                if len(body) > MAX_RESPONSE:
                    raise RDAPError(f"{url}: response larger than {MAX_RESPONSE} bytes")
            return resp.status, bytes(body)
    except (aiohttp.ClientError, OSError) as e:
        raise RDAPError(f"{url}: {e or type(e).__name__}") from None


async def lookup_last_registration(
    resolver: Resolver,
    domain: Domain,
    *,
    bootstrap: str | None = None,
    timeout: float = LOOKUP_TIMEOUT,
    now: datetime.datetime | None = None,
) -> datetime.datetime:
    """The most recent (re)registration of domain (give the organizational domain), through RDAP.

    bootstrap is the bootstrap file's URL (default :func:`bootstrap_url`).

    Raises:
        RDAPError (or a subclass): no date, with the reason.
    """
    import asyncio

    import aiohttp

    from mox.dns import DNSError
    from mox.mtasts.fetch import DNSResolver

    url = bootstrap or bootstrap_url()
    connector = aiohttp.TCPConnector(resolver=DNSResolver(resolver))
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        ):
            # RFC 9224 section 5: the bootstrap file is JSON.
            status, body = await _get(session, url, "application/json")
            if status // 100 != 2:
                raise RDAPError(f"{url}: {_error_message(status, body)}")
            urls = service_urls(parse_bootstrap(body), domain.ascii)
            if not urls:
                raise NoRDAPError(f"no rdap service for the top-level domain of {domain.ascii}")
            last: RDAPError | None = None
            for base in urls:
                u = f"{base}domain/{domain.ascii}"
                try:
                    # RFC 9083 section 10.1 / RFC 7480 section 4.2: the RDAP media type.
                    status, body = await _get(session, u, "application/rdap+json")
                    if status == 404:
                        raise NoDomainError(f"domain {domain.ascii} not found in registry ({u})")
                    if status // 100 != 2:
                        raise RDAPError(f"{u}: {_error_message(status, body)}")
                    return last_registration(parse_events(body), now or datetime.datetime.now(datetime.UTC))
                except RDAPError as e:
                    last = e
            assert last is not None
            raise last
    except TimeoutError:
        raise RDAPError(f"no answer within {timeout:g}s") from None
    except DNSError as e:
        raise RDAPError(f"resolving the rdap server: {e}") from None
