"""SEARCH and UID SEARCH (RFC 9051 section 6.4.4) with ESEARCH RETURN options (RFC 4731),
SEARCHRES "$" and SAVE (RFC 5182), MODSEQ (RFC 7162 section 3.1.5), SAVEDATE keys
(RFC 8514), OLDER/YOUNGER (WITHIN, RFC 5032).

Flag, size, UID and date keys are evaluated on the message rows; the message
file and its parsed parts are read only for header and text keys, one
message at a time.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mox.imapproto import msgcache
from mox.imapproto import parse as p
from mox.imapproto import sortthread as st
from mox.imapproto import write as w
from mox.message.encodedword import decode_words
from mox.message.envelope import Envelope, parse_date
from mox.message.headers import parse_headers, unfold
from mox.message.part import Part
from mox.store.account import light_row_message
from mox.store.model import Flags, Message, parse_flag_names

from .mailboxes import ensure_condstore
from .messages import message_caches, read_message_files
from .session import Bad, No, Result, Session, imap_name, store_name

_FLAG_KEYS = {
    "SEEN": (Flags.SEEN, True), "UNSEEN": (Flags.SEEN, False), "DELETED": (Flags.DELETED, True),
    "UNDELETED": (Flags.DELETED, False), "FLAGGED": (Flags.FLAGGED, True), "UNFLAGGED": (Flags.FLAGGED, False),
    "ANSWERED": (Flags.ANSWERED, True), "UNANSWERED": (Flags.ANSWERED, False), "DRAFT": (Flags.DRAFT, True),
    "UNDRAFT": (Flags.DRAFT, False),
}  # fmt: skip
_HEADER_KEYS = {"SUBJECT", "FROM", "TO", "CC", "BCC", "HEADER"}
_SENT_KEYS = {"SENTBEFORE", "SENTON", "SENTSINCE"}
_SAVED_KEYS = {"SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"}
_SIMPLE = {
    "ALL", "KEYWORD", "UNKEYWORD", "UID", "SEQ", "LARGER", "SMALLER", "BODY", "TEXT", "NEW", "OLD", "RECENT",
    "BEFORE", "ON", "SINCE", "MODSEQ", "OLDER", "YOUNGER", "SAVEDATESUPPORTED",
}  # fmt: skip
_REV1_ONLY = {"NEW", "OLD", "RECENT"}


def _date_matches(op: str, day: datetime.date, want: datetime.date) -> bool:
    # RFC 9051 section 6.4.4: dates compare without time and timezone.
    if op.endswith("BEFORE"):
        return day < want
    if op.endswith("ON"):
        return day == want
    return day >= want


class _Row(NamedTuple):
    """A message row as read for SEARCH (Account.message_light_rows): the attributes of Message
    the keys use, without building a Message for every message of the mailbox."""

    id: int
    uid: int
    modseq: int
    createseq: int
    expunged: int
    received: float
    savedate: float
    size: int
    flags: int
    keywords_json: str
    thread_id: int
    cache_data: bytes | None

    @property
    def keywords(self) -> list[str]:
        return json.loads(self.keywords_json) if self.keywords_json != "[]" else []


class _NeedPart(Exception):
    """A key needs the message's parsed tree, which is loaded only for messages that need it."""


@dataclass(slots=True)
class _Candidate:
    seq: int
    msg: _Row
    raw: bytes | None = None
    cache: msgcache.MessageCache | None = None
    loaded: Part | None = None
    part_loaded: bool = False

    @property
    def part(self) -> Part | None:
        if not self.part_loaded:
            raise _NeedPart()
        return self.loaded


# Characters whose lower case is (or contains) an ASCII character: a search for an ASCII
# string can match them in decoded text, but not their bytes in UTF-8.
_ASCII_LOWERING_UTF8 = ("\u0130".encode(), "\u212a".encode())


def _unfold_bytes(header: bytes) -> bytes:
    return header.replace(b"\r", b"").replace(b"\n", b"")


