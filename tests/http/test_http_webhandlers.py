"""WebHandlers (WebStatic, WebRedirect, WebForward) through a real aiohttp endpoint on loopback, a loopback
backend for WebForward, and one real ``mox serve`` answering a static handler over HTTPS."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import re
import ssl
import sys
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from mox.config import model, sconf
from mox.config.example import local_dynamic, local_static
from mox.config.load import Config, load_config
from mox.http import webhandlers
from mox.http.web import HTTPEndpoint
from mox.http.webhandlers import (
    RangeError,
    accepts_gzip,
    clean_path,
    expand_template,
    join_url_path,
    parse_range,
    parse_response_head,
    websocket_accept,
)
from mox.serve.listeners import Endpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "conformance"))
from serve_harness import MoxServe

WH = model.WebHandler

# Pure helpers.


def test_clean_path_examples() -> None:
    assert clean_path("/a/../b") == "/b"
    assert clean_path("/../../etc/passwd") == "/etc/passwd"
    assert clean_path("/a//b/./c/") == "/a/b/c/"
    assert clean_path("") == "/"
    assert clean_path("/a/b/..") == "/a"
    assert clean_path("/a/b/../") == "/a/"


@given(st.text(alphabet="/.ab%", max_size=30))
def test_clean_path_properties(p: str) -> None:
    c = clean_path(p)
    assert c.startswith("/")
    assert ".." not in c.split("/") and "." not in c.split("/") and "//" not in c
    assert clean_path(c) == c


def test_expand_template_as_go() -> None:
    m = re.search(r"^/old/(?P<rest>.*)$", "/old/x/y")
    assert m is not None
    assert expand_template("/new/$1", m) == "/new/x/y"
    assert expand_template("/new/${1}.html", m) == "/new/x/y.html"
    assert expand_template("/n/$rest/${rest}", m) == "/n/x/y/x/y"
    # $1x is the (unknown) group "1x", as Go; $$ is a dollar; a lone $ stays.
    assert expand_template("/$1x/$$/$-/${", m) == "//$/$-/${"
    assert expand_template("$9", m) == ""


@given(st.text(max_size=30))
def test_expand_template_total(t: str) -> None:
    m = re.search(r"(a)?(?P<n>b)?", "ab")
    assert m is not None
    out = expand_template(t, m)
    if "$" not in t:
        assert out == t


def test_parse_range_examples() -> None:
    assert parse_range("bytes=0-9", 100) == [(0, 10)]
    assert parse_range("bytes=90-", 100) == [(90, 10)]
    assert parse_range("bytes=-10", 100) == [(90, 10)]
    assert parse_range("bytes=95-200", 100) == [(95, 5)]
    assert parse_range("bytes=0-1, 5-6", 100) == [(0, 2), (5, 2)]
    assert parse_range("bytes=0-, 0-", 100) == []  # more than the whole: serve it all
    for bad in ("bytes=5-1", "items=0-1", "bytes=x-1", "bytes=-", "bytes="):
        with pytest.raises(RangeError):
            parse_range(bad, 100)
    with pytest.raises(RangeError):
        parse_range("bytes=100-", 100)


@given(st.text(alphabet="bytes=0123456789-, ", max_size=25), st.integers(0, 50))
def test_parse_range_within_content(h: str, size: int) -> None:
    try:
        ranges = parse_range(h, size)
    except RangeError:
        return
    for start, n in ranges:
        assert 0 <= start and n > 0 and start + n <= size


def test_accepts_gzip_and_join() -> None:
    assert accepts_gzip("gzip, deflate")
    assert accepts_gzip("br;q=1.0, gzip;q=0.5")
    assert not accepts_gzip("gzip;q=0, br")
    assert not accepts_gzip("identity")
    assert join_url_path("/base", "/x") == "/base/x"
    assert join_url_path("/base/", "/x") == "/base/x"
    assert join_url_path("/base", "") == "/base"
    assert join_url_path("", "/x") == "/x"


@given(
    st.integers(100, 599),
    st.lists(
        st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True), st.from_regex(r"[ -~]{0,20}", fullmatch=True)),
        max_size=5,
    ),
)
def test_parse_response_head_roundtrip(status: int, fields: list[tuple[str, str]]) -> None:
    raw = f"HTTP/1.1 {status} Whatever\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    got, headers = parse_response_head(raw.encode())
    assert got == status
    assert [(k, v) for k, v in headers.items()] == [(k, v.strip(" \t")) for k, v in fields]
    with pytest.raises(ValueError):
        parse_response_head(b"HTTP/1.1 20x\r\n")
    with pytest.raises(ValueError):
        parse_response_head(b"HTTP/1.1 200 OK\r\nno colon\r\n")


# A real endpoint on loopback.

Serve = Callable[..., Any]


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mox.config.example import write_local_config

    return write_local_config(tmp_path_factory.mktemp("webhandlers"))


@pytest.fixture
def cfg(config_path: Path) -> Config:
    return load_config(config_path)


@pytest.fixture
async def serve(cfg: Config) -> AsyncIterator[Serve]:
    """serve(handlers, tls=True): the URL of an endpoint with WebserverHTTP(S) and the given WebHandlers.
    "TLS" is the endpoint's flag (served without TLS here; the mox serve test below uses real TLS)."""
    servers: list[tuple[asyncio.AbstractServer, web.Server]] = []

    async def start(handlers: list[model.WebHandler], tls: bool = True) -> str:
        cfg.dynamic.WebHandlers = handlers
        ep = Endpoint("local", "HTTP", "127.0.0.1", 0, tls, ["WebserverHTTPS" if tls else "WebserverHTTP"])
        handler = HTTPEndpoint(SimpleNamespace(cfg=cfg, autotls=None), ep)  # type: ignore[arg-type]
        srv = web.Server(handler.handle)
        s = await asyncio.get_running_loop().create_server(srv, "127.0.0.1", 0)
        servers.append((s, srv))
        return f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}"

    yield start
    for s, srv in servers:
        s.close()
        await srv.shutdown()


