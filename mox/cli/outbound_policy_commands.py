"""Outgoing-delivery policy tools: ``mox mtasts lookup``, ``mox dane makerecord``, ``mox dane dial``.

DNS goes through the resolver the server uses (``MOX_DNS`` honoured).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import threading
from pathlib import Path

from cryptography import x509

from mox import dane, mtasts
from mox.cli.main import CommandError, Flag, Invocation, UsageError, command
from mox.dns import DNSError, NotFound, Resolver, default_resolver, parse_domain
from mox.dns.domain import DomainError

# After stdin ends, how long dane dial keeps copying what the server still sends.
DIAL_DRAIN_TIMEOUT = 1.0
DIAL_CONNECT_TIMEOUT = 30.0
# CNAMEs followed for the dial host, as upstream.
MAX_CNAMES = 10


def _domain(s: str, what: str) -> str:
    try:
        return parse_domain(s.removesuffix(".").lower()).ascii
    except DomainError as e:
        raise CommandError(f"parsing {what} {s!r}: {e}") from None


@command(
    "mtasts lookup",
    params="domain",
    nargs=(1, 1),
    help="""Lookup the MTASTS record and policy for the domain.

MTA-STS is a mechanism for a domain to specify if it requires TLS connections
for delivering email. If a domain has a valid MTA-STS DNS TXT record at
_mta-sts.<domain> it signals it implements MTA-STS. A policy can then be
fetched at https://mta-sts.<domain>/.well-known/mta-sts.txt. The policy
specifies the mode (enforce, testing, none), which MX servers support TLS and
should be used, and how long the policy can be cached.""",
)
def cmd_mtasts_lookup(inv: Invocation) -> None:
    domain = _domain(inv.args[0], "domain")
    try:
        res = asyncio.run(mtasts.lookup(default_resolver(), domain))
    except ValueError as e:
        raise CommandError(f"mtasts lookup: {e}") from None
    if res.error is not None:
        print(f"error: {res.error}")
    if res.record is not None:
        print(f"DNS TXT record _mta-sts.{domain}: {res.record.text()}")
    if res.policy is not None:
        print()
        print(f"policy at https://mta-sts.{domain}{mtasts.WELL_KNOWN_PATH}:")
        sys.stdout.write(res.policy.text())


def _parse_param(value: str, names: dict[str, int], what: str) -> int:
    v = value.lower()
    if v in names:
        return names[v]
    if v.isdigit() and int(v) in names.values():
        return int(v)
    raise UsageError(f"bad {what} {value!r}, expected one of {', '.join(f'{k} ({n})' for k, n in names.items())}")


@command(
    "dane makerecord",
    params="usage selector matchtype [certificate.pem | publickey.pem | privatekey.pem]",
    nargs=(4, 4),
    help="""Print TLSA record for given certificate/key and parameters.

Valid values:
- usage: pkix-ta (0), pkix-ee (1), dane-ta (2), dane-ee (3)
- selector: cert (0), spki (1)
- matchtype: full (0), sha2-256 (1), sha2-512 (2)

Common DANE TLSA record parameters are: dane-ee spki sha2-256, or 3 1 1,
followed by a sha2-256 hash of the DER-encoded "SPKI" (subject public key info)
from the certificate. An example DNS zone file entry:

	_25._tcp.example.com. TLSA 3 1 1 133b919c9d65d8b1488157315327334ead8d83372db57465ecabf53ee5748aee

The first usable information from the pem file is used to compose the TLSA
record. In case of selector "cert", a certificate is required. Otherwise the
"subject public key info" (spki) of the first certificate or public or private
key (pkcs#8, pkcs#1 or ec private key) is used.""",
)
def cmd_dane_makerecord(inv: Invocation) -> None:
    usage_s, selector_s, matchtype_s, path = inv.args
    if usage_s.lower() in dane.USAGE_NAMES:
        usage = int(dane.USAGE_NAMES[usage_s.lower()])
    elif usage_s.isdigit() and int(usage_s) <= 255:
        usage = int(usage_s)
        if usage not in dane.USAGE_NAMES.values():
            # The usage does not influence the association data.
            print(f"warning: continuing with unrecognized tlsa usage {usage}", file=sys.stderr)
    else:
        raise UsageError(f"bad usage {usage_s!r}")
    selector = _parse_param(selector_s, dict(dane.SELECTOR_NAMES), "selector")
    matchtype = _parse_param(matchtype_s, dict(dane.MATCHTYPE_NAMES), "matchtype")
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CommandError(f"reading certificate: {e}") from None
    try:
        record = dane.make_record(usage, selector, matchtype, data)
    except dane.MakeRecordError as e:
        raise CommandError(str(e)) from None
    print(dane.record_text(record))


def _parse_usages(s: str) -> set[int]:
    out: set[int] = set()
    for part in s.split(","):
        p = part.strip().lower()
        if p == "":
            continue
        if p in dane.USAGE_NAMES:
            out.add(int(dane.USAGE_NAMES[p]))
        elif p.isdigit() and int(p) in dane.USAGE_NAMES.values():
            out.add(int(p))
        else:
            raise UsageError(f"unknown dane usage {part!r}")
    return out


