"""Property tests: arbitrary input never raises and gives a consistent tree; generated MIME parses back exactly."""

from __future__ import annotations

import base64
import binascii
import email
import json
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mox.message import (
    Part,
    decode_base64,
    decode_quoted_printable,
    decode_words,
    html_to_text,
    normalize_message_id,
    parse,
    parse_address_list,
    parse_headers,
    parse_value,
    preview,
    referenced_ids,
    thread_subject,
)
from mox.message.address import _parse_full, _parse_simple
from mox.message.part import DEFECT_BARE_LF

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_tree(root: Part, raw: bytes) -> None:
    """Offsets are within the data and monotone, children lie inside their parent, structure invariants hold."""
    stack: list[tuple[Part, bytes]] = [(root, raw)]
    while stack:
        p, src = stack.pop()
        assert 0 <= p.header_offset <= p.body_offset <= p.end_offset <= len(src)
        assert p.media_type == p.media_type.upper() and p.media_subtype == p.media_subtype.upper()
        assert p.content_transfer_encoding == p.content_transfer_encoding.upper()
        if p.media_type == "MULTIPART":
            assert p.parts, "a multipart has at least one child"
            prev_end = p.body_offset
            for c in p.parts:
                assert prev_end <= c.header_offset
                assert c.end_offset <= p.end_offset
                prev_end = c.end_offset
                stack.append((c, src))
        else:
            assert not p.parts
        if p.media_type == "MESSAGE" and p.media_subtype in ("RFC822", "GLOBAL"):
            assert p.message is not None
            assert p.message.envelope is not None
            if p.message_decoded:
                stack.append((p.message, p.decoded_body(src)))
            else:
                assert p.body_offset == p.message.header_offset
                assert p.message.end_offset == p.end_offset
                stack.append((p.message, src))
        else:
            assert p.message is None
        # Decoding never raises.
        p.decoded_body(src)
        p.text(src)
        p.filename()
    assert root.envelope is not None
    d = root.to_json()
    assert Part.from_json(json.loads(json.dumps(d))) == root


FRAGMENTS = [
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b'Content-Type: multipart/alternative; boundary="c"\n',
    b"Content-Type: multipart/digest; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: message/global\r\nContent-Transfer-Encoding: base64\r\n",
    b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Type: text/plain; charset=\"utf-8\"; name*0*=utf-8''%C3; name*1*=%A9\r\n",
    b'Content-Disposition: attachment; filename="=?utf-8?q?x?="\r\n',
    b"Subject: =?utf-8?b?w6k=?= =?iso-8859-1?q?=E9?=\r\n",
    b'From: "a, b" <a@b>, (c) d@e, g: h@i;\r\n',
    b"To: <@route:x@y>\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b" folded\r\n",
    b"--b\r\n",
    b"--b--\r\n",
    b"--c\n",
    b"--c--",
    b"--b",
    b"body text\r\n",
    b"Zm9vYmFy\r\n",
    b"=3D=\r\n",
    b"\x00\xff\x80",
    b"(",
    b'"',
    b";",
    b":",
    b"=?",
]

mimeish = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=20)), max_size=60).map(b"".join)


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    check_tree(parse(raw), raw)
    check_tree(parse(raw, strict=True), raw)


@SETTINGS
@given(mimeish)
def test_mime_like_garbage_never_raises(raw: bytes) -> None:
    check_tree(parse(raw), raw)
    parse_headers(raw)


# Generated well-formed MIME trees.

LINE_CHARS = st.characters(
    min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="-", blacklist_categories=("Cs", "Cc")
)
LINE = st.text(LINE_CHARS, max_size=40)


@dataclass
class Node:
    """Expected structure: content type, body bytes (leaves), decoded body, children or embedded message."""

    content_type: str
    header: bytes = b""
    body: bytes = b""
    decoded: bytes | None = None
    children: list[Node] = field(default_factory=list)
    message: Node | None = None


@st.composite
def leaf(draw: st.DrawFn, nl: bytes) -> tuple[bytes, Node]:
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", None]))
    cte = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", None]))
    hdr = b""
    if ctype is not None:
        hdr += b"Content-Type: " + ctype.encode() + b"; charset=utf-8" + nl
    if cte is not None:
        hdr += b"Content-Transfer-Encoding: " + cte.encode() + nl
    if draw(st.booleans()):
        hdr += b"Content-Disposition: attachment;" + nl + b" filename*=utf-8''r%C3%A9sum%C3%A9.txt" + nl
    lines = [line.encode() for line in draw(st.lists(LINE, max_size=5))]
    decoded = nl.join(lines)
    if cte == "base64":
        data = draw(st.binary(max_size=200))
        decoded = data
        body = base64.encodebytes(data).rstrip(b"\n").replace(b"\n", nl)
    elif cte == "quoted-printable":
        body = nl.join(binascii.b2a_qp(line).replace(b"\n", nl) for line in lines)
    else:
        body = decoded
    header = hdr + nl
    ct = (ctype or "text/plain").upper()
    return header + body, Node(ct, header, body, decoded)


