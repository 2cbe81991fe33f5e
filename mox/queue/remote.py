"""Direct delivery to the recipient domain's mail servers: routing, MTA-STS, DANE, TLS results.

This module finds where a message goes and how securely it must get there:

1. :func:`gather_destinations` resolves the recipient domain (following CNAMEs)
   and its MX records into hosts to try in preference order (RFC 5321 section
   5.1), with the null MX of RFC 7505 as a permanent failure and the implicit
   MX (the domain itself) when there are no MX records.
2. :func:`gather_ips` resolves one host to addresses, remembering whether every
   answer on the way was DNSSEC-authentic: only then may DANE apply (RFC 7672
   section 2.2.1).
3. ``mox.dane.gather_tlsa`` looks up the TLSA records for an MX host at the
   CNAME-expanded name first, then at the original name (RFC 7672 section
   2.2.2), and says whether DANE is required for the connection.

The delivery attempt itself (:class:`RemoteDeliverer`) ties these to MTA-STS
(``mox.mtastsdb``), the SMTP client (``mox.smtpclient``) and TLS result
recording (``mox.tlsrptdb``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mox import dane, mlog, mtasts, smtpclient, tlsrpt, tlsrptdb
from mox.config import model
from mox.config.load import Config, config_dir_path
from mox.dns import default_resolver
from mox.dns.domain import Domain, DomainError, parse_domain
from mox.dns.resolver import TLSA, DNSError, IPAddress, NotFound, Resolver
from mox.dsn import NameIP
from mox.mtastsdb import GetResult, PolicyDB
from mox.queue.model import MessageSource, Outcome, QueuedMsg

log = mlog.new("queue")

# RFC 1034 does not limit CNAME chains; resolvers stop at a few (dnspython: 16).
MAX_CNAME_CHAIN = 16
DNS_TIMEOUT = 30.0


class RouteError(Exception):
    """Routing failed. ``permanent`` says whether retrying later can help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class HostPref:
    """A host to try, with its MX preference (-1 when not from an MX record)."""

    host: Domain | None
    ip: IPAddress | None = None
    pref: int = -1

    def name(self) -> str:
        return str(self.ip) if self.ip is not None else (self.host.ascii if self.host else "")


@dataclass(slots=True)
class Destinations:
    """Where mail for a domain goes, per RFC 5321 section 5.1.

    ``orig_authentic``: the lookups for the recipient domain itself were DNSSEC-authentic.
    ``expanded_authentic``: every lookup along the CNAME chain was authentic.
    ``have_mx``: the hosts come from MX records (not the implicit MX).
    """

    have_mx: bool
    orig_authentic: bool
    expanded_authentic: bool
    expanded: Domain
    hosts: list[HostPref] = field(default_factory=list)


def _sort_mx(hosts: list[HostPref], rng: random.Random) -> list[HostPref]:
    # RFC 5321 section 5.1: lowest preference first; equal preferences in random order.
    shuffled = list(hosts)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda h: h.pref)


async def gather_destinations(
    resolver: Resolver, domain: Domain | IPAddress, *, rng: random.Random | None = None
) -> Destinations:
    """The hosts to try for a recipient domain (or an address literal).

    Raises RouteError: permanent for a null MX (RFC 7505 section 3) or an MX
    naming something that is not a host name; temporary for DNS trouble, CNAME
    loops and chains that are too long.
    """
    rng = rng or random.Random()
    if not isinstance(domain, Domain):
        return Destinations(False, False, False, Domain(""), [HostPref(None, domain)])

    orig_authentic = True
    expanded_authentic = True
    expanded = domain
    seen: set[str] = set()
    for i in range(MAX_CNAME_CHAIN + 1):
        if expanded.ascii in seen:
            raise RouteError(f"cname loop for recipient domain {domain}: already saw {expanded}")
        seen.add(expanded.ascii)
        if i == MAX_CNAME_CHAIN:
            raise RouteError(f"too many cname records for recipient domain {domain}, last {expanded}")

        try:
            cname = await resolver.lookup_cname(expanded.ascii, timeout=DNS_TIMEOUT)
        except NotFound as e:
            authentic = e.authentic
            target = None
        except DNSError as e:
            raise RouteError(f"cname lookup for {expanded}: {e}") from e
        else:
            authentic = cname.authentic
            target = cname.records[0].rstrip(".").lower()
        if i == 0:
            orig_authentic = orig_authentic and authentic
        expanded_authentic = expanded_authentic and authentic
        if target and target != expanded.ascii:
            try:
                expanded = parse_domain(target)
            except DomainError as e:
                raise RouteError(f"cname target for {expanded} is not a domain: {e}") from e
            continue

        try:
            mx = await resolver.lookup_mx(expanded.ascii, timeout=DNS_TIMEOUT)
        except NotFound as e:
            if i == 0:
                orig_authentic = orig_authentic and e.authentic
            expanded_authentic = expanded_authentic and e.authentic
            if e.nxdomain:
                # The domain does not exist at all: mail can never be delivered.
                raise RouteError(f"recipient domain {expanded} does not exist", permanent=True) from e
            # RFC 5321 section 5.1: no MX records, the domain itself is the implicit MX.
            return Destinations(False, orig_authentic, expanded_authentic, expanded, [HostPref(expanded)])
        except DNSError as e:
            raise RouteError(f"mx lookup for {expanded}: {e}") from e
        if i == 0:
            orig_authentic = orig_authentic and mx.authentic
        expanded_authentic = expanded_authentic and mx.authentic

        # RFC 7505 section 3: a single MX with host "." says the domain accepts no mail.
        if len(mx.records) == 1 and mx.records[0].host in (".", ""):
            raise RouteError(f"recipient domain {expanded} does not accept email (null mx record)", permanent=True)
        hosts: list[HostPref] = []
        for r in mx.records:
            if r.host in (".", ""):
                continue  # A null MX among real ones is ignored (RFC 7505 section 3).
            try:
                hosts.append(HostPref(parse_domain(r.host.rstrip("."), lax=True), None, r.preference))
            except DomainError as e:
                raise RouteError(f"invalid host name in mx record {r.host!r}: {e}", permanent=True) from e
        return Destinations(True, orig_authentic, expanded_authentic, expanded, _sort_mx(hosts, rng))
    raise AssertionError("unreachable")


