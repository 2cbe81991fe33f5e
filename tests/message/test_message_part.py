"""MIME tree parsing: structure, offsets, defaults, decoding, malformed input."""

from __future__ import annotations

import base64
import json
import time

from mox.message import MAX_NESTING_DEPTH, Part, parse
from mox.message.part import (
    DEFECT_BAD_CONTENT_TYPE,
    DEFECT_BARE_CR,
    DEFECT_BARE_LF,
    DEFECT_LONG_LINE,
    DEFECT_NO_BOUNDARY,
    DEFECT_NO_CLOSE,
    DEFECT_NO_PARTS,
    DEFECT_NO_SEPARATOR,
    DEFECT_TOO_DEEP,
)


def crlf(s: str) -> bytes:
    return s.replace("\n", "\r\n").encode()


def roundtrip(p: Part) -> Part:
    return Part.from_json(json.loads(json.dumps(p.to_json())))


# RFC 2046 section 5.1.1 example.
RFC2046_MSG = """From: Nathaniel Borenstein <nsb@bellcore.com>
To: Ned Freed <ned@innosoft.com>
Date: Sun, 21 Mar 1993 23:56:48 -0800 (PST)
Subject: Sample message
MIME-Version: 1.0
Content-type: multipart/mixed; boundary="simple boundary"

This is the preamble.  It is to be ignored, though it
is a handy place for composition agents to include an
explanatory note to non-MIME conformant readers.

--simple boundary

This is implicitly typed plain US-ASCII text.
It does NOT end with a linebreak.
--simple boundary
Content-type: text/plain; charset=us-ascii

This is explicitly typed plain US-ASCII text.
It DOES end with a linebreak.

--simple boundary--

This is the epilogue.  It is also to be ignored.
"""


def test_rfc2046_example_parts_exclude_the_crlf_before_delimiters() -> None:
    raw = crlf(RFC2046_MSG)
    p = parse(raw)
    assert p.content_type == "MULTIPART/MIXED"
    assert p.params == {"boundary": "simple boundary"}
    assert p.defects == []
    assert len(p.parts) == 2
    a, b = p.parts
    assert a.header_bytes(raw) == b"\r\n"
    assert (
        a.body_bytes(raw)
        == b"This is implicitly typed plain US-ASCII text.\r\nIt does NOT end with a linebreak."
    )
    assert a.body_lines == 2
    assert a.content_type == "TEXT/PLAIN" and a.params == {}
    assert b.header_bytes(raw) == b"Content-type: text/plain; charset=us-ascii\r\n\r\n"
    assert (
        b.body_bytes(raw)
        == b"This is explicitly typed plain US-ASCII text.\r\nIt DOES end with a linebreak.\r\n"
    )
    assert b.body_lines == 2
    assert b.params == {"charset": "us-ascii"}
    # The multipart body is everything after its header, preamble and epilogue included.
    assert p.body_bytes(raw).startswith(b"This is the preamble.")
    assert p.end_offset == len(raw)
    assert p.envelope is not None
    assert p.envelope.subject == "Sample message"
    assert p.envelope.date == "Sun, 21 Mar 1993 23:56:48 -0800 (PST)"
    assert [(x.name, x.user, x.host) for x in p.envelope.from_] == [
        ("Nathaniel Borenstein", "nsb", "bellcore.com")
    ]
    assert a.envelope is None


def test_lf_only_message_offsets_point_into_raw_bytes() -> None:
    raw = RFC2046_MSG.encode()
    p = parse(raw)
    assert p.defects == [DEFECT_BARE_LF]
    a, b = p.parts
    assert (
        a.body_bytes(raw)
        == b"This is implicitly typed plain US-ASCII text.\nIt does NOT end with a linebreak."
    )
    assert b.header_bytes(raw) == b"Content-type: text/plain; charset=us-ascii\n\n"
    assert (
        b.body_bytes(raw) == b"This is explicitly typed plain US-ASCII text.\nIt DOES end with a linebreak.\n"
    )
    assert raw[b.header_offset : b.header_offset + 13] == b"Content-type:"
    assert (a.body_lines, b.body_lines) == (2, 2)


