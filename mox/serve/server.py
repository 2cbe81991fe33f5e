"""``mox serve``: one process, one event loop, every listener in it (DESIGN.md section 2).

Start-up: load and validate the config, configure logging, create the data
directory, open every listening socket (any failure: one clear line, exit
status 1), start the ctl socket, write the pid file, and watch domains.conf
for changes. Shutdown (SIGTERM, SIGINT or ``mox stop``): stop accepting, give
connections up to :data:`SHUTDOWN_GRACE` seconds, cancel the rest, close the
ctl socket and remove the pid file.

Protocol handlers are looked up in :data:`mox.serve.services.HANDLERS` by
endpoint kind, so the SMTP, IMAP and HTTP servers plug in without changes here.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import functools
import gc
import os
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mox import mlog

if TYPE_CHECKING:
    from mox.autotls.setup import AutoTLS
    from mox.tlsrptsend.service import Reporters
from mox.config import edit
from mox.config.load import Config, ConfigErrors, load_config, reload_dynamic
from mox.ctl.server import CtlCommandError, CtlConn, CtlServer
from mox.dns import Resolver, StubResolver, set_default_resolver
from mox.privileges import PrivilegeError
from mox.queue import Queue, open_queue, server_deliverer
from mox.serve import ctlregistry, services
from mox.serve.features import not_implemented_features
from mox.serve.listeners import Endpoint, ListenError, bind_endpoint, plan_endpoints, tls_context
from mox.store.deliver import apply_config_to_open_accounts

# Upstream gives connections 3 seconds to finish at shutdown.
SHUTDOWN_GRACE = 3.0
# asyncio's TLS protocol reads into a 256 KiB buffer per connection (sslproto.SSLProtocol.max_size),
# 280 KiB per idle TLS connection. One TLS record is at most 16 KiB plus overhead (RFC 8446 section
# 5.2), so a buffer of that size loses nothing but a little throughput on large transfers.
TLS_READ_BUFFER = 17 * 1024
# Answers kept by the server's DNS cache (positive and negative, each for its TTL).
DNS_CACHE_SIZE = 20000
# Seconds an account's database stays open after its last use.
ACCOUNT_IDLE_CLOSE = 60.0
# How often domains.conf is checked for changes: a stat per second is cheap
# and makes edits take effect "within a few seconds".
RELOAD_POLL_INTERVAL = 1.0

log = mlog.new("serve")


def configure_logging(cfg: Config, loglevel_override: str = "") -> None:
    """Apply LogLevel and PackageLogLevels (and a -loglevel override) to mlog."""
    levels: dict[str, mlog.Level | int] = {"": mlog.parse_level(loglevel_override or cfg.static.LogLevel)}
    for pkg, level in cfg.static.PackageLogLevels.items():
        levels[pkg] = mlog.parse_level(level)
    mlog.set_config(levels)


class Server:
    """A running mox instance."""

    def __init__(
        self, cfg: Config, *, loglevel_override: str = "", localserve: bool = False, resolver: Resolver | None = None
    ) -> None:
        self.cfg = cfg
        self.loglevel_override = loglevel_override
        # Run as ``mox localserve`` (mox.localserve): protocol servers and the queue read this flag to
        # accept mail for any address and deliver outgoing mail to the local account instead of sending it.
        self.localserve = localserve
        # The process-wide resolver installed at start; None: MOX_DNS or the system's, with a cache.
        self.resolver = resolver
        self.stop_requested = asyncio.Event()
        self.services_stopped = asyncio.Event()
        self.shutting_down = False
        self._servers: list[tuple[Endpoint, asyncio.AbstractServer]] = []
        self._http: list[Any] = []
        self._conns: set[asyncio.Task[Any]] = set()
        self._ctl: CtlServer | None = None
        self._edit_lock = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None
        # Sockets and TLS contexts prepared as root (mox.privileges.Prebound), used by _open_listeners.
        self._prebound: Any = None
        self._dyn_signature = self._domains_signature()
        self.pid_path = cfg.data_dir / "mox.pid"
        self.queue: Queue | None = None
        # Automatic TLS (mox.autotls), when mox.conf has ACME providers; used by listeners and mox.http.
        self.autotls: AutoTLS | None = None
        self._reporters: Reporters | None = None

    # Start-up

    def _domains_signature(self) -> tuple[int, int, int]:
        try:
            st = self.cfg.dynamic_path.stat()
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def start(self) -> None:
        """Open listeners and the ctl socket. Raises ListenError or OSError with a clear message."""
        from mox.privileges import start_as_root

        # Started as root: bind every listener, fix ownership and permissions of config/ and data/, then
        # continue as the configured User, before any data is opened (mox.privileges). None otherwise.
        self._prebound = start_as_root(self.cfg)
        data_dir = self.cfg.data_dir
        data_dir.mkdir(mode=0o770, parents=True, exist_ok=True)
        from mox.imapserver.server import register as register_imap
        from mox.smtpserver.server import register as register_smtp
        from mox.store import account as store_account

        register_smtp()
        register_imap()
        asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
        # A TTL-honouring cache: the SPF and DMARC records of a busy sender are asked for on every message.
        set_default_resolver(self.resolver or StubResolver.from_environment(cache_size=DNS_CACHE_SIZE))
        # Accounts stay open between deliveries (closed after idling, and at shutdown).
        store_account.CLOSE_DELAY = ACCOUNT_IDLE_CLOSE
        ctl = CtlServer(data_dir / "ctl", self._ctl_handlers(), log=mlog.new("ctl"))
        # The ctl socket first: it detects another running instance before we touch its ports.
        await ctl.start()
        self._ctl = ctl
        # The outgoing queue, before the listeners: submissions go into it.
        self.queue = await open_queue(data_dir, lambda: self.cfg)
        if self.localserve:
            # Outgoing mail goes to the local account, nothing leaves the machine.
            from mox.localserve.deliver import make_deliverer

            self.queue.start(make_deliverer(lambda: self.cfg))
        else:
            self.queue.start(server_deliverer(lambda: self.cfg))
        try:
            if self.cfg.static.ACME:
                # Imported only when used: the ACME machinery is not small.
                from mox.autotls.setup import AutoTLS

                self.autotls = AutoTLS(self.cfg)
            await self._open_listeners()
        except BaseException:
            if self._prebound is not None:
                self._prebound.close()
            await self._close_listeners()
            await self.queue.close()
            await ctl.close()
            self._ctl = None
            raise
        self.pid_path.write_text(f"{os.getpid()}\n")
        for feature in not_implemented_features(self.cfg):
            log.info("configured feature not implemented yet, ignored", feature=feature)
        self._watch_task = asyncio.create_task(self._watch_domains())
        if self.autotls is not None:
            # Certificates are requested in the background; connections never wait for the CA.
            self.autotls.start()
        if not self.localserve:
            # Outgoing DMARC (hourly) and TLS (daily) reports; each round honours
            # NoOutgoingDMARCReports/NoOutgoingTLSReports of the config at that time.
            from mox.tlsrptsend.service import start_reporters

            self._reporters = await start_reporters(lambda: self.cfg, data_dir)
        log.print("mox started", version=_version(), pid=os.getpid(), listeners=len(self._servers) + len(self._http))

    async def _open_listeners(self) -> None:
        contexts: dict[str, ssl.SSLContext | None] = {}
        pre = self._prebound
        for i, ep in enumerate(plan_endpoints(self.cfg)):
            if ep.listener not in contexts:
                acme = self.cfg.static.Listeners[ep.listener].TLS
                if pre is not None and ep.listener in pre.contexts:
                    # Certificate files were read as root.
                    contexts[ep.listener] = pre.contexts[ep.listener]
                elif self.autotls is not None and acme is not None and acme.ACME:
                    contexts[ep.listener] = self.autotls.server_context(acme.ACME)
                else:
                    contexts[ep.listener] = tls_context(self.cfg, ep.listener)
            ctx = contexts[ep.listener]
            if ep.tls and ctx is None:
                # Only possible with ACME-only TLS, which comes with automatic TLS.
                log.error("no static TLS certificate and ACME is not implemented yet, not listening", endpoint=ep.describe())
                continue
            sock = pre.sockets.pop(i, None) if pre is not None else None
            if sock is None:
                sock = bind_endpoint(ep)
            try:
                if ep.kind == "HTTP":
                    await self._start_http(ep, sock, ctx if ep.tls else None)
                else:
                    await self._start_mail(ep, sock, ctx)
            except BaseException:
                sock.close()
                raise
            log.info("listening", endpoint=ep.describe())
        if pre is not None:
            # Sockets of endpoints that were skipped.
            pre.close()

    async def _start_mail(self, ep: Endpoint, sock: socket.socket, ctx: ssl.SSLContext | None) -> None:
        handler = services.HANDLERS[ep.kind]
        conn_ctx = services.ConnContext(self, ep, starttls=ctx if not ep.tls else None)

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._track(handler(conn_ctx, reader, writer), writer)

        server = await asyncio.start_server(accepted, sock=sock, ssl=ctx if ep.tls else None)
        self._servers.append((ep, server))

    async def _start_http(self, ep: Endpoint, sock: socket.socket, ctx: ssl.SSLContext | None) -> None:
        web_server = _LazyWebServer(self, ep)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(web_server, sock=sock, ssl=ctx)
        self._servers.append((ep, server))
        self._http.append(web_server)

    async def _track(self, coro: Awaitable[None], writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            await coro
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError) as e:
            log.debug("connection ended with error", err=str(e))
        except asyncio.CancelledError:
            pass
        except Exception as e:
            log.errorx("unhandled error in connection", e)
        finally:
            self._conns.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    # Reload

    async def _watch_domains(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_POLL_INTERVAL)
            sig = self._domains_signature()
            if sig == self._dyn_signature:
                continue
            self._dyn_signature = sig
            async with self._edit_lock:
                self.reload_domains()

    def reload_domains(self) -> bool:
        """Load domains.conf again; on errors, log them and keep the current config."""
        try:
            new = reload_dynamic(self.cfg)
        except ConfigErrors as e:
            for err in e.errors:
                log.error("domains.conf changed but is invalid, keeping previous config", err=str(err))
            return False
        self.cfg = new
        apply_config_to_open_accounts(new)
        if self.autotls is not None:
            self.autotls.update_hosts(new)
        log.info("domains.conf reloaded", domains=len(new.dynamic.Domains), accounts=len(new.dynamic.Accounts))
        return True

    # ctl commands

    def _ctl_handlers(self) -> dict[str, Callable[[CtlConn, list[str]], Awaitable[Any]]]:
        ctlregistry.load_modules()
        extra = {name: functools.partial(fn, self) for name, fn in ctlregistry.HANDLERS.items()}
        return extra | {
            "stop": self._ctl_stop,
            "loglevels": self._ctl_loglevels,
            "setloglevels": self._ctl_setloglevels,
            "config account list": self._ctl_account_list,
            "config account add": self._ctl_edit(lambda cfg, a: edit.account_add(cfg, a[0], a[1]), 2),
            "config account rm": self._ctl_edit(_account_remove, 1),
            "config address add": self._ctl_edit(lambda cfg, a: edit.address_add(cfg, a[0], a[1]), 2),
            "config address rm": self._ctl_edit(lambda cfg, a: edit.address_remove(cfg, a[0]), 1),
            "config domain add": self._ctl_edit(
                lambda cfg, a: edit.domain_add(cfg, a[0], a[1], a[2], disabled=a[3] == "true"), 4
            ),
            "config domain rm": self._ctl_edit(lambda cfg, a: edit.domain_remove(cfg, a[0]), 1),
        }

    async def _ctl_stop(self, conn: CtlConn, args: list[str]) -> None:
        log.info("stop requested through ctl")
        self.stop_requested.set()
        await self.services_stopped.wait()

    async def _ctl_loglevels(self, conn: CtlConn, args: list[str]) -> dict[str, str]:
        return {pkg: str(level) for pkg, level in mlog.get_config().items()}

    async def _ctl_setloglevels(self, conn: CtlConn, args: list[str]) -> None:
        if len(args) != 2:
            raise CtlCommandError("expected package and level")
        pkg, level = args
        levels: dict[str, mlog.Level | int] = dict(mlog.get_config())
        if level == "":
            if pkg == "":
                raise CtlCommandError("cannot remove the default log level")
            levels.pop(pkg, None)
        else:
            try:
                levels[pkg] = mlog.parse_level(level)
            except ValueError as e:
                raise CtlCommandError(str(e)) from None
        mlog.set_config(levels)
        log.print("log level changed", package=pkg or "(default)", level=level or "(removed)")

    async def _ctl_account_list(self, conn: CtlConn, args: list[str]) -> list[str]:
        return sorted(self.cfg.dynamic.Accounts)

    async def edit_config(self, conn: CtlConn, change: Callable[[Config], Config], args: list[str]) -> None:
        """Apply a domains.conf change (a mox.config.edit function) and make the result current.

        Serialised with other edits and with reloads; the file lock also keeps
        out a CLI editing directly. Raises CtlCommandError when refused.
        """
        async with self._edit_lock:
            cfg = self.cfg

            def run() -> Config:
                with edit.domains_lock(cfg):
                    return change(cfg)

            try:
                new = await asyncio.to_thread(run)
            except edit.EditError as e:
                raise CtlCommandError(str(e)) from None
            self.cfg = new
            apply_config_to_open_accounts(new)
            self._dyn_signature = self._domains_signature()
            log.info("domains.conf changed through ctl", cmd=conn.cmd, args=" ".join(args))

    def _ctl_edit(
        self, fn: Callable[[Config, list[str]], Config], nargs: int
    ) -> Callable[[CtlConn, list[str]], Awaitable[None]]:
        async def handler(conn: CtlConn, args: list[str]) -> None:
            if len(args) != nargs:
                raise CtlCommandError(f"expected {nargs} arguments, got {len(args)}")
            await self.edit_config(conn, lambda cfg: fn(cfg, args), args)

        return handler

    # Shutdown

    async def _close_listeners(self) -> None:
        for _, server in self._servers:
            server.close()
        for _, server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 0.1)
        self._servers.clear()

    async def shutdown(self) -> None:
        """Stop accepting, let connections finish up to SHUTDOWN_GRACE seconds, then cancel them."""
        self.shutting_down = True
        log.info("shutting down")
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        for _, server in self._servers:
            server.close()
        if self._conns:
            _, pending = await asyncio.wait(set(self._conns), timeout=SHUTDOWN_GRACE)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        for web_server in self._http:
            with contextlib.suppress(Exception):
                await web_server.shutdown(timeout=SHUTDOWN_GRACE)
        await self._close_listeners()
        if self._reporters is not None:
            # Before the queue: a report being composed is submitted to it.
            await self._reporters.close()
        if self.queue is not None:
            # Deliveries in flight get a grace period; DSNs they produce go into accounts closed below.
            await self.queue.close()
            closer = getattr(self.queue.deliverer, "close", None)
            if closer is not None:
                # Pooled SMTP connections, the MTA-STS cache.
                await closer()
        if self.autotls is not None:
            await self.autotls.close()
        from mox import tlsrptdb
        from mox.dmarcdb.reports import close_reports

        await tlsrptdb.close_all()
        await close_reports()
        # Pending deliveries commit, then every account database closes.
        from mox.smtpserver import server as smtpserver
        from mox.store import close_all_accounts

        await smtpserver.close()
        try:
            await close_all_accounts()
        except Exception as e:
            log.errorx("account check failed at close", e)
        self.services_stopped.set()
        # Let a "mox stop" client receive its answer before the ctl socket goes.
        if self._ctl is not None:
            for _ in range(50):
                if self._ctl.active_connections == 0:
                    break
                await asyncio.sleep(0.02)
            await self._ctl.close()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        log.print("mox stopped")

    async def run(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested.set)
        tune_gc()  # After the signal handlers: a SIGTERM right after "mox started" stops us cleanly.
        try:
            await self.stop_requested.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.shutdown()


GC_GEN0_THRESHOLD = 10_000
"""Allocations of container objects between collections of the youngest generation (Python's
default is 700). With the default, a server handling large IMAP responses (10,000-message FETCH,
SEARCH, STORE) ran a full collection about every second, each 40-50 ms of CPU over every live
object; see :func:`tune_gc`."""


def tune_gc() -> None:
    """Garbage collector settings for a long-running server, called once it has started: the
    objects of start-up (modules, functions, classes, configuration; tens of thousands that live
    for the whole run) are moved out of the collector's way with gc.freeze, and the youngest
    generation is collected after GC_GEN0_THRESHOLD allocations. Measured over an import of 10,000
    messages followed by mailbench's fetch: full collections 11 -> 3, their CPU 478 -> 35 ms (the
    40 ms of CPU a SELECT sometimes took was one of them). Reference counting frees almost everything;
    the collector is only for reference cycles, which get collected a little later."""
    gc.collect()
    gc.freeze()
    _, t1, t2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, t1, t2)


class _LazyWebServer:
    """Protocol factory of an HTTP endpoint that imports aiohttp at the first connection, not at start.

    aiohttp and its dependencies are about 10 MB of resident memory: a server
    (e.g. ``mox localserve``) whose HTTP ports nobody uses does not pay for them.
    """

    def __init__(self, server: Server, ep: Endpoint) -> None:
        self.server = server
        self.ep = ep
        self.web: Any = None

    def __call__(self) -> asyncio.BaseProtocol:
        if self.web is None:
            from aiohttp import web

            self.web = web.Server(services.http_handler(self.server, self.ep))
        proto: asyncio.BaseProtocol = self.web()
        return proto

    async def shutdown(self, timeout: float) -> None:
        if self.web is not None:
            await self.web.shutdown(timeout=timeout)


def _account_remove(cfg: Config, args: list[str]) -> Config:
    new = edit.account_remove(cfg, args[0])
    edit.remove_account_data(new, args[0])
    return new


def _version() -> str:
    import mox

    return mox.__version__


def run_serve(config_path: str | os.PathLike[str], *, loglevel: str = "", pedantic: bool = False) -> int:
    """Entry point of ``mox serve``: returns the process exit status."""
    mlog.set_logfmt(True)
    mlog.install_stdlib_bridge()
    try:
        cfg = load_config(Path(config_path))
    except ConfigErrors as e:
        for err in e.errors:
            sys.stderr.write(f"mox: config error: {err}\n")
        return 1
    if loglevel:
        try:
            mlog.parse_level(loglevel)
        except ValueError as err:
            sys.stderr.write(f"mox: {err}\n")
            return 2
    if pedantic:
        cfg.static.Pedantic = True
    configure_logging(cfg, loglevel)
    server = Server(cfg, loglevel_override=loglevel)
    try:
        asyncio.run(server.run())
    except (ListenError, PrivilegeError) as e:
        sys.stderr.write(f"mox: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"mox: {e}\n")
        return 1
    return 0
