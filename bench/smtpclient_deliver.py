"""Benchmark: messages per second delivered by mox.smtpclient to a minimal asyncio SMTP sink on loopback.

The sink answers every command at once and discards message data (PIPELINING,
8BITMIME, and CHUNKING unless --no-chunking). Measured:

- ``sink``: the sink alone, fed by a raw client that writes pre-encoded
  transactions (MAIL, RCPT, DATA, data, "."; or BDAT) and only counts replies:
  the ceiling set by the sink and the loop, so it is clear the sink is not the
  bottleneck.
- ``client_1conn``: mox.smtpclient, all messages over one connection.
- ``client_<n>conn``: the same messages over n connections in parallel.

Each run delivers --messages messages of --size octets. The sink runs in a
separate process (so client and sink do not share one event loop). Prints one
JSON line.

    .venv/bin/python bench/smtpclient_deliver.py [--messages 2000] [--size 2048] [--conns 4] [--no-chunking]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Report

from mox import mlog
from mox.smtpclient import Timeouts, TLSConfig, TLSMode, connect


async def _sink_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunking: bool) -> None:
    exts = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 104857600"]
    if chunking:
        exts.append("CHUNKING")
    writer.write(b"220 sink ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                out = b"250-sink\r\n" + b"".join(b"250-" + e.encode() + b"\r\n" for e in exts[:-1])
                writer.write(out + b"250 " + exts[-1].encode() + b"\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go\r\n")
                while True:
                    ln = await reader.readline()
                    if not ln or ln == b".\r\n":
                        break
                writer.write(b"250 2.0.0 ok\r\n")
            elif verb == b"BDAT":
                n = int(line.split()[1])
                await reader.readexactly(n)
                writer.write(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"250 ok\r\n")
            # Only drain when output piles up: replies to a pipelined group go out together.
            if writer.transport.get_write_buffer_size() > 65536:
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def _sink_process(conn: Connection, chunking: bool) -> None:
    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: _sink_session(r, w, chunking), "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(run())


async def raw_client(port: int, n: int, msg: bytes, chunking: bool) -> float:
    """Pre-encoded transactions over one connection; returns seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(b"EHLO raw\r\n")
    while not (await reader.readline()).startswith(b"250 "):
        pass
    if chunking:
        tx = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT %d LAST\r\n%s" % (len(msg), msg)
        per = 3
    else:
        tx = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" + msg + b".\r\n"
        per = 4
    t0 = time.perf_counter()
    window = 32  # Transactions in flight.
    sent = 0
    got = 0
    while got < n * per:
        while sent < n and sent * per - got < window * per:
            writer.write(tx)
            sent += 1
        await writer.drain()
        await reader.readline()
        got += 1
    elapsed = time.perf_counter() - t0
    writer.close()
    return elapsed


async def client_run(port: int, n: int, conns: int, msg: bytes) -> float:
    t = Timeouts(command=30, data_final=30)
    clients = [
        await connect(
            "127.0.0.1", port, ehlo_hostname="bench.example", tls=TLSConfig(mode=TLSMode.SKIP), timeouts=t
        )
        for _ in range(conns)
    ]

    async def worker(i: int) -> None:
        c = clients[i]
        for _ in range(i, n, conns):
            res = await c.deliver("a@example.com", ["b@example.org"], msg)
            assert res.delivered

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(conns)))
    elapsed = time.perf_counter() - t0
    for c in clients:
        await c.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--no-chunking", action="store_true")
    args = ap.parse_args()
    mlog.set_config({"": mlog.Level.ERROR})
    chunking = not args.no_chunking

    line = b"x" * 76 + b"\r\n"
    head = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n"
    msg = head + line * max(1, (args.size - len(head)) // len(line))
    if len(msg) < args.size:
        msg += b"y" * max(0, args.size - len(msg) - 2) + b"\r\n"

    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=_sink_process, args=(child, chunking), daemon=True)
    proc.start()
    port = parent.recv()
    try:

        async def all_runs() -> dict[str, object]:
            out: dict[str, object] = {}
            sink = await raw_client(port, args.messages, msg, chunking)
            out["sink_msgs_per_s"] = round(args.messages / sink)
            one = await client_run(port, args.messages, 1, msg)
            out["client_1conn_msgs_per_s"] = round(args.messages / one)
            many = await client_run(port, args.messages, args.conns, msg)
            out[f"client_{args.conns}conn_msgs_per_s"] = round(args.messages / many)
            return out

        result: dict[str, object] = {
            "bench": "smtpclient_deliver",
            "messages": args.messages,
            "size": len(msg),
            "chunking": chunking,
        }
        result.update(asyncio.run(all_runs()))
        report = Report("mox.smtpclient to a loopback sink")
        report.add(result)
        report.table()
    finally:
        proc.kill()
        proc.join()


if __name__ == "__main__":
    main()
