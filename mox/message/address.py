"""Address lists in From, To, Cc and similar header fields (RFC 5322 section 3.4).

``address-list = (mailbox / group) *("," (mailbox / group))``, where a mailbox
is ``[display-name] "<" addr-spec ">"`` or a bare ``addr-spec``, and a group
is ``display-name ":" [mailbox-list] ";"``. Parsing is lenient and never
raises; it handles:

- comments anywhere (RFC 5322 section 3.2.2); a comment after a bare
  addr-spec becomes the display name (``user@host (Name)``, the old style);
- quoted-strings and quoted-pairs, in display names and local parts;
- obsolete syntax of RFC 5322 section 4.4: routes (``<@a,@b:user@host>``),
  CFWS between the dot-separated words of local parts and domains, empty
  list elements (``a@b,,c@d``), unquoted "." in display names;
- RFC 2047 encoded-words in display names (also inside quotes, a common
  mistake), and raw UTF-8 (RFC 6532);
- groups are flattened: their members are returned, the group name is not
  (as upstream mox, which leaves group syntax out of IMAP ENVELOPE).

A mailbox without "@" gets an empty host; garbage between addresses is
skipped. Local parts are returned in normalised form: unquoted when they are
a valid dot-atom, else quoted with minimal escaping. Hosts are lower-cased,
and internationalised domain names converted to their ASCII (A-label) form
where possible, as upstream's ENVELOPE does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .encodedword import decode_words
from .headers import unfold
from .params import skip_comment


@dataclass(slots=True, frozen=True)
class Address:
    """One mailbox: display name (decoded), local part and host (domain)."""

    name: str
    user: str
    host: str

    def __str__(self) -> str:
        addr = f"{self.user}@{self.host}" if self.host else self.user
        if not self.name:
            return addr
        return f"{format_phrase(self.name)} <{addr}>"


# RFC 5322 section 3.2.3 atext, plus any non-ASCII (RFC 6532 section 3.2).
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_PHRASE_ATOM = re.compile(rf"(?:{_ATEXT}|[ \t])+\Z")

# Token kinds.
_ATOM = 0
_QUOTED = 1
_SPECIAL = 2
_LITERAL = 3  # Domain literal "[...]".

_SPECIALS = "<>@,;:."
# An atom: anything but whitespace, specials, quotes, parentheses, brackets.
_ATOM_RE = re.compile(r'[^\s<>@,;:."()\[\]\\]+|\\.?')


@dataclass(slots=True)
class _Tok:
    kind: int
    text: str
    space_before: bool


def _tokenize(s: str) -> tuple[list[_Tok], list[str]]:
    """Split s into tokens; return them and the comments seen (in order)."""
    toks: list[_Tok] = []
    comments: list[str] = []
    i = 0
    n = len(s)
    space = False
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            space = True
            i += 1
        elif c == "(":
            # RFC 5322 section 3.2.2: nested comments with quoted-pairs.
            depth = 0
            buf: list[str] = []
            while i < n:
                c = s[i]
                if c == "\\" and i + 1 < n:
                    buf.append(s[i + 1])
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                    if depth > 1:
                        buf.append(c)
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                    buf.append(c)
                else:
                    buf.append(c)
                i += 1
            comments.append("".join(buf).strip())
            space = True
        elif c == '"':
            # RFC 5322 section 3.2.4 quoted-string; unterminated runs to the end.
            buf = []
            i += 1
            while i < n:
                c = s[i]
                if c == "\\" and i + 1 < n:
                    buf.append(s[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c not in "\r\n":
                    buf.append(c)
                i += 1
            toks.append(_Tok(_QUOTED, "".join(buf), space))
            space = False
        elif c == "[":
            j = s.find("]", i + 1)
            j = n if j < 0 else j + 1
            toks.append(_Tok(_LITERAL, s[i:j], space))
            space = False
            i = j
        elif c in _SPECIALS:
            toks.append(_Tok(_SPECIAL, c, space))
            space = False
            i += 1
        elif c in ")]":
            i += 1  # Stray closing bracket: ignore.
        else:
            m = _ATOM_RE.match(s, i)
            if m is None or m.end() == i:
                i += 1
                continue
            text = m.group(0)
            if text.startswith("\\"):
                text = text[1:]
            toks.append(_Tok(_ATOM, text, space))
            space = False
            i = m.end()
    return toks, comments


def format_localpart(lp: str) -> str:
    """Return lp as it is written in an address: as-is if a dot-atom, else quoted."""
    if _DOT_ATOM.match(lp):
        return lp
    return '"' + lp.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_phrase(name: str) -> str:
    """Return a display name as written in a header: as-is if only atoms and spaces, else quoted."""
    if _PHRASE_ATOM.match(name) and name.strip() == name:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ascii_host(host: str) -> str:
    host = host.lower()
    if host.isascii() or host.startswith("["):
        return host
    try:
        return host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return host


def _phrase(toks: list[_Tok]) -> str:
    parts: list[str] = []
    for t in toks:
        if parts and t.space_before:
            parts.append(" ")
        parts.append(t.text)
    name = "".join(parts).strip()
    if "=?" in name:
        name = decode_words(name)
    return name


def _addr_spec(toks: list[_Tok]) -> tuple[str, str]:
    """Local part and host from the tokens of an addr-spec (without <>)."""
    # Obsolete route (RFC 5322 section 4.4): "@a,@b:" before the addr-spec.
    for k in range(len(toks) - 1, -1, -1):
        if toks[k].kind == _SPECIAL and toks[k].text == ":":
            toks = toks[k + 1 :]
            break
    at = -1
    for k in range(len(toks) - 1, -1, -1):
        if toks[k].kind == _SPECIAL and toks[k].text == "@":
            at = k
            break
    local_toks = toks if at < 0 else toks[:at]
    host_toks = [] if at < 0 else toks[at + 1 :]
    # Local part: words and dots joined without the CFWS between them (obs-local-part).
    quoted = any(t.kind == _QUOTED for t in local_toks)
    lp = "".join(t.text for t in local_toks if t.kind != _SPECIAL or t.text in ".@")
    user = format_localpart(lp) if (lp or quoted) else ""
    host = "".join(t.text for t in host_toks if t.kind != _SPECIAL or t.text == ".")
    return user, _ascii_host(host)


def _parse_mailbox(toks: list[_Tok], comments: list[str]) -> Address | None:
    """Parse the tokens of one mailbox (no top-level commas)."""
    if not toks:
        return None
    lt = -1
    for k, t in enumerate(toks):
        if t.kind == _SPECIAL and t.text == "<":
            lt = k
            break
    if lt >= 0:
        name = _phrase([t for t in toks[:lt] if t.kind != _SPECIAL or t.text == "."])
        inner: list[_Tok] = []
        for t in toks[lt + 1 :]:
            if t.kind == _SPECIAL and t.text == ">":
                break
            inner.append(t)
        user, host = _addr_spec(inner)
        if not name and not user and not host:
            return None  # "<>", the null path: no mailbox.
        return Address(name, user, host)
    has_at = any(t.kind == _SPECIAL and t.text == "@" for t in toks)
    if not has_at and (any(t.space_before for t in toks[1:]) or any(t.kind == _QUOTED for t in toks)):
        # Several words or a quoted string, without "@" or "<": a display name without an address.
        return Address(_phrase([t for t in toks if t.kind != _SPECIAL or t.text == "."]), "", "")
    user, host = _addr_spec(toks)
    name = ""
    if comments:
        # Old style "user@host (Full Name)": the comment is the name.
        name = comments[-1]
        if "=?" in name:
            name = decode_words(name)
    if not user and not host:
        return None
    return Address(name, user, host)


# Fast path for the common forms "local@host" and "Name <local@host>" without
# quotes, comments, groups or literals; gives the same result as the full parser.
_PLAIN = r'[^<>@,;:"()\[\]\\\s]+'
_SIMPLE = re.compile(rf'\s*(?:([^<>@,;:"()\[\]\\]*?)\s*<({_PLAIN})@({_PLAIN})>|({_PLAIN})@({_PLAIN}))\s*\Z')
_NOT_SIMPLE = re.compile(r'["()\[\]\\:;]')


def _parse_simple(s: str) -> list[Address] | None:
    if _NOT_SIMPLE.search(s):
        return None
    out: list[Address] = []
    for elem in s.split(","):
        if not elem.strip():
            continue
        m = _SIMPLE.match(elem)
        if m is None:
            return None
        if m.group(2) is not None:
            name = " ".join(m.group(1).split())
            if "=?" in name:
                name = decode_words(name)
            lp, host = m.group(2), m.group(3)
        else:
            name = ""
            lp, host = m.group(4), m.group(5)
        out.append(Address(name, lp if _DOT_ATOM.match(lp) else format_localpart(lp), _ascii_host(host)))
    return out


def parse_address_list(value: str | bytes) -> list[Address]:
    """Parse an address-list header value (raw or unfolded) into addresses; never raises."""
    s = unfold(value)
    simple = _parse_simple(s)
    if simple is not None:
        return simple
    return _parse_full(s)


def _parse_full(s: str) -> list[Address]:
    out: list[Address] = []
    for span in _split_mailboxes(s):
        toks, comments = _tokenize(span)
        addr = _parse_mailbox(toks, comments)
        if addr is not None:
            out.append(addr)
    return out


def _split_mailboxes(s: str) -> list[str]:
    """Split an address-list into the source text of each mailbox.

    Top-level "," separates mailboxes; a top-level ":" (outside "<>") ends a
    group's display name and ";" ends a group. Quoted strings, comments and
    domain literals are skipped over.
    """
    out: list[str] = []
    start = 0
    i = 0
    n = len(s)
    angle = False
    while i < n:
        c = s[i]
        if c == '"':
            j = i + 1
            while j < n and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            i = j + 1
            continue
        if c == "(":
            i = skip_comment(s, i)
            continue
        if c == "[":
            j = s.find("]", i)
            i = n if j < 0 else j + 1
            continue
        if c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif not angle and c in ",;":
            out.append(s[start:i])
            start = i + 1
        elif not angle and c == ":":
            # Group display name ends here; its members follow.
            start = i + 1
        i += 1
    out.append(s[start:])
    return [x for x in out if x.strip()]
