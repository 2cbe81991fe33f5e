"""sconf: the configuration file format of upstream mox, parsed into typed dataclasses.

Format (as written by upstream's github.com/mjl-/sconf, which mox.conf and
domains.conf use):

- One ``Key: value`` per line. Indentation is with tabs only; a nested struct,
  map or list follows its ``Key:`` line indented one tab deeper.
- Comments are lines whose first non-whitespace character is ``#``; they never
  end a line that holds a value. Empty lines are ignored.
- Scalars run to the end of the line, without quoting or escapes: strings,
  ``true``/``false``, base-10 integers, floats, and durations in Go's syntax
  (``72h``, ``1h30m``, ``72h0m0s``).
- Lists: items on indented lines starting with ``-``; ``- value`` for scalars,
  a bare ``-`` followed by more indented fields for structs.
- Maps have arbitrary string keys; the value ``nil`` stands for the zero value
  (e.g. ``mox@localhost: nil`` for a destination without settings).
- Parsing is directed by the target types: the same text is a map or a struct
  depending on the field's type. Unknown keys, duplicate keys and missing
  required keys are errors.

Types are plain dataclasses whose attribute names are the sconf keys. Field
metadata made with :func:`option` says whether a key is optional and holds its
documentation (used when writing files and for ``mox config describe-*``);
fields made with :func:`derived` hold values computed during validation and are
never read or written.

Errors are :class:`SconfError`, rendered as ``file:line: Path.To.Field: message``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import textwrap
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Go's int is 64 bits on the platforms mox runs on; integers outside are errors
# rather than silently different numbers.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

# Written comments are wrapped at this width (not counting indentation), as
# upstream's generated files are.
DOC_WIDTH = 80


class Duration(int):
    """A duration in nanoseconds, written in Go's ``time.Duration`` syntax."""

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"

    def __str__(self) -> str:
        return format_duration(self)

    @property
    def seconds(self) -> float:
        return self / 1e9


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(s: str) -> Duration:
    """Parse a duration like Go's ``time.ParseDuration``: ``[-+]?(\\d*(\\.\\d*)?unit)+`` or ``0``.

    Raises:
        ValueError: with a message saying what was expected.
    """
    orig = s
    if s == "":
        raise ValueError('invalid duration "": expected e.g. 72h, 1h30m or 10s')
    neg = False
    if s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return Duration(0)
    if s == "":
        raise ValueError(f"invalid duration {orig!r}")
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or (m.group(1) == "" and (m.group(2) is None or m.group(2) == ".")):
            raise ValueError(f"invalid duration {orig!r}: expected number followed by unit (ns, us, ms, s, m, h)")
        if len(m.group(1).lstrip("0")) > 19:
            # More digits than any int64 has (and more than int() converts).
            raise ValueError(f"invalid duration {orig!r}: out of range")
        whole = int(m.group(1) or "0")
        unit = _DURATION_UNITS[m.group(3)]
        frac = m.group(2)
        total += whole * unit
        if frac and len(frac) > 1:
            # As Go's leadingFraction: digits beyond what an int64 holds do not
            # count, and the float64 arithmetic gives Go's nanoseconds (e.g.
            # "0.3333333333333333333h" is exactly 20m).
            f, scale = 0, 1.0
            for ch in frac[1:]:
                if f > INT_MAX // 10 or f * 10 + int(ch) > INT_MAX + 1:
                    break
                f = f * 10 + int(ch)
                scale *= 10
            total += int(float(f) * (unit / scale))
        pos = m.end()
    # As in Go, -2**63 (the smallest int64) is allowed, +2**63 is not.
    if total > (INT_MAX + 1 if neg else INT_MAX):
        raise ValueError(f"invalid duration {orig!r}: out of range")
    return Duration(-total if neg else total)


