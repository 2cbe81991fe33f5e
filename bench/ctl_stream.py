"""Throughput of data streams over the ctl socket, each way.

Starts a ctl server in a child process (as ``mox serve`` would be) on a
unix socket in a temporary directory, and from this process (as the ``mox``
command line would) streams SIZE bytes to it ("upload", like an mbox import)
and SIZE bytes from it ("download", like an export). Prints one line of JSON:
MB/s each way (MB = 10^6 bytes) and both processes' peak RSS.

Usage: python bench/ctl_stream.py [--size-mb 200] [--chunk-kib 256]

Bounded: every transfer runs under a socket timeout, the server child is
killed when done, and memory does not grow with the size (that is the point).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Report

from mox.ctl import CtlClient, CtlConn, CtlServer
from mox.ctl.protocol import DEFAULT_CHUNK_SIZE, STREAM_WINDOW

BLOCK = os.urandom(1024 * 1024)
TRANSFER_TIMEOUT = 300.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def blocks(size: int) -> Iterator[memoryview]:
    view = memoryview(BLOCK)
    while size > 0:
        n = min(size, len(BLOCK))
        yield view[:n]
        size -= n


async def upload(conn: CtlConn, args: list[str]) -> int:
    n = 0
    async for chunk in conn.recv_stream():
        n += len(chunk)
    return n


async def download(conn: CtlConn, args: list[str]) -> int:
    size, chunk_size = int(args[0]), int(args[1])

    async def source() -> AsyncIterator[memoryview]:
        for b in blocks(size):
            yield b

    return await conn.send_stream(source(), chunk_size=chunk_size)


async def stats(conn: CtlConn, args: list[str]) -> dict[str, Any]:
    return {"peak_rss_mb": peak_rss_mb()}


async def serve(path: str) -> None:
    server = CtlServer(path, {"upload": upload, "download": download, "stats": stats})
    await server.start()
    print("ready", flush=True)
    # Until our parent closes stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.close()


def measure(path: str, size: int, chunk_size: int) -> dict[str, Any]:
    c = CtlClient.connect(path, timeout=TRANSFER_TIMEOUT)
    c.start("upload")
    t0 = time.perf_counter()
    c.send_stream(blocks(size), chunk_size=chunk_size)
    got = c.finish()
    up = time.perf_counter() - t0
    assert got == size, (got, size)

    received = 0

    def sink(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    t0 = time.perf_counter()
    sent = CtlClient.connect(path, timeout=TRANSFER_TIMEOUT).call(
        "download", [str(size), str(chunk_size)], recv_stream_to=sink
    )
    down = time.perf_counter() - t0
    assert sent == received == size, (sent, received, size)

    server_stats = CtlClient.connect(path, timeout=TRANSFER_TIMEOUT).call("stats")
    return {
        "bench": "ctl_stream",
        "size_mb": round(size / 1e6, 1),
        "chunk_kib": chunk_size // 1024,
        "window": STREAM_WINDOW,
        "upload_mb_s": round(size / up / 1e6, 1),
        "download_mb_s": round(size / down / 1e6, 1),
        "upload_s": round(up, 3),
        "download_s": round(down, 3),
        "server_peak_rss_mb": round(server_stats["peak_rss_mb"], 1),
        "client_peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=200, help="bytes each way, in MB (10^6)")
    ap.add_argument("--chunk-kib", type=int, default=DEFAULT_CHUNK_SIZE // 1024, help="data frame size")
    ap.add_argument("--serve", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return

    with tempfile.TemporaryDirectory(prefix="ctlbench") as tmp:
        path = os.path.join(tmp, "ctl")
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            if child.stdout.readline().strip() != "ready":
                raise SystemExit("ctl bench server did not start")
            result = measure(path, int(args.size_mb * 1e6), args.chunk_kib * 1024)
            child.stdin.close()
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    report = Report("ctl socket byte streams, each way")
    report.add(result)
    report.table()


if __name__ == "__main__":
    main()
