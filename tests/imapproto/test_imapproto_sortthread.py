"""SORT and THREAD algorithms of RFC 5256 (and RFC 5957 DISPLAYFROM/DISPLAYTO)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.imapproto.sortthread import (
    ParsedThread,
    SortCriterion,
    SortMessage,
    SortThreadError,
    ThreadNode,
    _message_ids_parse,
    ascii_casemap,
    base_subject,
    format_thread,
    message_ids,
    parse_sort_criteria,
    parse_thread,
    sort_messages,
    thread_messages,
    thread_orderedsubject,
    thread_references,
    thread_response,
)
from mox.message.address import Address
from mox.message.envelope import Envelope

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def msg(
    seq: int,
    subject: str = "",
    mid: str = "",
    refs: str = "",
    irt: str = "",
    sent: int | None = None,
    **kw: object,
) -> SortMessage:
    """A message with internal date T0+seq minutes; ``sent`` sets the Date header to T0+sent minutes."""
    return SortMessage(
        seq=seq,
        uid=seq * 10,
        internal_date=T0 + dt.timedelta(minutes=seq),
        subject=subject,
        date=None if sent is None else T0 + dt.timedelta(minutes=sent),
        message_id=mid,
        references=(refs,) if refs else (),
        in_reply_to=irt,
        **kw,  # type: ignore[arg-type]
    )


def refs_thread(msgs: list[SortMessage], use_uid: bool = False) -> str:
    return format_thread(thread_references(msgs), use_uid)


# --- Base subject (RFC 5256 section 2.1).


@pytest.mark.parametrize(
    ("subject", "base", "is_reply"),
    [
        ("Hello", "Hello", False),
        ("", "", False),
        ("Re: Hello", "Hello", True),
        ("RE: re: Re:Hello", "Hello", True),
        ("Fwd: Hello", "Hello", True),
        ("FW: Hello", "Hello", True),
        ("re : Hello", "Hello", True),  # *WSP before the colon.
        ("Re[2]: Hello", "Hello", True),  # subj-blob before the colon.
        ("Re [2]: Hello", "Hello", True),
        ("[list] Re: Hello", "Hello", True),  # *subj-blob before subj-refwd.
        ("[list] [x] Re: [y] Hello", "Hello", True),
        ("[list] Hello", "Hello", False),  # Step 4: a blob alone is not a reply marker.
        ("[list]", "[list]", False),  # Step 4: not removed if nothing remains.
        ("[a][b]", "[b]", False),  # The last blob is the base subject.
        ("[a] [b]  ", "[b]", False),
        ("Hello (fwd)", "Hello", True),  # Step 2: subj-trailer.
        ("Hello (FWD) (fwd)", "Hello", True),
        ("Hello(fwd)", "Hello", True),
        ("  Hello  \t world  ", "Hello world", False),  # Step 1 and WSP leaders/trailers.
        ("Hello\r\n world", "Hello world", False),  # A continuation.
        ("[fwd: Hello]", "Hello", True),  # Step 6.
        ("[Fwd: Re: Hello]", "Hello", True),
        ("Re: [fwd: [fwd: Hello (fwd)]]", "Hello", True),
        ("[list] [fwd: Hello]", "Hello", True),
        ("[fwd: Hello", "[fwd: Hello", False),  # Neither a subj-blob nor a subj-fwd: no "]".
        ("Re:", "", True),
        ("Re: (fwd)", "", True),
        ("Rex: Hello", "Rex: Hello", False),
        ("Ref: Hello", "Ref: Hello", False),
        ("Fwdd: Hello", "Fwdd: Hello", False),
        # The RFC knows only re/fw/fwd: other languages' prefixes and counters stay
        # (unlike mox.message.thread_subject).
        ("AW: Hello", "AW: Hello", False),
        ("Sv: Hello", "Sv: Hello", False),
        ("Re(2): Hello", "Re(2): Hello", False),
        ("Re: HÉllo Wörld", "HÉllo Wörld", True),  # Case is kept.
        ("Re: [blob with ] bracket", "bracket", True),
    ],
)
def test_base_subject(subject: str, base: str, is_reply: bool) -> None:
    assert base_subject(subject) == (base, is_reply)


_SUBJECT_PARTS = st.sampled_from(
    [
        "re",
        "Re",
        "RE",
        "fwd",
        "Fw",
        "fW",
        ":",
        " ",
        "  ",
        "[",
        "]",
        "(fwd)",
        "[fwd:",
        "[Fwd:",
        "x",
        "a b",
        "\t",
        "\r\n ",
        "[l]",
        "é",
        "\x00",
    ]
)


@settings(max_examples=300)
@given(st.one_of(st.lists(_SUBJECT_PARTS, max_size=12).map("".join), st.text(max_size=40)))
def test_base_subject_properties(subject: str) -> None:
    base, _ = base_subject(subject)
    # Extraction is idempotent and leaves no leading/trailing or repeated white space.
    assert base_subject(base)[0] == base
    assert base == base.strip(" ")
    assert "  " not in base and "\t" not in base and "\n" not in base
    # Prefixing a reply marker never changes the base subject, and marks a reply.
    assert base_subject("Re: " + subject) == (base, True)


def test_ascii_casemap() -> None:
    assert ascii_casemap("Hello wörld") == "HELLO WöRLD"  # Only a-z are mapped.
    assert ascii_casemap("é") != ascii_casemap("É")


# --- Message-IDs.


def test_message_ids() -> None:
    # RFC 5256 section 3: quoting does not make a different id.
    assert message_ids('<"01KF8JCEOCBS0045PS"@xxx.yyy.com>') == message_ids(
        "<01KF8JCEOCBS0045PS@xxx.yyy.com>"
    )
    assert message_ids("<01KF8JCEOCBS0045PS@xxx.yyy.com>") == ["01KF8JCEOCBS0045PS@xxx.yyy.com"]
    # Case is kept: comparisons are case-sensitive.
    assert message_ids("<A@B> <a@b>") == ["A@B", "a@b"]
    # Comments, phrases and quoted strings around ids are skipped, also with "<...>" inside.
    assert message_ids('Your message of "Mon <x@y>" <id@host> (sent by <z@q>)') == ["id@host"]
    # Invalid ids are left out: no "@", empty sides, two "@", unterminated.
    assert message_ids("<noat> <@x> <a@> <a@b@c> <ok@x> <cut@x") == ["ok@x"]
    # A truncated id followed by a complete one.
    assert message_ids("<cut@x <next@y>") == ["next@y"]
    # Folding white space and quoted-pairs inside an id.
    assert message_ids('<a@\r\n b> <"q\\"x"@h>') == ["a@b", 'q"x@h']
    assert message_ids("<[1.2.3.4]@[5.6.7.8]>") == ["[1.2.3.4]@[5.6.7.8]"]


_ID_CHARS = st.text(st.sampled_from("abcXYZ019.-_!#$%+=~"), min_size=1, max_size=8)


@given(st.lists(st.tuples(_ID_CHARS, _ID_CHARS), max_size=5))
def test_message_ids_roundtrip(ids: list[tuple[str, str]]) -> None:
    text = " ".join(f"<{a}@{b}>" for a, b in ids)
    assert message_ids(text) == [f"{a}@{b}" for a, b in ids]


@given(st.text(max_size=60))
def test_message_ids_never_raises(text: str) -> None:
    for mid in message_ids(text):
        assert "@" in mid and ">" not in mid


# --- The record and the sent date (RFC 5256 section 2.2).


def test_sent_date() -> None:
    # The RFC's example: 31 Dec 2000 16:01:33 -0800 is 1 Jan 2001 00:01:33 UTC.
    tz = dt.timezone(dt.timedelta(hours=-8))
    m = SortMessage(1, 1, T0, date=dt.datetime(2000, 12, 31, 16, 1, 33, tzinfo=tz))
    assert m.sent_date == dt.datetime(2001, 1, 1, 0, 1, 33, tzinfo=dt.UTC)
    # No zone: UTC.
    assert SortMessage(1, 1, T0, date=dt.datetime(2001, 1, 1)).sent_date == dt.datetime(
        2001, 1, 1, tzinfo=dt.UTC
    )
    # No usable Date header: the internal date.
    assert SortMessage(1, 1, T0).sent_date == T0


def test_from_envelope() -> None:
    env = Envelope(
        date="Sun, 31 Dec 2000 16:01:33 -0800",
        subject="Re: Hi",
        from_=[Address("Ann", "ann", "a.example"), Address("", "x", "y")],
        to=[Address("", "bob", "b.example")],
        cc=[Address("", "carl", "c.example")],
        in_reply_to="<p@x>",
        message_id="<m@x>",
    )
    m = SortMessage.from_envelope(3, 30, T0, 1234, env, ["<a@x> <p@x>"])
    assert (m.seq, m.uid, m.size, m.base, m.is_reply) == (3, 30, 1234, "Hi", True)
    assert (m.from_mailbox, m.from_host, m.from_name) == ("ann", "a.example", "Ann")
    assert (m.to_mailbox, m.to_host, m.to_name, m.cc_mailbox) == ("bob", "b.example", "", "carl")
    assert m.sent_date == dt.datetime(2001, 1, 1, 0, 1, 33, tzinfo=dt.UTC)
    assert (m.message_id, tuple(m.references), m.in_reply_to) == ("<m@x>", ("<a@x> <p@x>",), "<p@x>")
    # An unparseable Date: the internal date.
    bad = SortMessage.from_envelope(1, 1, T0, 0, Envelope(date="yesterday"))
    assert bad.sent_date == T0 and bad.from_mailbox == "" and bad.subject == ""


# --- SORT criteria.


def test_parse_sort_criteria() -> None:
    assert parse_sort_criteria("(REVERSE date subject)") == [
        SortCriterion(True, "DATE"),
        SortCriterion(False, "SUBJECT"),
    ]
    assert parse_sort_criteria("ARRIVAL") == [(False, "ARRIVAL")]
    assert parse_sort_criteria(["reverse", "DisplayFrom", "DISPLAYTO", "CC", "TO", "FROM", "SIZE"]) == [
        (True, "DISPLAYFROM"),
        (False, "DISPLAYTO"),
        (False, "CC"),
        (False, "TO"),
        (False, "FROM"),
        (False, "SIZE"),
    ]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("()", "empty"),
        ("", "empty"),
        ("(DATE REVERSE)", "REVERSE must be followed"),
        ("(REVERSE REVERSE DATE)", "not REVERSE"),
        ("(DATE BOGUS)", "unknown sort key 'BOGUS'"),
        ("(DATE", "unbalanced"),
        ("(DATE  SIZE)", "single spaces"),
    ],
)
def test_parse_sort_criteria_errors(spec: str, error: str) -> None:
    with pytest.raises(SortThreadError, match=error):
        parse_sort_criteria(spec)


def seqs(msgs: list[SortMessage]) -> list[int]:
    return [m.seq for m in msgs]


def test_sort_keys() -> None:
    ms = [
        msg(1, "Re: beta", size=300, sent=50, from_mailbox="zed", to_mailbox="Bob", cc_mailbox=""),
        msg(2, "alpha", size=100, sent=10, from_mailbox="Amy", to_mailbox="", cc_mailbox="x"),
        msg(3, "[l] Gamma", size=200, sent=None, from_mailbox="amy", to_mailbox="carl", cc_mailbox="a"),
    ]
    assert seqs(sort_messages(parse_sort_criteria("ARRIVAL"), ms[::-1])) == [1, 2, 3]
    assert seqs(sort_messages(parse_sort_criteria("DATE"), ms)) == [3, 2, 1]  # 3 has no Date: minute 3.
    assert seqs(sort_messages(parse_sort_criteria("SIZE"), ms)) == [2, 3, 1]
    assert seqs(sort_messages(parse_sort_criteria("SUBJECT"), ms)) == [2, 1, 3]  # alpha, beta, Gamma.
    assert seqs(sort_messages(parse_sort_criteria("FROM"), ms)) == [2, 3, 1]  # Amy = amy: by sequence.
    assert seqs(sort_messages(parse_sort_criteria("TO"), ms)) == [2, 1, 3]  # Empty first.
    assert seqs(sort_messages(parse_sort_criteria("CC"), ms)) == [1, 3, 2]
    assert seqs(sort_messages(parse_sort_criteria("REVERSE SUBJECT"), ms)) == [3, 1, 2]
    assert seqs(sort_messages(parse_sort_criteria("FROM REVERSE SIZE"), ms)) == [3, 2, 1]


def test_sort_reverse_keeps_sequence_tiebreak() -> None:
    # RFC 5256 section 3: REVERSE does not reverse the implicit sequence number order.
    ms = [msg(i, size=10 if i % 2 else 20) for i in range(1, 7)]
    assert seqs(sort_messages(parse_sort_criteria("REVERSE SIZE"), ms)) == [2, 4, 6, 1, 3, 5]
    assert seqs(sort_messages(parse_sort_criteria("SIZE"), ms)) == [1, 3, 5, 2, 4, 6]


def test_sort_display() -> None:
    # RFC 5957 section 3: display name; else mailbox@host; else mailbox; else "".
    ms = [
        msg(1, from_name="Zoe", from_mailbox="aaa", from_host="h"),
        msg(2, from_mailbox="bob", from_host="h"),
        msg(3, from_mailbox="bob"),  # "bob" < "bob@h".
        msg(4),
        msg(5, to_name="alice", from_name="Carl"),
    ]
    assert seqs(sort_messages(parse_sort_criteria("DISPLAYFROM"), ms)) == [4, 3, 2, 5, 1]
    assert seqs(sort_messages(parse_sort_criteria("DISPLAYTO"), ms)) == [1, 2, 3, 4, 5]
    # FROM is on the mailbox only.
    assert seqs(sort_messages(parse_sort_criteria("FROM"), ms)) == [4, 5, 1, 2, 3]


def test_sort_errors() -> None:
    with pytest.raises(SortThreadError):
        sort_messages([], [msg(1)])
    with pytest.raises(SortThreadError):
        sort_messages([(False, "BOGUS")], [msg(1)])


_NAMES = st.sampled_from(["", "a", "A", "b", "B", "é", "É", "ab"])


@st.composite
def messages(draw: st.DrawFn, max_size: int = 12) -> list[SortMessage]:
    n = draw(st.integers(0, max_size))
    out = []
    for seq in range(1, n + 1):
        out.append(
            msg(
                seq,
                draw(st.sampled_from(["", "x", "Re: x", "X (fwd)", "[l] y", "Y", "re: Y"])),
                sent=draw(st.one_of(st.none(), st.integers(0, 5))),
                size=draw(st.integers(0, 3)),
                from_mailbox=draw(_NAMES),
                from_name=draw(_NAMES),
                to_mailbox=draw(_NAMES),
                cc_mailbox=draw(_NAMES),
            )
        )
    return draw(st.permutations(out))


_KEY_VALUE = {
    "ARRIVAL": lambda m: m.arrival,
    "DATE": lambda m: m.sent,
    "SIZE": lambda m: m.size,
    "SUBJECT": lambda m: ascii_casemap(m.base),
    "FROM": lambda m: ascii_casemap(m.from_mailbox),
    "TO": lambda m: ascii_casemap(m.to_mailbox),
    "CC": lambda m: ascii_casemap(m.cc_mailbox),
    "DISPLAYFROM": lambda m: ascii_casemap(
        m.from_name or (m.from_mailbox + "@" + m.from_host if m.from_host else m.from_mailbox)
    ),
    "DISPLAYTO": lambda m: ascii_casemap(
        m.to_name or (m.to_mailbox + "@" + m.to_host if m.to_host else m.to_mailbox)
    ),
}


def _cmp(a: SortMessage, b: SortMessage, criteria: list[SortCriterion]) -> int:
    for rev, key in criteria:
        va, vb = _KEY_VALUE[key](a), _KEY_VALUE[key](b)
        if va != vb:
            c = -1 if va < vb else 1
            return -c if rev else c
    return -1 if a.seq < b.seq else (1 if a.seq > b.seq else 0)


@settings(max_examples=100)
@given(
    messages(),
    st.lists(st.tuples(st.booleans(), st.sampled_from(sorted(_KEY_VALUE))), min_size=1, max_size=3),
)
def test_sort_properties(ms: list[SortMessage], crit: list[tuple[bool, str]]) -> None:
    criteria = [SortCriterion(r, k) for r, k in crit]
    out = sort_messages(criteria, ms)
    # A permutation, in comparator order with the sequence number as last key.
    assert sorted(seqs(out)) == sorted(seqs(ms))
    for a, b in itertools.pairwise(out):
        assert _cmp(a, b, criteria) < 0


# --- The THREAD response.


def test_format_rfc_examples() -> None:
    # RFC 5256 section 4: "(2)(3 6 (4 23)(44 7 96))".
    def node(seq: int, *kids: ThreadNode) -> ThreadNode:
        return ThreadNode(msg(seq), list(kids))

    roots = [node(2), node(3, node(6, node(4, node(23)), node(44, node(7, node(96)))))]
    assert format_thread(roots) == "(2)(3 6 (4 23)(44 7 96))"
    assert format_thread(roots, use_uid=True) == "(20)(30 60 (40 230)(440 70 960))"
    # A dummy parent of 3 and 5: "((3)(5))".
    assert format_thread([ThreadNode(None, [node(3), node(5)])]) == "((3)(5))"
    assert format_thread([]) == ""
    # Dummies without messages are left out; a dummy with one child is that child.
    assert (
        format_thread([ThreadNode(None, []), ThreadNode(None, [node(1, ThreadNode(None, [node(2)]))])])
        == "(1 2)"
    )


RFC_THREAD_RESPONSES = [
    # The examples of RFC 5256 section 4.
    "(166)(167)(168)(169)(172)(170)(171)(173)(174 (175)(176)(178)(181)(180))(179)(177 (183)(182)(188)(184)"
    "(185)(186)(187)(189))(190)(191)(192)(193)(194 195)(196 (197)(198))(199)(200 202)(201)(203)(204)(205)(206 207)(208)",
    "(166)(167)(168)(169)(172)((170)(179))(171)(173)((174)(175)(176)(178)(181)(180))((177)(183)(182)(188)(184)"
    "(185)(186)(187)(189))(190)(191)(192)(193)((194)(195 196))(197 198)(199)(200 202)(201)(203)(204)(205 206 207)(208)",
    "(2)(3 6 (4 23)(44 7 96))",
    "((3)(5))",
    "",
]


def _to_nodes(ps: list[ParsedThread]) -> list[ThreadNode]:
    """ThreadNodes for a parsed response (iterative: responses may be deep)."""

    def node(p: ParsedThread) -> ThreadNode:
        return ThreadNode(None if p.num is None else msg(p.num))

    roots = [node(p) for p in ps]
    stack = list(zip(ps, roots, strict=True))
    while stack:
        p, n = stack.pop()
        n.children = [node(c) for c in p.children]
        stack.extend(zip(p.children, n.children, strict=True))
    return roots


@pytest.mark.parametrize("text", RFC_THREAD_RESPONSES)
def test_parse_format_rfc_responses(text: str) -> None:
    assert format_thread(_to_nodes(parse_thread(text))) == text


@pytest.mark.parametrize(
    "text",
    [
        "(1 (2))",
        "()",
        "(1  2)",
        "(0)",
        "(01)",
        "1",
        "(1)(",
        "(1 )",
        "((1)(2) 3)",
        "(1)x",
        " (1)",
        "(1) (2)",
        "(1(2)(3))",
        "((1))",
        "(1 (2)(3) 4)",
    ],
)
def test_parse_thread_errors(text: str) -> None:
    with pytest.raises(SortThreadError):
        parse_thread(text)


def test_format_deep() -> None:
    # No recursion limits: a chain of 5000 and a comb of 3000 branches.
    chain = ThreadNode(msg(1))
    n = chain
    for i in range(2, 5001):
        k = ThreadNode(msg(i))
        n.children.append(k)
        n = k
    text = format_thread([chain])
    assert text == "(" + " ".join(str(i) for i in range(1, 5001)) + ")"
    comb = ThreadNode(msg(1))
    n = comb
    for i in range(2, 6002, 2):
        leaf, nxt = ThreadNode(msg(i)), ThreadNode(msg(i + 1))
        n.children = [leaf, nxt]
        n = nxt
    text = format_thread([comb])
    assert format_thread(_to_nodes(parse_thread(text))) == text


def _parents(nodes: list[ThreadNode]) -> dict[int, int | None]:
    """Sequence number -> nearest message ancestor (dummies are transparent)."""
    out: dict[int, int | None] = {}
    stack: list[tuple[ThreadNode, int | None]] = [(n, None) for n in nodes]
    while stack:
        n, parent = stack.pop()
        if n.message is not None:
            assert n.message.seq not in out
            out[n.message.seq] = parent
            parent = n.message.seq
        stack.extend((k, parent) for k in n.children)
    return out


def _siblings(nodes: list[ThreadNode]) -> set[frozenset[int]]:
    """Groups of messages that share a dummy parent at the top."""
    return {frozenset(m.seq for m in n.messages()) for n in nodes}


@st.composite
def trees(draw: st.DrawFn) -> list[ThreadNode]:
    count = draw(st.integers(0, 25))
    nums = iter(range(1, count + 1))
    nodes: list[ThreadNode] = []
    for num in nums:
        dummy = draw(st.integers(0, 5)) == 0
        nodes.append(ThreadNode(None if dummy else msg(num)))
    roots: list[ThreadNode] = []
    for i, n in enumerate(nodes):
        parent = draw(st.integers(-1, i - 1))
        (roots if parent < 0 else nodes[parent].children).append(n)
    return roots


@settings(max_examples=150)
@given(trees(), st.booleans())
def test_format_parse_roundtrip(roots: list[ThreadNode], use_uid: bool) -> None:
    text = format_thread(roots, use_uid)
    parsed = parse_thread(text)
    back = _to_nodes(parsed)
    # Writing again gives the same text; parent relations are kept (dummies aside).
    assert format_thread(back) == text
    if not use_uid:
        assert _parents(back) == _parents(roots)


# --- ORDEREDSUBJECT.


def test_orderedsubject() -> None:
    ms = [
        msg(1, "Hello", sent=10),
        msg(2, "re: hello", sent=5),
        msg(3, "Other", sent=7),
        msg(4, "[l] HELLO (fwd)", sent=20),
        msg(5, "Re: other", sent=8),
        msg(6, "", sent=1),
        msg(7, "", sent=2),
        msg(8, "Third", sent=30),
    ]
    # Threads by base subject, each started by its earliest message, the others its
    # children (no grandchildren); threads ordered by their first message's date.
    assert format_thread(thread_orderedsubject(ms)) == "(6 7)(2 (1)(4))(3 5)(8)"
    assert format_thread(thread_messages("orderedsubject", ms)) == "(6 7)(2 (1)(4))(3 5)(8)"


def test_thread_messages_unknown() -> None:
    with pytest.raises(SortThreadError, match="unknown threading algorithm"):
        thread_messages("X-FANCY", [])


# --- REFERENCES, step by step.


def test_references_rfc_example_shape() -> None:
    # Messages whose References give the tree of the RFC's "(2)(3 6 (4 23)(44 7 96))".
    ms = [
        msg(2, "two", "<2@x>", sent=1),
        msg(3, "three", "<3@x>", sent=2),
        msg(6, "re: three", "<6@x>", "<3@x>", sent=3),
        msg(4, "re: three", "<4@x>", "<3@x> <6@x>", sent=4),
        msg(23, "re: three", "<23@x>", "<3@x> <6@x> <4@x>", sent=5),
        msg(44, "re: three", "<44@x>", "<6@x>", sent=6),
        msg(7, "re: three", "<7@x>", "<44@x>", sent=7),
        msg(96, "re: three", "<96@x>", "<7@x>", sent=8),
    ]
    assert refs_thread(ms) == "(2)(3 6 (4 23)(44 7 96))"


def test_references_dummy_parent_kept_at_root() -> None:
    # Two replies to a message that is not there: a dummy parent, "((3)(5))".
    ms = [msg(3, "Re: a", "<3@x>", "<gone@x>"), msg(5, "Re: b", "<5@x>", "<gone@x>")]
    assert refs_thread(ms) == "((3)(5))"


def test_references_dummy_one_child_promoted() -> None:
    # Step 3: a dummy at the root with a single child is replaced by it.
    assert refs_thread([msg(1, "a", "<1@x>", "<gone@x>")]) == "(1)"
    # Below the root, a dummy's children are spliced into its place.
    ms = [
        msg(1, "a", "<1@x>"),
        msg(2, "b", "<2@x>", "<1@x> <gone@x>"),
        msg(3, "c", "<3@x>", "<1@x> <gone@x>"),
        msg(4, "d", "<4@x>", "<1@x>"),
    ]
    assert refs_thread(ms) == "(1 (2)(3)(4))"
    # A chain of missing messages.
    assert refs_thread([msg(1, "a", "<1@x>"), msg(2, "b", "<2@x>", "<1@x> <g1@x> <g2@x> <g3@x>")]) == "(1 2)"


def test_references_missing_parents_in_between() -> None:
    # The parent's parent is known only from the References of a later message.
    ms = [
        msg(1, "a", "<1@x>"),
        msg(2, "b", "<2@x>", "<p@x>"),
        msg(3, "c", "<3@x>", "<1@x> <p@x> <2@x>"),
    ]
    assert refs_thread(ms) == "(1 2 3)"


def test_references_loops() -> None:
    # Two messages referring to each other: the later link would make a loop.
    assert refs_thread([msg(1, "a", "<a@x>", "<b@x>"), msg(2, "b", "<b@x>", "<a@x>")]) == "(2 1)"
    # A loop inside References, and a message referring to itself.
    ms = [
        msg(1, "a", "<x@x>"),
        msg(2, "b", "<y@x>", "<x@x> <y@x> <x@x>"),
        msg(3, "c", "<z@x>", "<z@x>"),
    ]
    assert refs_thread(ms) == "(1 2)(3)"
    # A longer cycle.
    ms = [msg(1, "a", "<a@x>", "<c@x>"), msg(2, "b", "<b@x>", "<a@x>"), msg(3, "c", "<c@x>", "<b@x>")]
    out = thread_references(ms)
    assert sorted(_parents(out).items(), key=lambda kv: kv[0]) == [(1, 3), (2, 1), (3, None)]


def test_references_duplicate_message_ids() -> None:
    # The first message keeps the id; replies attach to it; the duplicate stands alone.
    ms = [
        msg(1, "a", "<d@x>"),
        msg(2, "b", "<d@x>"),
        msg(3, "c", "<r@x>", "<d@x>"),
    ]
    assert refs_thread(ms) == "(1 3)(2)"
    # A dummy made for a reference is taken by the first message with that id only.
    ms = [msg(1, "r", "<r@x>", "<d@x>"), msg(2, "a", "<d@x>"), msg(3, "b", "<d@x>")]
    assert refs_thread(ms) == "(2 1)(3)"


def test_references_without_message_id() -> None:
    # Threaded by their own references; nobody can refer to them.
    ms = [
        msg(1, "a", "<1@x>"),
        msg(2, "b", "", "<1@x>"),
        msg(3, "c", "<invalid>", "<1@x>"),
        msg(4, "d", "", "<>"),
    ]
    assert refs_thread(ms) == "(1 (2)(3))(4)"


def test_references_truncated_keeps_existing_parent() -> None:
    # Step 1.A: an existing parent/child link is not changed by later References.
    ms = [
        msg(1, "a", "<1@x>"),
        msg(2, "b", "<2@x>"),
        msg(3, "c", "<3@x>", "<1@x> <3b@x>"),
        msg(4, "d", "<4@x>", "<2@x> <3b@x>"),  # Would make 3b a child of 2: it has a parent.
    ]
    assert refs_thread(ms) == "(1 (3)(4))(2)"


def test_references_own_references_override() -> None:
    # Step 1.B: a message's own last reference is its parent, whatever others said.
    ms = [
        msg(1, "a", "<1@x>"),
        msg(2, "b", "<2@x>"),
        msg(3, "c", "<3@x>", "<1@x> <4@x>"),  # Says 4 is a child of 1...
        msg(4, "d", "<4@x>", "<2@x>"),  # ...but 4 is a reply to 2.
    ]
    assert refs_thread(ms) == "(1)(2 4 3)"
    # No references at all: no parent, even when others placed it.
    ms = [msg(1, "a", "<1@x>"), msg(2, "b", "<2@x>", "<1@x> <3@x>"), msg(3, "c", "<3@x>")]
    assert refs_thread(ms) == "(1)(3 2)"


def test_references_in_reply_to() -> None:
    # Without References: the first valid id of In-Reply-To; with References: those.
    ms = [
        msg(1, "a", "<1@x>"),
        msg(2, "b", "<2@x>"),
        msg(3, "c", "<3@x>", irt='"Ann <ann@x>" message (of <c@x>) <2@x> <1@x>'),
        msg(4, "d", "<4@x>", "<1@x>", irt="<2@x>"),
        msg(5, "e", "<5@x>", "junk", irt="<2@x>"),  # References without ids.
    ]
    assert refs_thread(ms) == "(1 4)(2 (3)(5))"


def test_references_subject_merge() -> None:
    # Step 5: a reply without references joins the original; same subjects that are both
    # originals get a dummy parent; empty subjects are not merged.
    ms = [
        msg(1, "Hello", "<1@x>", sent=1),
        msg(2, "Re: hello", "<2@x>", sent=2),
        msg(3, "Other", "<3@x>", sent=3),
        msg(4, "[list] other", "<4@x>", sent=4),
        msg(5, "", "<5@x>", sent=5),
        msg(6, "", "<6@x>", sent=6),
        msg(7, "Re: HELLO (fwd)", "<7@x>", sent=7),
    ]
    assert refs_thread(ms) == "(1 (2)(7))((3)(4))(5)(6)"


def test_references_subject_merge_reply_first() -> None:
    # The table prefers the original over an earlier reply: the reply becomes its child.
    ms = [msg(1, "Re: topic", "<1@x>", sent=1), msg(2, "topic", "<2@x>", sent=2)]
    assert refs_thread(ms) == "(2 1)"
    # Two replies: a dummy.
    ms = [msg(1, "Re: topic", "<1@x>", sent=1), msg(2, "Re: topic", "<2@x>", sent=2)]
    assert refs_thread(ms) == "((1)(2))"


def test_references_subject_merge_with_dummies() -> None:
    # A dummy thread (two replies to a lost message) takes a message of the same subject
    # as a child; two such dummy threads become one.
    ms = [
        msg(1, "Re: lost", "<1@x>", "<gone@x>", sent=1),
        msg(2, "Re: lost", "<2@x>", "<gone@x>", sent=2),
        msg(3, "lost", "<3@x>", sent=3),
        msg(4, "Re: lost", "<4@x>", "<gone2@x>", sent=4),
        msg(5, "Re: lost", "<5@x>", "<gone2@x>", sent=5),
    ]
    assert refs_thread(ms) == "((1)(2)(3)(4)(5))"
    # The subject of a dummy thread is its first child's (by date).
    ms = [
        msg(1, "Re: b", "<1@x>", "<gone@x>", sent=9),
        msg(2, "Re: a", "<2@x>", "<gone@x>", sent=1),
        msg(3, "a", "<3@x>", sent=5),
    ]
    assert refs_thread(ms) == "((2)(3)(1))"


def test_references_sibling_order() -> None:
    # Step 6: siblings by sent date, equal dates by sequence number; no Date: internal date.
    ms = [
        msg(1, "a", "<1@x>", sent=0),
        msg(2, "b", "<2@x>", "<1@x>", sent=50),
        msg(3, "c", "<3@x>", "<1@x>", sent=20),
        msg(4, "d", "<4@x>", "<1@x>", sent=20),
        msg(5, "e", "<5@x>", "<1@x>"),  # Internal date: minute 5.
    ]
    assert refs_thread(ms) == "(1 (5)(3)(4)(2))"
    # Threads ordered by their first message; UIDs for UID THREAD.
    ms = [msg(1, "late", "<1@x>", sent=100), msg(2, "early", "<2@x>", sent=1)]
    assert refs_thread(ms, use_uid=True) == "(20)(10)"


def test_references_input_order_irrelevant() -> None:
    ms = [msg(i, f"s{i % 3}", f"<{i}@x>", f"<{i // 2}@x>" if i > 1 else "", sent=i % 4) for i in range(1, 30)]
    assert refs_thread(ms) == refs_thread(ms[::-1])


# --- Properties of both algorithms.

_IDS = st.sampled_from(["", "<a@x>", "<b@x>", "<c@x>", "<d@x>", "<bad>"])


@st.composite
def thread_inputs(draw: st.DrawFn) -> list[SortMessage]:
    n = draw(st.integers(0, 15))
    out = []
    for seq in range(1, n + 1):
        refs = " ".join(draw(st.lists(_IDS, max_size=4)))
        out.append(
            msg(
                seq,
                draw(st.sampled_from(["", "x", "Re: x", "x (fwd)", "y", "[fwd: y]", "Re: y"])),
                draw(_IDS),
                refs,
                draw(_IDS),
                sent=draw(st.one_of(st.none(), st.integers(0, 4))),
            )
        )
    return out


@settings(max_examples=150)
@given(thread_inputs(), st.sampled_from(["REFERENCES", "ORDEREDSUBJECT"]))
def test_thread_properties(ms: list[SortMessage], alg: str) -> None:
    roots = thread_messages(alg, ms)
    # Every message appears exactly once.
    found = [m.seq for r in roots for m in r.messages()]
    assert sorted(found) == [m.seq for m in ms]
    # Dummies only at the top, with at least two children.
    for r in roots:
        if r.message is None:
            assert len(r.children) >= 2
        stack = list(r.children)
        while stack:
            n = stack.pop()
            if alg == "REFERENCES":
                assert n.message is not None
            stack.extend(n.children)
    # Siblings are in sent date order.
    stack2 = [ThreadNode(None, roots)]
    while stack2:
        n = stack2.pop()
        keys = []
        for k in n.children:
            f = k
            while f.message is None:
                f = f.children[0]
            assert f.message is not None
            keys.append((f.message.sent, f.message.seq))
        assert keys == sorted(keys)
        stack2.extend(n.children)
    # The response parses back to the same parent relations and top-level groups.
    text = format_thread(roots)
    back = _to_nodes(parse_thread(text))
    assert _parents(back) == _parents(roots)
    assert _siblings(back) == _siblings(roots)
    # The input order does not matter.
    assert format_thread(thread_messages(alg, ms[::-1])) == text


@given(
    st.lists(
        st.one_of(st.text(st.sampled_from('<>@"() \\\t\r\nab.[]'), max_size=6), _ID_CHARS), max_size=8
    ).map("".join)
)
def test_message_ids_fast_path_agrees(text: str) -> None:
    assert message_ids(text) == _message_ids_parse(text)
    assert message_ids(" " + text) == _message_ids_parse(" " + text)


def test_thread_response() -> None:
    ms = [msg(1, "a", "<1@x>"), msg(2, "re: a", "<2@x>", "<1@x>"), msg(3, "b", "<3@x>")]
    assert thread_response(thread_references(ms)) == b"* THREAD (1 2)(3)\r\n"
    assert thread_response(thread_references(ms), use_uid=True) == b"* THREAD (10 20)(30)\r\n"
    # RFC 5256 section 5: thread-data = "THREAD" [SP 1*thread-list].
    assert thread_response([]) == b"* THREAD\r\n"


def test_references_subject_merge_three_originals() -> None:
    # The dummy made for the first two originals takes the third (step 5.C: the table's
    # message is a dummy); a later reply joins too.
    ms = [
        msg(1, "x", "<1@x>", sent=1),
        msg(2, "X", "<2@x>", sent=2),
        msg(3, "[l] x", "<3@x>", sent=3),
        msg(4, "Re: x", "<4@x>", sent=4),
    ]
    assert refs_thread(ms) == "((1)(2)(3)(4))"


def test_references_header_string() -> None:
    # A single References value given as a string is one field, not a sequence of characters.
    m = SortMessage(2, 2, T0, message_id="<2@x>", references="<1@x>")
    assert tuple(m.references) == ("<1@x>",)
    assert refs_thread([msg(1, "a", "<1@x>"), m]) == "(1 2)"