def text_fast(op: str, needle: bytes, cache: msgcache.MessageCache, raw: bytes) -> bool | None:
    """BODY or TEXT (RFC 9051 section 6.4.4) decided from the raw bytes of a message where that
    gives the same answer as decoding it, else None. needle is ASCII, lower case, not empty,
    without CR or LF.

    Where all text parts are "plain" (msgcache.PLAIN_TEXT: no transfer encoding, a charset in
    which ASCII bytes are ASCII characters and nothing else decodes to ASCII), a
    case-insensitive match in the raw body of a text part is a match in its decoded text, and
    the other way round unless the text has characters that lower-case to ASCII (U+0130,
    U+212A). Header values are decoded from raw bytes that way too when the header has no
    encoded-words: no raw match (values unfolded) means no match; a raw match in the header
    may be in a field name, and is left to the full evaluation.
    """
    if not cache.flags & msgcache.PLAIN_TEXT:
        return None
    ranges = cache.text_ranges
    # Text is mostly lower case: an exact find first is cheap and usually settles it.
    for start, end in ranges:
        if raw.find(needle, start, end) >= 0:
            return True
    for start, end in ranges:
        if needle in raw[start:end].lower():
            return True
    if op == "TEXT" and not header_excludes(needle, raw[: cache.body_offset]):
        return None
    # Characters that lower-case to ASCII add matches in the decoded text (never remove any).
    if not raw.isascii() and any(b in raw for b in _ASCII_LOWERING_UTF8):
        return None
    return False


def check_key(sess: Session, k: p.SearchKey) -> None:
    """BAD for keys we do not evaluate, before any message is looked at."""
    if k.op in ("AND", "OR", "NOT"):
        for c in k.keys:
            check_key(sess, c)
    elif k.op in _REV1_ONLY and sess.rev2:
        # RFC 9051 appendix E: \Recent and its search keys are gone in IMAP4rev2.
        raise Bad(f"search key {k.op} not in IMAP4rev2")
    elif k.op == "SEQ" and "UIDONLY" in sess.enabled and not (k.nums and k.nums.search_result):
        raise Bad("sequence numbers not allowed with UIDONLY", "UIDREQUIRED")
    elif k.op not in _FLAG_KEYS and k.op not in _HEADER_KEYS and k.op not in _SIMPLE and k.op not in _SENT_KEYS | _SAVED_KEYS:
        raise Bad(f"search key {k.op} not supported")


def _uses_modseq(k: p.SearchKey) -> bool:
    return k.op == "MODSEQ" or any(_uses_modseq(c) for c in k.keys)


class _Matcher:
    def __init__(self, sess: Session, uids: list[int]) -> None:
        self.sess = sess
        self.now = time.time()
        self.saved = set(sess.search_result)
        self.max_uid = uids[-1] if uids else 0
        self.count = len(uids)
        self._needles: dict[str, bytes] = {}

    def matches(self, c: _Candidate, k: p.SearchKey) -> bool:
        op = k.op
        m = c.msg
        if op == "AND":
            return all(self.matches(c, sub) for sub in k.keys)
        if op == "OR":
            return self.matches(c, k.keys[0]) or self.matches(c, k.keys[1])
        if op == "NOT":
            return not self.matches(c, k.keys[0])
        if op == "BODY" or op == "TEXT":
            # First: the common content search, one message file after another.
            if c.raw is None:
                return False  # Expunged meanwhile: its file is gone.
            if c.cache is not None:
                needle_b = self._needle(k.text or "")
                if needle_b:
                    fast = text_fast(op, needle_b, c.cache, c.raw)
                    if fast is not None:
                        return fast
            if c.part is None:
                return False  # Expunged meanwhile.
            return text_full(op, (k.text or "").lower(), c.part, c.raw)
        if op in ("ALL", "OLD", "SAVEDATESUPPORTED"):
            return True
        if op in ("NEW", "RECENT"):
            return False
        if op in _FLAG_KEYS:
            f, want = _FLAG_KEYS[op]
            return bool(m.flags & f) == want
        if op in ("KEYWORD", "UNKEYWORD"):
            fl, kws = parse_flag_names([k.text or ""])
            has = bool(m.flags & fl) if fl else bool(kws) and kws[0] in m.keywords
            return has == (op == "KEYWORD")
        if op in ("UID", "SEQ"):
            assert k.nums is not None
            if k.nums.search_result:
                return m.uid in self.saved
            if op == "UID":
                return k.nums.contains(m.uid, self.max_uid)
            return k.nums.contains(c.seq, self.count)
        if op == "LARGER":
            return m.size > (k.number or 0)
        if op == "SMALLER":
            return m.size < (k.number or 0)
        if op == "MODSEQ":
            return m.modseq >= (k.number or 0)
        if op == "OLDER":
            # RFC 5032 section 3: internal date at least n seconds ago.
            return m.received <= self.now - (k.number or 0)
        if op == "YOUNGER":
            return m.received >= self.now - (k.number or 0)
        if op in ("BEFORE", "ON", "SINCE"):
            assert k.date is not None
            # The internal date as a day in UTC.
            return _date_matches(op, datetime.datetime.fromtimestamp(m.received, datetime.UTC).date(), k.date)
        if op in _SAVED_KEYS:
            assert k.date is not None
            return _date_matches(op, datetime.datetime.fromtimestamp(m.savedate, datetime.UTC).date(), k.date)
        if c.raw is None:
            return False  # Expunged meanwhile: its file is gone.
        if op in _HEADER_KEYS and c.cache is not None:
            # The top-level header is the start of the message: no parsed tree needed.
            header = c.raw[: c.cache.body_offset]
            needle_b = self._needle(k.text or "")
            if needle_b and header_excludes(needle_b, header):
                return False
            return _header_matches(k, parse_headers(header))
        if c.part is None:
            return False  # Expunged meanwhile.
        if op in _SENT_KEYS:
            assert k.date is not None
            sent = parse_date(c.part.envelope.date) if c.part.envelope and c.part.envelope.date else None
            # The Date header's own day, in the zone it was written in.
            return sent is not None and _date_matches(op, sent.date(), k.date)
        if op in _HEADER_KEYS:
            return _header_matches(k, c.part.headers(c.raw))
        raise Bad(f"search key {op} not supported")


    def _needle(self, text: str) -> bytes:
        v = self._needles.get(text)
        if v is None:
            v = self._needles[text] = fast_needle(text)
        return v


