"""The loopback test DNS server, queried directly with dnspython."""

import socket
import threading

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from mox.dns.testserver import DNSTestServer


def query(
    srv: DNSTestServer, name: str, rdtype: str, *, ad: bool = False, tcp: bool = False
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if ad:
        q.flags |= dns.flags.AD
    if tcp:
        return dns.query.tcp(q, srv.host, port=srv.port, timeout=2)
    return dns.query.udp(q, srv.host, port=srv.port, timeout=2)


def test_address_is_usable_for_mox_dns(dns_server: DNSTestServer) -> None:
    host, port = dns_server.address.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) == dns_server.port > 0


def test_udp_and_tcp_on_same_port(dns_server: DNSTestServer) -> None:
    dns_server.add_a("example.com", "192.0.2.1")
    for tcp in (False, True):
        r = query(dns_server, "example.com", "A", tcp=tcp)
        assert r.rcode() == dns.rcode.NOERROR
        assert [rd.to_text() for rd in r.answer[0]] == ["192.0.2.1"]
        assert r.flags & dns.flags.RA
    assert [q.transport for q in dns_server.queries] == ["udp", "tcp"]


def test_negative_answers_carry_soa(dns_server: DNSTestServer) -> None:
    dns_server.add_soa("example.com", negative_ttl=60)
    dns_server.add_a("www.example.com", "192.0.2.1")
    nx = query(dns_server, "absent.example.com", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    nodata = query(dns_server, "www.example.com", "MX")
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
    for r in (nx, nodata):
        (soa,) = r.authority
        assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "example.com."
        assert next(iter(soa)).minimum == 60
    # Without a zone SOA, a default one at the root.
    other = query(dns_server, "absent.example.org", "A")
    assert other.authority[0].name.to_text() == "."


def test_ad_bit_only_when_asked(dns_server: DNSTestServer) -> None:
    # RFC 6840 section 5.7: validators set AD only for queries with AD or DO.
    dns_server.add_txt("example.com", "x")
    dns_server.set_authentic("example.com")
    assert not query(dns_server, "example.com", "TXT").flags & dns.flags.AD
    assert query(dns_server, "example.com", "TXT", ad=True).flags & dns.flags.AD
    q = dns.message.make_query("example.com", "TXT", want_dnssec=True)
    assert dns.query.udp(q, dns_server.host, port=dns_server.port, timeout=2).flags & dns.flags.AD


def test_authentic_default_and_closest_setting(dns_server: DNSTestServer) -> None:
    dns_server.add_txt("a.example.com", "x")
    dns_server.add_txt("b.insecure.example.com", "y")
    dns_server.set_authentic_default(True)
    dns_server.set_authentic("insecure.example.com", False)
    assert query(dns_server, "a.example.com", "TXT", ad=True).flags & dns.flags.AD
    assert not query(dns_server, "b.insecure.example.com", "TXT", ad=True).flags & dns.flags.AD


def test_cname_chain_in_answer(dns_server: DNSTestServer) -> None:
    dns_server.add_cname("www.example.com", "host.example.net")
    dns_server.add_a("host.example.net", "192.0.2.5")
    r = query(dns_server, "www.example.com", "A")
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    # A CNAME query gets only the CNAME.
    r = query(dns_server, "www.example.com", "CNAME")
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.CNAME]


def test_cname_loop_is_servfail(dns_server: DNSTestServer) -> None:
    dns_server.add_cname("a.example", "b.example")
    dns_server.add_cname("b.example", "a.example")
    assert query(dns_server, "a.example", "A").rcode() == dns.rcode.SERVFAIL