def test_cr_only_message_splits_on_cr() -> None:
    raw = RFC2046_MSG.replace("\n", "\r").encode()
    p = parse(raw)
    assert DEFECT_BARE_CR in p.defects
    a, b = p.parts
    assert (
        a.body_bytes(raw)
        == b"This is implicitly typed plain US-ASCII text.\rIt does NOT end with a linebreak."
    )
    assert b.params == {"charset": "us-ascii"}
    assert b.body_lines == 2
    assert p.envelope is not None and p.envelope.subject == "Sample message"


NESTED = """From: Alice <alice@example.org>
To: bob@example.com
Subject: =?utf-8?q?Re=3A_caf=C3=A9?=
Message-ID: <abc@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 =
au lait

--inner
Content-Type: text/html; charset=iso-8859-1
Content-Transfer-Encoding: 8bit

<p>caf\xe9</p>
--inner--

--outer
Content-Type: application/pdf; name="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="
Content-Disposition: attachment;
 filename*0*=utf-8''r%C3%A9sum;
 filename*1*=%C3%A9.pdf
Content-Transfer-Encoding: base64
Content-ID: <part1@example.org>
Content-Description: my CV
Content-Language: en, de
Content-Location: http://example.org/cv.pdf
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

JVBERi0xLjQK
--outer--
"""


def test_alternative_inside_mixed_with_attachment() -> None:
    raw = NESTED.replace("\n", "\r\n").encode("latin-1")
    p = parse(raw)
    assert p.all_defects() == []
    assert p.content_type == "MULTIPART/MIXED"
    alt, att = p.parts
    assert alt.content_type == "MULTIPART/ALTERNATIVE"
    plain, html = alt.parts
    assert plain.content_transfer_encoding == "QUOTED-PRINTABLE"
    assert plain.decoded_body(raw) == "café au lait\r\n".encode()
    assert plain.text(raw) == "café au lait\r\n"
    assert html.content_transfer_encoding == "8BIT"
    assert html.text(raw) == "<p>café</p>"
    assert att.content_type == "APPLICATION/PDF"
    assert att.disposition == "attachment"
    assert att.disposition_params == {"filename": "résumé.pdf"}
    assert att.params == {"name": "=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="}
    assert att.filename() == "résumé.pdf"
    assert att.decoded_body(raw) == b"%PDF-1.4\n"
    assert att.decoded_size(raw) == 9
    assert att.content_id == "<part1@example.org>"
    assert att.content_description == "my CV"
    assert att.language == "en, de"
    assert att.location == "http://example.org/cv.pdf"
    assert att.md5 == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    assert p.envelope is not None
    assert p.envelope.subject == "Re: café"
    assert p.envelope.message_id == "<abc@example.org>"
    assert [pp.content_type for pp in p.walk()] == [
        "MULTIPART/MIXED",
        "MULTIPART/ALTERNATIVE",
        "TEXT/PLAIN",
        "TEXT/HTML",
        "APPLICATION/PDF",
    ]
    assert roundtrip(p) == p


def test_imap_section_numbers() -> None:
    raw = NESTED.replace("\n", "\r\n").encode("latin-1")
    p = parse(raw)
    found = p.section(raw, [1, 2])
    assert found is not None and found[0].content_type == "TEXT/HTML"
    found = p.section(raw, [2])
    assert found is not None and found[0].content_type == "APPLICATION/PDF"
    assert p.section(raw, [3]) is None
    assert p.section(raw, [2, 1]) is None
    assert p.section(raw, [0]) is None
    found = p.section(raw, [])
    assert found is not None and found[0] is p
    # A non-multipart message has a part 1: its body.
    single = crlf("Subject: x\n\nhello\n")
    sp = parse(single)
    found = sp.section(single, [1])
    assert found is not None and found[0] is sp
    assert sp.section(single, [1, 1]) is None
    assert sp.section(single, [2]) is None