def _header_matches(k: p.SearchKey, headers: list[tuple[str, bytes]]) -> bool:
    """SUBJECT, FROM, TO, CC, BCC, HEADER (RFC 9051 section 6.4.4): a case-insensitive substring
    of a decoded value of the field; HEADER with an empty string: the field is present."""
    needle = (k.text or "").lower()
    fname = ((k.field if k.op == "HEADER" else k.op) or "").upper()
    values = [_header_text(v) for n, v in headers if n.upper() == fname]
    return any(needle in v.lower() for v in values) if values or needle else False


def header_excludes(needle: bytes, header: bytes) -> bool:
    """Whether no decoded header field value can contain needle (as for text_fast): the header
    has no encoded-words, no case-insensitive raw match (values unfolded), and no characters
    that lower-case to ASCII."""
    if b"=?" in header:
        return False
    low = header.lower()
    if needle in low or ((b" " in needle or b"\t" in needle) and needle in _unfold_bytes(low)):
        return False
    return header.isascii() or not any(b in header for b in _ASCII_LOWERING_UTF8)


def text_full(op: str, needle: str, part: Part, raw: bytes) -> bool:
    """BODY or TEXT (RFC 9051 section 6.4.4): needle (lower case) in the decoded text of the
    message's text parts, or (TEXT) in a decoded top-level header field value."""
    if op == "TEXT":
        for _n, v in part.headers(raw):
            if needle in _header_text(v).lower():
                return True
    for sp in part.walk():
        if not sp.is_multipart and sp.media_type == "TEXT" and needle in sp.text(raw).lower():
            return True
    return False


def fast_needle(text: str) -> bytes:
    """The search string for text_fast (lower case ASCII bytes), or b"" when it cannot be used."""
    needle = text.lower()
    if not needle or not needle.isascii() or "\r" in needle or "\n" in needle:
        return b""
    return needle.encode("ascii")


def _uses_cache(k: p.SearchKey) -> bool:
    """Whether k has keys evaluated with the per-message cache (BODY, TEXT and header keys)."""
    return k.op in ("BODY", "TEXT") or k.op in _HEADER_KEYS or any(_uses_cache(c) for c in k.keys)


def _needs_content(k: p.SearchKey) -> bool:
    """Whether evaluating k reads message files (header, text and sent-date keys)."""
    if k.op in _HEADER_KEYS or k.op in _SENT_KEYS or k.op in ("BODY", "TEXT"):
        return True
    return any(_needs_content(c) for c in k.keys)


