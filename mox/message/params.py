"""Content-Type and Content-Disposition values with parameters.

RFC 2045 section 5.1 defines ``type "/" subtype *(";" attribute "=" value)``
with value a token or quoted-string; RFC 2183 section 2 uses the same
parameter syntax for Content-Disposition. RFC 2231 sections 3-4 add parameter
value continuations (``name*0=``, ``name*1=``) and charset/language
encoding (``name*=utf-8'en'%E2%82%AC``), which are decoded here.

Parsing is lenient: comments (RFC 5322 section 3.2.2) are skipped, empty
parameters (``;;``) ignored, unquoted values may contain tspecials such as
"=" (common for boundaries), an unterminated quoted-string runs to the end,
and for duplicate parameters the first wins. A ``strict`` caller gets a flag
saying whether the value was syntactically valid.
"""

from __future__ import annotations

import re

from .charset import decode_charset

# RFC 2045 section 5.1: token := 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
_SECTION = re.compile(r"(.*)\*([0-9]{1,4})\Z")
_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")


def is_token(s: str) -> bool:
    """Whether s is an RFC 2045 token (no space, controls, tspecials or non-ASCII)."""
    return _TOKEN.match(s) is not None


def skip_comment(s: str, i: int) -> int:
    # s[i] == "(": skip a possibly nested comment with quoted-pairs; return index after it.
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _strip_comments(s: str) -> str:
    if "(" not in s:
        return s.strip()
    out: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "(":
            i = skip_comment(s, i)
            out.append(" ")
            continue
        if c == '"':
            j = s.find('"', i + 1)
            j = n if j < 0 else j + 1
            out.append(s[i:j])
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out).strip()


def _quoted(s: str, i: int) -> tuple[str, int, bool]:
    # s[i] == '"': return the unescaped content, the index after the closing
    # quote, and whether there was a closing quote.
    out: list[str] = []
    i += 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1, True
        out.append(c)
        i += 1
    return "".join(out), n, False


def _pct_decode(s: str) -> bytes:
    raw = s.encode("utf-8")
    if b"%" not in raw:
        return raw
    return _PCT.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def parse_value(value: str) -> tuple[str, dict[str, str], bool]:
    """Parse ``value *(";" param)`` into (value, params, valid).

    value is stripped of whitespace and comments, not case-folded. params
    has lower-case names and decoded values (RFC 2231 continuations joined and
    charset-decoded; RFC 2047 encoded-words left as they are). valid is False
    if the syntax needed leniency (missing "=", bad names, duplicates, ...).
    """
    valid = True
    n = len(value)
    semi = value.find(";")
    i = n if semi < 0 else semi
    # The main value may contain a quoted string only in broken headers; ignore.
    main = _strip_comments(value[:i])
    simple: dict[str, str] = {}
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    last_semi = -1
    while i < n:
        # At ";" or end of previous parameter: skip separators, whitespace, comments.
        c = value[i]
        if c == ";":
            if value[last_semi + 1 : i].strip(" \t\r\n") == "" and last_semi >= 0:
                valid = False  # Empty parameter, ";;".
            last_semi = i
            i += 1
            continue
        if c in " \t\r\n":
            i += 1
            continue
        if c == "(":
            i = skip_comment(value, i)
            continue
        eq = value.find("=", i)
        semi = value.find(";", i)
        if eq < 0 or (0 <= semi < eq):
            valid = False  # Parameter without "=": skip it.
            i = n if semi < 0 else semi
            continue
        attr = value[i:eq].strip().lower()
        i = eq + 1
        while i < n and value[i] in " \t\r\n":
            i += 1
        if i < n and value[i] == '"':
            pval, i, closed = _quoted(value, i)
            if not closed:
                valid = False
            semi = value.find(";", i)
            rest = value[i : n if semi < 0 else semi]
            if _strip_comments(rest):
                valid = False
            i = n if semi < 0 else semi
        else:
            semi = value.find(";", i)
            end = n if semi < 0 else semi
            pval = _strip_comments(value[i:end])
            i = end
            if not pval or not is_token(pval):
                valid = False
        if not attr or not is_token(attr):
            valid = False
            if not attr:
                continue
        encoded = attr.endswith("*")
        if encoded:
            attr = attr[:-1]
        m = _SECTION.match(attr)
        if m is not None:
            sections.setdefault(m.group(1), []).append((int(m.group(2)), encoded, pval))
        elif encoded:
            sections.setdefault(attr, []).append((0, True, pval))
        elif attr in simple:
            valid = False
        else:
            simple[attr] = pval
    params = simple
    for name, segs in sections.items():
        decoded = _join_sections(segs)
        if decoded is not None:
            params[name] = decoded
        else:
            valid = False
    return main, params, valid


def _join_sections(segs: list[tuple[int, bool, str]]) -> str | None:
    # RFC 2231 section 3: sections are numbered from 0 and must be consecutive;
    # we take the consecutive run from 0 (sorted, first of duplicates wins).
    segs.sort(key=lambda t: t[0])
    run: list[tuple[bool, str]] = []
    for idx, enc, v in segs:
        if idx == len(run):
            run.append((enc, v))
        elif idx > len(run):
            break
    if not run:
        return None
    charset = ""
    enc0, v0 = run[0]
    if enc0:
        # RFC 2231 section 4: charset "'" language "'" value, in the first section only.
        parts = v0.split("'", 2)
        if len(parts) == 3:
            charset = parts[0]
            run[0] = (True, parts[2])
    out: list[str] = []
    pending = b""
    for enc, v in run:
        if enc:
            pending += _pct_decode(v)
        else:
            if pending:
                out.append(decode_charset(pending, charset or "utf-8"))
                pending = b""
            out.append(v)
    if pending:
        out.append(decode_charset(pending, charset or "utf-8"))
    return "".join(out)