def format_duration(ns: int) -> str:
    """Format nanoseconds like Go's ``Duration.String``: ``72h0m0s``, ``1.5s``, ``300ms``, ``0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        # Sub-second: the largest unit that keeps the number >= 1.
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if u >= size:
                return sign + _fraction(u, size) + unit
    out = ""
    hours, rest = divmod(u, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    out += _fraction(rest, 1_000_000_000) + "s"
    return sign + out


def _fraction(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if frac == 0:
        return str(whole)
    width = len(str(size)) - 1
    return f"{whole}." + str(frac).rjust(width, "0").rstrip("0")


class SconfError(ValueError):
    """A config file could not be parsed or failed validation.

    ``str()`` gives ``file:line: path: message``; line 0 means the error is not
    about one line (e.g. a relation between two fields).
    """

    def __init__(self, filename: str, line: int, path: str, message: str) -> None:
        self.filename = filename
        self.line = line
        self.path = path
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        loc = f"{self.filename}:{self.line}" if self.line else self.filename
        return f"{loc}: {self.path}: {self.message}" if self.path else f"{loc}: {self.message}"


_META_KEY = "sconf"


@dataclasses.dataclass(frozen=True)
class _FieldInfo:
    doc: str
    optional: bool
    ignore: bool


def option(
    doc: str = "",
    *,
    optional: bool = True,
    default: Any = None,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field. ``optional=False`` makes the key required, as upstream marks it.

    Without default or factory the default is None (an absent pointer-like section)."""
    meta = {_META_KEY: _FieldInfo(doc=doc, optional=optional, ignore=False)}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def required(doc: str = "", *, default: Any = "", factory: Any = dataclasses.MISSING) -> Any:
    """A config field that must be present in the file. The default (for an
    instance made in code) is the empty string unless given."""
    return option(doc, optional=False, default=default, factory=factory)


