"""The logger, its levels, the per-package configuration and the line format.

See the package docstring (mox/mlog/__init__.py) for the format and the levels.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import dataclasses
import enum
import errno
import itertools
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TextIO


class Level(enum.IntEnum):
    """Log levels, lower is more verbose.

    The values are those of upstream (Go's slog levels with mox's additions), so
    they order the same way. FATAL and PRINT lines are written whatever the
    configured level.
    """

    TRACEDATA = -12  # Trace, including full protocol data (e.g. message in SMTP DATA).
    TRACEAUTH = -10  # Trace, including authentication data (e.g. passwords in AUTH).
    TRACE = -8  # Protocol transcripts, with data shown as "..." and auth as "***".
    DEBUG = -4
    INFO = 0
    WARN = 4
    ERROR = 8
    FATAL = 12  # Written regardless of the configured level, then the program exits.
    PRINT = 16  # Written regardless of the configured level.

    def __str__(self) -> str:
        return self.name.lower()


# Name to level, as accepted in mox.conf (LogLevel, PackageLogLevels) and by "mox loglevels".
LEVELS: dict[str, Level] = {str(lvl): lvl for lvl in Level}

# Plain ints for comparisons on the hot path (IntEnum comparisons are slower).
_TRACEDATA = int(Level.TRACEDATA)
_TRACEAUTH = int(Level.TRACEAUTH)
_TRACE = int(Level.TRACE)
_DEBUG = int(Level.DEBUG)
_INFO = int(Level.INFO)
_WARN = int(Level.WARN)
_ERROR = int(Level.ERROR)
_FATAL = int(Level.FATAL)
_PRINT = int(Level.PRINT)

_LEVEL_NAMES: dict[int, str] = {int(lvl): str(lvl) for lvl in Level}


class UnknownLevelError(ValueError):
    """A log level name is not one of LEVELS."""


def parse_level(name: str) -> Level:
    """Return the level for a name like "info" or "traceauth".

    Raises:
        UnknownLevelError: name is not a level name; the message lists the valid names.
    """
    try:
        return LEVELS[name]
    except KeyError:
        valid = ", ".join(LEVELS)
        raise UnknownLevelError(f"unknown log level {name!r}, valid levels: {valid}") from None


def _match(minimum: int, level: int) -> bool:
    """Whether a line at level is written when the configured level is minimum.

    Any trace level configured enables all trace lines: the more verbose ones are
    written with their data replaced (see Log.trace_line), so a transcript never
    has gaps.
    """
    return level >= _FATAL or level >= minimum or (minimum <= _TRACE and level <= _TRACE)


# Configuration. A snapshot is replaced as a whole, never modified, so readers
# need no lock; each Log caches its effective level together with the snapshot
# it was computed from and recomputes when the snapshot changed.
class _Snapshot:
    __slots__ = ("levels",)

    def __init__(self, levels: dict[str, int]) -> None:
        self.levels = levels


# Upstream starts with debug for everything, until the config file is loaded.
_snapshot = _Snapshot({"": _DEBUG})
_config_listeners: list[Callable[[], None]] = []


def set_config(levels: Mapping[str, Level | int]) -> None:
    """Set the levels for all loggers, effective immediately (also for existing ones).

    Args:
        levels: package name to level; the key "" is the default for packages
            without their own entry (info when absent).
    """
    global _snapshot
    for pkg, lvl in levels.items():
        if not isinstance(pkg, str) or not isinstance(lvl, int) or int(lvl) not in _LEVEL_NAMES:
            raise ValueError(f"bad log level config entry {pkg!r}: {lvl!r}")
    _snapshot = _Snapshot({pkg: int(lvl) for pkg, lvl in levels.items()})
    for fn in _config_listeners:
        fn()


def get_config() -> dict[str, Level]:
    """Return a copy of the current per-package levels ("" is the default)."""
    return {pkg: Level(lvl) for pkg, lvl in _snapshot.levels.items()}


def _lowest_level() -> int:
    levels = _snapshot.levels
    return min([levels.get("", _INFO), *levels.values()])


# Output. One write per line under a lock: lines of concurrent tasks and
# threads never interleave.
_output: TextIO | None = None  # None: sys.stderr, looked up at each write.
_output_lock = threading.Lock()
_logfmt = True
_timestamps = False
_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731 - hook for tests.
_exit: Callable[[int], NoReturn] = sys.exit  # Hook for tests; called by fatal.

# Lines written at info, warn and error, for the metrics
# mox_logging_level_{info,warn,error}_total.
_counts = {"info": 0, "warn": 0, "error": 0}


def set_output(stream: TextIO | None) -> None:
    """Write log lines to stream; None means sys.stderr (the default)."""
    global _output
    _output = stream


def set_logfmt(enabled: bool) -> None:
    """Choose between logfmt lines (default, for "mox serve") and upstream's
    command-line format: "level: message: error; pkg=...; key=value"."""
    global _logfmt
    _logfmt = enabled


def set_timestamps(enabled: bool) -> None:
    """Start each line with a UTC timestamp field, t=2006-01-02T15:04:05.000Z.

    Off by default, as upstream: the service manager (journald, docker) adds
    its own timestamps.
    """
    global _timestamps
    _timestamps = enabled


def metric_counts() -> dict[str, int]:
    """Number of lines written at info, warn and error, for the metrics endpoint."""
    return dict(_counts)


def _write(line: str) -> None:
    with _output_lock:
        out = _output if _output is not None else sys.stderr
        try:
            out.write(line)
            out.flush()
        except (OSError, ValueError):
            # Closed or broken stderr: nowhere left to report it.
            pass


# Connection ids. Like upstream: a counter starting at the current time in
# milliseconds, so ids are unique within a process and rarely repeat across
# restarts. A "cid" field with an int value is written in hex.
_cid_counter = itertools.count(int(time.time() * 1000) + 1)

# The cid of the connection or request the current task is working for; set it
# at the start of handling a connection and use Log.with_context.
current_cid: contextvars.ContextVar[int] = contextvars.ContextVar("mox_cid", default=0)


def new_cid() -> int:
    """Return a new unique id for a connection, session or request."""
    return next(_cid_counter)


def is_closed(err: BaseException) -> bool:
    """Whether err means the connection is closed or unusable, as opposed to a
    real problem: such errors are logged at debug level by Log.check."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, BrokenPipeError | ConnectionResetError | ConnectionAbortedError):
            return True
        if isinstance(e, ssl.SSLError):
            # The remote sent a TLS alert, e.g. it does not trust our certificate.
            reason = getattr(e, "reason", None) or ""
            if "ALERT" in reason:
                return True
        elif isinstance(e, OSError) and e.errno in (errno.EPIPE, errno.ECONNRESET, errno.EBADF):
            return True
        e = e.__cause__ or e.__context__
    return False