SEARCH_BATCH = 1000
"""Messages whose files and parsed parts are read together for content search."""

SEARCH_BATCH_BYTES = 16 * 1024 * 1024
"""Most message bytes of one batch for content search (two batches are held at once)."""


def _header_text(value: bytes) -> str:
    """A header value unfolded with RFC 2047 encoded-words decoded, for substring search."""
    return decode_words(unfold(value))


INPROGRESS_INTERVAL = 10.0
"""Seconds between untagged INPROGRESS responses of a long search (RFC 9585); tests shorten it."""


class _Progress:
    """Untagged ``OK [INPROGRESS ("tag" done goal)]`` every INPROGRESS_INTERVAL seconds (RFC 9585 section 3)."""

    def __init__(self, sess: Session, tag: str, goal: int) -> None:
        self.sess = sess
        # RFC 9585 section 4: the tag as a quoted string, NIL if it cannot be one.
        self.tag = w.string(tag) if "]" not in tag else b"NIL"
        self.goal = goal
        self.done = 0
        self.last = time.monotonic()

    async def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= INPROGRESS_INTERVAL:
            self.last = now
            self.sess.send(b"* OK [INPROGRESS (%s %d %d)] still searching\r\n" % (self.tag, self.done, self.goal))
            await self.sess.drain()


async def run_search(
    sess: Session, key: p.SearchKey, *, tag: str = "", mailbox: str | None = None, progress: _Progress | None = None
) -> list[tuple[int, Message]]:
    """Messages that match key, as (sequence number, message), in order: of the session's
    view of the selected mailbox, or of another mailbox (mailbox, for multimailbox ESEARCH)."""
    mbid, found = await run_search_rows(sess, key, tag=tag, mailbox=mailbox, progress=progress)
    return [(seq, light_row_message(mbid, m)) for seq, m in found]


async def run_search_rows(
    sess: Session, key: p.SearchKey, *, tag: str = "", mailbox: str | None = None, progress: _Progress | None = None
) -> tuple[int, list[tuple[int, _Row]]]:
    """As run_search, with the mailbox id and rows instead of Message objects (for results
    that need only UIDs and modseqs: no object per matching message)."""
    check_key(sess, key)
    if _uses_modseq(key):
        await ensure_condstore(sess)
    acc = sess.acc()
    # Plain rows; a Message is made only for the messages that match (or whose parsed parts or
    # per-message cache are made).
    if mailbox is None or mailbox == sess.mailbox:
        assert sess.mailbox is not None
        mbid, rows = await acc.message_light_rows(sess.mailbox, include_expunged=True, imap_cache=_uses_cache(key))
        msgs = {r[1]: _Row._make(r) for r in rows}
        uids = sess.uids
    else:
        mbid, rows = await acc.message_light_rows(mailbox, imap_cache=_uses_cache(key))
        msgs = {r[1]: _Row._make(r) for r in rows}
        uids = list(msgs)
    del rows
    matcher = _Matcher(sess, uids)
    found: list[tuple[int, _Row]] = []
    todo = [(i + 1, msgs[u]) for i, u in enumerate(uids) if u in msgs]
    if not _needs_content(key):
        return mbid, [(seq, m) for seq, m in todo if matcher.matches(_Candidate(seq, m), key)]
    if progress is None:
        progress = _Progress(sess, tag, len(todo))
    # Message files and parsed parts are read in batches: one thread hop and one
    # database query per batch, with a bounded number of bytes in memory. The files of the
    # next batch are read (in a thread) while this one is matched.
    use_cache = _uses_cache(key)
    batches: list[list[tuple[int, _Row]]] = []
    i = 0
    while i < len(todo):
        j, size = i, 0
        while j < len(todo) and j - i < SEARCH_BATCH and (j == i or size + todo[j][1].size <= SEARCH_BATCH_BYTES):
            size += todo[j][1].size
            j += 1
        batches.append(todo[i:j])
        i = j
    loop = asyncio.get_running_loop()
    # Each batch is read and matched in a worker thread, SEARCH_THREADS batches at a time: a
    # thread gives up the GIL at each file read, after a few microseconds of matching, so reads
    # and matching overlap (a thread reading while the event loop thread matched a whole batch
    # waited for the GIL most of the time). Messages that need their parsed tree are finished
    # on the event loop thread.
    inflight: list[tuple[list[tuple[int, _Row]], dict[int, msgcache.MessageCache], asyncio.Future[_Scanned]]] = []

    async def finish() -> None:
        batch, caches, fut = inflight.pop(0)
        flags, later = await fut
        await _finish_batch(sess, matcher, key, mbid, batch, caches, flags, later)
        found.extend(b for b, f in zip(batch, flags, strict=True) if f)
        await progress.add(len(batch))

    try:
        for batch in batches:
            live = [m for _, m in batch if not m.expunged]
            # The per-message cache has what BODY and TEXT need in most cases; the parsed tree
            # is loaded only for messages where a key needs it.
            caches = await _row_caches(sess, mbid, live) if use_cache else {}
            files = [(acc.message_file(m.id), m.size) for _, m in batch]
            inflight.append((batch, caches, loop.run_in_executor(None, _scan_batch, matcher, key, batch, files, caches)))
            if len(inflight) >= SEARCH_THREADS:
                await finish()
        while inflight:
            await finish()
    finally:
        if inflight:
            # Not cancellable (threads): wait so no read outlives the command.
            await asyncio.wait([f for _, _, f in inflight])
    return mbid, found