def derived(*, default: Any = None, factory: Any = dataclasses.MISSING) -> Any:
    """A value computed during validation; never read from or written to a file."""
    meta = {_META_KEY: _FieldInfo(doc="", optional=True, ignore=True)}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta, repr=False, compare=False)
    return dataclasses.field(default=default, metadata=meta, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One sconf key of a dataclass: its name, type and documentation."""

    name: str
    type: Any
    doc: str
    optional: bool


_spec_cache: dict[type, list[FieldSpec]] = {}


def fields_of(cls: type) -> list[FieldSpec]:
    """The sconf keys of a config dataclass, in declaration order."""
    specs = _spec_cache.get(cls)
    if specs is not None:
        return specs
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        info = f.metadata.get(_META_KEY)
        if info is None:
            info = _FieldInfo(doc="", optional=False, ignore=False)
        if info.ignore:
            continue
        specs.append(FieldSpec(f.name, hints[f.name], info.doc, info.optional))
    _spec_cache[cls] = specs
    return specs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """For ``X | None`` return (X, True); otherwise (tp, False)."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def zero_value(tp: Any) -> Any:
    """The zero value of a config type, as Go would have it."""
    if _unwrap_optional(tp)[1]:
        return None
    origin = typing.get_origin(tp)
    if origin is list:
        return []
    if origin is dict:
        return {}
    if tp is Duration:
        return Duration(0)
    if tp in (str, int, float, bool):
        return tp()
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp()
    raise TypeError(f"unsupported config type {tp!r}")


Path = tuple[str | int, ...]


def path_string(path: Path) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out


class LineMap(dict[Path, int]):
    """Line numbers at which keys (by path) were found while parsing."""

    def __init__(self, filename: str) -> None:
        super().__init__()
        self.filename = filename

    def line_of(self, path: Path) -> int:
        """The line of the longest prefix of path that was in the file (0 if none)."""
        p = tuple(path)
        while p:
            if p in self:
                return self[p]
            p = p[:-1]
        return 0

    def error(self, path: Path, message: str) -> SconfError:
        return SconfError(self.filename, self.line_of(path), path_string(path), message)


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.index = 0  # next line to read
        self.lineno = 0  # 1-based number of the current line
        self.current: str | None = None  # remaining text of the current line, None when consumed
        self.prefix = ""
        self.linemap = LineMap(filename)

    def fail(self, path: Path, message: str, line: int | None = None) -> typing.NoReturn:
        raise SconfError(self.filename, self.lineno if line is None else line, path_string(path), message)

    def next(self) -> bool:
        """Make a line available; True if it is indented at least at the current level."""
        while self.current is None:
            if self.index >= len(self.lines):
                return False
            s = self.lines[self.index]
            self.index += 1
            self.lineno = self.index
            if s.strip().startswith("#") or s == "":
                continue
            if s.endswith("\r"):
                self.fail((), "line ends with a carriage return: use plain newlines (LF), not CRLF")
            self.current = s
        return self.current.startswith(self.prefix)

    def consume(self) -> str:
        s = self.current
        self.current = None
        return s or ""

    def indent(self, path: Path, what: str) -> None:
        self.prefix += "\t"
        if not self.next():
            hint = ""
            if self.current is not None and self.current[len(self.prefix) - 1 :].startswith(" "):
                hint = " (this line is indented with spaces)"
            self.fail(path, f"expected {what} on lines below, indented with one more tab{hint}")

    def unindent(self) -> None:
        self.prefix = self.prefix[:-1]

    # Values

    def value(self, tp: Any, path: Path) -> Any:
        inner, is_ptr = _unwrap_optional(tp)
        if is_ptr:
            return self.value(inner, path)
        origin = typing.get_origin(tp)
        if origin is list:
            return self.list(typing.get_args(tp)[0], path)
        if origin is dict:
            return self.map(typing.get_args(tp)[1], path)
        if dataclasses.is_dataclass(tp):
            if self.current:
                self.fail(path, f"expected indented fields on lines below, not a value {self.current!r} on the same line")
            self.consume()
            assert isinstance(tp, type)
            return self.struct(tp, path, nested=True)
        s = self.consume()
        return self.scalar(tp, s, path)

    def scalar(self, tp: Any, s: str, path: Path) -> Any:
        if tp is str:
            return s
        if tp is bool:
            if s == "true":
                return True
            if s == "false":
                return False
            self.fail(path, f"expected true or false, not {s!r}")
        if tp is Duration:
            try:
                return parse_duration(s)
            except ValueError as e:
                self.fail(path, str(e))
        if tp is int:
            if not re.fullmatch(r"[+-]?[0-9]+", s):
                self.fail(path, f"expected an integer, not {s!r}")
            if len(s.lstrip("+-0")) > 19:
                # Checked before int(), which refuses strings of thousands of digits.
                self.fail(path, f"integer {s if len(s) <= 30 else s[:30] + '...'} out of range")
            v = int(s)
            if not INT_MIN <= v <= INT_MAX:
                self.fail(path, f"integer {s} out of range")
            return v
        if tp is float:
            if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", s, re.I):
                self.fail(path, f"expected a number, not {s!r}")
            return float(s)
        raise TypeError(f"unsupported config type {tp!r}")

    def list(self, elem: Any, path: Path) -> list[Any]:
        if self.current:
            self.fail(path, f"expected list items on lines below starting with '-', not a value {self.current!r} on the same line")
        self.consume()
        self.indent(path, "list items starting with '-'")
        try:
            out: list[Any] = []
            while self.next():
                s = self.consume()[len(self.prefix):]
                ipath = (*path, len(out))
                self.linemap[ipath] = self.lineno
                if not s.startswith("-"):
                    self.fail(ipath, f"expected a list item starting with '-', saw {s!r}")
                s = s[1:]
                if s:
                    if not s.startswith(" "):
                        self.fail(ipath, "missing space after '-'")
                    s = s[1:]
                self.current = s
                out.append(self.value(elem, ipath))
            return out
        finally:
            self.unindent()

    def _key_value(self, path: Path, what: str) -> tuple[str, str]:
        orig = self.consume()
        s = orig[len(self.prefix):]
        key, sep, rest = s.partition(":")
        if not sep:
            hint = ""
            if s.strip() == "":
                hint = " (stray whitespace?)"
            elif s.startswith((" ", "\t")):
                hint = " (mixed tab/space indenting?)"
            self.fail(path, f"expected 'Key: value' for {what}, saw {orig!r}{hint}")
        if key == "":
            self.fail(path, f"empty key in {what}")
        if key.startswith("\t"):
            self.fail(path, f"line {orig!r} is indented deeper than expected")
        if key.startswith(" "):
            self.fail(path, f"key {key!r} starts with a space (mixed tab/space indenting?)")
        if rest and not rest.startswith(" "):
            self.fail((*path, key), "missing space after colon")
        return key, rest[1:]

    def struct(self, cls: type, path: Path, nested: bool) -> Any:
        if nested:
            self.indent(path, "fields")
        try:
            specs = {f.name: f for f in fields_of(cls)}
            values: dict[str, Any] = {}
            start = self.linemap.get(path, self.lineno)
            while self.next():
                key, rest = self._key_value(path, "a field")
                kpath = (*path, key)
                if key in values:
                    self.fail(kpath, "duplicate key")
                spec = specs.get(key)
                if spec is None:
                    hint = ""
                    if key.strip() != key:
                        hint = " (stray whitespace in key?)"
                    else:
                        lower = {k.lower(): k for k in specs}
                        if key.lower() in lower:
                            hint = f" (did you mean {lower[key.lower()]}?)"
                    self.fail(kpath, f"unknown key {key!r}{hint}")
                self.linemap[kpath] = self.lineno
                self.current = rest
                values[key] = self.value(spec.type, kpath)
            for name, spec in specs.items():
                if name not in values and not spec.optional:
                    self.fail((*path, name), "missing required key", line=start)
            return cls(**values)
        finally:
            if nested:
                self.unindent()

    def map(self, elem: Any, path: Path) -> dict[str, Any]:
        if self.current:
            self.fail(path, f"expected map entries on lines below, not a value {self.current!r} on the same line")
        self.consume()
        self.indent(path, "map entries")
        try:
            out: dict[str, Any] = {}
            while self.next():
                key, rest = self._key_value(path, "a map entry")
                kpath = (*path, key)
                if key in out:
                    self.fail(kpath, "duplicate key")
                self.linemap[kpath] = self.lineno
                if rest == "nil":
                    out[key] = zero_value(elem)
                    if out[key] is None:
                        # nil for a pointer type: the zero value of the pointed-to type, as upstream.
                        out[key] = zero_value(_unwrap_optional(elem)[0])
                    continue
                self.current = rest
                out[key] = self.value(elem, kpath)
            return out
        finally:
            self.unindent()


def parse(cls: type[T], text: str, filename: str) -> tuple[T, LineMap]:
    """Parse sconf text into an instance of the dataclass ``cls``.

    Returns:
        The instance and the line numbers of every key found (for later
        validation errors).

    Raises:
        SconfError: on any syntax or type error, naming file, line and field.
    """
    p = _Parser(text, filename)
    obj = p.struct(cls, (), nested=False)
    return typing.cast(T, obj), p.linemap


# Writing


def _is_zero(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, dict)):
        return len(value) == 0
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_is_zero(getattr(value, f.name)) for f in fields_of(type(value)))
    return not value


