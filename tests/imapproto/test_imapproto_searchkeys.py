"""Search programs: random key trees written out and parsed back."""

from __future__ import annotations

import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mox.imapproto import parse as p
from mox.imapproto import write
from mox.imapproto.numset import NumRange, NumSet

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def fmt(k: p.SearchKey) -> bytes:
    """Write a search key as a client would."""
    if k.op == "AND":
        return b"(" + b" ".join(fmt(x) for x in k.keys) + b")"
    if k.op == "SEQ":
        return str(k.nums).encode()
    if k.op in ("NOT", "OR"):
        return k.op.encode() + b" " + b" ".join(fmt(x) for x in k.keys)
    if k.op == "UID":
        return b"UID " + str(k.nums).encode()
    if k.date is not None:
        d = k.date
        return b"%s %d-%s-%04d" % (k.op.encode(), d.day, _MONTHS[d.month - 1].encode(), d.year)
    if k.op == "HEADER":
        assert k.field is not None and k.text is not None
        return b"HEADER " + write.astring(k.field, True) + b" " + write.astring(k.text, True)
    if k.op == "MODSEQ":
        return b"MODSEQ %d" % (k.number or 0)
    if k.number is not None:
        return b"%s %d" % (k.op.encode(), k.number)
    if k.text is not None:
        if k.op in ("KEYWORD", "UNKEYWORD"):
            return k.op.encode() + b" " + k.text.encode()
        return k.op.encode() + b" " + write.astring(k.text, True)
    return k.op.encode()


nums = st.lists(
    st.tuples(st.integers(1, 2**32 - 1) | st.none(), st.integers(1, 2**32 - 1) | st.none()), min_size=1, max_size=3
).map(lambda rs: NumSet(tuple(NumRange(a, b) for a, b in rs)))
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)
leaf = st.one_of(
    st.sampled_from(["ALL", "SEEN", "UNSEEN", "DELETED", "NEW", "RECENT", "DRAFT", "SAVEDATESUPPORTED"]).map(p.SearchKey),
    st.builds(lambda op, t: p.SearchKey(op, text=t), st.sampled_from(["FROM", "TO", "BODY", "TEXT", "SUBJECT"]), text),
    st.builds(
        lambda op, d: p.SearchKey(op, date=d),
        st.sampled_from(["BEFORE", "ON", "SINCE", "SENTON", "SAVEDSINCE"]),
        st.dates(datetime.date(1000, 1, 1), datetime.date(9999, 12, 31)),
    ),
    st.builds(lambda op, n: p.SearchKey(op, number=n), st.sampled_from(["LARGER", "SMALLER", "MODSEQ"]), st.integers(0, 2**63 - 1)),
    st.builds(lambda n: p.SearchKey("OLDER", number=n), st.integers(1, 2**32 - 1)),
    st.builds(lambda op, t: p.SearchKey(op, text=t), st.sampled_from(["KEYWORD", "UNKEYWORD"]), st.from_regex(r"\$?[A-Za-z]{1,8}", fullmatch=True)),
    st.builds(lambda f, t: p.SearchKey("HEADER", field=f, text=t), st.from_regex(r"[A-Za-z-]{1,10}", fullmatch=True), text),
    st.builds(lambda n: p.SearchKey("SEQ", nums=n), nums),
    st.builds(lambda n: p.SearchKey("UID", nums=n), nums),
)
keys = st.recursive(
    leaf,
    lambda sub: st.one_of(
        st.builds(lambda k: p.SearchKey("NOT", [k]), sub),
        st.builds(lambda a, b: p.SearchKey("OR", [a, b]), sub, sub),
        st.lists(sub, min_size=1, max_size=3).map(lambda ks: p.SearchKey("AND", ks)),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(keys, st.booleans())
def test_search_key_round_trip(key: p.SearchKey, uid: bool) -> None:
    line = b"t " + (b"UID " if uid else b"") + b"SEARCH CHARSET UTF-8 " + fmt(key) + b"\r\n"
    cmd = p.parse_command(line)
    assert cmd == p.Search("t", "UID SEARCH" if uid else "SEARCH", uid, "UTF-8", key)