async def _row_caches(sess: Session, mailbox_id: int, rows: list[_Row]) -> dict[int, msgcache.MessageCache]:
    """message_caches for rows (with their imap_cache records): Message objects are made only
    for messages without a usable stored record."""
    out: dict[int, msgcache.MessageCache] = {}
    for r in rows:
        if r.cache_data is not None:
            c = msgcache.decode(r.cache_data)
            if c is not None:
                out[r.id] = c
    missing = [light_row_message(mailbox_id, r) for r in rows if r.id not in out and not r.expunged]
    if missing:
        out.update(await message_caches(sess, missing))
    return out


_Scanned = tuple[list[bool], dict[int, bytes | None]]
"""What _scan_batch returns: whether each message matched, and those that need their parsed tree."""

SEARCH_THREADS = 2
"""Batches of a content search read and matched at the same time, each in a worker thread."""

SCAN_CHUNK = 32
"""Message files a search worker reads before matching them."""


def _scan_batch(
    matcher: _Matcher,
    key: p.SearchKey,
    batch: list[tuple[int, _Row]],
    files: list[tuple[str, int]],
    caches: dict[int, msgcache.MessageCache],
) -> _Scanned:
    """In a worker thread: read the message files of batch (a few at a time) and evaluate key
    on each. Returns whether each matched, and the messages that need their parsed tree (index
    in batch: file contents) for :func:`_finish_batch`."""
    # One candidate object, reused: fewer allocations (and garbage collections) per message.
    c = _Candidate(0, batch[0][1])
    flags: list[bool] = []
    later: dict[int, bytes | None] = {}
    for i in range(0, len(batch), SCAN_CHUNK):
        raws = read_message_files(files[i : i + SCAN_CHUNK])
        for ci, raw in enumerate(raws, i):
            seq, m = batch[ci]
            c.seq, c.msg, c.raw, c.cache = seq, m, raw, caches.get(m.id)
            try:
                flags.append(matcher.matches(c, key))
            except _NeedPart:
                flags.append(False)
                later[ci] = raw
    return flags, later


async def _finish_batch(
    sess: Session,
    matcher: _Matcher,
    key: p.SearchKey,
    mailbox_id: int,
    batch: list[tuple[int, _Row]],
    caches: dict[int, msgcache.MessageCache],
    flags: list[bool],
    later: dict[int, bytes | None],
) -> None:
    """Evaluate key, with their parsed trees, on the messages of batch that needed them (from
    _scan_batch), setting their entries in flags."""
    if not later:
        return
    acc = sess.acc()
    parts = await acc.parsed_many([light_row_message(mailbox_id, batch[ci][1]) for ci in later if not batch[ci][1].expunged])
    c = _Candidate(0, batch[0][1], part_loaded=True)
    for ci, raw in later.items():
        seq, m = batch[ci]
        c.seq, c.msg, c.raw, c.cache, c.loaded = seq, m, raw, caches.get(m.id), parts.get(m.id)
        flags[ci] = matcher.matches(c, key)


