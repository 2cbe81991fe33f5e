"""Helpers for quickstart tests: the host's DNS records, and a quickstart run against a test server."""

from __future__ import annotations

import io
from pathlib import Path

from mox.dns.testserver import DNSTestServer
from mox.quickstart import Options, Result, run

HOST_IP = "192.0.2.10"


def host_dns(server: DNSTestServer) -> None:
    """What a validating resolver would answer for a new, DNSSEC-signed domain with only the host's address."""
    server.add_ns("com", "a.gtld-servers.net")
    server.set_authentic("com")
    server.add_a("mail.example.org", HOST_IP)
    server.add_ptr(HOST_IP, "mail.example.org")
    server.set_authentic("example.org")


async def quickstart_in(root: Path, server: DNSTestServer, **kw: object) -> tuple[Result, str]:
    out = io.StringIO()
    opts = Options("jan@example.org", user="0", hostname="mail.example.org", **kw)  # type: ignore[arg-type]
    res = await run(opts, root, out, resolver=server.resolver())
    return res, out.getvalue()
