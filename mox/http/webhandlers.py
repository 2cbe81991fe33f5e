"""The configured WebHandlers of the web server: WebStatic, WebRedirect and WebForward.

Behaviour follows upstream mox's web server (http/webserver.go), written anew:

- Handlers are tried in configuration order; a handler matches when the
  request's host is its Domain and its PathRegexp matches the cleaned request
  path. The first match serves the request, except that a WebStatic with
  ContinueNotFound and a WebRedirect that would redirect to the very same URL
  decline, so later handlers get a chance.
- WebStatic serves files below Root: index.html for directories, directory
  listings with ListFiles, Content-Type by extension (sniffed otherwise),
  Last-Modified/ETag with conditional requests (304, 412) and byte ranges
  (RFC 9110 sections 13 and 14). Nothing outside Root is served: the path is
  cleaned of dot segments and the real path (symlinks resolved) must stay
  below the real Root.
- WebRedirect redirects to BaseURL and/or a path rewritten with
  OrigPathRegexp/ReplacePath ($1 and ${name} as Go's Regexp.Expand).
- WebForward is a reverse proxy: bodies streamed both ways in chunks,
  hop-by-hop headers removed (RFC 9110 section 7.6.1), X-Forwarded-For/-Host/
  -Proto set, WebSocket upgrades (RFC 6455 section 4) forwarded byte for byte
  after checking the handshake, 502 for unreachable backends and 504 for
  timeouts.
- Compress: gzip for clients that accept it, for 200 responses with a
  compressible Content-Type and no Content-Encoding yet; static files of 1 KB
  to 10 MB are compressed once and kept in a size-bounded memory cache.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import errno
import hashlib
import html
import ipaddress
import mimetypes
import os
import re
import secrets
import ssl
import stat
import urllib.parse
import urllib.request
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from mox import mlog
from mox.config import model

if TYPE_CHECKING:
    from aiohttp import web

    from mox.dns.domain import Domain

log = mlog.new("http")

# Reads from files and from backends, and writes to them, go in chunks of this size.
CHUNK_SIZE = 256 * 1024
# Time for a backend to accept the connection, and to send its response header.
FORWARD_CONNECT_TIMEOUT = 30.0
FORWARD_RESPONSE_TIMEOUT = 300.0
# Static files in this size range are gzipped once and kept in memory, as upstream's cache.
GZIP_MIN_SIZE = 1024
GZIP_MAX_SIZE = 10 * 1024 * 1024
GZIP_CACHE_MAX = 64 * 1024 * 1024
# Longest response header a WebSocket backend may send.
MAX_WS_RESPONSE_HEAD = 64 * 1024
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

# RFC 9110 section 7.6.1, plus the older ones from RFC 2616 section 13.5.1 that proxies still remove.
HOP_BY_HOP = (
    "Connection",
    "Proxy-Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
)

COMPRESSIBLE_TYPES = frozenset(
    {
        "application/csv",
        "application/javascript",
        "application/json",
        "application/x-javascript",
        "application/xml",
        "image/vnd.microsoft.icon",
        "image/x-icon",
        "font/ttf",
        "font/eot",
        "font/otf",
        "font/opentype",
    }
)

# The builtin table only, not the system's mime.types: the same answer on every machine.
_MIME = mimetypes.MimeTypes()
_EXTRA_TYPES = {".mjs": "text/javascript", ".wasm": "application/wasm", ".webp": "image/webp", ".md": "text/markdown"}


# Pure helpers.


def clean_path(p: str) -> str:
    """The request path as upstream matches it: dot segments and repeated slashes
    removed (as Go's path.Clean, RFC 3986 section 5.2.4), always starting with a
    slash, keeping a trailing slash."""
    out: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    r = "/" + "/".join(out)
    if p.endswith("/") and not r.endswith("/"):
        r += "/"
    return r


_NAME_CHARS = re.compile(r"[A-Za-z0-9_]+")


def expand_template(template: str, m: re.Match[str]) -> str:
    """A replacement text for match m as Go's Regexp.Expand: $1, ${1}, $name and
    ${name} refer to groups (empty when unknown or not matched), $$ is a dollar,
    and a $ not followed by a valid reference stays literal."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        brace = i < n and template[i] == "{"
        nm = _NAME_CHARS.match(template, i + 1 if brace else i)
        if nm is None or (brace and (nm.end() >= n or template[nm.end()] != "}")):
            out.append("$")
            continue
        name = nm.group()
        i = nm.end() + (1 if brace else 0)
        out.append(_group(m, name))
    return "".join(out)


def _group(m: re.Match[str], name: str) -> str:
    try:
        v = m.group(int(name)) if name.isdigit() else m.group(name)
    except IndexError:
        return ""
    return v or ""


def replace_all(pattern: re.Pattern[str], s: str, template: str) -> str:
    """Every match of pattern in s replaced by the expanded template (Go's ReplaceAllString)."""
    return pattern.sub(lambda m: expand_template(template, m), s)


class RangeError(ValueError):
    """A Range header that cannot be satisfied (RFC 9110 section 15.5.17)."""


def parse_range(value: str, size: int) -> list[tuple[int, int]]:
    """The (start, length) byte ranges of a Range header (RFC 9110 section 14.1.2)
    for a representation of size bytes. An empty list means: serve all of it (no
    usable ranges, or ranges asking for more than the whole). RangeError for a
    syntax error or when no range overlaps the content."""
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise RangeError("only byte ranges are supported")
    ranges: list[tuple[int, int]] = []
    no_overlap = False
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
            raise RangeError(f"invalid range {part!r}")
        if not first:
            n = int(last)
            if n == 0 or size == 0:
                no_overlap = True
                continue
            n = min(n, size)
            ranges.append((size - n, n))
            continue
        start = int(first)
        if start >= size:
            no_overlap = True
            continue
        if not last:
            ranges.append((start, size - start))
            continue
        end = int(last)
        if start > end:
            raise RangeError(f"invalid range {part!r}")
        end = min(end, size - 1)
        ranges.append((start, end - start + 1))
    if not ranges:
        if no_overlap:
            raise RangeError("no range overlaps the content")
        raise RangeError("no ranges")
    if sum(n for _, n in ranges) > size:
        return []
    return ranges


def accepts_gzip(value: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110 section 12.5.3)."""
    for item in value.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip"):
            continue
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def compressible_content_type(ct: str) -> bool:
    """text/*, */*+json, */*+xml and a few known types, as upstream."""
    ct = ct.split(";", 1)[0].strip().lower()
    if ct in COMPRESSIBLE_TYPES:
        return True
    t, _, st = ct.partition("/")
    return t == "text" or st.endswith("+json") or st.endswith("+xml")


def content_type_for(name: str, head: bytes) -> str:
    """Content-Type for a file: by extension, else from its first bytes."""
    ext = os.path.splitext(name)[1].lower()
    ct = _EXTRA_TYPES.get(ext) or _MIME.types_map[1].get(ext) or _MIME.types_map[0].get(ext)
    if ct:
        return ct + "; charset=utf-8" if ct.startswith("text/") else ct
    return sniff_content_type(head)


_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
)


def sniff_content_type(head: bytes) -> str:
    """A Content-Type from the first bytes of content: a few signatures, HTML, UTF-8 text, else binary."""
    for sig, ct in _SIGNATURES:
        if head.startswith(sig):
            return ct
    lower = head.lstrip(b"\t\n\x0c\r ").lower()
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "text/html; charset=utf-8"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut off at the end of the sniffed bytes is fine.
        if e.start < len(head) - 3:
            return "application/octet-stream"
        text = head[: e.start].decode("utf-8")
    if any(ord(c) < 0x20 and c not in "\t\n\x0c\r\x1b" for c in text):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def remove_hop_by_hop(headers: CIMultiDict[str]) -> None:
    """Remove hop-by-hop fields: those named in Connection and the fixed list (RFC 9110 section 7.6.1)."""
    for value in headers.getall("Connection", []):
        for name in value.split(","):
            name = name.strip()
            if name:
                headers.popall(name, None)
    for name in HOP_BY_HOP:
        headers.popall(name, None)


def join_url_path(base: str, path: str) -> str:
    """Base URL path and request path joined with exactly one slash between them;
    no slash is added at the end (as upstream's reverse proxy)."""
    if base.endswith("/") and path.startswith("/"):
        return base + path[1:]
    if not base.endswith("/") and not path.startswith("/") and path:
        return base + "/" + path
    return base + path


def parse_response_head(data: bytes) -> tuple[int, CIMultiDict[str]]:
    """Status code and header fields of an HTTP/1.1 response head (RFC 9112 sections 4
    and 5), up to but without the empty line. ValueError for malformed input."""
    lines = data.decode("iso-8859-1").split("\r\n")
    m = re.fullmatch(r"HTTP/1\.[01] ([0-9]{3})(?: .*)?", lines[0])
    if m is None:
        raise ValueError(f"bad status line {lines[0][:100]!r}")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError(f"bad header line {line[:100]!r}")
        headers.add(name, value.strip(" \t"))
    return int(m.group(1)), headers


def websocket_accept(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()


def _header_tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


# Responses.


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    from aiohttp import web

    h = {"X-Content-Type-Options": "nosniff", **(headers or {})}
    return web.Response(status=status, text=text + "\n", content_type="text/plain", charset="utf-8", headers=h)


def _not_found() -> web.Response:
    return _text(404, "404 - not found")


_REDIRECT_TEXT = {301: "moved permanently", 302: "found", 303: "see other", 307: "temporary redirect", 308: "permanent redirect"}


def redirect_response(status: int, location: str) -> web.Response:
    return _text(status, f"{status} - {_REDIRECT_TEXT.get(status, 'redirect')} to {location}", {"Location": location})


def _quote_path(p: str) -> str:
    return urllib.parse.quote(p, safe="/:@!$&'()*+,;=-._~")


def _http_date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


def _parse_http_date(v: str) -> float | None:
    try:
        d = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if d is None:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


def _etag_list(v: str) -> list[str]:
    return [t.strip() for t in v.split(",") if t.strip()]


def _weak_match(tags: list[str], etag: str) -> bool:
    plain = etag.removeprefix("W/")
    return any(t == "*" or t.removeprefix("W/") == plain for t in tags)


def _strong_match(tags: list[str], etag: str) -> bool:
    return any(t == "*" or (not t.startswith("W/") and t == etag) for t in tags)


async def _gzip_stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Chunks gzipped as they come, each flushed so streamed responses keep flowing."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    async for chunk in chunks:
        out = z.compress(chunk) + z.flush(zlib.Z_SYNC_FLUSH)
        if out:
            yield out
    yield z.flush()


class _GzipCache:
    """Gzipped static files in memory, least recently used evicted past a total size."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self.entries: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()

    def get(self, key: tuple[str, int, int]) -> bytes | None:
        v = self.entries.get(key)
        if v is not None:
            self.entries.move_to_end(key)
        return v

    def put(self, key: tuple[str, int, int], data: bytes) -> None:
        # An older version of the same file goes.
        for k in [k for k in self.entries if k[0] == key[0]]:
            self.size -= len(self.entries.pop(k))
        self.entries[key] = data
        self.size += len(data)
        while self.size > self.max_size and self.entries:
            _, old = self.entries.popitem(last=False)
            self.size -= len(old)


GZIP_CACHE = _GzipCache(GZIP_CACHE_MAX)


def _gzip_file(path: str) -> bytes:
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts: list[bytes] = []
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            parts.append(z.compress(chunk))
    parts.append(z.flush())
    return b"".join(parts)


# Matching.


@dataclass
class Match:
    index: int
    handler: model.WebHandler
    prefix: str  # The part of the path PathRegexp matched, for WebForward's StripPath.

    @property
    def name(self) -> str:
        return self.handler.LogName or str(self.index)


def matches(handlers: list[model.WebHandler], host: Domain, path: str) -> Iterator[Match]:
    """The handlers for host whose PathRegexp matches path, in configuration order."""
    from mox.dns.domain import DomainError, parse_domain

    for i, wh in enumerate(handlers):
        if wh.Domain != "*":
            try:
                if parse_domain(wh.Domain) != host:
                    continue
            except DomainError:
                continue
        rx = _compile(wh.PathRegexp)
        m = rx.search(path) if rx is not None else None
        if m is None:
            continue
        yield Match(i, wh, path[m.start() : m.end()])


# Serving.


class Request:
    """What the handlers need about a request besides aiohttp's object."""

    def __init__(self, request: web.BaseRequest, path: str, tls: bool) -> None:
        self.r = request
        self.path = path  # Cleaned and percent-decoded.
        self.tls = tls
        self.query = request.rel_url.raw_query_string


async def serve(req: Request, m: Match) -> web.StreamResponse | None:
    """The response of handler m, or None when it declines so the next handler is tried."""
    wh = m.handler
    try:
        if wh.WebStatic is not None:
            resp = await serve_static(req, wh.WebStatic, wh.Compress)
        elif wh.WebRedirect is not None:
            resp = serve_redirect(req, wh.WebRedirect)
        elif wh.WebForward is not None:
            resp = await serve_forward(req, wh.WebForward, m.prefix, wh.Compress)
        else:
            # WebInternal: the internal web services (admin, account, webmail, webapi) are not built yet.
            resp = _text(503, f"503 - web handler {m.name}: internal web services are not available yet in this version")
            resp.headers["Retry-After"] = "3600"
    except Exception as e:
        log.errorx("web handler", e, handler=m.name, path=req.path)
        raise
    if resp is not None:
        log.debug("web handler", handler=m.name, method=req.r.method, path=req.path, status=resp.status)
    return resp


# WebStatic.


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


async def serve_static(req: Request, h: model.WebStatic, compress: bool) -> web.StreamResponse | None:
    r = req.r
    if r.method not in ("GET", "HEAD"):
        if h.ContinueNotFound:
            return None
        return _text(405, "405 - method not allowed", {"Allow": "GET, HEAD"})
    path = req.path
    if h.StripPrefix:
        if not path.startswith(h.StripPrefix):
            return None if h.ContinueNotFound else _not_found()
        rel = path[len(h.StripPrefix) :]
    else:
        rel = path
    # The cleaned path has no dot segments: joining stays below Root lexically. The real path
    # check below keeps symlinks from leading out of it.
    root = os.path.abspath(h.Root)
    fspath = os.path.normpath(os.path.join(root, rel.lstrip("/")))
    if "\x00" in fspath or not _inside(fspath, root):
        return None if h.ContinueNotFound else _not_found()
    try:
        realroot = os.path.realpath(root)
        real = os.path.realpath(fspath)
        st = os.stat(real)
    except FileNotFoundError:
        return None if h.ContinueNotFound else _not_found()
    except NotADirectoryError:
        return None if h.ContinueNotFound else _not_found()
    except PermissionError:
        return _text(403, "403 - permission denied")
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            return _not_found()
        log.errorx("stat for static file", e, path=fspath)
        return _text(500, "500 - internal server error")
    if not _inside(real, realroot):
        log.info("static file outside of root refused", path=path, real=real, root=realroot)
        return _text(403, "403 - forbidden - outside of root")
    is_dir = stat.S_ISDIR(st.st_mode)
    if is_dir and not path.endswith("/"):
        return redirect_response(307, _quote_path(path + "/"))
    if not is_dir and path.endswith("/"):
        return None if h.ContinueNotFound else _not_found()
    if not is_dir:
        if not stat.S_ISREG(st.st_mode):
            return _text(403, "403 - permission denied")
        return await _serve_file(req, real, fspath, st, None, h.ResponseHeaders, compress)

    index = os.path.join(real, "index.html")
    try:
        ireal = os.path.realpath(index)
        ist = os.stat(ireal)
    except FileNotFoundError:
        ist = None
    except PermissionError:
        return _text(403, "403 - permission denied")
    if ist is not None and stat.S_ISREG(ist.st_mode):
        if not _inside(ireal, realroot):
            return _text(403, "403 - forbidden - outside of root")
        return await _serve_file(req, ireal, index, ist, "text/html; charset=utf-8", h.ResponseHeaders, compress)
    if not h.ListFiles:
        return None if h.ContinueNotFound else _text(403, "403 - permission denied")
    try:
        body = directory_listing(real, path != "/")
    except PermissionError:
        return _text(403, "403 - permission denied")
    from aiohttp import web

    headers = {k: v for k, v in h.ResponseHeaders.items() if k.lower() != "content-type"}
    resp = web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)
    return _maybe_gzip_body(r, resp, compress)


def directory_listing(dirpath: str, parent: bool) -> bytes:
    """An HTML page listing a directory: size in MB, modification time (UTC), name; sorted by name."""
    rows: list[tuple[str, str, str, str]] = []
    if parent:
        rows.append(("..", "", "", "0"))
    with os.scandir(dirpath) as it:
        for e in it:
            try:
                est = e.stat(follow_symlinks=False)
            except OSError:
                continue
            isdir = e.is_dir(follow_symlinks=False)
            size = ""
            if not isdir:
                mb = est.st_size / (1024 * 1024)
                size = str(int(mb)) if mb >= 10 else f"{mb:.2f}"
            mod = datetime.fromtimestamp(est.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")
            rows.append((e.name + ("/" if isdir else ""), size, mod, str(est.st_size)))
    rows.sort(key=lambda x: x[0])
    out = [
        "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\" />\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1" />\n<title>ls</title>\n'
        "<style>body { padding: 1em; font-family: sans-serif; } td, th { padding: .2em .5em; }"
        " td.size { text-align: right; }</style>\n</head>\n<body>\n<h1>ls</h1>\n<table>\n"
        "<thead><tr><th>Size in MB</th><th>Modified (UTC)</th><th>Name</th></tr></thead>\n<tbody>\n"
    ]
    if not rows:
        out.append('<tr><td colspan="3">No files.</td></tr>\n')
    for name, size, mod, nbytes in rows:
        href = html.escape(urllib.parse.quote(name, safe="/:@!$&'()*+,;=-._~"))
        out.append(
            f'<tr><td class="size" title="{nbytes} bytes">{html.escape(size)}</td><td>{mod}</td>'
            f'<td><a href="{href}">{html.escape(name)}</a></td></tr>\n'
        )
    out.append("</tbody>\n</table>\n</body>\n</html>\n")
    return "".join(out).encode()


def _maybe_gzip_body(r: web.BaseRequest, resp: web.Response, compress: bool) -> web.Response:
    body = resp.body
    if (
        compress
        and resp.status == 200
        and isinstance(body, bytes)
        and "Content-Encoding" not in resp.headers
        and accepts_gzip(r.headers.get("Accept-Encoding", ""))
        and compressible_content_type(resp.headers.get("Content-Type", ""))
    ):
        z = zlib.compressobj(1, zlib.DEFLATED, 31)
        resp.body = z.compress(body) + z.flush()
        resp.headers["Content-Encoding"] = "gzip"
        resp.headers["Vary"] = "Accept-Encoding"
    return resp


def _etag(st: os.stat_result, gz: bool) -> str:
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}{"-gz" if gz else ""}"'


async def _serve_file(
    req: Request,
    real: str,
    name: str,
    st: os.stat_result,
    content_type: str | None,
    response_headers: dict[str, str],
    compress: bool,
) -> web.StreamResponse:
    """A file with conditional requests and ranges as RFC 9110 sections 13 and 14 (and Go's ServeContent).

    real is the path to read, name the requested one (its extension gives the Content-Type)."""
    from aiohttp import web

    r = req.r
    loop = asyncio.get_running_loop()
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        return _text(403, "403 - permission denied")
    try:
        size = st.st_size
        head = await loop.run_in_executor(None, os.pread, fd, 512, 0)
        headers: CIMultiDict[str] = CIMultiDict()
        for k, v in response_headers.items():
            headers[k] = v
        if "Content-Type" not in headers:
            headers["Content-Type"] = content_type or content_type_for(name, head)
        ctype = headers["Content-Type"]
        rng = r.headers.get("Range")
        gz = (
            compress
            and rng is None
            and GZIP_MIN_SIZE <= size <= GZIP_MAX_SIZE
            and accepts_gzip(r.headers.get("Accept-Encoding", ""))
            and (compressible_content_type(ctype) or compressible_content_type(sniff_content_type(head)))
        )
        if compress:
            headers["Vary"] = "Accept-Encoding"
        etag = _etag(st, gz)
        mtime = st.st_mtime
        headers["Last-Modified"] = _http_date(mtime)
        headers["ETag"] = etag
        headers["Accept-Ranges"] = "bytes"

        # Preconditions, RFC 9110 section 13.2.2.
        im = r.headers.get("If-Match")
        ius = r.headers.get("If-Unmodified-Since")
        if im is not None:
            if not _strong_match(_etag_list(im), etag):
                return _text(412, "412 - precondition failed")
        elif ius is not None:
            t = _parse_http_date(ius)
            if t is not None and int(mtime) > int(t):
                return _text(412, "412 - precondition failed")
        inm = r.headers.get("If-None-Match")
        ims = r.headers.get("If-Modified-Since")
        not_modified = False
        if inm is not None:
            tags = _etag_list(inm)
            if _weak_match(tags, etag) or _weak_match(tags, _etag(st, not gz)):
                if r.method not in ("GET", "HEAD"):
                    return _text(412, "412 - precondition failed")
                not_modified = True
        elif ims is not None:
            t = _parse_http_date(ims)
            not_modified = t is not None and int(mtime) <= int(t)
        if not_modified:
            for k in ("Content-Type", "Content-Length", "Content-Encoding"):
                headers.popall(k, None)
            return web.Response(status=304, headers=headers)

        ranges: list[tuple[int, int]] = []
        if rng is not None:
            ifr = r.headers.get("If-Range")
            use = True
            if ifr is not None:
                ifr = ifr.strip()
                if ifr.startswith(('"', "W/")):
                    use = _strong_match([ifr], etag)
                else:
                    t = _parse_http_date(ifr)
                    use = t is not None and int(t) == int(mtime)
            if use:
                try:
                    ranges = parse_range(rng, size)
                except RangeError as e:
                    headers["Content-Range"] = f"bytes */{size}"
                    headers.popall("Content-Type", None)
                    return _text(416, f"416 - range not satisfiable - {e}", dict(headers))

        if gz:
            key = (real, st.st_mtime_ns, size)
            data = GZIP_CACHE.get(key)
            if data is None:
                data = await loop.run_in_executor(None, _gzip_file, real)
                GZIP_CACHE.put(key, data)
            headers["Content-Encoding"] = "gzip"
            # For HEAD, aiohttp sends the headers (Content-Length of this body) without the body.
            return web.Response(status=200, body=data, headers=headers)

        parts: list[tuple[int, int, bytes]] = []  # offset, length, multipart part header
        status = 200
        if len(ranges) == 1:
            status = 206
            start, n = ranges[0]
            headers["Content-Range"] = f"bytes {start}-{start + n - 1}/{size}"
            parts.append((start, n, b""))
            total = n
        elif ranges:
            status = 206
            boundary = secrets.token_hex(16)
            headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
            total = 0
            for i, (start, n) in enumerate(ranges):
                ph = (
                    ("\r\n" if i else "")
                    + f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {start}-{start + n - 1}/{size}\r\n\r\n"
                ).encode()
                parts.append((start, n, ph))
                total += len(ph) + n
            trailer = f"\r\n--{boundary}--\r\n".encode()
            total += len(trailer)
        else:
            parts.append((0, size, b""))
            total = size
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = total
        await resp.prepare(r)
        if r.method == "HEAD":
            return resp
        try:
            for offset, n, ph in parts:
                if ph:
                    await resp.write(ph)
                end = offset + n
                while offset < end:
                    chunk = await loop.run_in_executor(None, os.pread, fd, min(CHUNK_SIZE, end - offset), offset)
                    if not chunk:
                        raise OSError(f"file {real} shrank while serving it")
                    offset += len(chunk)
                    await resp.write(chunk)
            if len(parts) > 1:
                await resp.write(trailer)
            await resp.write_eof()
        except OSError as e:
            # The status line went out already: end the connection so the client sees an incomplete response.
            log.debugx("serving static file", e, path=real)
            if r.transport is not None:
                r.transport.close()
        return resp
    finally:
        os.close(fd)


# WebRedirect.


def serve_redirect(req: Request, h: model.WebRedirect) -> web.Response | None:
    path = req.path
    if h.OrigPathRegexp and h.ReplacePath:
        rx = _compile(h.OrigPathRegexp)
        if rx is None or rx.search(path) is None:
            return _not_found()
        dst = replace_all(rx, path, h.ReplacePath)
    else:
        dst = path
    scheme = host = fragment = ""
    query = req.query
    if h.BaseURL:
        u = urllib.parse.urlsplit(h.BaseURL)
        scheme, host, fragment = u.scheme, u.netloc, u.fragment
        query = u.query + ("&" if u.query and req.query else "") + req.query
    # Redirecting to the same URL would loop: decline, so a next handler can serve (e.g. after
    # redirecting plain HTTP to HTTPS).
    reqscheme = "https" if req.tls else "http"
    if scheme == reqscheme and host == req.r.host and dst == path:
        return None
    location = urllib.parse.urlunsplit((scheme, host, _quote_path(dst), query, fragment))
    return redirect_response(h.StatusCode or 308, location)


# WebForward.


def _is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def env_proxy(url: urllib.parse.SplitResult) -> str | None:
    """The proxy from HTTP_PROXY/HTTPS_PROXY/NO_PROXY for url; loopback is never proxied (as Go's transport)."""
    host = url.hostname or ""
    if _is_loopback_host(host):
        return None
    proxies = urllib.request.getproxies_environment()
    p = proxies.get("https" if url.scheme in ("https", "wss") else "http")
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 (not in typeshed)
    if not p or bypass(host, proxies):
        return None
    return p


def _forward_target(req: Request, h: model.WebForward, prefix: str) -> urllib.parse.SplitResult:
    path = req.path
    if h.StripPath:
        path = path[len(prefix) :]
        if path and not path.startswith("/"):
            path = "/" + path
    # The path as the client encoded it when cleaning did not change it (keeps e.g. %2F).
    raw = req.r.rel_url.raw_path
    if urllib.parse.unquote(raw) != req.path:
        escaped = _quote_path(path)
    elif h.StripPath:
        escaped = _strip_raw_prefix(raw, prefix)
        if escaped and not escaped.startswith("/"):
            escaped = "/" + escaped
    else:
        escaped = raw
    t = urllib.parse.urlsplit(h.URL)
    query = t.query + ("&" if t.query and req.query else "") + req.query
    return t._replace(path=join_url_path(t.path, escaped), query=query, fragment="")


def _strip_raw_prefix(raw: str, prefix: str) -> str:
    """What follows, in percent-encoded raw, the part that decodes to prefix."""
    want = len(prefix.encode())
    n = i = 0
    while i < len(raw) and n < want:
        if raw[i] == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", raw[i + 1 : i + 3]):
            i += 3
            n += 1
        else:
            n += len(raw[i].encode())
            i += 1
    if urllib.parse.unquote(raw[:i]) != prefix:
        return _quote_path(urllib.parse.unquote(raw)[len(prefix) :])
    return raw[i:]


def _forward_headers(req: Request) -> CIMultiDict[str]:
    r = req.r
    headers: CIMultiDict[str] = CIMultiDict()
    for k, v in r.headers.items():
        kl = k.lower()
        if kl in ("forwarded", "x-forwarded") or kl.startswith("x-forwarded-"):
            continue
        headers.add(k, v)
    remove_hop_by_hop(headers)
    headers.popall("Expect", None)
    if r.remote:
        headers["X-Forwarded-For"] = r.remote
    headers["X-Forwarded-Host"] = r.host
    headers["X-Forwarded-Proto"] = "https" if req.tls else "http"
    return headers


def _client_ssl(url: urllib.parse.SplitResult) -> ssl.SSLContext | None:
    return ssl.create_default_context() if url.scheme in ("https", "wss") else None


async def serve_forward(req: Request, h: model.WebForward, prefix: str, compress: bool) -> web.StreamResponse:
    import aiohttp
    import yarl
    from aiohttp import web

    r = req.r
    # RFC 6455 section 4.1: a WebSocket opening handshake. Not for HTTP/1.0 (RFC 9110 section 7.8).
    if r.version >= (1, 1) and "websocket" in _header_tokens(r.headers.get("Upgrade", "")):
        return await forward_websocket(req, h, prefix)

    target = _forward_target(req, h, prefix)
    if target.scheme in ("ws", "wss"):
        target = target._replace(scheme="http" if target.scheme == "ws" else "https")
    headers = _forward_headers(req)
    data: Any = None
    if r.body_exists:
        if "100-continue" in _header_tokens(r.headers.get("Expect", "")):
            # We read the body, so tell the client to send it (RFC 9110 section 10.1.1).
            await r.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

        async def body() -> AsyncIterator[bytes]:
            async for chunk in r.content.iter_chunked(CHUNK_SIZE):
                yield chunk

        data = body()
    timeout = aiohttp.ClientTimeout(total=None, connect=FORWARD_CONNECT_TIMEOUT)
    url = urllib.parse.urlunsplit(target)
    async with aiohttp.ClientSession(
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    ) as session:
        try:
            cm = session.request(
                r.method,
                yarl.URL(url, encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
                proxy=env_proxy(target),
                ssl=_client_ssl(target) or True,
            )
            bresp = await asyncio.wait_for(cm.__aenter__(), FORWARD_RESPONSE_TIMEOUT)
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            log.errorx("forwarding request to backend webserver", e, url=url)
            return _text(504, "504 - gateway timeout - no response from backend web server in time")
        except (aiohttp.ClientError, OSError, ValueError) as e:
            log.errorx("forwarding request to backend webserver", e, url=url)
            return _text(502, f"502 - bad gateway - backend web server: {e or type(e).__name__}")
        try:
            rh: CIMultiDict[str] = CIMultiDict(bresp.headers)
            remove_hop_by_hop(rh)
            for k, v in h.ResponseHeaders.items():
                rh.add(k, v)
            resp = web.StreamResponse(status=bresp.status, reason=bresp.reason, headers=rh)
            chunks: AsyncIterator[bytes] = bresp.content.iter_chunked(CHUNK_SIZE)
            if (
                compress
                and bresp.status == 200
                and "Content-Encoding" not in rh
                and accepts_gzip(r.headers.get("Accept-Encoding", ""))
                and compressible_content_type(rh.get("Content-Type", ""))
            ):
                resp.headers.popall("Content-Length", None)
                resp.headers["Content-Encoding"] = "gzip"
                resp.headers.add("Vary", "Accept-Encoding")
                chunks = _gzip_stream(chunks)
            elif "Content-Length" in rh and r.method != "HEAD":
                with contextlib.suppress(ValueError):
                    resp.content_length = int(rh["Content-Length"])
            await resp.prepare(r)
            try:
                async for chunk in chunks:
                    await resp.write(chunk)
                await resp.write_eof()
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                # The status line went out already: all we can do is end the connection, so the
                # client sees an incomplete response instead of a truncated one that looks whole.
                log.errorx("forwarding response from backend webserver", e, url=url)
                if r.transport is not None:
                    r.transport.close()
            return resp
        finally:
            await cm.__aexit__(None, None, None)


class _RawReader:
    """Takes over the client connection's incoming bytes after a WebSocket upgrade
    (aiohttp's set_parser hook), into a stream with flow control."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


async def forward_websocket(req: Request, h: model.WebForward, prefix: str) -> web.StreamResponse:
    """Forward a WebSocket opening handshake to the backend and, when it accepts, copy
    bytes both ways without looking at frames (as upstream)."""
    from aiohttp import streams, web

    r = req.r
    # RFC 6455 section 4.2.1: what a valid opening handshake has.
    if r.headers.get("Sec-WebSocket-Version", "") != "13":
        return _text(400, "400 - bad request - websockets only supported with version 13", {"Sec-WebSocket-Version": "13"})
    if r.method != "GET":
        return _text(400, "400 - bad request - websockets only allowed with method GET")
    if "upgrade" not in _header_tokens(r.headers.get("Connection", "")):
        return _text(400, '400 - bad request - connection header must be "upgrade"')
    key = r.headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError("not 16 bytes")
    except (binascii.Error, ValueError):
        return _text(400, "400 - bad request - websockets require a Sec-WebSocket-Key with a 16 byte base64-encoded value")

    target = _forward_target(req, h, prefix)
    if env_proxy(target) is not None:
        return _text(501, "501 - not implemented - proxy required for websocket connection to backend")
    tls = target.scheme in ("https", "wss")
    port = target.port or (443 if tls else 80)
    headers = _forward_headers(req)
    headers["Connection"] = "Upgrade"
    headers["Upgrade"] = "websocket"
    head = f"GET {target.path or '/'}{'?' + target.query if target.query else ''} HTTP/1.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    try:
        breader, bwriter = await asyncio.wait_for(
            asyncio.open_connection(target.hostname, port, ssl=_client_ssl(target), limit=MAX_WS_RESPONSE_HEAD),
            FORWARD_CONNECT_TIMEOUT,
        )
    except TimeoutError:
        return _text(504, "504 - gateway timeout - connecting to backend web server")
    except OSError as e:
        return _text(502, f"502 - bad gateway - backend web server: {e}")
    ok = False
    try:
        try:
            bwriter.write(head.encode("utf-8"))
            rawhead = await asyncio.wait_for(breader.readuntil(b"\r\n\r\n"), FORWARD_CONNECT_TIMEOUT)
            status, rh = parse_response_head(rawhead[:-4])
        except TimeoutError:
            return _text(504, "504 - gateway timeout - waiting for websocket response from backend")
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            return _text(502, f"502 - bad gateway - websocket response from backend: {e}")
        # RFC 6455 section 4.1, the client's checks of the server's handshake.
        if (
            status != 101
            or rh.get("Upgrade", "").lower() != "websocket"
            or "upgrade" not in _header_tokens(rh.get("Connection", ""))
            or rh.get("Sec-WebSocket-Accept", "") != websocket_accept(key)
        ):
            log.info("backend did not accept websocket", status=status, url=urllib.parse.urlunsplit(target))
            return _text(400, "400 - bad request - websocket not supported by backend")
        for k, v in h.ResponseHeaders.items():
            rh.add(k, v)
        resp = web.StreamResponse(status=101, headers=rh)
        resp.force_close()
        writer = await resp.prepare(r)
        assert writer is not None
        creader = streams.StreamReader(r.protocol, CHUNK_SIZE, loop=asyncio.get_running_loop())
        r.protocol.set_parser(_RawReader(creader))  # type: ignore[arg-type]
        ok = True

        async def client_to_backend() -> None:
            while chunk := await creader.readany():
                bwriter.write(chunk)
                await bwriter.drain()

        async def backend_to_client() -> None:
            while chunk := await breader.read(CHUNK_SIZE):
                await writer.write(chunk)

        tasks = [asyncio.create_task(client_to_backend()), asyncio.create_task(backend_to_client())]
        try:
            # The first side to end (typically after a close frame) ends both.
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                    await t
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.debugx("websocket forwarding ended", t.exception())
        return resp
    finally:
        bwriter.close()
        with contextlib.suppress(OSError, ConnectionError):
            await bwriter.wait_closed()
        if ok and r.transport is not None:
            r.transport.close()


__all__ = [
    "Match",
    "RangeError",
    "Request",
    "accepts_gzip",
    "clean_path",
    "compressible_content_type",
    "content_type_for",
    "expand_template",
    "join_url_path",
    "matches",
    "parse_range",
    "parse_response_head",
    "remove_hop_by_hop",
    "replace_all",
    "serve",
    "websocket_accept",
]