def check_charset(charset: str | None) -> None:
    if charset is not None and charset.upper() not in ("US-ASCII", "UTF-8"):
        raise No("only US-ASCII and UTF-8 supported", "BADCHARSET (US-ASCII UTF-8)")


async def search(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Search)
    opts = cmd.return_options
    save = opts is not None and "SAVE" in opts
    try:
        check_charset(cmd.charset)
        _, found = await run_search_rows(sess, cmd.key, tag=cmd.tag)
    except (Bad, No):
        if save:
            # RFC 5182 section 2.1: a failed SEARCH with SAVE leaves an empty result.
            sess.search_result = []
        raise
    nums = [m.uid if cmd.uid else seq for seq, m in found]
    modseq = max((m.modseq for _, m in found), default=None) if _uses_modseq(cmd.key) else None
    if save:
        uids = [m.uid for _, m in found]
        if opts and {"MIN", "MAX"} & set(opts) and not {"ALL", "COUNT"} & set(opts) and uids:
            # RFC 5182 section 2.4: with MIN and/or MAX only, only those are saved.
            uids = sorted({uids[0] if "MIN" in opts else uids[-1], uids[-1] if "MAX" in opts else uids[0]})
        sess.search_result = uids
    if opts is None and not sess.rev2:
        sess.send(w.search(nums, modseq))
        return "search done", None
    # ESEARCH response (RFC 4731 section 3.1; RFC 9051 section 6.4.4 always for IMAP4rev2).
    want = set(opts or []) - {"SAVE"}
    if opts is None or (not want and not save):
        want = {"ALL"}  # RFC 4731 section 3.1: RETURN () means ALL.
    if want:
        sess.send(
            w.esearch(
                cmd.tag, cmd.uid,
                min=nums[0] if "MIN" in want and nums else None,
                max=nums[-1] if "MAX" in want and nums else None,
                all=nums if "ALL" in want else None,
                count=len(nums) if "COUNT" in want else None,
                modseq=modseq if nums else None,
            )
        )  # fmt: skip
    return "search done", None


# SORT and THREAD (RFC 5256), with the algorithms of mox.imapproto.sortthread.