@dataclass(slots=True)
class HostIPs:
    """Addresses for one host. DANE may only be used when ``authentic`` holds
    for the whole chain (``expanded_authentic``), RFC 7672 section 2.2.1."""

    authentic: bool
    expanded_authentic: bool
    expanded: Domain
    ips: list[IPAddress]
    dualstack: bool


async def gather_ips(resolver: Resolver, host: HostPref, dialed: list[IPAddress] | None = None) -> HostIPs:
    """Resolve a host to addresses, following CNAMEs to learn the expanded name.

    When earlier attempts dialed addresses of this host, the other address
    family is tried first next time, so a block listing of one of our addresses
    does not stop delivery (as upstream does).
    """
    if host.ip is not None:
        return HostIPs(False, False, Domain(""), [host.ip], False)
    assert host.host is not None
    authentic = True
    expanded_authentic = True
    name = host.host.ascii
    for i in range(MAX_CNAME_CHAIN + 1):
        if i == MAX_CNAME_CHAIN:
            raise RouteError(f"too many cname records for host {host.host}")
        try:
            cname = await resolver.lookup_cname(name, timeout=DNS_TIMEOUT)
        except NotFound as e:
            if i == 0:
                authentic = e.authentic
            expanded_authentic = expanded_authentic and e.authentic
            break
        except DNSError as e:
            raise RouteError(f"cname lookup for {name}: {e}") from e
        if i == 0:
            authentic = cname.authentic
        expanded_authentic = expanded_authentic and cname.authentic
        target = cname.records[0].rstrip(".").lower()
        if target == name:
            break
        name = target
    try:
        expanded = host.host if name == host.host.ascii else parse_domain(name)
    except DomainError as e:
        raise RouteError(f"cname target {name!r} for host {host.host} is not a domain: {e}") from e
    try:
        res = await resolver.lookup_ip(name, timeout=DNS_TIMEOUT)
    except NotFound as e:
        raise RouteError(f"no addresses for host {name}", permanent=False) from e
    except DNSError as e:
        raise RouteError(f"looking up addresses for {name}: {e}") from e
    authentic = authentic and res.authentic
    expanded_authentic = expanded_authentic and res.authentic
    ips = list(res.records)
    have4 = any(isinstance(ip, ipaddress.IPv4Address) for ip in ips)
    have6 = any(isinstance(ip, ipaddress.IPv6Address) for ip in ips)
    if dialed:
        prev = dialed[-1]
        prev4 = isinstance(prev, ipaddress.IPv4Address)
        same_family = sum(1 for ip in dialed if isinstance(ip, ipaddress.IPv4Address) == prev4)
        prefer_prev = same_family == 1
        # Other family first; within a family, the previous address first only
        # when it was the one address of its family tried so far.
        ips.sort(key=lambda ip: (isinstance(ip, ipaddress.IPv4Address) == prev4, not (prefer_prev and ip == prev)))
    return HostIPs(authentic, expanded_authentic, expanded, ips, have4 and have6)


# Delivery.

# Port for direct delivery (RFC 5321 section 4.5.4.2); tests and benchmarks change it.
SMTP_PORT = 25
# Idle connections kept for the next batch to the same host, and for how long.
POOL_IDLE = 10.0
POOL_MAX_PER_KEY = 8
# TLS results are written in batches this often (seconds).
RESULTS_FLUSH = 5.0
# How long an MTA-STS lookup result is reused without asking the policy database.
MTASTS_CACHE = 60.0
# Upstream's extended status code for a missing REQUIRETLS (RFC 8689 section 5).
SECODE_REQUIRETLS = "5.7.30"


