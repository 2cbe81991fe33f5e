"""SORT and THREAD of RFC 5256 (and RFC 5957 DISPLAYFROM/DISPLAYTO): pure algorithms, no I/O.

The IMAP server gathers a :class:`SortMessage` per searched message (see
:meth:`SortMessage.from_envelope`) and calls:

- :func:`parse_sort_criteria` / :func:`sort_messages` for SORT (RFC 5256
  section 3, "SORT Command");
- :func:`thread_messages` (or :func:`thread_orderedsubject`,
  :func:`thread_references`) for THREAD, then :func:`format_thread` for the
  body of the ``* THREAD`` response (RFC 5256 section 4).

Pieces of RFC 5256 implemented exactly here:

- section 2.1, base subject: :func:`base_subject`, written after the
  procedure and the ABNF of section 5 (``subj-leader``, ``subj-blob``,
  ``subj-refwd``, ``subj-trailer``, ``subj-fwd-hdr``/``subj-fwd-trl``). It
  differs from :func:`mox.message.thread_subject` on purpose: that one also
  removes non-English reply prefixes and counters, and lower-cases, which
  the RFC does not allow ("All servers and disconnected clients MUST use
  exactly this algorithm");
- section 2.2, sent date: the Date header adjusted to UTC (no zone means
  UTC); the internal date if the Date header is missing or unparseable;
  equal dates are ordered by sequence number;
- strings are compared with the ``i;ascii-casemap`` collation (RFC 4790
  section 9.2: a-z mapped to A-Z, then octet order; for UTF-8 text, octet
  order equals code point order, so Python string order is used);
- section 3, REFERENCES: Message-IDs normalised for quoting only, compared
  case-sensitively ("Note: Message ID comparisons are case-sensitive"), which
  is why :func:`mox.message.normalize_message_id` (lower-casing, as upstream
  mox) is not used here.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mox.message.address import Address
from mox.message.envelope import Envelope, parse_date

__all__ = [
    "SORT_KEYS",
    "THREAD_ALGORITHMS",
    "ParsedThread",
    "SortCriterion",
    "SortMessage",
    "SortThreadError",
    "ThreadNode",
    "ascii_casemap",
    "base_subject",
    "format_thread",
    "message_ids",
    "parse_sort_criteria",
    "parse_thread",
    "sort_messages",
    "thread_messages",
    "thread_orderedsubject",
    "thread_references",
    "thread_response",
]

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
"""Sort keys of RFC 5256 section 3 and RFC 5957 section 4 (REVERSE is a modifier, not a key)."""

THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")
"""Threading algorithms of RFC 5256 section 3, as advertised in ``THREAD=`` capabilities."""


class SortThreadError(ValueError):
    """Invalid SORT criteria, THREAD algorithm or THREAD response text; the message is for a BAD reply."""


# i;ascii-casemap (RFC 4790 section 9.2): only a-z are mapped.
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_casemap(s: str) -> str:
    """Sort/equality key of the i;ascii-casemap collation (RFC 4790 section 9.2)."""
    return s.upper() if s.isascii() else s.translate(_UPPER)


# ---------------------------------------------------------------------------
# RFC 5256 section 2.1: base subject.


def _blob_end(s: str, i: int) -> int:
    """End of a subj-blob starting at i (``"[" *BLOBCHAR "]" *WSP``), or -1.

    BLOBCHAR is any character except NUL, "[" and "]" (section 5; CHAR8 so
    UTF-8 is allowed). After step 1 the only WSP left is SP.
    """
    if i >= len(s) or s[i] != "[":
        return -1
    j = i + 1
    n = len(s)
    while j < n:
        c = s[j]
        if c == "]":
            j += 1
            while j < n and s[j] == " ":
                j += 1
            return j
        if c == "[" or c == "\x00":
            return -1
        j += 1
    return -1


def _refwd_end(s: str, i: int) -> int:
    """End of a subj-refwd at i (``("re" / ("fw" ["d"])) *WSP [subj-blob] ":"``), or -1.

    ABNF literals are case-insensitive (RFC 5234 section 2.3), ASCII only.
    """
    word = s[i : i + 3].translate(_LOWER)
    if word.startswith("re"):
        j = i + 2
    elif word == "fwd":
        j = i + 3
    elif word.startswith("fw"):
        j = i + 2
    else:
        return -1
    n = len(s)
    while j < n and s[j] == " ":
        j += 1
    b = _blob_end(s, j)
    if b >= 0:
        j = b
    if j < n and s[j] == ":":
        return j + 1
    return -1


def _leader_end(s: str) -> tuple[int, bool]:
    """Length of a subj-leader at the start of s (``(*subj-blob subj-refwd) / WSP``) and
    whether it was the subj-refwd form; (0, False) if none."""
    j = 0
    while True:
        b = _blob_end(s, j)
        if b < 0:
            break
        j = b
    e = _refwd_end(s, j)
    if e >= 0:
        return e, True
    if s.startswith(" "):
        return 1, False
    return 0, False


_SPACES = re.compile(" {2,}")


def _normalize_space(subject: str) -> str:
    # Step 1: tabs and continuations (CRLF followed by WSP, and stray CR/LF) become
    # a space; runs of spaces become one space.
    if "\t" in subject or "\r" in subject or "\n" in subject:
        subject = subject.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").replace("\t", " ")
    if "  " in subject:
        subject = _SPACES.sub(" ", subject)
    return subject


def base_subject(subject: str) -> tuple[str, bool]:
    """The base subject of RFC 5256 section 2.1 and whether the message is a reply or forward.

    ``subject`` must already be decoded (RFC 2047 encoded-words converted,
    as in :attr:`mox.message.Envelope.subject`). The result keeps its case;
    compare base subjects with :func:`ascii_casemap`. A message is a reply or
    forward (section 3, REFERENCES) if extraction removed a subj-refwd, a
    "(fwd)" subj-trailer, or a subj-fwd-hdr and subj-fwd-trl.
    """
    s = _normalize_space(subject)
    is_refwd = False
    while True:
        # Step 2: remove trailing subj-trailer ("(fwd)" / WSP), repeatedly.
        while True:
            if s.endswith(" "):
                s = s.rstrip(" ")
                continue
            if len(s) >= 5 and s[-5:].translate(_LOWER) == "(fwd)":
                s = s[:-5]
                is_refwd = True
                continue
            break
        # Step 5: repeat steps 3 and 4 until nothing changes.
        while True:
            prev = s
            # Step 3: remove prefix text matching subj-leader (repeatedly: subject = *subj-leader ...).
            while True:
                n, refwd = _leader_end(s)
                if n == 0:
                    break
                s = s[n:]
                is_refwd = is_refwd or refwd
            # Step 4: a leading subj-blob, if a non-empty subj-base remains after it.
            b = _blob_end(s, 0)
            if b > 0 and s[b:]:
                s = s[b:]
            if s == prev:
                break
        # Step 6: subj-fwd-hdr "[fwd:" ... subj-fwd-trl "]": unwrap and repeat from step 2.
        if len(s) >= 6 and s[:5].translate(_LOWER) == "[fwd:" and s.endswith("]"):
            s = s[5:-1]
            is_refwd = True
            continue
        # Step 7.
        return s, is_refwd


# ---------------------------------------------------------------------------
# Message-IDs (RFC 5322 section 3.6.4), normalised for quoting as RFC 5256 section 3 requires.


def _skip_comment(s: str, i: int) -> int:
    """Index after a comment starting at s[i] == "(" (nested, with quoted-pairs)."""
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


def _skip_quoted(s: str, i: int) -> int:
    """Index after a quoted-string starting at s[i] == '"'."""
    i += 1
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    return n


def _msg_id(s: str, i: int) -> tuple[str, int]:
    """Parse a msg-id at s[i] == "<"; return (normalised id or "" if invalid, index after it).

    ``msg-id = "<" id-left "@" id-right ">"`` (RFC 5322 section 3.6.4, with the
    obsolete forms of section 4.5.4: quoted local parts, CFWS between
    parts). The normal form is the unquoted id-left, "@", id-right, without
    white space and comments; case is kept. ``<"a.b"@x>`` and ``<a.b@x>`` are
    the same id, the example of RFC 5256 section 3.
    """
    n = len(s)
    i += 1
    left: list[str] = []
    right: list[str] = []
    cur = left
    seen_at = False
    valid = True
    while i < n:
        c = s[i]
        if c == ">":
            i += 1
            break
        if c == "<":
            # A "<" inside an id: the id was cut off; the next one starts here.
            return "", i
        if c == '"':
            e = _skip_quoted(s, i)
            if cur is right:
                valid = False
            q = s[i + 1 : e - 1] if e <= n and s[e - 1 : e] == '"' else s[i + 1 : e]
            out: list[str] = []
            k = 0
            while k < len(q):
                if q[k] == "\\" and k + 1 < len(q):
                    k += 1
                if q[k] not in "\r\n":
                    out.append(q[k])
                k += 1
            cur.append("".join(out))
            i = e
            continue
        if c == "(":
            i = _skip_comment(s, i)
            continue
        if c in " \t\r\n":
            i += 1
            continue
        if c == "@" and not seen_at:
            seen_at = True
            cur = right
            i += 1
            continue
        if c == "@" or c == "\x00":
            valid = False
        cur.append(c)
        i += 1
    else:
        return "", n  # No closing ">".
    if not valid or not seen_at:
        return "", i
    lt = "".join(left)
    rt = "".join(right)
    if not lt or not rt:
        return "", i
    return lt + "@" + rt, i


# The common case: only plain ids (no quoting, comments or white space inside) and white space.
_PLAIN_ID = r'<([^<>"()\\@\s\x00]+@[^<>"()\\@\s\x00]+)>'
_PLAIN_ID_RE = re.compile(_PLAIN_ID)
_PLAIN_IDS_RE = re.compile(rf"\s*(?:{_PLAIN_ID}\s*)*")


def message_ids(value: str) -> list[str]:
    """The valid message-ids in a header value (References, In-Reply-To, Message-ID), normalised.

    Text around ids (phrases and quoted strings in old In-Reply-To headers,
    comments) is skipped; ids that are not ``id-left "@" id-right`` are left
    out. Case is kept: RFC 5256 compares ids case-sensitively.
    """
    if _PLAIN_IDS_RE.fullmatch(value):
        return _PLAIN_ID_RE.findall(value)
    return _message_ids_parse(value)


def _message_ids_parse(value: str) -> list[str]:
    # The general case of message_ids.
    ids: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == "<":
            mid, i = _msg_id(value, i)
            if mid:
                ids.append(mid)
        elif c == "(":
            i = _skip_comment(value, i)
        elif c == '"':
            i = _skip_quoted(value, i)
        else:
            i += 1
    return ids


# ---------------------------------------------------------------------------
# The per-message record.


def _utc_timestamp(d: _dt.datetime) -> float:
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.UTC)
    return d.timestamp()


@dataclass(slots=True)
class SortMessage:
    """What SORT and THREAD need of a message; gather one per searched message.

    Address fields are of the *first* address of the field (RFC 5256 section 3:
    "addr-mailbox of the first ... address"): ``*_mailbox`` is the IMAP
    addr-mailbox (local part), ``*_host`` the addr-host, ``*_name`` the
    decoded display name (for RFC 5957 DISPLAYFROM/DISPLAYTO). Absent fields
    are empty strings. ``date`` is the parsed Date header, None when missing
    or unparseable; ``message_id``, ``references`` (every References field)
    and ``in_reply_to`` are raw (unfolded) header values.
    """

    seq: int
    uid: int
    internal_date: _dt.datetime
    size: int = 0
    subject: str = ""
    date: _dt.datetime | None = None
    from_mailbox: str = ""
    from_host: str = ""
    from_name: str = ""
    to_mailbox: str = ""
    to_host: str = ""
    to_name: str = ""
    cc_mailbox: str = ""
    message_id: str = ""
    references: Sequence[str] = ()
    in_reply_to: str = ""

    # Derived in __post_init__.
    arrival: float = field(init=False, repr=False, compare=False)
    """Internal date as a UTC timestamp (ARRIVAL)."""
    sent: float = field(init=False, repr=False, compare=False)
    """Sent date as a UTC timestamp (RFC 5256 section 2.2)."""
    base: str = field(init=False, repr=False, compare=False)
    """Base subject (RFC 5256 section 2.1)."""
    base_key: str = field(init=False, repr=False, compare=False)
    """Base subject under i;ascii-casemap, for comparing."""
    is_reply: bool = field(init=False, repr=False, compare=False)
    """Whether base subject extraction removed a reply/forward marker."""

    def __post_init__(self) -> None:
        if isinstance(self.references, str):
            self.references = (self.references,)
        self.arrival = _utc_timestamp(self.internal_date)
        # RFC 5256 section 2.2: the internal date if the Date header cannot be used; a Date
        # without zone is taken as UTC.
        self.sent = self.arrival if self.date is None else _utc_timestamp(self.date)
        self.base, self.is_reply = base_subject(self.subject)
        self.base_key = ascii_casemap(self.base)

    @property
    def sent_date(self) -> _dt.datetime:
        """The sent date of RFC 5256 section 2.2, in UTC."""
        return _dt.datetime.fromtimestamp(self.sent, _dt.UTC)

    @classmethod
    def from_envelope(
        cls,
        seq: int,
        uid: int,
        internal_date: _dt.datetime,
        size: int,
        envelope: Envelope,
        references: Sequence[str] = (),
    ) -> SortMessage:
        """Build from a message's :class:`~mox.message.Envelope` and its References field values."""

        def first(addrs: list[Address]) -> Address:
            return addrs[0] if addrs else Address("", "", "")

        f = first(envelope.from_)
        t = first(envelope.to)
        c = first(envelope.cc)
        return cls(
            seq=seq,
            uid=uid,
            internal_date=internal_date,
            size=size,
            subject=envelope.subject,
            date=parse_date(envelope.date) if envelope.date else None,
            from_mailbox=f.user,
            from_host=f.host,
            from_name=f.name,
            to_mailbox=t.user,
            to_host=t.host,
            to_name=t.name,
            cc_mailbox=c.user,
            message_id=envelope.message_id,
            references=tuple(references),
            in_reply_to=envelope.in_reply_to,
        )


