"""Serving the zone text that quickstart and dnsrecords print from a test DNS server."""

from __future__ import annotations

import dns.name
import dns.zone

from mox.dns.testserver import DNSTestServer


def serve_zone(server: DNSTestServer, text: str) -> int:
    """Add every record of a printed zone (absolute names, $TTL, parentheses) to server; returns the count."""
    zone = dns.zone.from_text(text, origin=dns.name.root, relativize=False, check_origin=False)
    n = 0
    for name, rdataset in zone.iterate_rdatasets():
        for rd in rdataset:
            server.add(name.to_text(), dns.rdatatype.to_text(rdataset.rdtype), rd.to_text())
            n += 1
    return n