@dataclass
class _Attempt:
    """How one batch fared at one host."""

    outcomes: list[Outcome] | None = None  # per message, when the host decided
    error: str = ""
    permanent: bool = False
    code: int = 0
    secode: str = ""
    lines: list[str] = field(default_factory=list)
    tls_failure: smtpclient.TLSFailure | None = None
    missing_requiretls: bool = False
    remote: NameIP = field(default_factory=NameIP)


@dataclass
class _Pooled:
    client: smtpclient.Client
    idle_since: float


class _Results:
    """TLS results of one delivery attempt (RFC 8460): for the recipient domain (MTA-STS or
    no policy) and per MX host (DANE or no policy), as separate report policy domains."""

    def __init__(self, recipient_domain: str) -> None:
        self.recipient_domain = recipient_domain
        self.domain: tlsrpt.Result | None = None
        self.hosts: dict[str, tlsrpt.Result] = {}

    def host(self, host: str, policy: tlsrpt.ResultPolicy) -> tlsrpt.Result:
        r = self.hosts.get(host)
        if r is None:
            r = self.hosts[host] = tlsrpt.Result(policy)
        return r

    def items(self, send_report: bool) -> list[tlsrptdb.TLSResult]:
        out = []
        if self.domain is not None and (self.domain.summary.total_successful_session_count or self.domain.summary.total_failure_session_count or self.domain.failure_details):
            out.append(tlsrptdb.new_result(self.recipient_domain, self.recipient_domain, is_host=False, results=[self.domain], send_report=send_report))
        for h, r in self.hosts.items():
            if r.summary.total_successful_session_count or r.summary.total_failure_session_count or r.failure_details:
                out.append(tlsrptdb.new_result(h, self.recipient_domain, is_host=True, results=[r], send_report=send_report))
        return out


def _failure(result_type: str, reason: str = "", mx: str = "", ip: str = "") -> tlsrpt.FailureDetails:
    return tlsrpt.FailureDetails(result_type, 1, receiving_mx_hostname=mx, receiving_ip=ip, failure_reason_code=reason)


def _domain_matches(domain: str, patterns: list[str]) -> bool:
    """Route domain matching as upstream: exact, or a leading dot for subdomains; empty list matches all."""
    if not patterns:
        return True
    d = domain.lower()
    for p in patterns:
        p = p.lower()
        if (p.startswith(".") and d.endswith(p)) or d == p:
            return True
    return False


def _transport(cfg: Config, m: QueuedMsg) -> tuple[str, model.Transport | None]:
    """The transport for a message: set explicitly (mox queue transport), else the first matching
    route of the sender's account, then of the sender's domain, then the global routes."""
    if m.transport:
        return m.transport, cfg.static.Transports.get(m.transport)
    routes: list[model.Route] = []
    acc = cfg.dynamic.Accounts.get(m.sender_account) if m.sender_account else None
    if acc is not None:
        routes += acc.Routes
    dom = cfg.dynamic.Domains.get(m.sender_domain)
    if dom is not None:
        routes += dom.Routes
    routes += cfg.dynamic.Routes
    for r in routes:
        if (
            _domain_matches(m.sender_domain, r.FromDomain)
            and _domain_matches(m.recipient_domain, r.ToDomain)
            and m.attempts >= r.MinimumAttempts
        ):
            return r.Transport, cfg.static.Transports.get(r.Transport)
    return "", None


def client_context_factory(cfg: Config) -> Callable[[bool], ssl.SSLContext] | None:
    """TLS client contexts trusting mox.conf's TLS.CA (extra CA files, with or without the
    system's roots); None when not configured (the system's roots)."""
    ca = cfg.static.TLS.CA if cfg.static.TLS else None
    if ca is None or not ca.CertFiles:
        return None
    files = [str(config_dir_path(cfg.static_path, f)) for f in ca.CertFiles]
    system = ca.AdditionalToSystem

    def factory(verify: bool) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        if system:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        for f in files:
            ctx.load_verify_locations(cafile=f)
        return ctx

    return factory