# ---------------------------------------------------------------------------
# SORT.


class SortCriterion(NamedTuple):
    """One SORT criterion; the same shape as the (reverse, key) pairs of ``imapproto.parse.Sort``."""

    reverse: bool
    key: str


def parse_sort_criteria(spec: str | Iterable[str]) -> list[SortCriterion]:
    """Parse SORT criteria (RFC 5256 section 5 ``sort-criteria``).

    ``spec`` is the criteria text, with or without the parentheses
    (``"(REVERSE DATE SUBJECT)"``), or its words. Keys are case-insensitive.
    Raises :class:`SortThreadError` for an empty list, an unknown key, or
    REVERSE not followed by a key.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("(") and text.endswith(")"):
            text = text[1:-1]
        elif text.startswith("(") or text.endswith(")"):
            raise SortThreadError("unbalanced parentheses in sort criteria")
        words = text.split(" ")
        if any(not w for w in words) and text:
            raise SortThreadError("sort criteria must be separated by single spaces")
        words = [w for w in words if w]
    else:
        words = list(spec)
    if not words:
        raise SortThreadError("empty sort criteria")
    out: list[SortCriterion] = []
    reverse = False
    for w in words:
        k = w.upper()
        if k == "REVERSE":
            if reverse:
                raise SortThreadError("REVERSE must be followed by a sort key, not REVERSE")
            reverse = True
            continue
        if k not in SORT_KEYS:
            raise SortThreadError(f"unknown sort key {w!r}")
        out.append(SortCriterion(reverse, k))
        reverse = False
    if reverse:
        raise SortThreadError("REVERSE must be followed by a sort key")
    return out


def _display(name: str, mailbox: str, host: str) -> str:
    # RFC 5957 section 3: the display name if non-empty; else addr-mailbox@addr-host if both
    # are present; else addr-mailbox; else "".
    if name:
        return name
    if mailbox and host:
        return mailbox + "@" + host
    return mailbox


def _sort_key(key: str) -> Callable[[SortMessage], Any]:
    # Functions from a message to its value for one criterion (RFC 5256 section 3,
    # RFC 5957 section 4). Absent header fields are "", which collates first.
    if key == "ARRIVAL":
        return lambda m: m.arrival
    if key == "DATE":
        return lambda m: m.sent
    if key == "SIZE":
        return lambda m: m.size
    if key == "SUBJECT":
        return lambda m: m.base_key
    if key == "FROM":
        return lambda m: ascii_casemap(m.from_mailbox)
    if key == "TO":
        return lambda m: ascii_casemap(m.to_mailbox)
    if key == "CC":
        return lambda m: ascii_casemap(m.cc_mailbox)
    if key == "DISPLAYFROM":
        return lambda m: ascii_casemap(_display(m.from_name, m.from_mailbox, m.from_host))
    if key == "DISPLAYTO":
        return lambda m: ascii_casemap(_display(m.to_name, m.to_mailbox, m.to_host))
    raise SortThreadError(f"unknown sort key {key!r}")


def sort_messages(criteria: Sequence[tuple[bool, str]], messages: Iterable[SortMessage]) -> list[SortMessage]:
    """The messages in SORT order (RFC 5256 section 3).

    ``criteria`` are (reverse, key) pairs, e.g. from :func:`parse_sort_criteria`,
    in priority order. Messages equal on all criteria are ordered by
    sequence number, ascending even when the last criterion is REVERSE.
    """
    if not criteria:
        raise SortThreadError("empty sort criteria")
    out = sorted(messages, key=lambda m: m.seq)
    # Stable sorts from the least significant criterion to the most significant one;
    # list.sort(reverse=True) keeps equal elements in their order.
    for reverse, key in reversed(criteria):
        out.sort(key=_sort_key(key.upper()), reverse=reverse)
    return out


# ---------------------------------------------------------------------------
# THREAD.


@dataclass(slots=True, eq=False)
class ThreadNode:
    """A node of a thread tree: a message, or a dummy (``message`` None) grouping its children."""

    message: SortMessage | None
    children: list[ThreadNode] = field(default_factory=list)

    @property
    def is_dummy(self) -> bool:
        return self.message is None

    def messages(self) -> list[SortMessage]:
        """All messages in this subtree, depth first (parents before children)."""
        out: list[SortMessage] = []
        stack: list[ThreadNode] = [self]
        while stack:
            n = stack.pop()
            if n.message is not None:
                out.append(n.message)
            stack.extend(reversed(n.children))
        return out


def _date_key(n: ThreadNode) -> tuple[float, int]:
    # Sent date, then sequence number (RFC 5256 section 2.2); a dummy sorts as its first child.
    while n.message is None:
        if not n.children:
            return (float("-inf"), 0)
        n = n.children[0]
    return (n.message.sent, n.message.seq)


def thread_orderedsubject(messages: Iterable[SortMessage]) -> list[ThreadNode]:
    """ORDEREDSUBJECT threading (RFC 5256 section 3).

    Messages are sorted by base subject, then sent date; each run of equal
    base subjects is a thread whose first message is the parent of all the
    others (no grandchildren); threads are ordered by the sent date of their
    first message.
    """
    msgs = sorted(messages, key=lambda m: (m.base_key, m.sent, m.seq))
    roots: list[ThreadNode] = []
    cur: ThreadNode | None = None
    cur_key = ""
    for m in msgs:
        if cur is not None and m.base_key == cur_key:
            cur.children.append(ThreadNode(m))
            continue
        cur = ThreadNode(m)
        cur_key = m.base_key
        roots.append(cur)
    roots.sort(key=_date_key)
    return roots


class _Container:
    """A node while building REFERENCES threads: a message or a dummy, with parent/child links."""

    __slots__ = ("children", "message", "parent")

    def __init__(self, message: SortMessage | None = None) -> None:
        self.message = message
        self.parent: _Container | None = None
        self.children: list[_Container] = []


def _is_ancestor_or_self(a: _Container, b: _Container) -> bool:
    """Whether a is b or one of b's ancestors."""
    p: _Container | None = b
    while p is not None:
        if p is a:
            return True
        p = p.parent
    return False