# Formatting.

# logfmt values without any of these are written as is: ASCII printable
# without space, quote, backslash and "=" (as upstream).
_PLAIN_VALUE = re.compile(r"[!#-<>-\[\]-~]*")
# In a quoted string, everything but printable ASCII other than quote and
# backslash is looked at by _escape_char.
_QUOTE_SPECIAL = re.compile(r"[^ !#-\[\]-~]")
_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}
# Field names may only hold characters that cannot confuse a logfmt parser.
_BAD_KEY_CHARS = re.compile(r"[^!#-<>-\[\]-~]")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    e = _SIMPLE_ESCAPES.get(c)
    if e is not None:
        return e
    if c.isprintable():
        return c  # Printable non-ASCII is kept, as Go's %q does.
    o = ord(c)
    if o < 0x80:
        return f"\\x{o:02x}"
    if 0xDC80 <= o <= 0xDCFF:
        # A byte that was not valid UTF-8, decoded with "surrogateescape".
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def quote(s: str) -> str:
    """Return s as a double-quoted string with Go-style escapes (like Go's %q).

    Printable non-ASCII characters are kept; control characters and other
    non-printables become \\xNN, \\uNNNN or \\UNNNNNNNN. Lone surrogates from
    "surrogateescape" decoding (invalid UTF-8 bytes) become \\xNN of the byte.
    """
    return '"' + _QUOTE_SPECIAL.sub(_escape_char, s) + '"'


def format_value(s: str) -> str:
    """Return s as a logfmt value: as is when safe, else quoted."""
    if _PLAIN_VALUE.fullmatch(s):
        return s
    return quote(s)


def _format_key(k: str) -> str:
    if _PLAIN_VALUE.fullmatch(k) and k:
        return k
    return _BAD_KEY_CHARS.sub("_", k) or "_"


def format_duration(d: timedelta) -> str:
    """Format d like Go's time.Duration: "1.5ms", "2m3.25s", "1h0m0s", "0s"."""
    us = d // timedelta(microseconds=1)
    if us == 0:
        return "0s"
    sign = "-" if us < 0 else ""
    us = abs(us)
    if us < 1000:
        return f"{sign}{us}µs"
    if us < 1_000_000:
        return f"{sign}{_fraction(us, 1000)}ms"
    secs, frac = divmod(us, 1_000_000)
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    out = sign
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return out + _fraction(s * 1_000_000 + frac, 1_000_000) + "s"