FORWARD = """From: Carol <carol@example.net>
To: dave@example.com
Subject: Fwd: report
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain

see attached
--b1
Content-Type: message/rfc822
Content-Disposition: attachment

From: "Smith, Eve" <eve@Example.COM>
To: a@b.example, Group: c@d.example, e@f.example;
Cc: undisclosed-recipients:;
Subject: report
Date: Tue, 1 Feb 2022 10:00:00 +0100
In-Reply-To: <x@y>
Message-Id: <orig@example.com>
Content-Type: multipart/alternative; boundary=b2

--b2
Content-Type: text/plain

plain
--b2
Content-Type: text/html

<b>html</b>
--b2--

--b1--
"""


def test_message_rfc822_attachment_has_its_own_envelope_and_tree() -> None:
    raw = crlf(FORWARD)
    p = parse(raw)
    assert p.all_defects() == []
    _text, fwd = p.parts
    assert fwd.content_type == "MESSAGE/RFC822"
    assert fwd.envelope is None
    inner = fwd.message
    assert inner is not None
    assert inner.header_offset == fwd.body_offset
    assert inner.end_offset == fwd.end_offset
    assert fwd.body_lines == 18
    env = inner.envelope
    assert env is not None
    assert env.subject == "report"
    assert [(a.name, a.user, a.host) for a in env.from_] == [("Smith, Eve", "eve", "example.com")]
    assert [(a.user, a.host) for a in env.to] == [("a", "b.example"), ("c", "d.example"), ("e", "f.example")]
    assert env.cc == []
    assert env.sender == [] and env.reply_to == []  # IMAP substitutes From, not the parser.
    assert env.in_reply_to == "<x@y>"
    assert env.message_id == "<orig@example.com>"
    assert inner.content_type == "MULTIPART/ALTERNATIVE"
    assert [c.body_bytes(raw) for c in inner.parts] == [b"plain", b"<b>html</b>"]
    # IMAP: 2.1 is the first part of the embedded message, 2.2 the second.
    found = p.section(raw, [2, 2])
    assert found is not None and found[0].body_bytes(found[1]) == b"<b>html</b>"
    found = p.section(raw, [2])
    assert found is not None and found[0] is fwd
    assert roundtrip(p) == p


def test_base64_message_global_is_parsed_from_decoded_body() -> None:
    inner = crlf("Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\nContent-Type: text/plain\n\nhallo\n")
    raw = crlf(
        "Subject: outer\nContent-Type: message/global\nContent-Transfer-Encoding: base64\n\n"
    ) + base64.encodebytes(inner).replace(b"\n", b"\r\n")
    p = parse(raw)
    assert p.message_decoded
    m = p.message
    assert m is not None and m.envelope is not None
    assert m.envelope.subject == "grüße"
    src = p.message_source(raw)
    assert src == inner
    assert m.body_bytes(src) == b"hallo\r\n"
    found = p.section(raw, [1])
    assert found is not None
    assert found[0] is m and found[1] == inner
    assert roundtrip(p) == p


def test_digest_parts_default_to_message_rfc822() -> None:
    raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody1\n--d\n"
        "Content-Type: text/plain\n\nnot a message\n--d--\n"
    )
    p = parse(raw)
    first, second = p.parts
    assert first.content_type == "MESSAGE/RFC822"
    assert first.message is not None and first.message.envelope is not None
    assert first.message.envelope.subject == "one"
    assert second.content_type == "TEXT/PLAIN"
    assert second.message is None