def _read_headers(items: list[tuple[Path, int]]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for path, size in items:
        try:
            with path.open("rb") as f:
                out.append(f.read(size))
        except OSError:
            out.append(None)
    return out


async def _sort_messages(sess: Session, found: list[tuple[int, Message]], references: bool) -> list[st.SortMessage]:
    """SortMessage of each found message, from the parsed-part cache (and the header
    section of the message file for the References field, for THREAD=REFERENCES)."""
    acc = sess.acc()
    out: list[st.SortMessage] = []
    for i in range(0, len(found), SORT_BATCH):
        chunk = found[i : i + SORT_BATCH]
        parts = await acc.parsed_many([m for _, m in chunk])
        headers: list[bytes | None] = [b""] * len(chunk)
        if references:
            headers = await asyncio.to_thread(_read_headers, [(acc.message_path(m.id), parts[m.id].body_offset) for _, m in chunk])
        for (seq, m), header in zip(chunk, headers, strict=True):
            part = parts[m.id]
            refs: list[str] = []
            if header is None:
                continue  # Expunged meanwhile.
            if references:
                refs = [unfold(v) for n, v in part.headers(header) if n.upper() == "REFERENCES"]
            received = datetime.datetime.fromtimestamp(m.received, datetime.UTC)
            out.append(st.SortMessage.from_envelope(seq, m.uid, received, m.size, part.envelope or Envelope(), refs))
    return out


SORT_BATCH = 500


async def sort(sess: Session, cmd: p.Command) -> Result:
    """SORT / UID SORT (RFC 5256 section 3, RFC 5957 DISPLAYFROM/DISPLAYTO)."""
    assert isinstance(cmd, p.Sort)
    if cmd.return_options is not None:
        raise Bad("SORT RETURN (ESORT) not supported")
    check_charset(cmd.charset)
    found = await run_search(sess, cmd.key, tag=cmd.tag)
    try:
        ordered = st.sort_messages(cmd.criteria, await _sort_messages(sess, found, False))
    except st.SortThreadError as x:
        raise Bad(str(x)) from None
    modseq = max((m.modseq for _, m in found), default=None) if _uses_modseq(cmd.key) else None
    sess.send(w.sort([m.uid if cmd.uid else m.seq for m in ordered], modseq))
    return "sort done", None


async def thread(sess: Session, cmd: p.Command) -> Result:
    """THREAD / UID THREAD with ORDEREDSUBJECT or REFERENCES (RFC 5256 section 3)."""
    assert isinstance(cmd, p.Thread)
    alg = cmd.algorithm.upper()
    if alg not in st.THREAD_ALGORITHMS:
        raise Bad(f"unknown threading algorithm {cmd.algorithm}")
    check_charset(cmd.charset)
    found = await run_search(sess, cmd.key, tag=cmd.tag)
    roots = st.thread_messages(alg, await _sort_messages(sess, found, alg == "REFERENCES"))
    text = st.format_thread(roots, use_uid=cmd.uid)
    sess.send(w.untagged(("THREAD " + text) if text else "THREAD"))
    return "thread done", None


# Multimailbox ESEARCH (RFC 7377, MULTISEARCH).


def _has_seqnums(k: p.SearchKey) -> bool:
    if k.op == "SEQ" or (k.nums is not None and k.nums.search_result):
        return True
    return any(_has_seqnums(c) for c in k.keys)


async def esearch(sess: Session, cmd: p.Command) -> Result:
    """ESEARCH [IN (sources)] [RETURN (...)] [CHARSET] key: UIDs per mailbox with matches."""
    assert isinstance(cmd, p.Esearch)
    check_charset(cmd.charset)
    if _has_seqnums(cmd.key):
        # RFC 7377 section 2: message sequence numbers (and "$") mean nothing across mailboxes.
        raise Bad("sequence numbers and $ not allowed in ESEARCH")
    opts = cmd.return_options
    if opts is not None and "SAVE" in opts:
        raise Bad("SAVE not allowed in ESEARCH")
    want = set(opts or []) or {"ALL"}
    acc = sess.acc()
    mbs = await acc.mailboxes()
    byname = {m.name: m for m in mbs}
    names: dict[str, None] = {}
    for f, given in cmd.sources or [("SELECTED", [])]:
        stored = [store_name(n) for n in given]
        if f in ("SELECTED", "SELECTED-DELAYED"):
            if sess.mailbox is None:
                raise Bad("no mailbox selected")
            names[sess.mailbox] = None
        elif f == "INBOXES":
            names.update((n, None) for n in byname if n == "Inbox" or n.startswith("Inbox/"))
        elif f == "PERSONAL":
            names.update((n, None) for n in byname)
        elif f == "SUBSCRIBED":
            names.update((n, None) for n in await acc.subscriptions() if n in byname)
        elif f == "MAILBOXES":
            names.update((n, None) for n in stored if n in byname)
        elif f in ("SUBTREE", "SUBTREE-ONE"):
            for top in stored:
                for n in byname:
                    below = n.startswith(top + "/")
                    if n == top or (below and (f == "SUBTREE" or "/" not in n[len(top) + 1 :])):
                        names[n] = None
        else:
            raise Bad(f"unknown ESEARCH source {f}")
    todo = [byname[n] for n in names if n in byname]
    progress = _Progress(sess, cmd.tag, sum(mb.counts.imap_count for mb in todo))
    for mb in todo:
        _, found = await run_search_rows(sess, cmd.key, tag=cmd.tag, mailbox=mb.name, progress=progress)
        if not found:
            continue  # RFC 7377 section 2: no response for mailboxes without matches.
        uids = [m.uid for _, m in found]
        modseq = max(m.modseq for _, m in found) if _uses_modseq(cmd.key) else None
        sess.send(
            w.esearch(
                cmd.tag, True,
                min=uids[0] if "MIN" in want else None,
                max=uids[-1] if "MAX" in want else None,
                all=uids if "ALL" in want else None,
                count=len(uids) if "COUNT" in want else None,
                modseq=modseq, mailbox_name=imap_name(mb.name), uidvalidity=mb.uidvalidity, utf8=sess.utf8,
            )
        )  # fmt: skip
    return "esearch done", None