def _fraction(n: int, unit: int) -> str:
    whole, frac = divmod(n, unit)
    if not frac:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}.{frac:0{width}d}".rstrip("0")


def value_string(v: object, key: str = "", nested: bool = False, depth: int = 0) -> str:
    """Return the text logged for a field value, before logfmt quoting.

    None is empty; bools are true/false; an int under key "cid" is hex (as
    upstream); bytes are base64url without padding (as upstream); exceptions
    their message (or class name when empty); timedelta as Go durations;
    datetime as RFC 3339; lists as "[a,b]" (strings) or "[x;y]"; objects with a
    log_string() method use it; dataclasses without their own __str__ are
    "field=value ..."; anything else str().
    """
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and not isinstance(v, enum.Enum):
        if key == "cid":
            return f"{v:x}"
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.urlsafe_b64encode(bytes(v)).rstrip(b"=").decode("ascii")
    if isinstance(v, BaseException):
        return str(v) or type(v).__name__
    if isinstance(v, timedelta):
        return format_duration(v)
    if isinstance(v, datetime):
        return v.isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(v, list | tuple | set | frozenset):
        if nested and not v:
            return ""  # Drop empty nested lists, as upstream.
        items = sorted(v, key=str) if isinstance(v, set | frozenset) else v
        if all(isinstance(x, str) for x in items):
            return "[" + ",".join(items) + "]"
        return "[" + ";".join(value_string(x, "", True, depth + 1) for x in items) + "]"
    log_string = getattr(v, "log_string", None)
    if callable(log_string):
        return str(log_string())
    if (
        dataclasses.is_dataclass(v)
        and not isinstance(v, type)
        and type(v).__str__ is object.__str__
        and depth < 3
    ):
        parts = []
        for f in dataclasses.fields(v):
            fv = value_string(getattr(v, f.name), "", True, depth + 1)
            if fv != "":
                parts.append(f"{f.name.lower()}={fv}")
        return " ".join(parts)
    return str(v)


FieldFunc = Callable[[], Mapping[str, object]]