def _split_hostport(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not host:
        raise UsageError(f"address {s!r}: expected host:port")
    host = host.removeprefix("[").removesuffix("]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"address {s!r}: bad port {port!r}")
    return host, int(port)


def _system_roots() -> list[x509.Certificate]:
    paths = ssl.get_default_verify_paths()
    roots: list[x509.Certificate] = []
    files = [paths.cafile] if paths.cafile else []
    if paths.capath and Path(paths.capath).is_dir():
        files += [str(p) for p in Path(paths.capath).glob("*.pem")]
    for f in files:
        with contextlib.suppress(OSError, ValueError):
            roots += x509.load_pem_x509_certificates(Path(f).read_bytes())
    return roots


async def _dane_dial(resolver: Resolver, address: str, usages: set[int]) -> None:
    host_s, port = _split_hostport(address)
    host = _domain(host_s, "host")

    # RFC 7671 section 7: follow CNAMEs of the host; if the whole chain is
    # secure, TLSA records at the final name come first, then the original name.
    name, authentic = host, True
    for i in range(MAX_CNAMES + 1):
        try:
            cn = await resolver.lookup_cname(name)
        except NotFound as e:
            if i == 0 and not e.authentic:
                raise CommandError("dial: dane: dns lookups insecure (cname lookup)") from None
            authentic = authentic and e.authentic
            break
        except DNSError as e:
            raise CommandError(f"dial: resolving cname {name}: {e}") from None
        if i == MAX_CNAMES:
            raise CommandError("dial: too many cname lookups")
        authentic = authentic and cn.authentic
        name = cn.records[0].rstrip(".").lower()
    expanded = name
    try:
        ips = await resolver.lookup_ip(expanded)
    except DNSError as e:
        raise CommandError(f"dial: resolving ips: {e}") from None

    lookup, base = await dane.gather_tlsa(resolver, host, expanded, authentic, port)
    if lookup.status == dane.TLSAStatus.ERROR:
        raise CommandError(f"dial: lookup dane tlsa records: {lookup.error}")
    if lookup.status == dane.TLSAStatus.INSECURE:
        raise CommandError("dial: dane: dns lookups insecure")
    if lookup.status == dane.TLSAStatus.NONE:
        raise CommandError("dial: dane: no tlsa records")
    records = [r for r in lookup.all_records if dane.unusable_reason(r, usages) == ""]
    if not records:
        raise CommandError("dial: no usable tlsa records remaining: dane: no match between certificate and tlsa records")
    hostnames = [base] + ([host] if base != host else [])

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # DANE verification below, not PKIX.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    errors: list[str] = []
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    for ip in ips.records:
        try:
            conn = await asyncio.wait_for(
                asyncio.open_connection(str(ip), port, ssl=ctx, server_hostname=base), DIAL_CONNECT_TIMEOUT
            )
            break
        except (OSError, TimeoutError, ssl.SSLError) as e:
            errors.append(f"{ip}: {e}")
    if conn is None:
        raise CommandError("dial: " + "; ".join(errors))
    reader, writer = conn
    sslobj = writer.get_extra_info("ssl_object")
    roots = _system_roots() if any(r.usage in (dane.Usage.PKIX_TA, dane.Usage.PKIX_EE) for r in records) else None
    res = dane.verify(dane.peer_chain_der(sslobj), records, hostnames, usages=usages, pkix_roots=roots)
    if not res.verified:
        writer.close()
        detail = f" ({'; '.join(res.errors)})" if res.errors else ""
        raise CommandError(
            f"dial: dane: no match between certificate and tlsa records: {res.result_type} {res.reason}{detail}"
        )
    assert res.record is not None
    print(f"(connected, verified with {dane.record_description(res.record)})", file=sys.stderr)
    await _copy(reader, writer)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy stdin to the connection and the connection to stdout until either ends."""
    loop = asyncio.get_running_loop()
    out = sys.stdout.buffer

    async def from_conn() -> None:
        while data := await reader.read(16384):
            out.write(data)
            out.flush()

    # stdin is read in a daemon thread: a blocked read cannot be cancelled, and
    # must not keep the process alive after the connection ended.
    lines: asyncio.Queue[bytes] = asyncio.Queue()

    def read_stdin() -> None:
        stdin = sys.stdin.buffer
        while True:
            try:
                data = stdin.readline()
            except (OSError, ValueError):
                data = b""
            try:
                loop.call_soon_threadsafe(lines.put_nowait, data)
            except RuntimeError:
                return  # the event loop is gone: the command is done
            if not data:
                return

    threading.Thread(target=read_stdin, name="dane-dial-stdin", daemon=True).start()

    async def from_stdin() -> None:
        while data := await lines.get():
            writer.write(data)
            await writer.drain()

    recv = asyncio.create_task(from_conn())
    send = asyncio.create_task(from_stdin())
    done, _ = await asyncio.wait({recv, send}, return_when=asyncio.FIRST_COMPLETED)
    if send in done and recv not in done:
        # Input ended: collect what the server still sends, briefly.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(recv), DIAL_DRAIN_TIMEOUT)
    recv.cancel()
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    for t in (recv, send):
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise CommandError(f"dial: copying data: {t.exception()}")


@command(
    "dane dial",
    params="host:port",
    nargs=(1, 1),
    flags=[Flag("usages", "pkix-ta,pkix-ee,dane-ta,dane-ee", "allowed usages for dane, comma-separated list")],
    help="""Dial the address using TLS with certificate verification using DANE.

Data is copied between connection and stdin/stdout until either side closes the
connection.""",
)
def cmd_dane_dial(inv: Invocation) -> None:
    flag = inv.flags["usages"]
    usages = _parse_usages(flag if isinstance(flag, str) else "")
    try:
        asyncio.run(_dane_dial(default_resolver(), inv.args[0], usages))
    except ValueError as e:
        raise CommandError(f"dial: {e}") from None
