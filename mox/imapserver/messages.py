"""IMAP commands on messages of the selected mailbox: FETCH (BINARY, CONDSTORE MODSEQ and
CHANGEDSINCE, QRESYNC VANISHED, PREVIEW, SAVEDATE), STORE (UNCHANGEDSINCE), COPY, MOVE,
EXPUNGE, CLOSE/UNSELECT and REPLACE (RFC 8508)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os

from mox.imapproto import msgcache
from mox.imapproto import parse as p
from mox.imapproto import write as w
from mox.imapproto.numset import NumSet
from mox.message.part import Part
from mox.message.preview import preview_part
from mox.message.transfer import IDENTITY_ENCODINGS
from mox.store.model import Flags, Message, StoreError, flag_names

from . import bulk
from .mailboxes import ensure_condstore, parse_flags
from .session import Bad, No, Result, Session, store_name

_KNOWN_CTE = IDENTITY_ENCODINGS | {"", "BASE64", "QUOTED-PRINTABLE"}

FETCH_BATCH = 500
"""Messages whose parsed parts are read from the store in one round trip."""


async def _messages_by_uid(sess: Session, targets: list[tuple[int, int]] | None = None) -> dict[int, Message]:
    """The messages (expunged ones included) of the selected mailbox, or of the targets only
    when they are few: a FETCH of a few messages does not read a large mailbox's index."""
    assert sess.mailbox is not None
    uids = [u for _, u in targets] if targets is not None and len(targets) <= 1000 else None
    return {m.uid: m for m in await sess.acc().messages_light(sess.mailbox, include_expunged=True, uids=uids)}


_FLAG_LISTS: dict[tuple[int, tuple[str, ...]], bytes] = {}


def _flags(m: Message) -> bytes:
    """The FLAGS list of a message; cached, as few combinations occur and Flags arithmetic is slow."""
    key = (int(m.flags), tuple(m.keywords))
    v = _FLAG_LISTS.get(key)
    if v is None:
        v = w.flag_list(flag_names(m.flags) + m.keywords)
        if len(_FLAG_LISTS) < 10_000:
            _FLAG_LISTS[key] = v
    return v


async def close(sess: Session, cmd: p.Command) -> Result:
    if cmd.name == "CLOSE" and not sess.readonly:
        assert sess.mailbox is not None
        # RFC 9051 section 6.4.1: expunge silently.
        await sess.acc().expunge(sess.mailbox, list(sess.uids), source=sess)
    sess.mailbox = None
    sess.uids = []
    sess.search_result = []
    return f"{cmd.name.lower()} done", None


async def expunge(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Expunge) and sess.mailbox is not None
    if sess.readonly:
        raise No("mailbox is read-only", "READ-ONLY")
    uids = cmd.uids.uids(sess.uids) if cmd.uids is not None else list(sess.uids)
    # Reported with the change bus at command completion (EXPUNGE or VANISHED responses).
    await sess.acc().expunge(sess.mailbox, uids)
    mb = await sess.acc().mailbox(sess.mailbox)
    return "expunge done", f"HIGHESTMODSEQ {mb.modseq}" if sess.condstore else None


async def store(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Store) and sess.mailbox is not None
    if sess.readonly:
        raise No("mailbox is read-only", "READ-ONLY")
    targets = sess.msg_index(cmd.uid, cmd.nums)
    flags, keywords = parse_flags(cmd.flags)
    if cmd.unchangedsince is not None:
        await ensure_condstore(sess)
    remove = cmd.mode == "-"
    res = await sess.acc().store_flags(
        sess.mailbox, [u for _, u in targets],
        add=Flags.NONE if remove else flags, add_keywords=None if remove else keywords,
        remove=flags if remove else Flags.NONE, remove_keywords=keywords if remove else None,
        replace=cmd.mode == "", unchanged_since=cmd.unchangedsince, states=not cmd.silent, source=sess,
    )  # fmt: skip
    return await bulk.store_responses(sess, cmd, targets, res)