class RemoteDeliverer:
    """Delivers queued batches to the recipient domain's MX hosts, or through a configured transport.

    For each batch: routing (MX, CNAME, addresses), the MTA-STS policy of the
    recipient domain (mox.mtastsdb), DANE for MX hosts with DNSSEC-signed
    addresses (mox.dane), then the SMTP client with the TLS settings these
    require. Hosts are tried in MX preference order until one accepts or
    refuses permanently. TLS results go to mox.tlsrptdb for TLS reports.
    Connections are kept a few seconds and reused by the next batch to the
    same host with the same TLS requirements: several messages per connection.
    """

    def __init__(
        self,
        config: Callable[[], Config],
        *,
        resolver: Resolver | None = None,
        mtasts: PolicyDB | None = None,
        tlsrpt_db: tlsrptdb.TLSRPTDB | None = None,
        port: int | None = None,
        tls_cadata: str | None = None,
        timeouts: smtpclient.Timeouts | None = None,
    ) -> None:
        self.config = config
        self._resolver = resolver
        self.mtasts = mtasts
        self.tlsrpt_db = tlsrpt_db
        self.port = port
        self.tls_cadata = tls_cadata
        self.timeouts = timeouts
        self._pool: dict[tuple[object, ...], list[_Pooled]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._own_mtasts = False
        self._ctx_factory: Callable[[bool], ssl.SSLContext] | None = None
        self._results: list[tlsrptdb.TLSResult] = []
        self._flusher: asyncio.Task[None] | None = None
        self._policy_cache: dict[str, tuple[float, GetResult]] = {}

    @property
    def resolver(self) -> Resolver:
        return self._resolver or default_resolver()

    def _close_later(self, client: smtpclient.Client) -> None:
        t = asyncio.ensure_future(client.close())
        self._closing.add(t)
        t.add_done_callback(self._closing.discard)

    async def _save_results(self, results: _Results, *, send_report: bool) -> None:
        """Buffer TLS results; they are written in one transaction every RESULTS_FLUSH seconds
        (and at close), not one commit per delivery."""
        items = results.items(send_report)
        if not items or self.tlsrpt_db is None:
            return
        self._results.extend(items)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(RESULTS_FLUSH)
        finally:
            self._flusher = None
        await self.flush_results()

    async def flush_results(self) -> None:
        items, self._results = self._results, []
        if not items or self.tlsrpt_db is None:
            return
        try:
            await self.tlsrpt_db.add_results(items)
        except Exception as e:
            log.errorx("storing tls results", e, count=len(items))

    async def _policy(self, resolver: Resolver, domain: Domain) -> GetResult:
        """The MTA-STS lookup, remembered for MTASTS_CACHE seconds: a busy queue asks for the
        same domain many times a second; the policy database already caches for days."""
        assert self.mtasts is not None
        now = time.monotonic()
        hit = self._policy_cache.get(domain.ascii)
        if hit is not None and now - hit[0] < MTASTS_CACHE and not hit[1].temporary_error:
            return hit[1]
        got = await self.mtasts.get(resolver, domain)
        if len(self._policy_cache) > 10000:
            self._policy_cache.clear()
        self._policy_cache[domain.ascii] = (now, got)
        return got

    async def _open(self, cfg: Config) -> None:
        """Open the MTA-STS cache and TLS results database of the data directory, once, and
        start the MTA-STS refresher; set up trust for TLS.CA from mox.conf."""
        async with self._open_lock:
            if self._opened:
                return
            self._opened = True
            self._ctx_factory = client_context_factory(cfg)
            fetch_options = None
            if self._ctx_factory is not None:
                from mox.mtasts.fetch import FetchOptions

                fetch_options = FetchOptions(ssl_context=self._ctx_factory(True))
            if self.mtasts is None:
                self.mtasts = await PolicyDB.open(cfg.data_dir / "mtasts.db", fetch_options=fetch_options)
                self._own_mtasts = True
                self._refresher = asyncio.create_task(self.mtasts.refresh_loop(self.resolver, stop=self._stop))
            if self.tlsrpt_db is None:
                self.tlsrpt_db = await tlsrptdb.open_data_dir(cfg.data_dir)

    async def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush_results()
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        if self._own_mtasts and self.mtasts is not None:
            await self.mtasts.close()
            self.mtasts = None
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        pooled = [p for lst in self._pool.values() for p in lst]
        self._pool.clear()
        await asyncio.gather(*(p.client.close() for p in pooled), return_exceptions=True)

    # The queue calls this.

    async def __call__(self, msgs: list[QueuedMsg], message: MessageSource) -> list[Outcome]:
        cfg = self.config()
        if not self._opened:
            await self._open(cfg)
        m0 = msgs[0]
        transport_name, transport = _transport(cfg, m0)
        if transport is not None and transport.Fail is not None:
            f = transport.Fail
            code = f.SMTPCode or 554
            text = f.SMTPMessage or f"failing delivery per configured transport {transport_name}"
            out = Outcome.permanent(text, code, "") if code >= 500 else Outcome.temporary(text, code, "")
            return [out] * len(msgs)
        if transport is not None and transport.Socks is not None:
            text = f"transport {transport_name}: delivery through a SOCKS proxy is not implemented in this moxmail version"
            return [Outcome.temporary(text)] * len(msgs)
        smarthost = transport and (transport.Submissions or transport.Submission or transport.SMTP)
        if transport is not None and smarthost is not None:
            return await self._deliver_smarthost(cfg, transport_name, transport, msgs, message)
        direct = transport.Direct if transport is not None else None
        return await self._deliver_direct(cfg, direct, msgs, message)

    # Direct delivery.

    async def _deliver_direct(
        self, cfg: Config, direct: model.TransportDirect | None, msgs: list[QueuedMsg], message: MessageSource
    ) -> list[Outcome]:
        m0 = msgs[0]
        rcpt_domain = m0.recipient_domain
        try:
            dest_domain: Domain | IPAddress = (
                ipaddress.ip_address(rcpt_domain[1:-1]) if rcpt_domain.startswith("[") else parse_domain(rcpt_domain)
            )
        except (ValueError, DomainError) as e:
            return [Outcome.permanent(f"invalid recipient domain {rcpt_domain!r}: {e}")] * len(msgs)
        results = _Results(dest_domain.ascii if isinstance(dest_domain, Domain) else str(dest_domain))
        try:
            return await self._direct(cfg, direct, msgs, message, dest_domain, results)
        finally:
            await self._save_results(results, send_report=not m0.is_tls_report)

    async def _direct(
        self,
        cfg: Config,
        direct: model.TransportDirect | None,
        msgs: list[QueuedMsg],
        message: MessageSource,
        dest_domain: Domain | IPAddress,
        results: _Results,
    ) -> list[Outcome]:
        m0 = msgs[0]
        resolver = self.resolver
        tls_required_no = m0.requiretls is False
        try:
            dests = await gather_destinations(resolver, dest_domain)
        except RouteError as e:
            if e.permanent:
                return [Outcome.permanent(str(e), 550, "5.1.2" if "does not exist" in str(e) else "5.1.10")] * len(msgs)
            return [Outcome.temporary(str(e))] * len(msgs)

        # MTA-STS for the recipient domain itself, not a CNAME target (RFC 8461 section 4).
        policy: mtasts.Policy | None = None
        if isinstance(dest_domain, Domain) and self.mtasts is not None:
            got = await self._policy(resolver, dest_domain)
            if got.policy is not None:
                policy = got.policy
                results.domain = tlsrpt.Result(
                    tlsrpt.ResultPolicy.sts(dest_domain.ascii, got.policy_strings, [m.text() for m in got.policy.mx])
                )
            else:
                results.domain = tlsrpt.Result(tlsrpt.ResultPolicy.no_policy(dest_domain.ascii))
            if got.result_type:
                results.domain.add(0, 0, _failure(got.result_type, got.reason))
            if got.temporary_error:
                if not tls_required_no:
                    results.domain.add(0, 1)
                    return [Outcome.temporary(f"mta-sts policy lookup: {got.temporary_error}")] * len(msgs)
                log.info("mta-sts lookup failed, continuing because of TLS-Required: No", domain=dest_domain.ascii)
        elif isinstance(dest_domain, Domain):
            results.domain = tlsrpt.Result(tlsrpt.ResultPolicy.no_policy(dest_domain.ascii))

        last = _Attempt(error="no mail servers for domain")
        missing_requiretls = 0
        tried = 0
        for hp in dests.hosts:
            hostname = hp.name()
            if policy is not None and policy.mode != mtasts.Mode.NONE and hp.host is not None and not policy.matches(hp.host):
                assert results.domain is not None
                results.domain.add(0, 0, _failure(tlsrpt.ResultType.VALIDATION_FAILURE, "mtasts-policy-mx-mismatch", hostname))
                if policy.mode == mtasts.Mode.ENFORCE and not tls_required_no:
                    last = _Attempt(error=f"mx host {hostname} does not match the enforced mta-sts policy")
                    results.domain.add(0, 1)
                    continue
            tried += 1
            att = await self._deliver_host(cfg, direct, msgs, message, dests, hp, policy, results)
            if att.missing_requiretls:
                missing_requiretls += 1
            if att.outcomes is not None:
                return att.outcomes
            last = att
            if att.permanent:
                break
        if tried and missing_requiretls == tried:
            # No host can do verified TLS with REQUIRETLS: that will not change soon (upstream: fail now).
            text = "no verified tls with requiretls support at any mail server of the recipient domain"
            return [Outcome.permanent(text, 554, SECODE_REQUIRETLS)] * len(msgs)
        if last.permanent:
            return [Outcome.permanent(last.error, last.code, last.secode, last.remote, last.lines)] * len(msgs)
        return [Outcome.temporary(last.error, last.code, last.secode, last.remote, last.lines)] * len(msgs)

    async def _deliver_host(
        self,
        cfg: Config,
        direct: model.TransportDirect | None,
        msgs: list[QueuedMsg],
        message: MessageSource,
        dests: Destinations,
        hp: HostPref,
        policy: mtasts.Policy | None,
        results: _Results,
    ) -> _Attempt:
        m0 = msgs[0]
        resolver = self.resolver
        hostname = hp.name()
        tls_required_no = m0.requiretls is False
        enforce = policy is not None and policy.mode == mtasts.Mode.ENFORCE
        try:
            ips = await gather_ips(resolver, hp)
        except RouteError as e:
            return _Attempt(error=str(e))
        if direct is not None:
            ips.ips = [ip for ip in ips.ips if not (direct.DisableIPv4 and ip.version == 4) and not (direct.DisableIPv6 and ip.version == 6)]
            if not ips.ips:
                return _Attempt(error=f"no addresses for {hostname} of an allowed ip family (transport direct)")

        mode = smtpclient.TLSMode.REQUIRED_STARTTLS if enforce else smtpclient.TLSMode.OPPORTUNISTIC
        dane_records: tuple[TLSA, ...] | None = None
        dane_names: list[str] = []
        host_result: tlsrpt.Result | None = None
        authentic = ips.authentic and dests.orig_authentic and (not dests.have_mx or dests.expanded_authentic) and hp.host is not None
        if hp.host is not None and not authentic:
            host_result = results.host(hp.host.ascii, tlsrpt.ResultPolicy.no_policy(hp.host.ascii))
        elif hp.host is not None:
            lk, base = await dane.gather_tlsa(resolver, hp.host, ips.expanded, ips.expanded_authentic and dests.expanded_authentic)
            if lk.status in (dane.TLSAStatus.NONE, dane.TLSAStatus.INSECURE):
                host_result = results.host(hp.host.ascii, tlsrpt.ResultPolicy.no_policy(base))
            else:
                host_result = results.host(hp.host.ascii, tlsrpt.ResultPolicy.tlsa(base, [dane.record_text(r) for r in lk.all_records]))
                if lk.status == dane.TLSAStatus.ERROR:
                    host_result.add(0, 1, _failure(lk.result_type or tlsrpt.ResultType.DNSSEC_INVALID, "tlsa-lookup-error", hostname))
                    if not tls_required_no:
                        return _Attempt(error=f"looking up tlsa records for {hostname}: {lk.error}")
                else:
                    mode = smtpclient.TLSMode.REQUIRED_STARTTLS
                    if lk.status == dane.TLSAStatus.UNUSABLE:
                        # RFC 7672 section 2.2: TLS still required, without authentication.
                        host_result.add(0, 0, _failure(tlsrpt.ResultType.TLSA_INVALID, "all-unusable-records+ignored", hostname))
                    else:
                        dane_records = lk.records
                        dane_names = dane.tlsa_hostnames(
                            have_mx=dests.have_mx,
                            expanded_next_hop_authentic=dests.expanded_authentic,
                            expanded_tlsa_base_authentic=ips.expanded_authentic,
                            orig_next_hop=results.recipient_domain,
                            expanded_next_hop=dests.expanded.ascii or results.recipient_domain,
                            orig_tlsa_base=hp.host.ascii,
                            expanded_tlsa_base=base,
                        )
        if m0.requiretls and not (dane_records or enforce):
            # RFC 8689 section 4.2: REQUIRETLS needs a verified TLS connection (MTA-STS or DANE).
            return _Attempt(
                error="requiretls: recipient domain has no mta-sts policy in enforce mode and no usable dane records for this host",
                code=554, secode=SECODE_REQUIRETLS, missing_requiretls=True,
            )  # fmt: skip

        tls = smtpclient.TLSConfig(
            mode=mode,
            server_name=(dane_names[0] if dane_names else hostname) if hp.host is not None else "",
            pkix=enforce and hp.host is not None,
            dane_records=dane_records,
            dane_hostnames=dane_names[1:],
            dane_verify=dane.verify if dane_records is not None else None,
            ignore_verify_errors=tls_required_no,
            cadata=self.tls_cadata,
            context_factory=None if self.tls_cadata else self._ctx_factory,
        )
        att = await self._attempt(cfg, msgs, message, ips.ips, hostname, tls, results.domain, host_result)
        if (
            (att.tls_failure is not None
            and mode == smtpclient.TLSMode.OPPORTUNISTIC
            and not enforce
            and dane_records is None
            and not m0.is_dmarc_report)
            or (att.tls_failure is not None and tls_required_no)
        ):
            # RFC 7435 section 4: opportunistic TLS that fails falls back to plain text when no
            # policy requires TLS (never for DMARC reports, RFC 7489 section 7.2.1.1).
            log.info("tls failed, delivering again without tls", host=hostname, err=str(att.tls_failure))
            plain = smtpclient.TLSConfig(mode=smtpclient.TLSMode.SKIP)
            att = await self._attempt(cfg, msgs, message, ips.ips, hostname, plain, None, None)
        return att

    async def _attempt(
        self,
        cfg: Config,
        msgs: list[QueuedMsg],
        message: MessageSource,
        ips: list[IPAddress],
        hostname: str,
        tls: smtpclient.TLSConfig,
        domain_result: tlsrpt.Result | None,
        host_result: tlsrpt.Result | None,
    ) -> _Attempt:
        """Connect (or reuse a connection) and run the transaction."""
        port = self.port or SMTP_PORT
        ehlo = cfg.static.HostnameDomain.ascii if cfg.static.HostnameDomain is not None else "localhost"
        client: smtpclient.Client | None = None
        key: tuple[object, ...] = ()
        ip_used = ""
        last_err: smtpclient.SMTPClientError | None = None
        for ip in ips:
            key = (str(ip), port, tls.mode, tls.server_name, tls.pkix, tuple(tls.dane_records or ()), tls.ignore_verify_errors)
            client = self._pool_get(key)
            ip_used = str(ip)
            if client is not None:
                break
            try:
                client = await smtpclient.connect(str(ip), port, ehlo_hostname=ehlo, tls=tls, timeouts=self.timeouts, log=log)
            except smtpclient.TLSFailure as e:
                for r in (domain_result, host_result):
                    if r is not None:
                        r.add(0, 1, _failure(e.result_type, e.reason, hostname, str(ip)))
                return _Attempt(error=f"tls with {hostname} ({ip}): {e}", tls_failure=e)
            except smtpclient.SMTPClientError as e:
                last_err = e
                if isinstance(e, smtpclient.ReplyError):
                    break  # The host answered: its refusal counts, other addresses are the same host.
                continue
            else:
                self._count_tls(client, hostname, ip_used, domain_result, host_result)
                break
        if client is None:
            if last_err is None:
                return _Attempt(error=f"no addresses for {hostname}")
            return _Attempt(
                error=f"connecting to {hostname}: {last_err}", permanent=last_err.permanent, code=last_err.code,
                secode=last_err.enhanced, lines=list(last_err.reply.raw) if last_err.reply else [],
                remote=NameIP(hostname, ip_used),
            )  # fmt: skip

        return await self._run_on_client(client, key, msgs, message, hostname, ip_used)

    async def _run_on_client(
        self,
        client: smtpclient.Client,
        key: tuple[object, ...],
        msgs: list[QueuedMsg],
        message: MessageSource,
        hostname: str,
        ip_used: str,
    ) -> _Attempt:
        """One transaction for the batch on a set-up connection; the client goes back to the pool."""
        m0 = msgs[0]
        opts = smtpclient.MailOptions(
            has_8bit=m0.has8bit,
            smtputf8=m0.smtputf8,
            requiretls=bool(m0.requiretls),
            size=message.size,
            dsn_ret=m0.dsn_ret or None,
            dsn_envid=m0.dsn_envid or None,
        )
        rcpts = [
            smtpclient.Recipient(m.recipient_address, notify=m.dsn_notify or (), orcpt=m.dsn_orcpt if m.dsn_orcpt_type else "")
            for m in msgs
        ]
        remote = NameIP(hostname, ip_used)
        f = await asyncio.to_thread(message.open)
        try:
            res = await client.deliver(m0.sender_address, rcpts, f, opts)
        except smtpclient.ExtensionUnsupported as e:
            self._release(key, client)
            return _Attempt(
                [Outcome.permanent(str(e), 554 if e.permanent else 0, e.enhanced, remote) if e.permanent else Outcome.temporary(str(e), remote=remote)] * len(msgs),
                missing_requiretls=e.extension == "REQUIRETLS",
            )  # fmt: skip
        except smtpclient.ReplyError as e:
            self._release(key, client)
            lines = list(e.reply.raw) if e.reply else []
            text = f"{hostname}: {e}"
            if e.permanent:
                return _Attempt([Outcome.permanent(text, e.code, e.enhanced, remote, lines)] * len(msgs))
            return _Attempt(error=text, code=e.code, secode=e.enhanced, lines=lines, remote=remote)
        except smtpclient.SMTPClientError as e:
            await client.close()
            return _Attempt(error=f"delivering to {hostname}: {e}", code=e.code, secode=e.enhanced, remote=remote)
        finally:
            await asyncio.to_thread(f.close)
        self._release(key, client)
        outcomes = []
        for r in res.recipients:
            if r.accepted:
                outcomes.append(Outcome.delivered(remote, r.code, r.reply.text if r.reply else ""))
                continue
            lines = list(r.reply.raw) if r.reply else []
            text = f"{hostname}: {' '.join(lines) if lines else 'recipient not tried (server recipient limit)'}"
            code, secode = (r.reply.code, r.reply.enhanced) if r.reply else (0, "")
            outcomes.append(
                Outcome.permanent(text, code, secode, remote, lines) if r.permanent else Outcome.temporary(text, code, secode, remote, lines)
            )
        log.debug("delivered batch", host=hostname, ip=ip_used, recipients=len(msgs), delivered=len(res.delivered), msgid=m0.id)
        return _Attempt(outcomes)

    def _count_tls(
        self, client: smtpclient.Client, hostname: str, ip: str, domain_result: tlsrpt.Result | None, host_result: tlsrpt.Result | None
    ) -> None:
        """Count a new session for TLS reporting (RFC 8460 section 4.3: sessions, not messages)."""
        st = client.tls
        for r in (domain_result, host_result):
            if r is None:
                continue
            if st.used:
                r.add(1, 0)
                for fl in st.ignored_failures:
                    r.add(0, 0, _failure(fl.result_type, fl.reason, hostname, ip))
            elif st.not_offered or not st.starttls_offered:
                r.add(0, 1, _failure(tlsrpt.ResultType.STARTTLS_NOT_SUPPORTED, "", hostname, ip))

    # Connection reuse.

    def _pool_get(self, key: tuple[object, ...]) -> smtpclient.Client | None:
        lst = self._pool.get(key)
        while lst:
            p = lst.pop()
            if not p.client.botched and time.monotonic() - p.idle_since < POOL_IDLE:
                return p.client
            self._close_later(p.client)
        return None

    def _release(self, key: tuple[object, ...], client: smtpclient.Client) -> None:
        if client.botched or not key:
            self._close_later(client)
            return
        lst = self._pool.setdefault(key, [])
        if len(lst) >= POOL_MAX_PER_KEY:
            self._close_later(client)
            return
        lst.append(_Pooled(client, time.monotonic()))
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())

    async def _reap(self) -> None:
        try:
            while self._pool:
                await asyncio.sleep(POOL_IDLE / 2)
                now = time.monotonic()
                for k in list(self._pool):
                    keep = []
                    for p in self._pool[k]:
                        if now - p.idle_since >= POOL_IDLE or p.client.botched:
                            await p.client.close()
                        else:
                            keep.append(p)
                    if keep:
                        self._pool[k] = keep
                    else:
                        del self._pool[k]
        finally:
            self._reaper = None

    # Smarthost.

    async def _deliver_smarthost(
        self, cfg: Config, name: str, transport: model.Transport, msgs: list[QueuedMsg], message: MessageSource
    ) -> list[Outcome]:
        """Submit through a configured SMTP transport: one host, its port, TLS mode and credentials."""
        conf = transport.Submissions or transport.Submission or transport.SMTP
        assert conf is not None
        if transport.Submissions is not None:
            mode, port = smtpclient.TLSMode.IMMEDIATE, conf.Port or 465
        else:
            mode = smtpclient.TLSMode.SKIP if conf.NoSTARTTLS else smtpclient.TLSMode.OPPORTUNISTIC
            port = conf.Port or (587 if transport.Submission is not None else 25)
        pkix = mode != smtpclient.TLSMode.SKIP and not conf.STARTTLSInsecureSkipVerify
        tls = smtpclient.TLSConfig(
            mode=mode, server_name=conf.Host, pkix=pkix, cadata=self.tls_cadata,
            context_factory=None if self.tls_cadata else self._ctx_factory,
        )  # fmt: skip
        auth = None
        if conf.Auth is not None:
            # Upstream's default: the challenge-response mechanisms; PLAIN only when listed.
            mechs = conf.Auth.Mechanisms or ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "CRAM-MD5"]
            auth = smtpclient.AuthConfig(username=conf.Auth.Username, password=conf.Auth.Password, mechanisms=tuple(m.upper() for m in mechs))
        try:
            ips = await gather_ips(self.resolver, HostPref(parse_domain(conf.Host)))
        except (RouteError, DomainError) as e:
            return [Outcome.temporary(f"transport {name}: {e}")] * len(msgs)
        ehlo = cfg.static.HostnameDomain.ascii if cfg.static.HostnameDomain is not None else "localhost"
        last: smtpclient.SMTPClientError | None = None
        client = None
        for ip in ips.ips:
            try:
                client = await smtpclient.connect(str(ip), port, ehlo_hostname=ehlo, tls=tls, auth=auth, timeouts=self.timeouts, log=log)
                break
            except smtpclient.SMTPClientError as e:
                last = e
                if isinstance(e, (smtpclient.ReplyError, smtpclient.AuthError, smtpclient.TLSFailure)):
                    break
        if client is None:
            text = f"transport {name}: connecting to {conf.Host}: {last}"
            if last is not None and last.permanent:
                return [Outcome.permanent(text, last.code, last.enhanced)] * len(msgs)
            return [Outcome.temporary(text, last.code if last else 0, last.enhanced if last else "")] * len(msgs)
        key = ("transport", name, str(ip))
        att = await self._run_on_client(client, key, msgs, message, conf.Host, str(ip))
        if att.outcomes is not None:
            return att.outcomes
        text = f"transport {name}: {att.error}"
        return [Outcome.temporary(text, att.code, att.secode, NameIP(conf.Host, str(ip)), att.lines)] * len(msgs)


def make_deliverer(config: Callable[[], Config]) -> RemoteDeliverer:
    """The deliverer ``mox serve`` gives its queue (see mox.queue.server_deliverer).

    Opens the MTA-STS policy cache and the TLS results database lazily, on
    first use, in the data directory.
    """
    return RemoteDeliverer(config)