class Log:
    """A logger for a package, optionally carrying fields written on every line.

    Create with new(pkg); derive with with_fields, with_cid, with_context,
    with_func, with_pkg. Instances are immutable and cheap; derive one per
    connection or request.
    """

    __slots__ = ("_cache", "_fields", "_fn", "_keys", "_min", "_pkgs", "_snap")

    def __init__(
        self,
        pkgs: tuple[str, ...],
        fields: Mapping[str, object] | None = None,
        fn: FieldFunc | None = None,
        keys: tuple[str, ...] | None = None,
    ) -> None:
        self._pkgs = pkgs
        self._keys = pkgs if keys is None else keys  # Names looked up in the config, last first.
        self._fields: dict[str, object] = dict(fields) if fields else {}
        self._fn = fn
        self._snap: _Snapshot | None = None
        self._min = _INFO
        self._cache: tuple[bool, str, str] | None = None  # Logfmt or not, pkg part, fields part.

    def _refresh(self) -> None:
        snap = _snapshot
        levels = snap.levels
        for k in reversed(self._keys):
            lvl = levels.get(k)
            if lvl is not None:
                break
        else:
            lvl = levels.get("", _INFO)
        self._min = lvl
        self._snap = snap

    def level(self) -> Level:
        """The configured level that applies to this logger now."""
        if self._snap is not _snapshot:
            self._refresh()
        return Level(self._min)

    def enabled(self, level: Level | int) -> bool:
        """Whether a line at level would be written now.

        Any configured trace level enables all trace levels, see trace_line.
        """
        if self._snap is not _snapshot:
            self._refresh()
        minimum = self._min
        return level >= minimum or level >= _FATAL or (minimum <= _TRACE and level <= _TRACE)

    # Derived loggers.

    def _derive(self, pkgs: tuple[str, ...], fields: dict[str, object], fn: FieldFunc | None) -> Log:
        keys = self._keys if pkgs == self._pkgs else self._keys + pkgs[len(self._pkgs) :]
        return Log(pkgs, fields, fn, keys)

    def with_fields(self, **fields: object) -> Log:
        """Return a logger that adds fields to every line (after the call's fields).

        The values are formatted once, for the first line written; use
        with_func for values that change.
        """
        return self._derive(self._pkgs, {**self._fields, **fields}, self._fn)

    def with_cid(self, cid: int) -> Log:
        """Return a logger that adds the connection id field cid."""
        return self.with_fields(cid=cid)

    def with_context(self) -> Log:
        """Return a logger with the cid of the current task (current_cid), if set."""
        cid = current_cid.get()
        return self.with_cid(cid) if cid else self

    def with_func(self, fn: FieldFunc) -> Log:
        """Return a logger that calls fn for extra fields each time a line is written.

        Only one function is kept (as upstream); it is not called for lines that
        are not written. Used for fields that change, like time since the
        previous line of a connection, or the username after authentication.
        """
        return self._derive(self._pkgs, self._fields, fn)

    def with_pkg(self, pkg: str) -> Log:
        """Return a logger that also writes pkg=pkg, with pkg's level taking
        precedence in the configuration. No change when pkg is already last."""
        if self._pkgs and self._pkgs[-1] == pkg:
            return self
        return self._derive((*self._pkgs, pkg), self._fields, self._fn)

    # Logging. Each method first checks the cached level: a line that is not
    # written costs a method call, an identity check and an int comparison.

    def trace(self, msg: str, /, **fields: object) -> None:
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _TRACE:
            self._emit(_TRACE, msg, None, fields)

    def debug(self, msg: str, /, **fields: object) -> None:
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _DEBUG:
            self._emit(_DEBUG, msg, None, fields)

    def debugx(self, msg: str, err: object, /, **fields: object) -> None:
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _DEBUG:
            self._emit(_DEBUG, msg, err, fields)

    def info(self, msg: str, /, **fields: object) -> None:
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _INFO:
            self._emit(_INFO, msg, None, fields)

    def infox(self, msg: str, err: object, /, **fields: object) -> None:
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _INFO:
            self._emit(_INFO, msg, err, fields)

    def warn(self, msg: str, /, **fields: object) -> None:
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _WARN:
            self._emit(_WARN, msg, None, fields)

    def warnx(self, msg: str, err: object, /, **fields: object) -> None:
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _WARN:
            self._emit(_WARN, msg, err, fields)

    def error(self, msg: str, /, **fields: object) -> None:
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _ERROR:
            self._emit(_ERROR, msg, None, fields)

    def errorx(self, msg: str, err: object, /, **fields: object) -> None:
        """Log at error level with err written as the first field, err=...

        err is typically an exception; None writes no err field.
        """
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= _ERROR:
            self._emit(_ERROR, msg, err, fields)

    def print(self, msg: str, /, **fields: object) -> None:
        """Log regardless of the configured level."""
        self._emit(_PRINT, msg, None, fields)

    def printx(self, msg: str, err: object, /, **fields: object) -> None:
        self._emit(_PRINT, msg, err, fields)

    def fatal(self, msg: str, /, **fields: object) -> NoReturn:
        """Log regardless of the configured level, then exit with status 1.

        Exits by raising SystemExit (sys.exit), which asyncio lets through
        its event loop; finally blocks run, unlike upstream's os.Exit.
        """
        self._emit(_FATAL, msg, None, fields)
        _exit(1)

    def fatalx(self, msg: str, err: object, /, **fields: object) -> NoReturn:
        self._emit(_FATAL, msg, err, fields)
        _exit(1)

    def log(self, level: Level | int, msg: str, /, err: object = None, **fields: object) -> None:
        """Log at any level. At traceauth and tracedata, when the configured level
        is less verbose (but still a trace level), msg is replaced by "***" or "..."."""
        if self._snap is not _snapshot:
            self._refresh()
        lvl = int(level)
        if not _match(self._min, lvl):
            return
        if lvl == _TRACEDATA and self._min > _TRACEDATA:
            msg = "..."
        elif lvl == _TRACEAUTH and self._min > _TRACEAUTH:
            msg = "***"
        self._emit(lvl, msg, err, fields)
        if lvl == _FATAL:
            _exit(1)

    def check(self, err: BaseException | None, msg: str, /, **fields: object) -> None:
        """Log err if it is not None, for errors worth knowing about that do not
        change what the program does (e.g. failing to close a file).

        Timeouts and cancellation are logged at info, closed connections
        (is_closed) at debug, everything else at error.
        """
        if err is None:
            return
        if isinstance(err, TimeoutError | asyncio.CancelledError):
            level = _INFO
        elif is_closed(err):
            level = _DEBUG
        else:
            level = _ERROR
        if self._snap is not _snapshot:
            self._refresh()
        if self._min <= level:
            self._emit(level, msg, err, fields)

    def trace_line(self, level: Level | int, prefix: str, data: bytes | bytearray | memoryview | str) -> None:
        """Log one piece of a protocol transcript, e.g. prefix "RC: " (read from
        client) or "LS: " (written by local server) with the bytes.

        level says what data holds: TRACE for ordinary protocol lines,
        TRACEAUTH for lines with credentials (e.g. an AUTH PLAIN response),
        TRACEDATA for bulk data (e.g. a message after DATA). All are written
        when the configured level is any trace level, but with the data hidden
        when the configured level is less verbose than level: auth lines become
        prefix + "***", data lines become prefix + "..." (with size= still
        giving the length). size= is the data length in bytes (not for hidden
        auth lines).
        """
        if self._snap is not _snapshot:
            self._refresh()
        minimum = self._min
        if minimum > _TRACE and level < minimum and level < _FATAL:
            return  # Inlined _match, this is the hot path.
        lvl = int(level)
        size: int | None
        if isinstance(data, str):
            text = data
            size = len(data.encode("utf-8", "surrogatepass"))
        else:
            raw = bytes(data)
            size = len(raw)
            text = raw.decode("utf-8", "surrogateescape")
        if lvl == _TRACEDATA and minimum > _TRACEDATA:
            text = "..."
        elif lvl == _TRACEAUTH and minimum > _TRACEAUTH:
            text = "***"
            size = None
        self._emit(lvl, prefix + text, None, {} if size is None else {"size": size})

    def tracer(self, prefix: str, level: Level = Level.TRACE) -> Tracer:
        """Return a Tracer for one direction of a connection's transcript."""
        return Tracer(self, prefix, level)

    # Writing.

    def _emit(self, level: int, msg: str, err: object, fields: Mapping[str, object]) -> None:
        if _INFO <= level <= _ERROR:
            _counts["info" if level == _INFO else "warn" if level <= _WARN else "error"] += 1
        logfmt = _logfmt
        sep = " " if logfmt else "; "
        # The pkg and with_fields parts are the same on every line: formatted
        # once, at the first line written.
        cache = self._cache
        if cache is None or cache[0] != logfmt:
            pkgs = "".join(sep + "pkg=" + format_value(pkg) for pkg in self._pkgs)
            cache = self._cache = (logfmt, pkgs, _format_fields(sep, self._fields))
        name = _LEVEL_NAMES.get(level) or str(level)
        if logfmt:
            line = "l=" + name + " m=" + quote(msg)
            if err is not None:
                line += " err=" + format_value(value_string(err))
        else:
            # Upstream's format for command-line tools: "level: message: error; pkg=x; key=value".
            line = name + ": " + (quote(msg) if level <= _TRACE else msg)
            if err is not None:
                line += ": " + value_string(err)
        line += cache[1]
        if fields:
            line += _format_fields(sep, fields)
        line += cache[2]
        if self._fn is not None:
            try:
                extra = self._fn()
            except Exception as e:
                extra = {"logfuncerr": e}
            line += _format_fields(sep, extra)
        if not logfmt:
            # One line per line: newlines in the message or error are escaped.
            line = line.replace("\r", "\\r").replace("\n", "\\n")
        if _timestamps:
            t = _now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            line = ("t=" if logfmt else "") + t + " " + line
        _write(line + "\n")


