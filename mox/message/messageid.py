"""Message-IDs as keys for threading (RFC 5322 section 3.6.4; RFC 5256 section 2.2 uses them).

``msg-id = "<" id-left "@" id-right ">"``. For matching a message against
the References and In-Reply-To of others, ids are put in a canonical form,
as upstream mox does: without the angle brackets, lower-cased as a whole,
and with a quoted local part unquoted when the quotes are not needed. Many
ids are not of the form local-part "@" domain (IP literals, underscores,
several "@", no "@"); those are kept as they are (lower-cased).
"""

from __future__ import annotations

import re

from .address import format_localpart

# RFC 5321 section 4.1.2 Dot-string of atext; non-ASCII allowed (RFC 6531 section 3.3).
_ATEXT = r"[a-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def _valid_domain(d: str) -> bool:
    # A host name: LDH labels (RFC 1035 section 2.3.1), or IDNA U-labels.
    if not d or len(d) > 253:
        return False
    for label in d.split("."):
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except (UnicodeError, ValueError):
                return False
        if not _LABEL.match(label):
            return False
    return True


def _unquote(s: str) -> str | None:
    # A whole quoted-string (RFC 5321 section 4.1.2), without the quotes; None if s is not one.
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        return None
    out: list[str] = []
    i = 1
    n = len(s) - 1
    while i < n:
        c = s[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return None
        out.append(c)
        i += 1
    return "".join(out)


def _canonical(s: str) -> str:
    """Canonical form of a lower-cased id without <>: local part quoting normalised if it is an address."""
    local, at, domain = s.rpartition("@")
    if not at or not local or not _valid_domain(domain):
        return s
    if _DOT_STRING.match(local):
        return s
    unq = _unquote(local)
    if unq is None:
        return s
    return format_localpart(unq) + "@" + domain


def normalize_message_id(value: str) -> str:
    """Canonical form of a Message-ID header value; "" if it is not a message-id.

    The value must start with "<" and have a ">"; text after the ">" is
    allowed if separated by whitespace or a comment (seen: "<id@host> (added
    by postmaster@isp.example)"). An empty id is invalid.
    """
    s = value.strip()
    if not s.startswith("<"):
        return ""
    s, gt, rest = s[1:].partition(">")
    if not gt or (rest and rest[0] not in " \t\r\n("):
        return ""
    s = s.lower()
    if not s:
        return ""
    return _canonical(s)


def referenced_ids(references: list[str], in_reply_to: list[str]) -> list[str]:
    """The canonical message-ids a message refers to, for threading; as upstream's ReferencedIDs.

    Ids come from the References header(s), in order: oldest ancestor first,
    parent typically last (RFC 5322 section 3.6.4). Only if References yields
    nothing, the first id of In-Reply-To is used (it may hold more than ids).
    Entries not starting with "<" are skipped; an entry cut off by a next "<"
    (a truncated id) is ignored; whitespace inside an id (from bad folding)
    is removed.
    """
    ids: list[str] = []
    for refs in references:
        while refs:
            refs = _parse_one_ref(refs, ids)
    if not ids:
        for refs in in_reply_to:
            _parse_one_ref(refs, ids)
            if ids:
                break
    return ids


def _parse_one_ref(refs: str, ids: list[str]) -> str:
    """Parse the next id in refs, appending it to ids; return the remaining text."""
    refs = refs.lstrip(" \t\r\n")
    if not refs.startswith("<"):
        # Skip the junk up to the next space or ">".
        i = _find_any(refs, " >")
        return "" if i < 0 else refs[i + 1 :]
    refs = refs[1:]
    i = _find_any(refs, "<>")
    if i < 0:
        return ""
    if refs[i] == "<":
        return refs[i:]  # Truncated id.
    ref = refs[:i].lower()
    for ws in " \t\r\n":
        ref = ref.replace(ws, "")
    if ref:
        ids.append(_canonical(ref))
    return refs[i + 1 :]


def _find_any(s: str, chars: str) -> int:
    best = -1
    for c in chars:
        i = s.find(c)
        if i >= 0 and (best < 0 or i < best):
            best = i
    return best
