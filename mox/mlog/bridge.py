"""Routing of Python's standard logging (aiohttp, asyncio, ...) into mlog.

Records become mlog lines with pkg=<logger name> and the level mapped:
CRITICAL and ERROR to error, WARNING to warn, INFO to info, DEBUG to debug,
anything lower to trace. The configuration applies to them like to mox's own
packages, hierarchically: a level configured for "aiohttp" also applies to
"aiohttp.access" unless that has its own.

The root logger's level follows the most verbose configured mlog level, so
the stdlib's own cheap level check drops records nobody wants before they
are even formatted.
"""

from __future__ import annotations

import functools
import logging
import traceback

from mox.mlog import log as _log

_DEBUG = int(_log.Level.DEBUG)
_TRACE = int(_log.Level.TRACE)


def _from_stdlib(levelno: int) -> int:
    if levelno >= logging.ERROR:
        return int(_log.Level.ERROR)
    if levelno >= logging.WARNING:
        return int(_log.Level.WARN)
    if levelno >= logging.INFO:
        return int(_log.Level.INFO)
    if levelno >= logging.DEBUG:
        return _DEBUG
    return _TRACE


def _to_stdlib(level: int) -> int:
    """The stdlib level that lets through what mlog level would write."""
    if level <= _TRACE:
        return 1  # Everything, also custom levels below DEBUG.
    if level <= _DEBUG:
        return logging.DEBUG
    if level <= _log.Level.INFO:
        return logging.INFO
    if level <= _log.Level.WARN:
        return logging.WARNING
    return logging.ERROR


@functools.lru_cache(maxsize=1024)
def _logger_for(name: str) -> _log.Log:
    # Config keys: every dotted prefix, most specific last.
    parts = name.split(".")
    keys = tuple(".".join(parts[: i + 1]) for i in range(len(parts)))
    return _log.Log((name,), keys=keys)


class MlogHandler(logging.Handler):
    """A logging.Handler writing records as mlog lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = _from_stdlib(record.levelno)
            lg = _logger_for(record.name)
            if not lg.enabled(level):
                return
            err: BaseException | None = None
            fields: dict[str, object] = {}
            if record.exc_info and record.exc_info[1] is not None:
                err = record.exc_info[1]
                fields["stack"] = "".join(traceback.format_exception(err)).rstrip("\n")
            msg = record.getMessage()
            lg._emit(level, msg, err, fields)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


_installed: tuple[MlogHandler, list[logging.Handler], int] | None = None


def _sync_root_level() -> None:
    if _installed is not None:
        logging.getLogger().setLevel(_to_stdlib(_log._lowest_level()))


def install_stdlib_bridge() -> None:
    """Make the root logger write through mlog, replacing its handlers.

    The root logger's level is kept in step with set_config. Calling it again
    has no further effect; uninstall_stdlib_bridge restores the previous setup.
    """
    global _installed
    if _installed is not None:
        return
    root = logging.getLogger()
    handler = MlogHandler()
    _installed = (handler, list(root.handlers), root.level)
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    _log._config_listeners.append(_sync_root_level)
    _sync_root_level()


def uninstall_stdlib_bridge() -> None:
    """Undo install_stdlib_bridge: restore the root logger's handlers and level."""
    global _installed
    if _installed is None:
        return
    handler, handlers, level = _installed
    _installed = None
    root = logging.getLogger()
    root.removeHandler(handler)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    if _sync_root_level in _log._config_listeners:
        _log._config_listeners.remove(_sync_root_level)
