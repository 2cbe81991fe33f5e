"""FETCH of the per-message attributes kept in the index (UID, FLAGS, RFC822.SIZE, INTERNALDATE,
MODSEQ, SAVEDATE) and the responses of STORE, for many messages at once.

Clients synchronising a mailbox ask for exactly these for all messages (``UID FETCH 1:*
(UID FLAGS RFC822.SIZE INTERNALDATE)``, ``STORE 1:* +FLAGS``). They are answered from compact
rows of the store (:meth:`mox.store.account.Account.message_attrs`,
:meth:`~mox.store.account.Account.store_flags`) with responses formatted per line and written in
batches, so memory stays bounded and a slow reader still holds us up (Session.drain).
"""

from __future__ import annotations

import datetime
import json
import math

from mox.imapproto import parse as p
from mox.imapproto import write as w
from mox.imapproto.numset import NumSet
from mox.store.account import FlagsStored, MessageAttrs
from mox.store.model import Flags, flag_names

from .session import Result, Session

# Index-only FETCH attributes: their part of the response line, and the kind of value filled in:
# 0 UID, 1 FLAGS, 2 RFC822.SIZE, 3 INTERNALDATE, 4 MODSEQ, 5 SAVEDATE (RFC 8514 section 4.3: when the
# message was saved in this mailbox).
_INDEX_ATTS = {
    "UID": (b"UID %d", 0),
    "FLAGS": (b"FLAGS %s", 1),
    "RFC822.SIZE": (b"RFC822.SIZE %d", 2),
    "INTERNALDATE": (b"INTERNALDATE %s", 3),
    "MODSEQ": (b"MODSEQ (%d)", 4),
    "SAVEDATE": (b"SAVEDATE %s", 5),
}
SIMPLE_ATTS = frozenset(_INDEX_ATTS)
"""FETCH attributes answered from the index alone."""

WRITE_BATCH = 500
"""Response lines joined into one write before waiting for the client to read (Session.drain)."""

_FLAGS_CACHE_MAX = 10_000
_flag_lists: dict[tuple[int, str], bytes] = {}


def flag_list(flags: int, keywords_json: str) -> bytes:
    """The parenthesised FLAGS list of system flags and keywords (as the store keeps them, a JSON
    list). Cached: few combinations occur in a mailbox."""
    key = (flags, keywords_json)
    v = _flag_lists.get(key)
    if v is None:
        kw: list[str] = json.loads(keywords_json) if keywords_json != "[]" else []
        v = w.flag_list(flag_names(Flags(flags)) + kw)
        if len(_flag_lists) < _FLAGS_CACHE_MAX:
            _flag_lists[key] = v
    return v


_flag_lists_kw: dict[tuple[int, tuple[str, ...]], bytes] = {}


def flag_list_of(flags: Flags, keywords: tuple[str, ...]) -> bytes:
    """The FLAGS list of system flags and keywords (e.g. of a change event); cached."""
    key = (int(flags), keywords)
    v = _flag_lists_kw.get(key)
    if v is None:
        v = w.flag_list(flag_names(flags) + list(keywords))
        if len(_flag_lists_kw) < _FLAGS_CACHE_MAX:
            _flag_lists_kw[key] = v
    return v


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_DAYS_CACHE_MAX = 100_000
_days: dict[int, bytes] = {}


def date_time(t: float) -> bytes:
    """RFC 9051 date-time in UTC of a unix time, quoted (INTERNALDATE, SAVEDATE); the same as
    ``write.date_time(datetime.fromtimestamp(t, UTC))``, with the date part cached per day."""
    frac, whole = math.modf(t)
    # As datetime.fromtimestamp: microseconds rounded half to even, then seconds rounded down.
    us = round(frac * 1e6)
    sec = int(whole) + (1 if us >= 1_000_000 else -1 if us < 0 else 0)
    day, s = divmod(sec, 86400)
    prefix = _days.get(day)
    if prefix is None:
        d = datetime.date(1970, 1, 1) + datetime.timedelta(days=day)
        prefix = b'"%02d-%s-%04d ' % (d.day, _MONTHS[d.month - 1].encode(), d.year)
        if len(_days) < _DAYS_CACHE_MAX:
            _days[day] = prefix
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return prefix + b'%02d:%02d:%02d +0000"' % (h, m, s)


def is_simple(cmd: p.Fetch, atts: list[p.FetchAtt]) -> bool:
    """Whether a FETCH (after UID/MODSEQ were added to atts) needs only the index."""
    return not cmd.vanished and all(a.name in SIMPLE_ATTS for a in atts)