def test_records_added_and_removed_at_run_time(dns_server: DNSTestServer) -> None:
    dns_server.add_zone_text(
        """
        ; a comment
        example.com.  60 IN MX 10 mx.example.com.
        example.com.  TXT "v=spf1 ip4:192.0.2.1 -all" ; trailing comment
        mx.example.com  A 192.0.2.1
        """
    )
    r = query(dns_server, "example.com", "MX")
    assert r.answer[0].ttl == 60
    assert next(iter(r.answer[0])).exchange.to_text() == "mx.example.com."
    txt = query(dns_server, "example.com", "TXT")
    assert next(iter(txt.answer[0])).strings == (b"v=spf1 ip4:192.0.2.1 -all",)
    dns_server.remove("example.com", "MX")
    assert query(dns_server, "example.com", "MX").answer == []
    dns_server.remove("example.com")
    # Still exists as an empty non-terminal above mx.example.com.
    ent = query(dns_server, "example.com", "TXT")
    assert (ent.rcode(), ent.answer) == (dns.rcode.NOERROR, [])
    dns_server.remove("mx.example.com")
    assert query(dns_server, "example.com", "TXT").rcode() == dns.rcode.NXDOMAIN
    dns_server.add_a("mx.example.com", "192.0.2.1")
    dns_server.clear()
    assert dns_server.queries == []
    assert query(dns_server, "mx.example.com", "A").rcode() == dns.rcode.NXDOMAIN


def test_bad_zone_line_rejected(dns_server: DNSTestServer) -> None:
    with pytest.raises(ValueError, match="bad record line"):
        dns_server.add_zone_text("example.com. 300 IN")


def test_failures_and_clearing(dns_server: DNSTestServer) -> None:
    dns_server.add_a("example.com", "192.0.2.1")
    dns_server.fail("example.com", "servfail")
    assert query(dns_server, "example.com", "A").rcode() == dns.rcode.SERVFAIL
    dns_server.fail("example.com", "refused", rdtype="A")
    assert query(dns_server, "example.com", "A").rcode() == dns.rcode.REFUSED
    assert query(dns_server, "example.com", "TXT").rcode() == dns.rcode.SERVFAIL
    dns_server.fail("example.com", "drop")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(
            dns.message.make_query("example.com", "TXT"), dns_server.host, port=dns_server.port, timeout=0.2
        )
    with pytest.raises(dns.exception.Timeout):
        dns.query.tcp(
            dns.message.make_query("example.com", "TXT"), dns_server.host, port=dns_server.port, timeout=0.2
        )
    assert [q.transport for q in dns_server.queries[-2:]] == ["udp", "tcp"]
    dns_server.clear_failures()
    assert query(dns_server, "example.com", "A").rcode() == dns.rcode.NOERROR


def test_close_with_client_connection_still_open() -> None:
    with DNSTestServer() as srv:
        srv.fail("example.com", "drop")
        conn = socket.create_connection((srv.host, srv.port))
        q = dns.message.make_query("example.com", "A").to_wire()
        conn.sendall(len(q).to_bytes(2, "big") + q)
    # Closed by the server on shutdown: end of stream, or a reset for the unread query.
    try:
        conn.settimeout(2)
        try:
            assert conn.recv(10) == b""
        except ConnectionResetError:
            pass
    finally:
        conn.close()


def test_truncation_without_edns_at_512(dns_server: DNSTestServer) -> None:
    dns_server.add_txt("example.com", *(f"{i}" + "y" * 200 for i in range(3)))
    q = dns.message.make_query("example.com", "TXT", use_edns=False)
    r = dns.query.udp(q, dns_server.host, port=dns_server.port, timeout=2, raise_on_truncation=False)
    assert r.flags & dns.flags.TC and r.answer == []
    q = dns.message.make_query("example.com", "TXT", use_edns=0, payload=1232)
    r = dns.query.udp(q, dns_server.host, port=dns_server.port, timeout=2)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 3


def test_garbage_is_ignored_and_server_keeps_running(dns_server: DNSTestServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x00\x01garbage", (dns_server.host, dns_server.port))
    dns_server.add_a("example.com", "192.0.2.1")
    assert query(dns_server, "example.com", "A").rcode() == dns.rcode.NOERROR


def test_concurrent_mutation_and_queries(dns_server: DNSTestServer) -> None:
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            dns_server.add_a("churn.example", f"192.0.2.{i % 250 + 1}")
            dns_server.remove("churn.example")
            i += 1

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(20):
            assert query(dns_server, "churn.example", "A").rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    finally:
        stop.set()
        t.join()


def test_start_twice_and_close_idempotent() -> None:
    srv = DNSTestServer().start()
    with pytest.raises(RuntimeError):
        srv.start()
    srv.close()
    srv.close()