def test_defaults_when_headers_absent() -> None:
    raw = b"\r\nbody only"
    p = parse(raw)
    assert (p.header_offset, p.body_offset, p.end_offset) == (0, 2, len(raw))
    assert p.content_type == "TEXT/PLAIN"
    assert p.content_transfer_encoding == "7BIT"
    assert p.body_lines == 1
    assert p.envelope is not None and p.envelope.subject == ""
    assert p.defects == []


def test_header_without_body() -> None:
    raw = b"Subject: no body\r\n"
    p = parse(raw)
    assert (p.body_offset, p.end_offset) == (len(raw), len(raw))
    assert p.body_lines == 0
    assert p.envelope is not None and p.envelope.subject == "no body"
    raw = b"Subject: no newline at all"
    p = parse(raw)
    assert p.body_offset == len(raw)
    assert p.envelope is not None and p.envelope.subject == "no newline at all"


def test_body_without_header_starts_at_first_non_header_line() -> None:
    raw = b"Hello there,\r\nthis has no header.\r\n"
    p = parse(raw)
    assert (p.header_offset, p.body_offset) == (0, 0)
    assert p.body_bytes(raw) == raw
    assert p.defects == [DEFECT_NO_SEPARATOR]
    # A header that runs into text without an empty line.
    raw = b"Subject: x\r\nthis is body text\r\n"
    p = parse(raw)
    assert p.header_bytes(raw) == b"Subject: x\r\n"
    assert p.body_bytes(raw) == b"this is body text\r\n"
    assert p.envelope is not None and p.envelope.subject == "x"


def test_missing_final_newline_and_line_counts() -> None:
    raw = b"Subject: x\r\n\r\nline1\r\nline2"
    p = parse(raw)
    assert p.body_lines == 2
    raw = b"Subject: x\r\n\r\nline1\r\nline2\r\n"
    assert parse(raw).body_lines == 2
    raw = b"Subject: x\r\n\r\n"
    assert parse(raw).body_lines == 0


def test_missing_closing_boundary_ends_last_part_at_parent_end() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=x\n\n--x\n\ntest\n")
    p = parse(raw)
    assert p.defects == [DEFECT_NO_CLOSE]
    (a,) = p.parts
    assert a.body_bytes(raw) == b"test\r\n"


def test_nested_missing_close_ends_at_outer_delimiter() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=outer\n\n--outer\n"
        "Content-Type: multipart/alternative; boundary=inner\n\n--inner\n\ninner text\n"
        "--outer\n\nsecond\n--outer--\n"
    )
    p = parse(raw)
    alt, second = p.parts
    assert alt.defects == [DEFECT_NO_CLOSE]
    assert alt.parts[0].body_bytes(raw) == b"inner text"
    assert second.body_bytes(raw) == b"second"


def test_multipart_without_delimiters_or_boundary_becomes_opaque() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=x\n\nno delimiters here\n")
    p = parse(raw)
    assert p.content_type == "APPLICATION/OCTET-STREAM"
    assert p.params == {"boundary": "x"}
    assert p.defects == [DEFECT_NO_PARTS]
    assert p.parts == []
    raw = crlf("Content-Type: multipart/mixed\n\n--x\n\nbody\n--x--\n")
    p = parse(raw)
    assert p.content_type == "APPLICATION/OCTET-STREAM"
    assert p.defects == [DEFECT_NO_BOUNDARY]
    # First delimiter is a close delimiter: no parts.
    raw = crlf("Content-Type: multipart/mixed; boundary=x\n\n--x--\n")
    assert parse(raw).defects == [DEFECT_NO_PARTS]


def test_boundary_prefix_of_inner_boundary_is_not_a_delimiter() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: multipart/alternative; boundary=b_alt\n\n--b_alt\n\none\n--b_alt\n\ntwo\n--b_alt--\n"
        "--b--\n"
    )
    p = parse(raw)
    assert p.all_defects() == []
    (alt,) = p.parts
    assert [c.body_bytes(raw) for c in alt.parts] == [b"one", b"two"]