_key_cache: dict[str, str] = {}


def _format_fields(sep: str, fields: Mapping[str, object]) -> str:
    out = ""
    for k, v in fields.items():
        key = _key_cache.get(k)
        if key is None:
            key = _format_key(k)
            if len(_key_cache) < 10000:
                _key_cache[k] = key
        if type(v) is str:
            text = v
        elif type(v) is int and k != "cid":
            text = str(v)
        else:
            text = value_string(v, k)
        out += sep + key + "=" + (text if _PLAIN_VALUE.fullmatch(text) else quote(text))
    return out


class Tracer:
    """Logs a protocol transcript for one direction of a connection.

    The protocol code sets level when the data changes nature, like upstream's
    trace reader/writer: Level.TRACEAUTH while reading an AUTH exchange,
    Level.TRACEDATA while reading a message after DATA, back to Level.TRACE
    after.
    """

    __slots__ = ("level", "log", "prefix")

    def __init__(self, log: Log, prefix: str, level: Level = Level.TRACE) -> None:
        self.log = log
        self.prefix = prefix
        self.level = level

    def __call__(self, data: bytes | bytearray | memoryview | str) -> None:
        log = self.log
        if log._snap is not _snapshot:
            log._refresh()
        if log._min > _TRACE and self.level < log._min:
            return  # Fast path: no trace level configured.
        log.trace_line(self.level, self.prefix, data)


def new(pkg: str) -> Log:
    """Return a logger for package pkg, writing pkg=<pkg> on each line."""
    return Log((pkg,))