async def fetch_simple(sess: Session, targets: list[tuple[int, int]], atts: list[p.FetchAtt], changedsince: int | None) -> Result:
    """FETCH responses for targets ((seq, uid) in UID order) with SIMPLE_ATTS only.

    Messages expunged by another session but not yet reported to this one are answered
    from their kept rows, as the general FETCH does."""
    assert sess.mailbox is not None
    uids = [u for _, u in targets]
    # Few messages: read just those; many: one pass over the mailbox's rows.
    # With CHANGEDSINCE, the store finds the changed messages with its modseq index.
    rows = await sess.acc().message_attrs(sess.mailbox_id, uids if len(uids) <= 1000 else None, changed_since=changedsince)
    head = b"* %d UIDFETCH (" if sess.uidonly else b"* %d FETCH ("
    parts: list[bytes] = []
    kinds: list[int] = []
    for a in atts:
        part, kind = _INDEX_ATTS[a.name]
        parts.append(part)
        kinds.append(kind)
    fmt = head + b" ".join(parts) + b")\r\n"
    out: list[bytes] = []
    i, n = 0, len(rows)
    for seq, u in targets:
        # Both are in UID order: walk them together.
        while i < n and rows[i][0] < u:
            i += 1
        if i == n:
            break
        r: MessageAttrs = rows[i]
        if r[0] != u:
            continue
        vals: list[int | bytes] = [u if sess.uidonly else seq]
        for k in kinds:
            if k == 0:
                vals.append(u)
            elif k == 1:
                vals.append(flag_list(r[1], r[2]))
            elif k == 2:
                vals.append(r[3])
            elif k == 3:
                vals.append(date_time(r[4]))
            elif k == 4:
                vals.append(r[5])
            else:
                vals.append(date_time(r[6]))
        out.append(fmt % tuple(vals))
        if len(out) >= WRITE_BATCH:
            sess.send(b"".join(out))
            out.clear()
            await sess.drain()
    if out:
        sess.send(b"".join(out))
        await sess.drain()
    return "fetch done", None


async def store_responses(sess: Session, cmd: p.Store, targets: list[tuple[int, int]], res: FlagsStored) -> Result:
    """The untagged FETCH responses of a STORE and its result (RFC 9051 section 6.4.6, RFC 7162
    section 3.1.3): FLAGS of each message unless .SILENT; MODSEQ with CONDSTORE, also with
    .SILENT for the messages that changed; none for messages that failed UNCHANGEDSINCE."""
    uidonly = sess.uidonly
    head = b"* %d UIDFETCH (" if uidonly else b"* %d FETCH ("
    with_uid = cmd.uid and not uidonly
    failed = set(res.modified)
    out: list[bytes] = []

    async def flush(force: bool = False) -> None:
        if out and (force or len(out) >= WRITE_BATCH):
            sess.send(b"".join(out))
            out.clear()
            await sess.drain()

    if not cmd.silent:
        fmt = head + (b"UID %d " if with_uid else b"") + b"FLAGS %s" + (b" MODSEQ (%d)" if sess.condstore else b"") + b")\r\n"
        i, n = 0, len(res.states)
        for seq, u in targets:
            while i < n and res.states[i][0] < u:
                i += 1
            if i == n:
                break
            uid, flags, kwj, modseq = res.states[i]
            if uid != u or u in failed:
                continue
            vals: list[int | bytes] = [u if uidonly else seq]
            if with_uid:
                vals.append(u)
            vals.append(flag_list(flags, kwj))
            if sess.condstore:
                vals.append(modseq)
            out.append(fmt % tuple(vals))
            await flush()
    elif sess.condstore and res.changed:
        fmt = head + (b"UID %d " if with_uid else b"") + b"MODSEQ (%d))\r\n"
        for seq, u in targets:
            if u in res.changed:
                out.append(fmt % ((u if uidonly else seq, u, res.modseq) if with_uid else (u if uidonly else seq, res.modseq)))
                await flush()
    await flush(True)
    if res.modified:
        # RFC 7162 section 3.1.3: the messages that failed the UNCHANGEDSINCE test.
        nums = res.modified if cmd.uid else sorted(sess.seq_of(u) for u in res.modified)
        return "conditional store did not modify all", f"MODIFIED {NumSet.from_numbers(nums)}"
    return "store done", None
