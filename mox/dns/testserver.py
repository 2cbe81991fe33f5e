"""A loopback DNS server holding test records, for tests and benchmarks.

:class:`DNSTestServer` listens on 127.0.0.1 with UDP and TCP on one ephemeral
port and answers like a recursive resolver would for the records it holds, so
that code under test runs against a real server over real sockets (point
``MOX_DNS`` at :attr:`DNSTestServer.address`, or use
:meth:`DNSTestServer.resolver`). It runs an asyncio loop in its own thread, so
it serves synchronous code, other event loops and subprocesses alike.

What it implements, with the RFC behaviour tests rely on:

- CNAME chains in the answer section for any other type (RFC 1034 section
  4.3.2 step 3a as a recursive resolver presents it), NXDOMAIN when the chain
  ends at a name that does not exist (RFC 6604).
- NXDOMAIN versus NODATA (RFC 2308 section 2): a name exists when it holds
  records or has names below it (empty non-terminal, RFC 8020); both negative
  answers carry an SOA in the authority section (RFC 2308 section 3).
- The AD bit (RFC 4035 section 3.2.3) for names configured as secure, only
  when the query set AD or DO (RFC 6840 section 5.7), as validators do.
- Truncation (RFC 1035 section 4.2.1, RFC 6891 section 6.2.5): UDP answers
  larger than the client's EDNS payload size (512 without EDNS) are sent with
  TC set and only the question, and the client retries over TCP (RFC 7766).
- Forced failures per name: SERVFAIL, REFUSED, or dropping the query (the
  client times out); and forced truncation.

Every query is logged in :attr:`DNSTestServer.queries`, so a test can prove
that a lookup did (or did not) go out, and over which transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.reversename
import dns.rrset

from mox.dns.resolver import StubResolver

log = logging.getLogger("mox.dns.testserver")

Failure = Literal["servfail", "refused", "drop"]
"""How DNSTestServer.fail makes a name misbehave."""

DEFAULT_TTL = 300
# Longest CNAME chain the server follows before answering SERVFAIL.
MAX_CNAME_CHAIN = 16
# Size limits: UDP answers without EDNS, RFC 1035 section 4.2.1; and the
# largest payload size we honour from a client, DNS flag day 2020.
UDP_MIN_PAYLOAD = 512
UDP_MAX_PAYLOAD = 1232
# SOA for negative answers when no zone SOA was added; the last field is the
# negative caching TTL (RFC 2308 section 4).
_DEFAULT_SOA = dns.rrset.from_text(
    ".", DEFAULT_TTL, "IN", "SOA", "ns.test. hostmaster.test. 1 3600 600 86400 300"
)


@dataclass(frozen=True, slots=True)
class Query:
    """One query the server received."""

    name: str  # without trailing dot, lower case
    rdtype: str  # e.g. "TXT"
    transport: Literal["udp", "tcp"]
    ad: bool  # the query asked for authentic data (AD or DO bit)


def _name(name: str) -> dns.name.Name:
    if name == ".":
        return dns.name.root
    return dns.name.from_text(name.rstrip(".") + ".")


def _txt_rdata_text(text: str | bytes) -> str:
    """A TXT record's presentation form; long values split in 255-octet strings (RFC 7208 section 3.3)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    parts = []
    for chunk in chunks:
        escaped = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:03d}" for b in chunk
        )
        parts.append(f'"{escaped}"')
    return " ".join(parts)


def _strip_comment(line: str) -> str:
    quoted = False
    escaped = False
    for i, c in enumerate(line):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            return line[:i]
    return line