async def _req(
    url: str, host: str = "www.example", method: str = "GET", headers: dict[str, str] | None = None, data: Any = None
) -> tuple[int, bytes, Any]:
    async with (
        aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("Accept-Encoding",)) as s,
        s.request(
            method,
            yarl.URL(url, encoded=True),
            headers={"Host": host, **(headers or {})},
            data=data,
            allow_redirects=False,
        ) as r,
    ):
        return r.status, await r.read(), r.headers


async def _raw(url: str, target: str, host: str = "www.example") -> bytes:
    """A request with the target exactly as given (aiohttp's client would normalize dot segments)."""
    u = yarl.URL(url)
    reader, writer = await asyncio.open_connection(u.host, u.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "a.txt").write_text("0123456789" * 10)
    (root / "big.css").write_text("body { color: red; }\n" * 200)
    (root / "sub" / "c.json").write_text('{"x": 1}')
    (root / "noext").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "out.txt")
    os.symlink(tmp_path, root / "outdir")
    os.symlink(root / "a.txt", root / "sub" / "in.txt")
    return root


def _static(root: Path, **kw: Any) -> model.WebHandler:
    return WH(LogName="static", Domain="www.example", PathRegexp="^/", WebStatic=model.WebStatic(Root=str(root), **kw))


async def test_static_files_index_types_and_head(serve: Serve, site: Path) -> None:
    base = await serve([_static(site, ResponseHeaders={"Cache-Control": "max-age=60"})])
    status, body, h = await _req(base + "/")
    assert (status, body, h["Content-Type"]) == (200, b"<h1>home</h1>", "text/html; charset=utf-8")
    assert h["Cache-Control"] == "max-age=60" and "ETag" in h and "Last-Modified" in h
    status, body, h = await _req(base + "/sub/c.json")
    assert (status, body, h["Content-Type"]) == (200, b'{"x": 1}', "application/json")
    status, _, h = await _req(base + "/noext")
    assert (status, h["Content-Type"]) == (200, "application/octet-stream")
    status, body, h = await _req(base + "/a.txt", method="HEAD")
    assert (status, body, h["Content-Length"]) == (200, b"", "100")
    # A directory without slash is redirected; a file with one is not found.
    status, _, h = await _req(base + "/sub?x=1")
    assert (status, h["Location"]) == (307, "/sub/")
    assert (await _req(base + "/a.txt/"))[0] == 404
    assert (await _req(base + "/nonexistent"))[0] == 404
    assert (await _req(base + "/a.txt", method="POST"))[0] == 405
    # Without ListFiles a directory without index.html is forbidden.
    assert (await _req(base + "/sub/"))[0] == 403


