"""A small, strict logfmt parser for checking mlog's output."""

from __future__ import annotations

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


def _parse_quoted(s: str, i: int) -> tuple[str, int]:
    assert s[i] == '"'
    i += 1
    out: list[str] = []
    while True:
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c != "\\":
            assert c.isprintable(), f"raw unprintable {c!r} in quoted string"
            out.append(c)
            i += 1
            continue
        e = s[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e == "x":
            o = int(s[i + 2 : i + 4], 16)
            # A byte >= 0x80 is an invalid UTF-8 byte, kept "surrogateescape"d.
            out.append(chr(o) if o < 0x80 else chr(0xDC00 + o))
            i += 4
        elif e == "u":
            out.append(chr(int(s[i + 2 : i + 6], 16)))
            i += 6
        elif e == "U":
            out.append(chr(int(s[i + 2 : i + 10], 16)))
            i += 10
        else:
            raise AssertionError(f"bad escape \\{e}")


def parse_line(line: str) -> list[tuple[str, str]]:
    """Parse one logfmt line (with its newline) into key/value pairs."""
    assert line.endswith("\n"), line
    s = line[:-1]
    assert "\n" not in s and "\r" not in s
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(s):
        j = s.index("=", i)
        key = s[i:j]
        assert key and all(c.isascii() and c.isprintable() and c not in ' "' for c in key), key
        i = j + 1
        if i < len(s) and s[i] == '"':
            value, i = _parse_quoted(s, i)
        else:
            k = s.find(" ", i)
            k = len(s) if k < 0 else k
            value = s[i:k]
            assert all(c.isascii() and c.isprintable() and c not in '"\\=' for c in value), value
            i = k
        pairs.append((key, value))
        if i < len(s):
            assert s[i] == " ", s[i:]
            i += 1
    return pairs


def parse_lines(text: str) -> list[list[tuple[str, str]]]:
    return [parse_line(line) for line in text.splitlines(keepends=True)]