def _is_empty_struct(value: Any) -> bool:
    """A struct whose fields are all optional and zero: written as ``nil`` in a map."""
    return all(f.optional and _is_zero(getattr(value, f.name)) for f in fields_of(type(value)))


@functools.lru_cache(maxsize=4096)
def _doc_comment(doc: str, optional: bool, prefix: str) -> str:
    """A field's documentation as wrapped comment lines (cached: files repeat the same fields often)."""
    text = doc
    if optional:
        text = (text + " " if text else "") + "(optional)"
    out = []
    for paragraph in text.split("\n"):
        lines = textwrap.wrap(paragraph, DOC_WIDTH, break_long_words=False, break_on_hyphens=False) or [""]
        for line in lines:
            out.append(f"{prefix}# {line}".rstrip() + "\n")
    return "".join(out)


class _Writer:
    def __init__(self, docs: bool, keep_zero: bool) -> None:
        self.docs = docs
        self.keep_zero = keep_zero
        self.out: list[str] = []
        self.prefix = ""

    def write_doc(self, doc: str, optional: bool) -> None:
        if not doc and not optional:
            return
        if self.out:
            self.out.append("\n")
        self.out.append(_doc_comment(doc, optional, self.prefix))

    def struct(self, value: Any) -> None:
        for spec in fields_of(type(value)):
            fv = getattr(value, spec.name)
            if not self.keep_zero and spec.optional and _is_zero(fv):
                continue
            if self.docs:
                self.write_doc(spec.doc, spec.optional)
            self.out.append(f"{self.prefix}{spec.name}:")
            self.value(spec.type, fv, (spec.name,))

    def value(self, tp: Any, value: Any, path: Path) -> None:
        inner, is_ptr = _unwrap_optional(tp)
        if is_ptr:
            self.value(inner, zero_value(inner) if value is None else value, path)
            return
        origin = typing.get_origin(tp)
        if origin is list:
            self.out.append("\n")
            self.prefix += "\t"
            elem = typing.get_args(tp)[0]
            items = value
            if not items:
                if not self.keep_zero:
                    raise ValueError(f"{path_string(path)}: a required list cannot be empty")
                items = [zero_value(elem)]
            for item in items:
                self.out.append(f"{self.prefix}-")
                self.value(elem, item, path)
            self.prefix = self.prefix[:-1]
            return
        if origin is dict:
            self.out.append("\n")
            self.prefix += "\t"
            elem = typing.get_args(tp)[1]
            inner_elem = _unwrap_optional(elem)[0]
            entries = value
            if not entries:
                if not self.keep_zero:
                    # Upstream's parser wants at least one indented entry.
                    raise ValueError(f"{path_string(path)}: a required map cannot be empty")
                entries = {"x": zero_value(elem)}
            for key in sorted(entries):
                self.check_key(key, path)
                v = entries[key]
                self.out.append(f"{self.prefix}{key}:")
                if not self.keep_zero and dataclasses.is_dataclass(inner_elem):
                    if v is None or _is_empty_struct(v):
                        self.out.append(" nil\n")
                        continue
                if not self.keep_zero and inner_elem is str and v == "nil":
                    # A map value nil is read back as the zero value, the empty string.
                    raise ValueError(f"{path_string((*path, key))}: the map value 'nil' cannot be written in sconf")
                self.value(elem, v, (*path, key))
            self.prefix = self.prefix[:-1]
            return
        if dataclasses.is_dataclass(tp):
            if not self.keep_zero and _is_empty_struct(value):
                # It would write no indented lines, which the parser refuses.
                raise ValueError(f"{path_string(path)}: a struct without any field set cannot be written here")
            self.out.append("\n")
            self.prefix += "\t"
            self.struct(value)
            self.prefix = self.prefix[:-1]
            return
        self.out.append(" " + self.scalar(tp, value, path) + "\n")

    def check_key(self, key: str, path: Path) -> None:
        if key == "" or ":" in key or "\n" in key or "\r" in key or key.startswith((" ", "\t")) or key.lstrip().startswith("#"):
            # A line whose first non-whitespace character is '#' is a comment. A
            # leading '-' is fine: maps are read by type, '-' only marks list items.
            raise ValueError(f"{path_string(path)}: map key {key!r} cannot be written in sconf")

    def scalar(self, tp: Any, value: Any, path: Path) -> str:
        if tp is bool:
            return "true" if value else "false"
        if tp is Duration:
            return format_duration(value)
        if tp is int:
            return str(int(value))
        if tp is float:
            return f"{value:f}"
        if tp is str:
            if "\n" in value or "\r" in value:
                raise ValueError(f"{path_string(path)}: multi-line strings cannot be written in sconf")
            return str(value)
        raise TypeError(f"unsupported config type {tp!r}")