def test_delimiter_with_trailing_whitespace_and_empty_parts() -> None:
    raw = crlf("Content-Type: multipart/mixed; boundary=x\n\n--x  \n\na\n--x\t\n--x\n\n\n--x--  trailing\n")
    p = parse(raw)
    assert p.all_defects() == []
    assert [c.body_bytes(raw) for c in p.parts] == [b"a", b"", b""]


def test_unquoted_boundary_with_equals_sign() -> None:
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=----=_Part_0_1.2\n\n------=_Part_0_1.2\n\nx\n------=_Part_0_1.2--\n"
    )
    p = parse(raw)
    assert p.params["boundary"] == "----=_Part_0_1.2"
    assert [c.body_bytes(raw) for c in p.parts] == [b"x"]


def test_malformed_content_type_recovers_type_unless_strict() -> None:
    raw = b"Content-Type: text/html;;\r\n\r\ntest"
    p = parse(raw)
    assert p.content_type == "TEXT/HTML"
    assert p.defects == [DEFECT_BAD_CONTENT_TYPE]
    p = parse(raw, strict=True)
    assert p.content_type == "APPLICATION/OCTET-STREAM"
    assert p.defects == [DEFECT_BAD_CONTENT_TYPE]
    p = parse(b"Content-Type: not a content type;;\r\n\r\ntest")
    assert p.content_type == "APPLICATION/OCTET-STREAM"
    p = parse(b"Content-Type: \r\n\r\ntest")
    assert p.content_type == "TEXT/PLAIN"
    assert p.defects == [DEFECT_BAD_CONTENT_TYPE]


def test_media_types_are_upper_case_and_params_keys_lower_case() -> None:
    p = parse(
        b'Content-Type: Text/HTML; CharSet="UTF-8"; Format=Flowed\r\nContent-Transfer-Encoding: Base64\r\n\r\n'
    )
    assert (p.media_type, p.media_subtype) == ("TEXT", "HTML")
    assert p.params == {"charset": "UTF-8", "format": "Flowed"}
    assert p.content_transfer_encoding == "BASE64"


def test_strict_mode_reports_bare_cr_and_long_lines() -> None:
    raw = b"Subject: x\r\n\r\nbare\rcr\r\n" + b"y" * 1000 + b"\r\n"
    assert parse(raw).defects == []
    assert parse(raw, strict=True).defects == [DEFECT_BARE_CR, DEFECT_LONG_LINE]


def test_garbage_nul_and_8bit_bytes_do_not_break_parsing() -> None:
    raw = b"Subject: \xff\xfe\x00bad\r\nX-\x00: y\r\nContent-Type: text/plain; charset=\xff\r\n\r\n\x00\x01\x80\xff"
    p = parse(raw)
    # A field name with a NUL is not a header line: the body starts there.
    assert p.header_bytes(raw) == b"Subject: \xff\xfe\x00bad\r\n"
    assert p.body_bytes(raw).startswith(b"X-\x00: y")
    assert p.defects == [DEFECT_NO_SEPARATOR]
    assert p.envelope is not None and p.envelope.subject == "\xff\xfe\x00bad"
    assert isinstance(p.text(raw), str)


def test_unknown_charset_and_bad_bytes_decode_without_raising() -> None:
    for cs in ("x-unknown", "utf-8", "base64", "rot13", "undefined", "utf-16", "iso-2022-jp", ""):
        raw = b"Content-Type: text/plain; charset=%s\r\n\r\n\xff\xfe\xc3(abc" % cs.encode()
        assert isinstance(parse(raw).text(raw), str)
    raw = b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xc3\xa9"
    assert parse(raw).text(raw) == "café"  # Mislabelled UTF-8.
    raw = b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9 \x80"
    assert parse(raw).text(raw) == "café €"  # Decoded as windows-1252, as browsers do.
    raw = b"Content-Type: text/plain; charset=koi8-r\r\n\r\n\xf0\xd2\xc9\xd7\xc5\xd4"
    assert parse(raw).text(raw) == "Привет"