async def test_static_listing(serve: Serve, site: Path) -> None:
    base = await serve([WH(Domain="www.example", PathRegexp="^/files/", WebStatic=model.WebStatic(StripPrefix="/files/", Root=str(site / "sub"), ListFiles=True))])
    status, body, h = await _req(base + "/files/")
    assert status == 200 and h["Content-Type"] == "text/html; charset=utf-8"
    text = body.decode()
    assert '<a href="c.json">c.json</a>' in text and '<a href="in.txt">in.txt</a>' in text and "Size in MB" in text
    assert '<a href="..">' in text
    # in.txt links to a file above this handler's root: refused.
    assert (await _req(base + "/files/in.txt"))[0] == 403


async def test_static_conditional_and_ranges(serve: Serve, site: Path) -> None:
    base = await serve([_static(site)])
    _, _, h = await _req(base + "/a.txt")
    etag, lastmod = h["ETag"], h["Last-Modified"]
    status, body, h2 = await _req(base + "/a.txt", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"") and h2["ETag"] == etag
    assert (await _req(base + "/a.txt", headers={"If-Modified-Since": lastmod}))[0] == 304
    assert (await _req(base + "/a.txt", headers={"If-None-Match": '"other"'}))[0] == 200
    assert (await _req(base + "/a.txt", headers={"If-Match": '"other"'}))[0] == 412
    status, body, h = await _req(base + "/a.txt", headers={"Range": "bytes=10-14"})
    assert (status, body, h["Content-Range"]) == (206, b"01234", "bytes 10-14/100")
    status, body, h = await _req(base + "/a.txt", headers={"Range": "bytes=-3"})
    assert (status, body) == (206, b"789")
    status, body, h = await _req(base + "/a.txt", headers={"Range": "bytes=0-1,98-"})
    assert status == 206 and h["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert b"Content-Range: bytes 0-1/100\r\n\r\n01\r\n" in body and b"Content-Range: bytes 98-99/100\r\n\r\n89\r\n" in body
    assert int(h["Content-Length"]) == len(body)
    status, _, h = await _req(base + "/a.txt", headers={"Range": "bytes=200-"})
    assert (status, h["Content-Range"]) == (416, "bytes */100")
    # If-Range with another validator: the whole file.
    status, body, _ = await _req(base + "/a.txt", headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert (status, len(body)) == (200, 100)


async def test_static_traversal_refused(serve: Serve, site: Path) -> None:
    base = await serve([WH(Domain="www.example", PathRegexp="^/s/", WebStatic=model.WebStatic(StripPrefix="/s/", Root=str(site / "sub")))])
    for target in ("/s/../secret.txt", "/s/%2e%2e/secret.txt", "/s/%2e%2e%2fsecret.txt", "/s/..%2F..%2Fsecret.txt", "/s/../../a.txt"):
        resp = await _raw(base, target)
        assert b"secret" not in resp.split(b"\r\n\r\n", 1)[1] and b"0123456789" not in resp, target
        assert resp.startswith(b"HTTP/1.1 404"), (target, resp[:40])
    # Symlinks leading out of the root are refused, to a file or through a directory.
    base = await serve([_static(site)])
    assert (await _req(base + "/out.txt"))[0] == 403
    assert (await _req(base + "/outdir/secret.txt"))[0] == 403
    assert (await _req(base + "/outdir/"))[0] == 403
    # A symlink to a file inside the root is served.
    assert (await _req(base + "/sub/in.txt"))[1] == b"0123456789" * 10
    resp = await _raw(base, "/sub/%2e%2e/%2e%2e/secret.txt")
    assert resp.startswith(b"HTTP/1.1 404") and b"secret\n" not in resp


async def test_static_continue_not_found_and_compress(serve: Serve, site: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "only-here.txt").write_text("second")
    base = await serve([
        WH(Domain="www.example", PathRegexp="^/", Compress=True, WebStatic=model.WebStatic(Root=str(site), ContinueNotFound=True)),
        WH(Domain="www.example", PathRegexp="^/", WebStatic=model.WebStatic(Root=str(other))),
    ])  # fmt: skip
    assert (await _req(base + "/only-here.txt"))[1] == b"second"
    assert (await _req(base + "/a.txt"))[1] == b"0123456789" * 10
    status, body, h = await _req(base + "/big.css", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and h["Content-Encoding"] == "gzip" and h["ETag"].endswith('-gz"')
    assert gzip.decompress(body) == (site / "big.css").read_bytes()
    assert int(h["Content-Length"]) == len(body) < 4200
    # Not for clients that do not accept it, nor for small files, nor for ranges.
    _, body, h = await _req(base + "/big.css")
    assert "Content-Encoding" not in h and len(body) == 4200
    _, _, h = await _req(base + "/a.txt", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in h
    status, _, h = await _req(base + "/big.css", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert status == 206 and "Content-Encoding" not in h


async def test_redirects(serve: Serve) -> None:
    base = await serve([
        WH(Domain="www.example", PathRegexp="^/old/", WebRedirect=model.WebRedirect(OrigPathRegexp="^/old/(.*)$", ReplacePath="/new/$1", StatusCode=302)),
        WH(Domain="www.example", PathRegexp="^/moved", WebRedirect=model.WebRedirect(BaseURL="https://other.example/?from=mox#top")),
        WH(Domain="www.example", PathRegexp="^/proto", WebRedirect=model.WebRedirect(BaseURL="//other.example")),
        # Redirecting to the same URL does not match: the next handler answers.
        WH(Domain="www.example", PathRegexp="^/same", WebRedirect=model.WebRedirect(BaseURL="https://www.example")),
        WH(Domain="www.example", PathRegexp="^/same", WebRedirect=model.WebRedirect(BaseURL="https://final.example")),
    ])  # fmt: skip
    status, _, h = await _req(base + "/old/a%20b/c?q=1")
    assert (status, h["Location"]) == (302, "/new/a%20b/c?q=1")
    status, _, h = await _req(base + "/moved/x?y=2")
    assert (status, h["Location"]) == (308, "https://other.example/moved/x?from=mox&y=2#top")
    status, _, h = await _req(base + "/proto/p")
    assert (status, h["Location"]) == (308, "//other.example/proto/p")
    status, _, h = await _req(base + "/same/p", host="www.example")
    assert (status, h["Location"]) == (308, "https://final.example/same/p")


async def test_matching_order_and_plain_http(serve: Serve, site: Path) -> None:
    handlers = [
        WH(LogName="first", Domain="www.example", PathRegexp="^/a", WebRedirect=model.WebRedirect(BaseURL="https://first.example")),
        WH(LogName="second", Domain="www.example", PathRegexp="^/", WebRedirect=model.WebRedirect(BaseURL="https://second.example")),
        WH(Domain="other.example", PathRegexp="^/", DontRedirectPlainHTTP=True, WebStatic=model.WebStatic(Root=str(site))),
    ]
    base = await serve(handlers)
    assert (await _req(base + "/abc"))[2]["Location"] == "https://first.example/abc"
    assert (await _req(base + "/b"))[2]["Location"] == "https://second.example/b"
    assert (await _req(base + "/a.txt", host="other.example"))[1] == b"0123456789" * 10
    # No handler for the host: 404 from the endpoint.
    assert (await _req(base + "/", host="nothing.example"))[0] == 404
    # Over plain HTTP a matched handler redirects to HTTPS first, unless DontRedirectPlainHTTP.
    plain = await serve(handlers, tls=False)
    status, _, h = await _req(plain + "/b/c?x=1")
    assert (status, h["Location"]) == (308, "https://www.example/b/c?x=1")
    assert (await _req(plain + "/a.txt", host="other.example"))[1] == b"0123456789" * 10


# WebForward with a loopback backend.


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"release": asyncio.Event(), "got_first": asyncio.Event(), "done": asyncio.Event()}

    async def echo(request: web.Request) -> web.StreamResponse:
        state["seen"] = {
            "method": request.method,
            "path_qs": request.raw_path,
            "headers": dict(request.headers),
            "body": await request.read(),
        }
        return web.Response(
            text="hello from backend " * 100,
            content_type="text/plain",
            headers={"X-Backend": "1", "Keep-Alive": "timeout=5", "Connection": "X-Secret", "X-Secret": "hop"},
        )

    async def slow(request: web.Request) -> web.Response:
        await state["done"].wait()
        return web.Response(text="late")

    async def upload(request: web.Request) -> web.Response:
        # Counts the body in chunks; for the streaming test, the first chunk is announced before the
        # client sends the rest.
        n = 0
        async for chunk in request.content.iter_chunked(65536):
            if n == 0:
                state["got_first"].set()
            n += len(chunk)
        return web.Response(text=str(n))

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        resp = web.StreamResponse()
        resp.content_length = size
        await resp.prepare(request)
        chunk = b"x" * 65536
        sent = 0
        if request.query.get("wait"):
            await resp.write(chunk)
            sent = len(chunk)
            await state["release"].wait()
        while sent < size:
            n = min(len(chunk), size - sent)
            await resp.write(chunk[:n])
            sent += n
        return resp

    async def ws(request: web.Request) -> web.WebSocketResponse:
        w = web.WebSocketResponse()
        await w.prepare(request)
        async for msg in w:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await w.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await w.send_bytes(msg.data[::-1])
        return w

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/base/echo/{tail:.*}", echo)
    app.router.add_get("/base/slow", slow)
    app.router.add_post("/base/upload", upload)
    app.router.add_get("/base/download", download)
    app.router.add_get("/base/ws", ws)
    app.router.add_get("/base/notws", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/base", state
    state["done"].set()
    await runner.cleanup()


def _fwd(url: str, **kw: Any) -> model.WebHandler:
    return WH(Domain="www.example", PathRegexp="^/app/", WebForward=model.WebForward(URL=url, StripPath=True, **kw))


async def test_forward_request_and_response(serve: Serve, backend: tuple[str, dict[str, Any]]) -> None:
    url, state = backend
    base = await serve([_fwd(url, ResponseHeaders={"X-Added": "yes"})])
    status, body, h = await _req(
        base + "/app/echo/a%2Fb?x=1&y=2",
        method="PUT",
        data=b"payload",
        headers={"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=evil", "Connection": "X-Private", "X-Private": "p", "X-Keep": "k"},
    )
    assert status == 200 and body == b"hello from backend " * 100
    seen = state["seen"]
    assert seen["method"] == "PUT" and seen["body"] == b"payload"
    assert seen["path_qs"] == "/base/echo/a%2Fb?x=1&y=2"
    hdrs = seen["headers"]
    assert hdrs["Host"] == "www.example"  # Sent unmodified.
    assert hdrs["X-Forwarded-For"] == "127.0.0.1" and hdrs["X-Forwarded-Host"] == "www.example"
    assert hdrs["X-Forwarded-Proto"] == "https"
    assert "Forwarded" not in hdrs and "X-Private" not in hdrs and hdrs["X-Keep"] == "k"
    assert "User-Agent" not in hdrs or "aiohttp" in hdrs["User-Agent"]  # Only the client's own.
    assert h["X-Backend"] == "1" and h["X-Added"] == "yes"
    assert "X-Secret" not in h and "Keep-Alive" not in h

    # Without StripPath the whole path goes to the backend after the URL's path.
    base2 = await serve([WH(Domain="www.example", PathRegexp="^/echo/", WebForward=model.WebForward(URL=url))])
    assert (await _req(base2 + "/echo/z"))[0] == 200 and state["seen"]["path_qs"] == "/base/echo/z"


async def test_forward_compress_and_errors(serve: Serve, backend: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = backend
    base = await serve([WH(Domain="www.example", PathRegexp="^/app/", Compress=True, WebForward=model.WebForward(URL=url, StripPath=True))])
    status, body, h = await _req(base + "/app/echo/x", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and h["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == b"hello from backend " * 100

    # A backend that is not listening: 502 with an explanation.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    base = await serve([_fwd(f"http://127.0.0.1:{closed}/")])
    status, body, _ = await _req(base + "/app/x")
    assert status == 502 and body.startswith(b"502 - bad gateway - backend web server")

    # A backend that does not answer in time: 504.
    monkeypatch.setattr(webhandlers, "FORWARD_RESPONSE_TIMEOUT", 0.2)
    base = await serve([_fwd(url)])
    status, body, _ = await _req(base + "/app/slow")
    assert status == 504 and b"gateway timeout" in body


async def test_forward_streams_both_ways(serve: Serve, backend: tuple[str, dict[str, Any]]) -> None:
    url, state = backend
    base = await serve([_fwd(url)])

    # Upload: the backend sees the first chunk while the client still holds back the rest.
    async def body() -> AsyncIterator[bytes]:
        yield b"a" * 65536
        await asyncio.wait_for(state["got_first"].wait(), 10)
        yield b"b" * 65536

    status, out, _ = await _req(base + "/app/upload", method="POST", data=body())
    assert (status, out) == (200, b"131072")

    # Download: the client gets the first chunk while the backend still holds back the rest.
    async with aiohttp.ClientSession() as s, s.get(base + "/app/download?size=200000&wait=1", headers={"Host": "www.example"}) as r:
        first = await r.content.readexactly(65536)
        state["release"].set()
        rest = await r.read()
    assert len(first) + len(rest) == 200000


async def test_forward_large_bodies_bounded_memory(serve: Serve, backend: tuple[str, dict[str, Any]]) -> None:
    """16 MB up and 16 MB down through the proxy, client and backend reading in chunks: the peak
    of Python allocations in this process (client, proxy and backend together) stays far below it."""
    url, _ = backend
    base = await serve([_fwd(url)])
    size = 16 * 1024 * 1024
    chunk = b"z" * 65536

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        status, out, _ = await _req(base + "/app/upload", method="POST", data=body(), headers={"Content-Length": str(size)})
        assert (status, out) == (200, str(size).encode())
        n = 0
        async with aiohttp.ClientSession() as s, s.get(base + f"/app/download?size={size}", headers={"Host": "www.example"}) as r:
            assert r.status == 200
            async for c in r.content.iter_chunked(65536):
                n += len(c)
        assert n == size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024, peak


async def test_forward_websocket(serve: Serve, backend: tuple[str, dict[str, Any]]) -> None:
    url, _ = backend
    base = await serve([_fwd(url, ResponseHeaders={"X-Added": "ws"})])
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(base + "/app/ws", headers={"Host": "www.example"}) as ws:
            await ws.send_str("hi")
            assert (await ws.receive(timeout=10)).data == "echo:hi"
            big = os.urandom(300_000)
            await ws.send_bytes(big)
            assert (await ws.receive(timeout=10)).data == big[::-1]
            await ws.close()

    # A bad handshake is refused before the backend is asked; a backend without websocket: 400.
    key = base64.b64encode(b"0123456789abcdef").decode()
    wsh = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": key}
    status, _, h = await _req(base + "/app/ws", headers={**wsh, "Sec-WebSocket-Version": "8"})
    assert (status, h["Sec-WebSocket-Version"]) == (400, "13")
    status, _, _ = await _req(base + "/app/ws", headers={**wsh, "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "short"})
    assert status == 400
    status, body, _ = await _req(base + "/app/notws", headers={**wsh, "Sec-WebSocket-Version": "13"})
    assert status == 400 and b"websocket not supported" in body
    # The backend's handshake response reaches the client, with ResponseHeaders added.
    u = yarl.URL(base)
    reader, writer = await asyncio.open_connection(u.host, u.port)
    writer.write(
        "GET /app/ws HTTP/1.1\r\nHost: www.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n".encode()
    )
    status, rh = parse_response_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
    writer.close()
    assert (status, rh["X-Added"], rh["Sec-WebSocket-Accept"]) == (101, "ws", websocket_accept(key))
    assert websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3


# A real mox serve.


def test_mox_serve_static_handler(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("hello from mox serve")
    m = MoxServe(tmp_path)
    static = local_static(m.ports, ["127.0.0.1"], "debug")
    static.Listeners["local"].WebserverHTTPS = model.WebserverListener(Enabled=True, Port=m.ports.https)
    static.Listeners["local"].WebserverHTTP = model.WebserverListener(Enabled=True, Port=m.ports.http)
    m.config.write_text(sconf.write(static, header=model.STATIC_HEADER))
    dyn = local_dynamic()
    dyn.WebHandlers = [WH(Domain="localhost", PathRegexp="^/www/", WebStatic=model.WebStatic(StripPrefix="/www/", Root=str(root)))]
    (m.config.parent / "domains.conf").write_text(sconf.write(dyn, header=model.DYNAMIC_HEADER))
    m.start()
    try:
        import http.client

        ctx = ssl.create_default_context(cafile=str(m.config.parent / "localhost.crt"))
        c = http.client.HTTPSConnection("localhost", m.ports.https, context=ctx, timeout=10)
        c.request("GET", "/www/hello.txt", headers={"Host": "localhost"})
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"hello from mox serve")
        assert r.getheader("Content-Type") == "text/plain; charset=utf-8"
        c.close()
        p = http.client.HTTPConnection("127.0.0.1", m.ports.http, timeout=10)
        p.request("GET", "/www/hello.txt", headers={"Host": "localhost"})
        r = p.getresponse()
        assert (r.status, r.getheader("Location")) == (308, "https://localhost/www/hello.txt")
        p.close()
    finally:
        m.stop()