def write(value: Any, *, docs: bool = True, header: str = "") -> str:
    """Write a config dataclass instance as sconf text.

    Optional fields with zero values are left out, as upstream writes them.
    Args:
        value: the dataclass instance.
        docs: include each field's documentation as comments.
        header: comment text (without ``#``) written at the top.

    Raises:
        ValueError: a value cannot be represented (multi-line string, empty
            required list or map, unwritable map key, map value "nil", a
            struct without any field set where no "nil" is possible).
    """
    w = _Writer(docs=docs, keep_zero=False)
    if header:
        for line in header.split("\n"):
            w.out.append(f"# {line}".rstrip() + "\n")
        if not docs:
            w.out.append("\n")  # with docs, the first field's comment starts with a blank line
    w.struct(value)
    return "".join(w.out)


def describe(cls: type) -> str:
    """All fields of a config type with their documentation, zero values and ``x`` for map keys."""
    w = _Writer(docs=True, keep_zero=True)
    w.struct(cls())
    return "".join(w.out)


def walk_strings(value: Any, fn: Callable[[str], None]) -> None:
    """Call fn on every string value in a config value (for checks such as NFC)."""
    if isinstance(value, str):
        fn(value)
    elif isinstance(value, list):
        for v in value:
            walk_strings(v, fn)
    elif isinstance(value, dict):
        for v in value.values():
            walk_strings(v, fn)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in fields_of(type(value)):
            walk_strings(getattr(value, f.name), fn)