async def copy(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Copy) and sess.mailbox is not None
    move = cmd.name.endswith("MOVE")
    if move and sess.readonly:
        raise No("mailbox is read-only", "READ-ONLY")
    targets = sess.msg_index(cmd.uid, cmd.nums)
    acc = sess.acc()
    try:
        dmb = await acc.mailbox(store_name(cmd.mailbox))
    except StoreError:
        raise No("no such mailbox", "TRYCREATE") from None
    if move and dmb.name == sess.mailbox:
        raise No("cannot move to the selected mailbox", "CANNOT")
    pairs = await acc.copy_messages(sess.mailbox, [u for _, u in targets], dmb.name, move=move)
    if not pairs:
        return "done", None
    code = w.copyuid(dmb.uidvalidity, [a for a, _ in pairs], [b for _, b in pairs])
    if move:
        # RFC 6851 section 4.3: COPYUID in an untagged OK before the EXPUNGEs.
        sess.send(w.untagged(f"OK [{code}] moved"))
        return "move done", None
    return "copy done", code


async def replace(sess: Session, cmd: p.Command) -> Result:
    """RFC 8508: append a new version, then expunge the old one (only if the append worked)."""
    assert isinstance(cmd, p.Replace) and sess.mailbox is not None
    if sess.readonly:
        raise No("mailbox is read-only", "READ-ONLY")
    targets = sess.msg_index(cmd.uid, NumSet.from_numbers([cmd.num]))
    if not targets:
        raise No("no such message", "NONEXISTENT") if cmd.uid else Bad("no such message")
    _, old_uid = targets[0]
    acc = sess.acc()
    try:
        dmb = await acc.mailbox(store_name(cmd.mailbox))
    except StoreError:
        raise No("no such mailbox", "TRYCREATE") from None
    am = cmd.message
    if not am.data:
        raise Bad("empty message")
    flags, keywords = parse_flags(am.flags)
    m = await acc.add_message(
        dmb.name, am.data, flags=flags, keywords=keywords,
        received=am.date_time.timestamp() if am.date_time else None, create_mailbox=False,
    )  # fmt: skip
    sess.send(w.untagged(f"OK [APPENDUID {dmb.uidvalidity} {m.uid}] replacement appended"))
    await acc.set_flags(sess.mailbox, [old_uid], add=Flags.DELETED)
    await acc.expunge(sess.mailbox, [old_uid])
    return "replace done", None


# FETCH.


def _section_bytes(part: Part, raw: bytes, sec: p.Section) -> bytes:
    found = part.section(raw, sec.part)
    if found is None:
        return b""
    sp, src = found
    if sec.text is None:
        if not sec.part:
            return raw
        return sp.body_bytes(src)
    if sec.text == "MIME":
        return sp.header_bytes(src)
    msgp = sp
    if sec.part:
        if sp.message is None:
            return b""
        src = sp.message_source(src)
        msgp = sp.message
    if sec.text == "TEXT":
        return msgp.body_bytes(src)
    header = msgp.header_bytes(src)
    if sec.text == "HEADER":
        return header
    return _header_fields(header, sec.fields, sec.text == "HEADER.FIELDS.NOT")


def _header_fields(header: bytes, names: list[str], exclude: bool) -> bytes:
    wanted = {n.upper() for n in names}
    out: list[bytes] = []
    keep = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        fname = line.split(b":", 1)[0].strip().decode("ascii", "replace").upper()
        keep = (fname in wanted) != exclude
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


def _section_name(sec: p.Section) -> str:
    s = ".".join(str(n) for n in sec.part)
    if sec.text:
        s = f"{s}.{sec.text}" if s else sec.text
        if sec.text.startswith("HEADER.FIELDS"):
            s += " (" + " ".join(sec.fields) + ")"
    return s


def _binary_part(part: Part, raw: bytes, sec: p.Section) -> tuple[Part, bytes] | None:
    """The part of a BINARY section (RFC 3516 section 4.1); NO [UNKNOWN-CTE] for encodings we cannot decode."""
    found = part.section(raw, sec.part)
    if found is None:
        return None
    sp, src = found
    if sp.content_transfer_encoding.upper() not in _KNOWN_CTE:
        raise No(f"unknown content-transfer-encoding {sp.content_transfer_encoding}", "UNKNOWN-CTE")
    return sp, src


def _time(t: float) -> bytes:
    return w.date_time(datetime.datetime.fromtimestamp(t, datetime.UTC))