def _link(parent: _Container, child: _Container) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: _Container) -> None:
    p = child.parent
    if p is not None:
        p.children.remove(child)
        child.parent = None


def _references_of(m: SortMessage) -> list[str]:
    # RFC 5256 section 3: the ids of References; if none, the first valid id of
    # In-Reply-To; else none.
    refs: list[str] = []
    for v in m.references:
        refs.extend(message_ids(v))
    if refs:
        return refs
    irt = message_ids(m.in_reply_to) if m.in_reply_to else []
    return irt[:1]


def _postorder(roots: list[ThreadNode]) -> list[ThreadNode]:
    """All nodes below the given ones (included), children before their parent; no recursion."""
    out: list[ThreadNode] = []
    stack: list[tuple[ThreadNode, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        n, done = stack.pop()
        if done:
            out.append(n)
            continue
        stack.append((n, True))
        for c in reversed(n.children):
            stack.append((c, False))
    return out


def thread_references(messages: Iterable[SortMessage]) -> list[ThreadNode]:
    """REFERENCES threading (RFC 5256 section 3), steps 1 to 6."""
    msgs = sorted(messages, key=lambda m: m.seq)

    # Step 1: link messages by their references.
    by_id: dict[str, _Container] = {}
    order: list[_Container] = []  # Every container, in creation order.

    def get(mid: str) -> _Container:
        c = by_id.get(mid)
        if c is None:
            c = _Container()
            by_id[mid] = c
            order.append(c)
        return c

    for m in msgs:
        ids = message_ids(m.message_id) if m.message_id else []
        mid = ids[0] if ids else ""
        cont: _Container | None = None
        if mid:
            c = by_id.get(mid)
            if c is None:
                cont = get(mid)
                cont.message = m
            elif c.message is None:
                # A dummy created for an earlier reference to this id.
                cont = c
                cont.message = m
        if cont is None:
            # No (valid) Message-ID, or a duplicate of an earlier message's: a unique id,
            # i.e. a container nobody can refer to.
            cont = _Container(m)
            order.append(cont)

        refs = _references_of(m)
        # Step 1.A: chain the references: each one the parent of the next.
        prev: _Container | None = None
        for ref in refs:
            rc = get(ref)
            if prev is not None and rc.parent is None and not _is_ancestor_or_self(rc, prev):
                # Only when the message has no parent yet (References may be truncated) and
                # the link makes no loop (prev must not be rc or a descendant of rc).
                _link(prev, rc)
            prev = rc
        # Step 1.B: the last reference is the parent; this overrides links made in 1.A.
        if cont.parent is not None:
            _unlink(cont)
        if prev is not None and not _is_ancestor_or_self(cont, prev):
            _link(prev, cont)

    # Step 2: the messages without parent are the children of the root. Convert to ThreadNodes.
    nodes: dict[int, ThreadNode] = {}
    for c in order:
        nodes[id(c)] = ThreadNode(c.message)
    for c in order:
        nodes[id(c)].children = [nodes[id(k)] for k in c.children]
    roots = [nodes[id(c)] for c in order if c.parent is None]

    # Step 3: prune dummies, deepest first. Below the root a dummy is replaced by its
    # (already pruned) children, or dropped without children; at the root a dummy with
    # more than one child stays.
    for n in _postorder(roots):
        if any(k.message is None for k in n.children):
            kids: list[ThreadNode] = []
            for k in n.children:
                if k.message is None:
                    kids.extend(k.children)
                else:
                    kids.append(k)
            n.children = kids
    top: list[ThreadNode] = []
    for r in roots:
        if r.message is None:
            if len(r.children) > 1:
                top.append(r)
            else:
                top.extend(r.children)
        else:
            top.append(r)

    # Step 4: sort the root's children by sent date; a dummy's children first, then the
    # dummy sorts as its first child.
    for r in top:
        if r.message is None:
            r.children.sort(key=_date_key)
    top.sort(key=_date_key)

    # Step 5: merge threads with the same base subject.
    def thread_msg(n: ThreadNode) -> SortMessage | None:
        # 5.B.i: the message itself, or the first child of a dummy.
        if n.message is not None:
            return n.message
        return n.children[0].message if n.children else None

    # 5.A, 5.B: the subject table.
    table: dict[str, ThreadNode] = {}
    for n in top:
        tm = thread_msg(n)
        if tm is None or not tm.base_key:
            continue
        cur = table.get(tm.base_key)
        if cur is None:
            table[tm.base_key] = n
        elif cur.message is not None and (n.message is None or (cur.message.is_reply and not tm.is_reply)):
            table[tm.base_key] = n

    # 5.C: merge.
    removed: set[int] = set()
    replaced: dict[int, ThreadNode] = {}
    for n in top:
        tm = thread_msg(n)
        if tm is None or not tm.base_key:
            continue
        t = table[tm.base_key]
        if t is n:
            continue
        if t.message is None and n.message is None:
            # Both dummies: the current one's children join the table's, and it goes.
            t.children.extend(n.children)
            removed.add(id(n))
        elif t.message is None:
            # The table's is a dummy: the current message becomes one of its children.
            t.children.append(n)
            removed.add(id(n))
        elif n.message is not None and n.message.is_reply and not t.message.is_reply:
            t.children.append(n)
            removed.add(id(n))
        else:
            # A new dummy with both as children replaces the table's message.
            d = ThreadNode(None, [t, n])
            replaced[id(t)] = d
            table[tm.base_key] = d
            removed.add(id(n))
    if removed or replaced:
        merged: list[ThreadNode] = []
        for n in top:
            if id(n) in removed:
                continue
            merged.append(replaced.get(id(n), n))
        top = merged

    # Step 6: sort every set of siblings by sent date, grandchildren before children; a
    # dummy sorts as its first child.
    for n in _postorder(top):
        if len(n.children) > 1:
            n.children.sort(key=_date_key)
    top.sort(key=_date_key)
    return top


def thread_messages(algorithm: str, messages: Iterable[SortMessage]) -> list[ThreadNode]:
    """Thread with the named algorithm (case-insensitive): ORDEREDSUBJECT or REFERENCES."""
    alg = algorithm.upper()
    if alg == "ORDEREDSUBJECT":
        return thread_orderedsubject(messages)
    if alg == "REFERENCES":
        return thread_references(messages)
    raise SortThreadError(f"unknown threading algorithm {algorithm!r}")


# ---------------------------------------------------------------------------
# The THREAD response (RFC 5256 section 4 and the grammar of section 5):
#
#   thread-data    = "THREAD" [SP 1*thread-list]
#   thread-list    = "(" (thread-members / thread-nested) ")"
#   thread-members = nz-number *(SP nz-number) [SP thread-nested]
#   thread-nested  = 2*thread-list


def format_thread(roots: Sequence[ThreadNode], use_uid: bool = False) -> str:
    """The thread lists of a ``* THREAD`` response, e.g. ``(2)(3 6 (4 23)(44 7 96))``.

    Numbers are UIDs if use_uid (UID THREAD), else sequence numbers. A chain
    of single children is written as one list; a message with several
    children is followed by a thread-list per child; a dummy is a list of
    its children's lists (``((3)(5))``). Dummies without messages below them
    are left out, a dummy with one child is written as that child. Empty for
    no threads. No recursion, so very deep threads are fine.
    """
    live: set[int] = set()  # Nodes with a message in their subtree.
    for n in _postorder(list(roots)):
        if n.message is not None or any(id(k) in live for k in n.children):
            live.add(id(n))

    def unwrap(k: ThreadNode) -> ThreadNode:
        while k.message is None:
            lk = [c for c in k.children if id(c) in live]
            if len(lk) != 1:
                break
            k = lk[0]
        return k

    def kids_of(n: ThreadNode) -> list[ThreadNode]:
        kids = [unwrap(k) for k in n.children if id(k) in live]
        while len(kids) == 1 and kids[0].message is None:
            # A lone dummy child (not produced by the algorithms): its children instead.
            kids = [unwrap(k) for k in kids[0].children if id(k) in live]
        return kids

    out: list[str] = []
    stack: list[ThreadNode | str] = []
    for r in reversed([unwrap(r) for r in roots if id(r) in live]):
        stack += [")", r, "("]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        n = item
        if n.message is not None:
            nums: list[str] = []
            while True:
                assert n.message is not None
                nums.append(str(n.message.uid if use_uid else n.message.seq))
                kids = kids_of(n)
                if len(kids) == 1:
                    n = kids[0]  # A message: kids_of never returns a single dummy.
                    continue
                break
            out.append(" ".join(nums))
            if kids:
                out.append(" ")
        else:
            kids = kids_of(n)
        for k in reversed(kids):
            stack += [")", k, "("]
    return "".join(out)


def thread_response(roots: Sequence[ThreadNode], use_uid: bool = False) -> bytes:
    """The whole untagged response line: ``* THREAD (1 2)(3)\\r\\n``, or ``* THREAD\\r\\n`` for none."""
    body = format_thread(roots, use_uid)
    return b"* THREAD " + body.encode("ascii") + b"\r\n" if body else b"* THREAD\r\n"


@dataclass(slots=True)
class ParsedThread:
    """A node of a parsed THREAD response: a number, or None for a nested group (a dummy)."""

    num: int | None
    children: list[ParsedThread] = field(default_factory=list)


class _OpenList:
    __slots__ = ("head", "nested", "tail")

    def __init__(self) -> None:
        self.head: ParsedThread | None = None  # First number of the list; None if only nested lists.
        self.tail: ParsedThread | None = None  # Last number; the nested lists become its children.
        self.nested: list[ParsedThread] = []


def parse_thread(text: str) -> list[ParsedThread]:
    """Parse the thread lists of a ``* THREAD`` response (the text after "THREAD ").

    The inverse of :func:`format_thread`. Raises :class:`SortThreadError` for
    text not matching the grammar of RFC 5256 section 5. No recursion.
    """
    roots: list[ParsedThread] = []
    stack: list[_OpenList] = []
    prev = ""  # Previous token: "", "(", ")", " " or "n" (a number).
    i = 0
    n = len(text)

    def err(msg: str) -> SortThreadError:
        return SortThreadError(f"{msg} at offset {i} of thread response")

    while i < n:
        c = text[i]
        if c == "(":
            if stack:
                if prev not in ("(", ")", " "):
                    raise err("missing space before nested thread list")
            elif prev not in ("", ")"):
                raise err("unexpected '('")
            stack.append(_OpenList())
            prev = "("
            i += 1
        elif c == ")":
            if not stack or prev in ("(", " "):
                raise err("empty thread list or trailing space")
            o = stack.pop()
            if o.nested and len(o.nested) < 2:
                raise err("nested thread lists must come at least two together")
            if o.head is None:
                node = ParsedThread(None, o.nested)
            else:
                assert o.tail is not None
                o.tail.children = o.nested
                node = o.head
            if stack:
                stack[-1].nested.append(node)
            else:
                roots.append(node)
            prev = ")"
            i += 1
        elif c == " ":
            if prev != "n":
                raise err("unexpected space")
            prev = " "
            i += 1
        elif "0" <= c <= "9":
            if not stack:
                raise err("number outside a thread list")
            top = stack[-1]
            if not (prev == "(" or (prev == " " and not top.nested)):
                raise err("unexpected number")
            j = i
            while j < n and "0" <= text[j] <= "9":
                j += 1
            if c == "0":
                raise err("numbers must be non-zero, without leading zeros")
            p = ParsedThread(int(text[i:j]))
            if top.tail is None:
                top.head = p
            else:
                top.tail.children = [p]
            top.tail = p
            prev = "n"
            i = j
        else:
            raise err(f"unexpected character {c!r}")
    if stack:
        raise err("unbalanced '('")
    return roots