class DNSTestServer:
    """A DNS server on 127.0.0.1, answering from records added at run time.

    Use as a context manager (or call start and close)::

        with DNSTestServer() as srv:
            srv.add_txt("example.com", "v=spf1 -all")
            srv.set_authentic("example.com")
            os.environ["MOX_DNS"] = srv.address

    All methods are thread-safe; records can change while the server runs.

    Args:
        authentic: the default for whether names are DNSSEC-secure (AD bit).
    """

    def __init__(self, *, authentic: bool = False) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        self._authentic: dict[dns.name.Name, bool] = {}
        self._authentic_default = authentic
        self._failures: dict[tuple[dns.name.Name, dns.rdatatype.RdataType | None], Failure] = {}
        self._truncate: set[dns.name.Name] = set()
        self.queries: list[Query] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._tcp_tasks: set[asyncio.Task[object]] = set()
        self._start_error: BaseException | None = None

    # Life cycle.

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, a value for MOX_DNS."""
        return f"{self.host}:{self.port}"

    def start(self) -> DNSTestServer:
        """Bind the sockets and start serving in a background thread."""
        if self._thread is not None:
            raise RuntimeError("DNSTestServer already started")
        self._thread = threading.Thread(target=self._run, name="dns-test-server", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise self._start_error
        return self

    def close(self) -> None:
        """Stop serving and close the sockets."""
        if self._thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> DNSTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def resolver(
        self, *, timeout: float = 2.0, attempt_timeout: float = 1.0, cache_size: int = 0
    ) -> StubResolver:
        """A StubResolver sending its queries to this server only."""
        return StubResolver(
            [(self.host, self.port)], timeout=timeout, attempt_timeout=attempt_timeout, cache_size=cache_size
        )

    # Records.

    def add(self, name: str, rdtype: str, *rdata: str, ttl: int = DEFAULT_TTL) -> None:
        """Add records in presentation format, e.g. ``add("example.com", "MX", "10 mx.example.com.")``.

        Names in rdata without trailing dot are taken as absolute too.
        """
        owner = _name(name)
        typ = dns.rdatatype.from_text(rdtype)
        with self._lock:
            rrset = self._records.get((owner, typ))
            if rrset is None:
                rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, typ)
                self._records[(owner, typ)] = rrset
            for text in rdata:
                rd = dns.rdata.from_text(dns.rdataclass.IN, typ, text, origin=dns.name.root, relativize=False)
                rrset.add(rd, ttl)

    def add_zone_text(self, text: str) -> None:
        """Add records from lines of ``name [ttl] [IN] TYPE rdata``; ``;`` starts a comment."""
        for line in text.splitlines():
            line = _strip_comment(line).strip()
            if not line:
                continue
            words = line.split(None, 1)
            if len(words) < 2:
                raise ValueError(f"bad record line {line!r}")
            name, rest = words
            ttl = DEFAULT_TTL
            fields = rest.split(None, 1)
            if fields and fields[0].isdigit():
                ttl = int(fields[0])
                rest = fields[1] if len(fields) > 1 else ""
                fields = rest.split(None, 1)
            if fields and fields[0].upper() == "IN":
                rest = fields[1] if len(fields) > 1 else ""
                fields = rest.split(None, 1)
            if len(fields) < 2:
                raise ValueError(f"bad record line {line!r}")
            self.add(name, fields[0], fields[1], ttl=ttl)

    def add_txt(self, name: str, *texts: str | bytes, ttl: int = DEFAULT_TTL) -> None:
        """Add TXT records; values longer than 255 octets are split into several strings."""
        self.add(name, "TXT", *(_txt_rdata_text(t) for t in texts), ttl=ttl)

    def add_a(self, name: str, *ips: str, ttl: int = DEFAULT_TTL) -> None:
        self.add(name, "A", *ips, ttl=ttl)

    def add_aaaa(self, name: str, *ips: str, ttl: int = DEFAULT_TTL) -> None:
        self.add(name, "AAAA", *ips, ttl=ttl)

    def add_ip(self, name: str, *ips: str, ttl: int = DEFAULT_TTL) -> None:
        """Add A or AAAA records, by the address family of each address."""
        for ip in ips:
            typ = "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
            self.add(name, typ, ip, ttl=ttl)

    def add_mx(self, name: str, preference: int, host: str, ttl: int = DEFAULT_TTL) -> None:
        self.add(name, "MX", f"{preference} {host.rstrip('.')}.", ttl=ttl)

    def add_cname(self, name: str, target: str, ttl: int = DEFAULT_TTL) -> None:
        self.add(name, "CNAME", f"{target.rstrip('.')}.", ttl=ttl)

    def add_ptr(self, ip: str, *hosts: str, ttl: int = DEFAULT_TTL) -> None:
        """Add PTR records for an IP address at its in-addr.arpa/ip6.arpa name."""
        owner = dns.reversename.from_address(ip).to_text()
        self.add(owner, "PTR", *(f"{h.rstrip('.')}." for h in hosts), ttl=ttl)

    def add_tlsa(
        self,
        name: str,
        usage: int,
        selector: int,
        matching_type: int,
        data: bytes,
        ttl: int = DEFAULT_TTL,
    ) -> None:
        """Add a TLSA record, e.g. at ``_25._tcp.mx.example.com``."""
        self.add(name, "TLSA", f"{usage} {selector} {matching_type} {data.hex() or '-'}", ttl=ttl)

    def add_ns(self, name: str, *hosts: str, ttl: int = DEFAULT_TTL) -> None:
        self.add(name, "NS", *(f"{h.rstrip('.')}." for h in hosts), ttl=ttl)

    def add_soa(self, zone: str, ttl: int = DEFAULT_TTL, negative_ttl: int = DEFAULT_TTL) -> None:
        """Add an SOA at a zone apex; negative answers for names below use it (RFC 2308)."""
        z = zone.rstrip(".")
        self.add(zone, "SOA", f"ns.{z}. hostmaster.{z}. 1 3600 600 86400 {negative_ttl}", ttl=ttl)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Remove all records of a type at name, or all records at name."""
        owner = _name(name)
        typ = None if rdtype is None else dns.rdatatype.from_text(rdtype)
        with self._lock:
            for key in [k for k in self._records if k[0] == owner and (typ is None or k[1] == typ)]:
                del self._records[key]

    def clear(self) -> None:
        """Remove all records, authenticity settings, failures and the query log."""
        with self._lock:
            self._records.clear()
            self._authentic.clear()
            self._failures.clear()
            self._truncate.clear()
            self.queries.clear()

    # Behaviour.

    def set_authentic(self, name: str, authentic: bool = True) -> None:
        """Mark name and the names below it DNSSEC-secure or insecure, like a (un)signed zone.

        The setting of the closest enclosing name wins; without one, the
        default given to the constructor applies.
        """
        with self._lock:
            self._authentic[_name(name)] = authentic

    def set_authentic_default(self, authentic: bool) -> None:
        with self._lock:
            self._authentic_default = authentic

    def fail(self, name: str, failure: Failure, rdtype: str | None = None) -> None:
        """Make queries for name (of one type, or all) fail: SERVFAIL, REFUSED or no answer."""
        typ = None if rdtype is None else dns.rdatatype.from_text(rdtype)
        with self._lock:
            self._failures[(_name(name), typ)] = failure

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def truncate(self, name: str) -> None:
        """Always answer queries for name over UDP with TC set, so clients retry over TCP."""
        with self._lock:
            self._truncate.add(_name(name))

    def queries_for(self, name: str) -> list[Query]:
        n = name.rstrip(".").lower()
        with self._lock:
            return [q for q in self.queries if q.name == n]

    # Answering.

    def _is_authentic(self, name: dns.name.Name) -> bool:
        n = name
        while True:
            v = self._authentic.get(n)
            if v is not None:
                return v
            if n == dns.name.root:
                return self._authentic_default
            n = n.parent()

    def _exists(self, name: dns.name.Name) -> bool:
        return any(owner.is_subdomain(name) for owner, _ in self._records)

    def _soa(self, name: dns.name.Name) -> dns.rrset.RRset:
        n = name
        while True:
            rrset = self._records.get((n, dns.rdatatype.SOA))
            if rrset is not None:
                return rrset
            if n == dns.name.root:
                return _DEFAULT_SOA
            n = n.parent()

    def _failure(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Failure | None:
        return self._failures.get((name, rdtype)) or self._failures.get((name, None))

    def answer(self, wire: bytes, transport: Literal["udp", "tcp"]) -> bytes | None:
        """The wire response to a wire query; None to send nothing."""
        try:
            request = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # Not a query we can answer to.
        if request.flags & dns.flags.QR:
            return None  # A response; answering could loop.
        try:
            return self._answer(request, transport)
        except Exception:
            # A bug here must show in the test output, not as a client timeout.
            log.exception("dns test server: answering %s", request.question)
            response = dns.message.make_response(request)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()

    def _answer(self, request: dns.message.Message, transport: Literal["udp", "tcp"]) -> bytes | None:
        if len(request.question) != 1:
            response = dns.message.make_response(request)
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = request.question[0]
        qname, qtype = question.name, question.rdtype
        wants_ad = bool(request.flags & dns.flags.AD or request.ednsflags & dns.flags.DO)
        with self._lock:
            self.queries.append(
                Query(
                    qname.to_text(omit_final_dot=True).lower() or ".",
                    dns.rdatatype.to_text(qtype),
                    transport,
                    wants_ad,
                )
            )
            failure = self._failure(qname, qtype)
            if failure == "drop":
                return None
            response = dns.message.make_response(request, our_payload=UDP_MAX_PAYLOAD)
            response.flags |= dns.flags.RA
            if failure is not None:
                response.set_rcode(dns.rcode.SERVFAIL if failure == "servfail" else dns.rcode.REFUSED)
                return response.to_wire()
            if question.rdclass != dns.rdataclass.IN:
                response.set_rcode(dns.rcode.REFUSED)
                return response.to_wire()
            self._fill(response, qname, qtype, wants_ad)
            if transport == "tcp":
                return response.to_wire(max_size=65535)
            if qname not in self._truncate:
                limit = UDP_MIN_PAYLOAD
                if request.edns >= 0:
                    limit = max(UDP_MIN_PAYLOAD, min(request.payload, UDP_MAX_PAYLOAD))
                try:
                    return response.to_wire(max_size=limit)
                except dns.exception.TooBig:
                    pass
        truncated = dns.message.make_response(request, our_payload=UDP_MAX_PAYLOAD)
        truncated.flags |= dns.flags.RA | dns.flags.TC
        return truncated.to_wire()

    def _fill(
        self,
        response: dns.message.Message,
        qname: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        wants_ad: bool,
    ) -> None:
        name = qname
        authentic = True
        for _ in range(MAX_CNAME_CHAIN):
            authentic = authentic and self._is_authentic(name)
            rrset = self._records.get((name, qtype))
            if rrset is not None:
                response.answer.append(rrset)
                break
            cname = self._records.get((name, dns.rdatatype.CNAME)) if qtype != dns.rdatatype.CNAME else None
            if cname is None:
                # RFC 2308: NXDOMAIN or NODATA, with the SOA for negative caching.
                if not self._exists(name):
                    response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa(name))
                break
            response.answer.append(cname)
            rd = next(iter(cname))
            assert isinstance(rd, dns.rdtypes.ANY.CNAME.CNAME)
            name = rd.target
        else:
            response.answer.clear()
            response.set_rcode(dns.rcode.SERVFAIL)
            return
        if wants_ad and authentic:
            response.flags |= dns.flags.AD

    # Serving.

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:
            if not self._started.is_set():
                self._start_error = e
                self._started.set()
            else:
                raise
        finally:
            loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        transport, tcp_server = await self._bind(loop)
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            transport.close()
            await self._close_tcp(tcp_server)

    async def _close_tcp(self, tcp_server: asyncio.Server) -> None:
        """Stop accepting, and close connections still open (a client waiting on a dropped query)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1

        def others() -> set[asyncio.Task[object]]:
            return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

        # First let connections being accepted reach their handler: asyncio
        # (3.11) leaks the socket of an accept still in flight when the
        # server is closed.
        while (starting := others() - self._tcp_tasks) and loop.time() < deadline:
            await asyncio.wait(starting, timeout=0.01)
        tcp_server.close()
        # Then end the handlers: on end-of-stream they return and close.
        while (tasks := others()) and loop.time() < deadline:
            for writer in list(self._tcp_writers):
                writer.transport.abort()
            await asyncio.wait(tasks, timeout=0.01)
        for t in others():
            t.cancel()
        await asyncio.gather(*others(), return_exceptions=True)
        await tcp_server.wait_closed()
        await asyncio.sleep(0)  # Let aborted transports close their sockets.

    async def _bind(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.DatagramTransport, asyncio.Server]:
        # UDP on an ephemeral port, then TCP on the same number; retry if that
        # number happens to be taken for TCP.
        last: OSError | None = None
        for _ in range(20):
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self), local_addr=(self.host, 0)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                tcp_server = await asyncio.start_server(self._handle_tcp, self.host, port)
            except OSError as e:
                transport.close()
                last = e
                continue
            self.port = port
            return transport, tcp_server
        raise OSError(f"cannot bind UDP and TCP to one port on {self.host}: {last}")

    async def _handle_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # RFC 1035 section 4.2.2: two-octet length prefix; several queries per connection.
        task = asyncio.current_task()
        if task is not None:
            self._tcp_tasks.add(task)
        self._tcp_writers.add(writer)
        try:
            while True:
                try:
                    header = await reader.readexactly(2)
                    (length,) = struct.unpack("!H", header)
                    wire = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                response = self.answer(wire, "tcp")
                if response is None:
                    continue  # Dropped: the client waits until its timeout.
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        finally:
            self._tcp_writers.discard(writer)
            if task is not None:
                self._tcp_tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSTestServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        response = self.server.answer(data, "udp")
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)


@contextlib.contextmanager
def isolated_default_dns() -> Iterator[DNSTestServer]:
    """Point MOX_DNS (and so the default resolver, also of child processes) at an
    empty loopback server for the duration: nothing reaches the machine's resolver."""
    from mox.dns.resolver import set_default_resolver

    with DNSTestServer() as server:
        old = os.environ.get("MOX_DNS")
        os.environ["MOX_DNS"] = server.address
        set_default_resolver(None)
        try:
            yield server
        finally:
            if old is None:
                os.environ.pop("MOX_DNS", None)
            else:
                os.environ["MOX_DNS"] = old
            set_default_resolver(None)
