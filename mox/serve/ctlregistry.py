"""ctl commands contributed by other packages (store, import/export, ...).

A module registers a handler with :func:`ctl_command`; ``mox serve`` serves
every registered command beside its own. A handler gets the running
:class:`~mox.serve.server.Server` (for its current config and edit lock),
the connection and the arguments; what it returns is the command's result.
Modules that register commands are listed in :data:`MODULES` so the server
imports them at start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mox.ctl.server import CtlConn
    from mox.serve.server import Server

ServerCtlHandler = Callable[["Server", "CtlConn", list[str]], Awaitable[Any]]

HANDLERS: dict[str, ServerCtlHandler] = {}

# Modules whose import registers ctl commands.
MODULES = ["mox.store.ctlcommands", "mox.store.importexport_ctl", "mox.serve.ctladmin", "mox.queue.ctlcommands", "mox.tlsrptsend.service"]


def ctl_command(name: str) -> Callable[[ServerCtlHandler], ServerCtlHandler]:
    """Register a server-side ctl command under name (e.g. "import mbox")."""

    def register(fn: ServerCtlHandler) -> ServerCtlHandler:
        if name in HANDLERS:
            raise ValueError(f"ctl command {name!r} registered twice")
        HANDLERS[name] = fn
        return fn

    return register


def load_modules() -> None:
    import importlib

    for m in MODULES:
        importlib.import_module(m)