def test_first_of_duplicate_content_fields_is_used() -> None:
    raw = b"Content-Type: text/html\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    p = parse(raw)
    assert p.content_type == "TEXT/HTML"
    assert p.content_transfer_encoding == "BASE64"


def test_folded_content_type_with_comments() -> None:
    raw = b"Content-Type: text/plain;\r\n\tcharset=us-ascii (Plain text);\r\n format=flowed\r\n\r\nx"
    p = parse(raw)
    assert p.params == {"charset": "us-ascii", "format": "flowed"}


def test_is_dsn() -> None:
    raw = crlf(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=r\n\n"
        "--r\n\nfailed\n--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n"
        "--r\nContent-Type: message/rfc822\n\nSubject: orig\n\nbody\n--r--\n"
    )
    p = parse(raw)
    assert p.is_dsn()
    assert p.parts[2].message is not None
    assert not parse(crlf(FORWARD)).is_dsn()


def test_deep_nesting_is_capped_and_fast() -> None:
    n = 10_000
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(n)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(n)))
    raw = b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\nleaf" + tail
    t0 = time.perf_counter()
    p = parse(raw)
    elapsed = time.perf_counter() - t0
    assert elapsed < 3
    depth = 0
    q = p
    while q.parts:
        q = q.parts[0]
        depth += 1
    assert depth == MAX_NESTING_DEPTH
    assert q.content_type == "APPLICATION/OCTET-STREAM"
    assert q.defects == [DEFECT_TOO_DEEP]
    assert roundtrip(p) == p
    assert len(list(p.walk())) == MAX_NESTING_DEPTH + 1


def test_deep_message_rfc822_nesting_is_capped() -> None:
    raw = b"Subject: x\r\n\r\nbody"
    for _ in range(5000):
        raw = b"Content-Type: message/rfc822\r\n\r\n" + raw
    p = parse(raw)
    depth = 0
    q = p
    while q.message is not None:
        q = q.message
        depth += 1
    assert depth == MAX_NESTING_DEPTH
    assert q.defects == [DEFECT_TOO_DEEP]


def test_huge_header_line_and_many_delimiter_lookalikes_are_linear() -> None:
    raw = b"Subject: " + b"x" * 5_000_000 + b"\r\n\r\nbody"
    t0 = time.perf_counter()
    p = parse(raw)
    assert p.envelope is not None and len(p.envelope.subject) == 5_000_000
    raw = (
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
        + b"--ab\r\n" * 300_000
        + b"--a\r\n\r\nx\r\n--a--\r\n"
    )
    p = parse(raw)
    assert [c.body_bytes(raw) for c in p.parts] == [b"x"]
    assert time.perf_counter() - t0 < 5


def test_json_form_is_compact() -> None:
    p = parse(b"Subject: x\r\n\r\nhello\r\n")
    d = p.to_json()
    assert d == {"h": 0, "b": 14, "e": 21, "n": 1, "env": ["", "x", [], [], [], [], [], [], "", ""]}
    assert Part.from_json(d) == p


def test_decoded_body_text_crlf_for_imap_binary() -> None:
    raw = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nYQpiDWMNCmQ=\r\n"
    p = parse(raw)
    assert p.decoded_body(raw) == b"a\nb\rc\r\nd"
    assert p.decoded_body(raw, text_crlf=True) == b"a\r\nb\r\nc\r\nd"
    assert p.decoded_size(raw, text_crlf=True) == 10
    raw = b"Subject: x\n\nline1\nline2\n"
    p = parse(raw)
    assert p.decoded_size(raw) == 12
    assert p.decoded_size(raw, text_crlf=True) == 14
    raw = b"Content-Type: image/png\n\n\n\n"
    p = parse(raw)
    assert p.decoded_body(raw, text_crlf=True) == b"\n\n"
