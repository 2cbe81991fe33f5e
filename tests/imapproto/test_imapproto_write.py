"""Response writing, checked by parsing the output back with a small response reader."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from mox.imapproto import utf7, write
from mox.message.address import Address
from mox.message.envelope import Envelope
from mox.message.part import Part

Value = bytes | None | list["Value"]


def read_value(data: bytes, i: int) -> tuple[Value, int]:
    """One value of response syntax: atom/number (bytes), string (bytes), NIL (None), list."""
    c = data[i : i + 1]
    if c == b"(":
        out: list[Value] = []
        i += 1
        while data[i : i + 1] != b")":
            if out and data[i : i + 1] == b" ":
                i += 1  # Bodies of a multipart and addresses follow each other without space.
            v, i = read_value(data, i)
            out.append(v)
        return out, i + 1
    if c == b'"':
        i += 1
        s = bytearray()
        while data[i : i + 1] != b'"':
            if data[i : i + 1] == b"\\":
                i += 1
            assert data[i] not in (13, 10)
            s.append(data[i])
            i += 1
        return bytes(s), i + 1
    if c == b"{" or data[i : i + 2] == b"~{":
        j = data.index(b"}\r\n", i)
        n = int(data[i + (2 if c == b"~" else 1) : j])
        return data[j + 3 : j + 3 + n], j + 3 + n
    j = i
    while j < len(data) and data[j : j + 1] not in (b" ", b")", b"\r"):
        j += 1
    atom = data[i:j]
    assert atom
    return (None if atom == b"NIL" else atom), j


def read_all(data: bytes) -> Value:
    v, i = read_value(data, 0)
    assert i == len(data)
    return v


safe_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(st.binary(max_size=2000), st.booleans())
def test_string_round_trip(data: bytes, utf8: bool) -> None:
    assert read_all(write.string(data, utf8)) == data
    enc = write.string(data, utf8)
    if not utf8:
        assert enc.isascii() or enc.startswith(b"{")


@given(safe_text, st.booleans())
def test_astring_and_mailbox_round_trip(name: str, utf8: bool) -> None:
    v = read_all(write.astring(name, utf8))
    assert v == name.encode() or (name == "" and v == b"")
    m = read_all(write.mailbox(name, utf8))
    assert isinstance(m, bytes)
    assert (m.decode() if utf8 else utf7.decode(m.decode())) == name


def test_nil_is_never_an_atom() -> None:
    assert write.astring("NIL") == b'"NIL"'
    assert write.nstring(None) == b"NIL"


def _addr(v: Value) -> Address:
    assert isinstance(v, list) and len(v) == 4 and v[1] is None
    name, _, user, host = v
    assert isinstance(user, bytes) and isinstance(host, bytes)
    return Address(name.decode() if isinstance(name, bytes) else "", user.decode(), host.decode())


addr_st = st.builds(
    Address,
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=10),
    st.from_regex(r"[a-z0-9.\"\\]{1,8}", fullmatch=True),
    st.from_regex(r"[a-z]{1,5}\.[a-z]{2,3}", fullmatch=True),
)


@given(
    st.text(max_size=20, alphabet=st.characters(min_codepoint=32, max_codepoint=126)),
    st.lists(addr_st, max_size=3),
    st.lists(addr_st, max_size=2),
    st.text(max_size=20, alphabet=st.characters(min_codepoint=32, max_codepoint=0x7FF)),
)
def test_envelope_round_trip_utf8(date: str, frm: list[Address], to: list[Address], subject: str) -> None:
    env = Envelope(date=date, subject=subject, from_=frm, to=to, message_id="<a@b>")
    v = read_all(write.envelope(env, utf8=True))
    assert isinstance(v, list) and len(v) == 10
    assert v[0] == (date.encode() if date else None)
    assert v[1] == (subject.encode() if subject else None)
    got_from = [_addr(a) for a in v[2]] if isinstance(v[2], list) else []
    assert got_from == frm
    # Sender and reply-to default to from.
    assert v[3] == v[2] and v[4] == v[2]
    assert ([_addr(a) for a in v[5]] if isinstance(v[5], list) else []) == to
    assert v[6] is None and v[7] is None and v[8] is None and v[9] == b"<a@b>"


def test_envelope_non_utf8_client_gets_encoded_words() -> None:
    env = Envelope(subject="Grüße", from_=[Address("Jürgen", "j", "example.org")])
    out = write.envelope(env)
    assert out.isascii()
    assert b"=?utf-8?b?" in out


def test_body_structure_single_and_multipart() -> None:
    text = Part(body_offset=10, end_offset=30, body_lines=2, params={"charset": "utf-8"})
    att = Part(
        body_offset=40, end_offset=50, media_type="APPLICATION", media_subtype="PDF",
        content_transfer_encoding="base64", disposition="attachment", disposition_params={"filename": "a b.pdf"},
    )
    inner = Part(body_offset=0, end_offset=5, body_lines=1, envelope=Envelope(subject="in"))
    msg = Part(body_offset=60, end_offset=65, media_type="MESSAGE", media_subtype="RFC822", body_lines=1, message=inner)
    root = Part(media_type="MULTIPART", media_subtype="MIXED", params={"boundary": "x"}, parts=[text, att, msg])
    v = read_all(write.body_structure(root, extensible=True))
    assert isinstance(v, list)
    t, a, m, sub, params, dsp, lang, loc = v
    assert t == [b"TEXT", b"PLAIN", [b"CHARSET", b"utf-8"], None, None, b"7BIT", b"20", b"2", None, None, None, None]
    assert a == [b"APPLICATION", b"PDF", None, None, None, b"BASE64", b"10", None,
                 [b"ATTACHMENT", [b"FILENAME", b"a b.pdf"]], None, None]
    assert isinstance(m, list) and m[:7] == [b"MESSAGE", b"RFC822", None, None, None, b"7BIT", b"5"]
    assert isinstance(m[7], list) and m[7][1] == b"in"
    assert m[8] == [b"TEXT", b"PLAIN", None, None, None, b"7BIT", b"5", b"1", None, None, None, None]
    assert m[9] == b"1"
    assert (sub, params, dsp, lang, loc) == (b"MIXED", [b"BOUNDARY", b"x"], None, None, None)
    # BODY has no extension data.
    v = read_all(write.body_structure(root, extensible=False))
    assert isinstance(v, list) and len(v) == 4 and v[3] == b"MIXED"
    assert v[0] == [b"TEXT", b"PLAIN", [b"CHARSET", b"utf-8"], None, None, b"7BIT", b"20", b"2"]


@given(st.binary(max_size=300), st.integers(1, 2**32 - 1))
def test_fetch_response_streams_literals(body: bytes, uid: int) -> None:
    r = write.FetchResponse(7)
    r.add(b"UID", b"%d" % uid)
    r.add(b"FLAGS", write.flag_list(["\\Seen", "$Junk"]))
    r.add_literal(b"BODY[]", memoryview(body))
    r.add_literal(b"BINARY[1]", body, binary=True)
    chunks = r.chunks()
    assert any(isinstance(c, memoryview) for c in chunks)
    out = b"".join(bytes(c) for c in chunks)
    assert out.startswith(b"* 7 FETCH ") and out.endswith(b"\r\n")
    v = read_all(out[len(b"* 7 FETCH ") : -2])
    assert v == [b"UID", b"%d" % uid, b"FLAGS", [b"\\Seen", b"$Junk"], b"BODY[]", body, b"BINARY[1]", body]


def test_tagged_untagged_and_codes() -> None:
    assert write.tagged("a1", "OK", "done", "APPENDUID 1 5") == b"a1 OK [APPENDUID 1 5] done\r\n"
    assert write.tagged("a1", "NO", "too big", "TOOBIG") == b"a1 NO [TOOBIG] too big\r\n"
    assert write.untagged("OK [UIDNEXT 4] next") == b"* OK [UIDNEXT 4] next\r\n"
    assert write.continuation("") == b"+ \r\n"
    assert write.copyuid(9, [3, 4, 5, 9], [10, 11, 12, 13]) == "COPYUID 9 3:5,9 10:13"
    assert write.copyuid(9, [5, 3], [10, 11]) == "COPYUID 9 5,3 10:11"


def test_search_esearch_list_status() -> None:
    assert write.search([]) == b"* SEARCH\r\n"
    assert write.search([1, 4], modseq=9) == b"* SEARCH 1 4 (MODSEQ 9)\r\n"
    assert write.esearch("a", True, min=1, max=9, all=[1, 2, 3, 9], count=4) == (
        b'* ESEARCH (TAG "a") UID MIN 1 MAX 9 ALL 1:3,9 COUNT 4\r\n'
    )
    assert write.esearch("a", False, mailbox_name="x", uidvalidity=3) == (
        b'* ESEARCH (TAG "a" MAILBOX x UIDVALIDITY 3)\r\n'
    )
    assert write.list_response(["\\HasNoChildren"], "/", "Entwürfe") == (
        b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe\r\n'
    )
    assert write.list_response([], "/", "a b", extended=[b'"CHILDINFO" ("SUBSCRIBED")']) == (
        b'* LIST () "/" "a b" ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    )
    assert write.status_response("INBOX", [("MESSAGES", 2), ("UIDNEXT", 7)]) == (
        b"* STATUS INBOX (MESSAGES 2 UIDNEXT 7)\r\n"
    )


def test_date_time() -> None:
    tz = datetime.timezone(-datetime.timedelta(hours=1, minutes=30))
    assert write.date_time(datetime.datetime(2021, 1, 5, 1, 2, 3, tzinfo=tz)) == b'"05-Jan-2021 01:02:03 -0130"'


def test_invalid_utf8_is_sent_as_literal_even_in_utf8_mode() -> None:
    assert write.string(b"\xff", utf8=True) == b"{1}\r\n\xff"
    assert write.string("ü", utf8=True) == '"ü"'.encode()
    assert write.string("ü") == b"{2}\r\n\xc3\xbc"


def test_vanished() -> None:
    assert write.vanished([3, 1, 2, 7], earlier=True) == b"* VANISHED (EARLIER) 1:3,7\r\n"


def test_sort_thread_and_other_responses() -> None:
    T = write.ThreadNode
    assert write.sort([3, 1], modseq=4) == b"* SORT 3 1 (MODSEQ 4)\r\n"
    assert write.sort([]) == b"* SORT\r\n"
    # RFC 5256 section 4 example shapes.
    roots = [T(2), T(3, [T(6, [T(4, [T(23)]), T(44, [T(7, [T(96)])])])])]
    assert write.thread(roots) == b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"
    assert write.thread([]) == b"* THREAD\r\n"
    assert write.id_response([("name", "mox")]) == b'* ID ("name" "mox")\r\n'
    assert write.namespace("") == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    assert write.quota("", [("STORAGE", 10, 512)]) == b'* QUOTA "" (STORAGE 10 512)\r\n'
    assert write.quotaroot("INBOX", [""]) == b'* QUOTAROOT INBOX ""\r\n'
    assert write.metadata("", [("/private/comment", b"hi"), ("/shared/x", None), ("/private/b", b"\0")]) == (
        b'* METADATA "" (/private/comment "hi" /shared/x NIL /private/b ~{1}\r\n\0)\r\n'
    )
