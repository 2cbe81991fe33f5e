"""Structured logging for mox: logfmt lines with per-package levels.

Each package makes a logger, ``log = mlog.new("smtpserver")``, and derives
per-connection loggers with fields (``log.with_cid(cid)``). A line looks like
upstream mox's ``mox serve`` output::

    l=info m="new connection" pkg=smtpserver remote=192.0.2.1:4567 cid=18c3e1a2b3c
    l=error m="delivery failed" err="connection refused" pkg=queue msgid=42

Format (logfmt): ``l=`` the level name, ``m=`` the message, always quoted,
then ``err=`` for the *x methods (``log.errorx(msg, err)``), ``pkg=``, the
call's fields, the logger's fields (with_fields), and fields from the
logger's function (with_func). Values are written as is when they consist of
printable ASCII other than space, ``"``, ``\\`` and ``=``; otherwise they are
double-quoted with Go-style escapes (``\\"``, ``\\\\``, ``\\n``, ``\\xNN``,
``\\uNNNN``), so every line is one line and can be parsed back. An empty value
is written as ``key=``. See value_string for how types are rendered (an int
cid is hex, durations like Go's, bytes as base64url). No timestamp unless
set_timestamps(True): the service manager adds its own, as with upstream.
set_logfmt(False) selects upstream's command-line format instead,
``level: message: error; pkg=x; key=value``.

Levels, from least to most verbose: ``error``, ``warn``, ``info``, ``debug``,
``trace``, ``traceauth``, ``tracedata``; plus ``print`` and ``fatal``, which
are written whatever the configuration (fatal then exits). The trace levels
are for protocol transcripts (Log.trace_line, Tracer): at ``trace`` every
protocol line is written, but credentials (e.g. an AUTH PLAIN response) are
written as ``***`` and bulk data (a message after DATA) as ``...``;
``traceauth`` shows the credentials too; ``tracedata`` also the data.

Levels are configured per package with set_config({"": default, "pkg":
level}), at any time: every logger picks up the change on its next call. A
call that does not write costs a method call and two comparisons.

install_stdlib_bridge routes the standard library's logging (aiohttp,
asyncio) into mlog, with pkg= the stdlib logger's name.
"""

from mox.mlog.bridge import MlogHandler, install_stdlib_bridge, uninstall_stdlib_bridge
from mox.mlog.log import (
    LEVELS,
    Level,
    Log,
    Tracer,
    UnknownLevelError,
    current_cid,
    format_duration,
    format_value,
    get_config,
    is_closed,
    metric_counts,
    new,
    new_cid,
    parse_level,
    quote,
    set_config,
    set_logfmt,
    set_output,
    set_timestamps,
    value_string,
)

__all__ = [
    "LEVELS",
    "Level",
    "Log",
    "MlogHandler",
    "Tracer",
    "UnknownLevelError",
    "current_cid",
    "format_duration",
    "format_value",
    "get_config",
    "install_stdlib_bridge",
    "is_closed",
    "metric_counts",
    "new",
    "new_cid",
    "parse_level",
    "quote",
    "set_config",
    "set_logfmt",
    "set_output",
    "set_timestamps",
    "uninstall_stdlib_bridge",
    "value_string",
]