@st.composite
def tree(draw: st.DrawFn, nl: bytes, depth: int, counter: list[int]) -> tuple[bytes, Node]:
    kind = draw(st.sampled_from(["leaf", "multipart", "message"])) if depth < 4 else "leaf"
    if kind == "leaf":
        return draw(leaf(nl))
    if kind == "message":
        hdr = b"Content-Type: message/rfc822" + nl + nl
        subject = draw(LINE).encode()
        inner_raw, inner = draw(tree(nl, depth + 1, counter))
        # The embedded message: its own header fields, then the inner part's header and body.
        embedded = b"Subject: " + subject + nl + inner_raw
        node = Node("MESSAGE/RFC822", hdr, embedded)
        inner.header = b"Subject: " + subject + nl + inner.header
        node.message = inner
        return hdr + embedded, node
    counter[0] += 1
    boundary = draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789'()+_,./:=? ", min_size=8, max_size=8))
    boundary = boundary.rstrip(" ") + f"_{counter[0]:04d}"  # No boundary is a prefix of another.
    subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
    header = (
        b"Content-Type: multipart/" + subtype.encode() + b'; boundary="' + boundary.encode() + b'"' + nl + nl
    )
    delim = b"--" + boundary.encode()
    out = header
    preamble = draw(st.lists(LINE, max_size=2))
    for line in preamble:
        out += line.encode() + nl
    children: list[Node] = []
    n = draw(st.integers(min_value=1, max_value=3))
    for _ in range(n):
        raw, child = draw(tree(nl, depth + 1, counter))
        out += delim + draw(st.sampled_from([b"", b" ", b"\t "])) + nl + raw + nl
        children.append(child)
    out += delim + b"--" + nl
    for line in draw(st.lists(LINE, max_size=2)):
        out += line.encode() + nl
    node = Node("MULTIPART/" + subtype.upper(), header, out[len(header) :], None, children)
    return out, node


@st.composite
def message(draw: st.DrawFn) -> tuple[bytes, Node]:
    nl = draw(st.sampled_from([b"\r\n", b"\n"]))
    raw, node = draw(tree(nl, 0, [0]))
    top = b"From: a@example.org" + nl
    node.header = top + node.header
    return top + raw, node


def compare(p: Part, n: Node, raw: bytes) -> None:
    assert p.content_type == n.content_type
    assert p.header_bytes(raw) == n.header
    if n.children:
        assert len(p.parts) == len(n.children)
        assert set(p.all_defects()) <= {DEFECT_BARE_LF}
        for pc, nc in zip(p.parts, n.children, strict=True):
            compare(pc, nc, raw)
    else:
        assert p.body_bytes(raw) == n.body
        if n.decoded is not None:
            assert p.decoded_body(raw) == n.decoded
    if n.message is not None:
        assert p.message is not None
        compare(p.message, n.message, raw)


@SETTINGS
@given(message())
def test_generated_mime_trees_parse_back_exactly(msg: tuple[bytes, Node]) -> None:
    raw, node = msg
    p = parse(raw)
    compare(p, node, raw)
    check_tree(p, raw)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["text/plain", "text/html", "application/pdf"]), st.binary(max_size=300)),
        min_size=1,
        max_size=4,
    ),
    st.text(
        st.one_of(st.just(" "), st.characters(codec="utf-8", categories=("L", "N", "P", "S"))), max_size=30
    ),
)
def test_stdlib_generated_messages_decode_like_stdlib(parts: list[tuple[str, bytes]], subject: str) -> None:
    m = EmailMessage(policy=SMTP)
    m["Subject"] = subject
    m["From"] = "Jörg <joerg@example.org>"
    m.set_content("body text")
    for ctype, data in parts:
        maintype, subtype = ctype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename="fïle.bin")
    raw = m.as_bytes()
    back = email.message_from_bytes(raw, policy=SMTP)
    p = parse(raw)
    check_tree(p, raw)
    assert p.envelope is not None
    assert p.envelope.subject == " ".join(subject.split())
    assert [(a.name, a.user, a.host) for a in p.envelope.from_] == [("Jörg", "joerg", "example.org")]
    leaves = [x for x in p.walk() if not x.parts]
    expected = [x for x in back.walk() if not x.is_multipart()]
    assert len(leaves) == len(expected)
    for ours, theirs in zip(leaves, expected, strict=True):
        assert ours.content_type == theirs.get_content_type().upper()
        payload = theirs.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert ours.decoded_body(raw) == payload
    for ours in leaves[1:]:
        assert ours.filename() == "fïle.bin"


text = st.text(max_size=200)


@SETTINGS
@given(text)
def test_text_functions_never_raise(s: str) -> None:
    decode_words(s)
    parse_address_list(s)
    parse_value(s)
    thread_subject(s)
    thread_subject(s, allow_null=True)
    normalize_message_id(s)
    referenced_ids([s], [s])
    preview(s)
    html_to_text(s)


@SETTINGS
@given(st.binary(max_size=300))
def test_byte_decoders_never_raise(b: bytes) -> None:
    decode_words(b)
    parse_address_list(b)
    decode_base64(b)
    decode_quoted_printable(b)


NAME_PIECES = [*"abcXYZ09.!#$%&'*+/=?^_`{|}~-é ", "=?utf-8?q?J=C3=B6rg?=", "  "]
ADDR_PIECES = st.sampled_from([*NAME_PIECES, "@", "<", ">", ","])


@SETTINGS
@given(st.lists(ADDR_PIECES, max_size=30).map("".join))
def test_address_fast_path_agrees_with_full_parser(s: str) -> None:
    fast = _parse_simple(s)
    if fast is not None:
        assert fast == _parse_full(s)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(NAME_PIECES), max_size=8).map("".join),
            st.from_regex(r"[a-z0-9.]{1,8}", fullmatch=True),
            st.from_regex(r"[a-z0-9]{1,5}\.[a-z]{2,4}", fullmatch=True),
        ),
        max_size=4,
    )
)
def test_address_lists_of_simple_mailboxes(items: list[tuple[str, str, str]]) -> None:
    value = ", ".join(f"{name} <{lp}@{host}>" for name, lp, host in items)
    fast = _parse_simple(value)
    assert fast is not None
    assert fast == _parse_full(value)
