"""HTTP ports import aiohttp at their first connection, not at start (localserve's resident memory, issue 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import asyncio, sys
from pathlib import Path
from mox.config.example import free_local_ports
from mox.localserve import write_config
from mox.localserve.resolver import LocalOnlyResolver
from mox.serve.server import Server

async def main(root):
    ports = free_local_ports()
    cfg = await write_config(Path(root), ip="127.0.0.1", ports=ports)
    server = Server(cfg, localserve=True, resolver=LocalOnlyResolver())
    await server.start()
    try:
        print("before", "aiohttp" in sys.modules)
        for port, ssl in ((ports.http, None), (ports.https, False)):
            import ssl as ssl_mod
            ctx = None
            if ssl is not None:
                ctx = ssl_mod.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl_mod.CERT_NONE
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
            w.write(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = await r.read()
            w.close()
            head = data.split(b"\r\n\r\n", 1)[0].decode()
            print("status", head.split("\r\n")[0])
            print("ours", "X-Frame-Options: deny" in head)
        print("after", "aiohttp" in sys.modules)
    finally:
        await server.shutdown()

asyncio.run(main(sys.argv[1]))
"""


def test_http_imports_aiohttp_on_first_connection(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ls")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "before False"
    # Both the plain and the TLS port answer through mox.http.web once aiohttp is loaded.
    statuses = [x for x in lines if x.startswith("status ")]
    assert len(statuses) == 2 and all(s.startswith("status HTTP/1.1 ") for s in statuses), lines
    assert lines.count("ours True") == 2, lines
    assert lines[-1] == "after True"
