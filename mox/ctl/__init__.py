"""The ctl socket: how ``mox`` subcommands talk to a running ``mox serve``.

``mox serve`` listens on the unix socket ``ctl`` in its data directory (mode
0600). A command line invocation such as ``mox config account add`` connects,
sends the command name and its string arguments, exchanges whatever the
command needs (JSON values, and data streams of any size in either direction,
e.g. an mbox import or export), and gets a final ok (with an optional JSON
result) or an error message to print. One connection carries one command.

- ``mox.ctl.protocol``: the wire format and flow control, sans-IO.
- ``mox.ctl.server``: :class:`CtlServer` and the handlers' :class:`CtlConn`
  (asyncio).
- ``mox.ctl.client``: :class:`CtlClient`, blocking, for the CLI.

Upstream mox has the same socket with its own line-based "ctlv0" protocol; we
keep the idea and the greeting check but use length-prefixed frames with
explicit per-chunk acknowledgements (see the protocol module for why).
"""

from mox.ctl.client import CtlClient, CtlConnectError, call
from mox.ctl.protocol import (
    VERSION,
    ConnectionClosed,
    CtlError,
    ProtocolError,
    StreamAborted,
)
from mox.ctl.server import CtlCommandError, CtlConn, CtlLog, CtlServer, Handler, IncomingStream, StdlibLog

__all__ = [
    "VERSION",
    "ConnectionClosed",
    "CtlClient",
    "CtlCommandError",
    "CtlConn",
    "CtlConnectError",
    "CtlError",
    "CtlLog",
    "CtlServer",
    "Handler",
    "IncomingStream",
    "ProtocolError",
    "StdlibLog",
    "StreamAborted",
    "call",
]