_NEED_PART = {"RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE", "PREVIEW"}
_NEED_RAW = {"RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE", "PREVIEW"}
_SIMPLE = {"UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "MODSEQ", "SAVEDATE"}

FETCH_BATCH_BYTES = 8 * 1024 * 1024
"""Most message bytes read from files at once for a FETCH (more are read in the next batch)."""

FETCH_WRITE = 64 * 1024
"""FETCH responses are collected up to about this many bytes, then written together."""


def _header_only(a: p.FetchAtt) -> bool:
    """Whether an attribute is (part of) the top-level header: served with the cached header end."""
    if a.name == "RFC822.HEADER":
        return True
    s = a.section
    return a.name == "BODY" and s is not None and not s.part and s.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


def _needs_part(a: p.FetchAtt) -> bool:
    """Whether an attribute needs the parsed tree of the message (not only its cached values)."""
    if _header_only(a):
        return False
    if a.name in _NEED_PART:
        # BINARY[] and BINARY.SIZE[] of the whole message need only the raw bytes.
        return not (a.name in ("BINARY", "BINARY.SIZE") and a.section is not None and not a.section.part)
    # BODY[] (the whole message, no part and no HEADER/TEXT/MIME) needs only the raw bytes.
    return a.name == "BODY" and a.section is not None and bool(a.section.part or a.section.text)


def _read_file(path: str, n: int, whole: bool) -> bytes | None:
    """The first n bytes of a message file, or with whole all of it (n is its expected size: one read
    of one byte more sees a mismatch, never for our immutable files); None if gone (expunged meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if whole:
            data = os.read(fd, n + 1)
            if len(data) != n:
                while chunk := os.read(fd, 1024 * 1024):
                    data += chunk
        else:
            data = os.read(fd, n)
            while len(data) < n and (chunk := os.read(fd, n - len(data))):
                data += chunk
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


def read_message_files(paths: list[tuple[str, int]]) -> list[bytes | None]:
    """Message files, each read with one read of its known size (None if gone: expunged meanwhile)."""
    return [_read_file(path, size, True) for path, size in paths]


def read_message_heads(items: list[tuple[str, int]]) -> list[bytes | None]:
    """The first n bytes of message files (None if gone: expunged meanwhile)."""
    return [_read_file(path, n, False) for path, n in items]


async def message_caches(sess: Session, batch: list[Message]) -> dict[int, msgcache.MessageCache]:
    """The msgcache records of messages, from the store; computed from the parsed tree (and
    stored) for messages without one. Messages whose file is gone are left out."""
    acc = sess.acc()
    out: dict[int, msgcache.MessageCache] = {}
    for mid, data in (await acc.imap_cache_many([m.id for m in batch])).items():
        c = msgcache.decode(data)
        if c is not None:
            out[mid] = c
    missing = [m for m in batch if m.id not in out and not m.expunged]
    if missing:
        try:
            parts = await acc.parsed_many(missing)
        except OSError:
            parts = {}
            for m in missing:
                with contextlib.suppress(OSError):
                    parts[m.id] = await acc.parsed(m)
        built = {mid: msgcache.build(part) for mid, part in parts.items()}
        out.update(built)
        await acc.set_imap_cache([(mid, c.encoded()) for mid, c in built.items()])
    return out


async def fetch(sess: Session, cmd: p.Command) -> Result:
    assert isinstance(cmd, p.Fetch) and sess.mailbox is not None
    acc = sess.acc()
    atts = list(cmd.atts)
    for a in atts:
        if a.name in ("EMAILID", "THREADID"):
            raise Bad(f"fetch attribute {a.name} not supported")
    if cmd.vanished and not sess.qresync:
        raise Bad("VANISHED needs ENABLE QRESYNC")
    if cmd.changedsince is not None or any(a.name == "MODSEQ" for a in atts):
        # RFC 7162 section 3.1: FETCH MODSEQ and CHANGEDSINCE enable CONDSTORE.
        await ensure_condstore(sess)
    if cmd.uid and not sess.uidonly and not any(a.name == "UID" for a in atts):
        atts.insert(0, p.FetchAtt("UID"))
    if cmd.changedsince is not None and not any(a.name == "MODSEQ" for a in atts):
        # RFC 7162 section 3.1.4.1: CHANGEDSINCE implies MODSEQ.
        atts.append(p.FetchAtt("MODSEQ"))
    targets = sess.msg_index(cmd.uid, cmd.nums)
    if bulk.is_simple(cmd, atts):
        return await bulk.fetch_simple(sess, targets, atts, cmd.changedsince)
    msgs = await _messages_by_uid(sess, None if cmd.vanished else targets)
    if cmd.vanished:
        # RFC 7162 section 3.2.6: expunged messages in the UID set changed since the given modseq.
        assert cmd.changedsince is not None
        known = sorted(msgs)
        gone = [u for u in cmd.nums.uids(known) if msgs[u].expunged and msgs[u].modseq > cmd.changedsince]
        if gone:
            sess.send(w.vanished(gone, earlier=True))
    if cmd.changedsince is not None:
        since = cmd.changedsince
        targets = [(s, u) for s, u in targets if u in msgs and msgs[u].modseq > since]
    sets_seen = not sess.readonly and any(
        (a.name in ("BODY", "BINARY") and a.section is not None and not a.peek) or a.name in ("RFC822", "RFC822.TEXT") for a in atts
    )
    unseen: set[int] = set()
    if sets_seen:
        unseen = {u for _, u in targets if u in msgs and not msgs[u].flags & Flags.SEEN and not msgs[u].expunged}
        if unseen:
            for changed in await acc.set_flags(sess.mailbox, sorted(unseen), add=Flags.SEEN, source=sess):
                msgs[changed.uid] = changed
    # ENVELOPE, BODY and BODYSTRUCTURE are served from the values cached per message
    # (mox.imapproto.msgcache), other parts of the structure from the parsed-part cache; both
    # are read for many messages at once. Message files are read only for body contents, a
    # batch at a time with a bounded number of bytes. Responses are written in chunks of about
    # FETCH_WRITE bytes, waiting for the client to read when the transport's buffer is full.
    todo = [(seq, u, msgs[u]) for seq, u in targets if u in msgs]
    out: list[bytes | memoryview] = []
    try:
        await _fetch_responses(sess, atts, todo, unseen, out)
    except (No, Bad):
        # Responses for the messages before the failing one are sent before the tagged NO/BAD.
        if out:
            sess.sendlines(out)
        raise
    if out:
        sess.sendlines(out)
        await sess.drain()
    return "fetch done", None


async def _fetch_responses(
    sess: Session, atts: list[p.FetchAtt], todo: list[tuple[int, int, Message]], unseen: set[int], out: list[bytes | memoryview]
) -> None:
    """Write FETCH responses of messages; out holds what is not written yet when it returns or raises."""
    acc = sess.acc()
    need_cache = any(a.name in ("ENVELOPE", "BODYSTRUCTURE") or (a.name == "BODY" and a.section is None) or _header_only(a) for a in atts)
    need_part = any(_needs_part(a) for a in atts)
    need_raw = any(a.name in _NEED_RAW or (a.name == "BODY" and a.section is not None) for a in atts)
    # Only header fields of the message (as clients fetch for message lists): only the header
    # section of the files is read.
    heads_only = need_raw and all(_header_only(a) for a in atts if a.name in _NEED_RAW or (a.name == "BODY" and a.section is not None))
    utf8 = sess.utf8
    outsize = 0
    i = 0
    while i < len(todo):
        j, size = i, 0
        while j < len(todo) and j - i < FETCH_BATCH and (not need_raw or j == i or size + todo[j][2].size <= FETCH_BATCH_BYTES):
            size += todo[j][2].size
            j += 1
        batch = todo[i:j]
        i = j
        bmsgs = [m for _, _, m in batch]
        caches = await message_caches(sess, bmsgs) if need_cache else {}
        parts = await acc.parsed_many(bmsgs) if need_part else {}
        raws: list[bytes | None] = []
        if heads_only:
            heads = [(acc.message_file(m.id), caches[m.id].body_offset) for m in bmsgs if m.id in caches]
            got = iter(await asyncio.to_thread(read_message_heads, heads))
            raws = [next(got) if m.id in caches else None for m in bmsgs]
        elif need_raw:
            raws = await asyncio.to_thread(read_message_files, [(acc.message_file(m.id), m.size) for m in bmsgs])
        for k, (seq, u, m) in enumerate(batch):
            r = sess.fetch_response(seq, u)
            raw: bytes | None = None
            part: Part | None = parts.get(m.id)
            cache = caches.get(m.id)
            flags_sent = False
            if need_raw:
                raw = raws[k]
                if raw is None:
                    raise No("message was expunged", "EXPUNGEISSUED")
            for a in atts:
                n = a.name
                if n in _SIMPLE:
                    if n == "UID":
                        r.add(b"UID", b"%d" % u)
                    elif n == "FLAGS":
                        r.add(b"FLAGS", _flags(m))
                        flags_sent = True
                    elif n == "RFC822.SIZE":
                        r.add(b"RFC822.SIZE", b"%d" % m.size)
                    elif n == "INTERNALDATE":
                        r.add(b"INTERNALDATE", _time(m.received))
                    elif n == "MODSEQ":
                        r.add(b"MODSEQ", b"(%d)" % m.modseq)
                    else:
                        # RFC 8514 section 4.3: the time the message was saved in this mailbox.
                        r.add(b"SAVEDATE", _time(m.savedate))
                    continue
                if n == "ENVELOPE":
                    if cache is None:
                        raise No("message was expunged", "EXPUNGEISSUED")
                    r.add(b"ENVELOPE", cache.fetch_envelope(utf8))
                elif n == "BODYSTRUCTURE" or (n == "BODY" and a.section is None):
                    if cache is None:
                        raise No("message was expunged", "EXPUNGEISSUED")
                    r.add(n.encode(), cache.fetch_bodystructure(utf8) if n == "BODYSTRUCTURE" else cache.fetch_body(utf8))
                elif n == "RFC822":
                    assert raw is not None
                    r.add_literal(b"RFC822", raw)
                elif n == "RFC822.TEXT":
                    assert raw is not None and part is not None
                    r.add_literal(b"RFC822.TEXT", part.body_bytes(raw))
                elif _header_only(a):
                    # The top-level header: the start of the message, up to the cached body offset.
                    assert raw is not None
                    if cache is None:
                        raise No("message was expunged", "EXPUNGEISSUED")
                    header = raw[: cache.body_offset]
                    if n == "RFC822.HEADER":
                        r.add_literal(b"RFC822.HEADER", header)
                        continue
                    assert a.section is not None and a.section.text is not None
                    if a.section.text != "HEADER":
                        header = _header_fields(header, a.section.fields, a.section.text == "HEADER.FIELDS.NOT")
                    label = f"BODY[{_section_name(a.section)}]"
                    if a.partial is not None:
                        off, cnt = a.partial
                        header = header[off : off + cnt]
                        label += f"<{off}>"
                    r.add_literal(label.encode(), header)
                elif n == "BODY":
                    assert raw is not None and a.section is not None
                    if part is None:
                        data = raw  # The whole message: BODY[].
                    else:
                        data = _section_bytes(part, raw, a.section)
                    label = f"BODY[{_section_name(a.section)}]"
                    if a.partial is not None:
                        off, cnt = a.partial
                        data = data[off : off + cnt]
                        label += f"<{off}>"
                    r.add_literal(label.encode(), data)
                elif n == "BINARY":
                    assert raw is not None and a.section is not None
                    label = "BINARY[" + ".".join(str(x) for x in a.section.part) + "]"
                    if not a.section.part:
                        data = raw
                    else:
                        assert part is not None
                        found = _binary_part(part, raw, a.section)
                        data = found[0].decoded_body(found[1], text_crlf=True) if found is not None else b""
                    if a.partial is not None:
                        off, cnt = a.partial
                        data = data[off : off + cnt]
                        label += f"<{off}>"
                    r.add_literal(label.encode(), data, binary=b"\0" in data)
                elif n == "BINARY.SIZE":
                    assert raw is not None and a.section is not None
                    label = "BINARY.SIZE[" + ".".join(str(x) for x in a.section.part) + "]"
                    if not a.section.part:
                        size = len(raw)
                    else:
                        assert part is not None
                        found = _binary_part(part, raw, a.section)
                        size = found[0].decoded_size(found[1], text_crlf=True) if found is not None else 0
                    r.add(label.encode(), b"%d" % size)
                elif n == "PREVIEW":
                    # RFC 8970 section 3: at most 256 characters, NIL if none can be made.
                    assert raw is not None and part is not None
                    text = " ".join(preview_part(part, raw).split())[:256]
                    r.add(b"PREVIEW", w.nstring(text or None, utf8) if utf8 or text.isascii() else w.literal(text))
                else:
                    raise Bad(f"unsupported fetch attribute {n}")
            if u in unseen and not flags_sent:
                r.add(b"FLAGS", _flags(m))
                if sess.condstore and not any(a.name == "MODSEQ" for a in atts):
                    r.add(b"MODSEQ", b"(%d)" % m.modseq)
            for c in r.chunks():
                out.append(c)
                outsize += len(c)
            if outsize >= FETCH_WRITE:
                sess.sendlines(out)
                out.clear()
                outsize = 0
                await sess.drain()
        del raws, parts, caches
