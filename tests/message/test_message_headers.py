"""Header fields, RFC 2047 encoded-words, MIME parameters (RFC 2045, RFC 2231), transfer encodings, charsets."""

from __future__ import annotations

import pytest

from mox.message import (
    decode_base64,
    decode_charset,
    decode_quoted_printable,
    decode_words,
    header_value,
    header_values,
    parse_headers,
    parse_value,
    unfold,
)


def test_parse_headers_keeps_raw_names_and_folded_values() -> None:
    raw = (
        b"Subject: hello\r\n  world\r\nX-Empty:\r\nreceived : from a\r\n\tby b\r\n\r\nbody: not a header\r\n"
    )
    assert parse_headers(raw) == [
        ("Subject", b" hello\r\n  world"),
        ("X-Empty", b""),
        ("received", b" from a\r\n\tby b"),
    ]


def test_parse_headers_lf_and_cr_line_endings() -> None:
    assert parse_headers(b"A: 1\nB: 2\n 3\n\nC: body") == [("A", b" 1"), ("B", b" 2\n 3")]
    assert parse_headers(b"A: 1\rB: 2\r 3\r\rC: body") == [("A", b" 1"), ("B", b" 2\r 3")]


def test_header_values_unfold_case_insensitively() -> None:
    h = parse_headers(b"To: a@b,\r\n c@d\r\nSubject: x\r\nTO: e@f\r\n\r\n")
    assert header_values(h, "to") == ["a@b, c@d", "e@f"]
    assert header_value(h, "SUBJECT") == "x"
    assert header_value(h, "cc") is None
    assert header_values(h, "cc") == []


def test_utf8_and_latin1_header_values() -> None:
    h = parse_headers("Subject: grüße\r\n".encode() + b"X-Latin: gr\xfc\xdfe\r\n\r\n")
    assert header_value(h, "subject") == "grüße"
    assert header_value(h, "x-latin") == "grüße"


def test_unfold() -> None:
    assert unfold(b" a\r\n b\n\tc ") == "a b\tc"
    assert unfold("x") == "x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?UTF-8?B?w6lsw6h2ZQ==?=", "élève"),
        ("=?iso-8859-1?q?=E9t=E9?=", "été"),
        ("=?ISO-8859-15?Q?=A4uro?=", "€uro"),
        ("=?windows-1252?q?=93quoted=94?=", "\u201cquoted\u201d"),
        ("=?koi8-r?b?8NLJ18XU?=", "Привет"),
        ("=?iso-2022-jp?B?GyRCJEgbKEI=?=", "と"),
        ("=?shift_jis?b?g2WDWINn?=", "テスト"),
        ("=?gb2312?b?1tDOxA==?=", "中文"),
        ("=?big5?b?pKSk5Q==?=", "中文"),
        ("=?euc-kr?b?x9Gx2w==?=", "한글"),
        ("=?utf-8?q?a_b?=", "a b"),
        # Whitespace between adjacent encoded-words is dropped (RFC 2047 section 6.2).
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
        # But not between an encoded-word and plain text.
        ("=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c"),
        ("plain =?utf-8?q?x?=", "plain x"),
        # A multi-byte character split over two words.
        ("=?utf-8?b?8J+Y?= =?utf-8?b?gA==?=", "😀"),
        ("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=", "€"),
        # Language suffix (RFC 2231 section 5).
        ("=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"),
        # Missing base64 padding; lower-case hex; encoding letter case.
        ("=?utf-8?B?w6k?=", "é"),
        ("=?utf-8?Q?=c3=a9?=", "é"),
        # Unknown charset: decoded with the fallbacks.
        ("=?x-bogus?q?caf=C3=A9?=", "café"),
        # Malformed words stay as they are.
        ("=?utf-8?x?abc?=", "=?utf-8?x?abc?="),
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        ("=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),
        ("=?utf-8?q?a=ZZ?=", "a=ZZ"),
        ("no words", "no words"),
        ("", ""),
    ],
)
def test_decode_words(value: str, expected: str) -> None:
    assert decode_words(value) == expected


def test_decode_words_accepts_bytes_with_raw_utf8() -> None:
    assert decode_words("Grüße =?utf-8?q?aus_K=C3=B6ln?=".encode()) == "Grüße aus Köln"


@pytest.mark.parametrize(
    ("value", "main", "params", "valid"),
    [
        ("text/plain", "text/plain", {}, True),
        ("text/plain; charset=us-ascii (Plain text)", "text/plain", {"charset": "us-ascii"}, True),
        (
            'multipart/mixed; boundary="simple boundary"',
            "multipart/mixed",
            {"boundary": "simple boundary"},
            True,
        ),
        ('text/plain; name="a \\"quoted\\" name"', "text/plain", {"name": 'a "quoted" name'}, True),
        (" (comment) text/html ; CHARSET = utf-8 ", "text/html", {"charset": "utf-8"}, True),
        # RFC 2231 section 4: charset and language.
        (
            "application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A",
            "application/x-stuff",
            {"title": "This is ***fun***"},
            True,
        ),
        # RFC 2231 section 3: continuations.
        (
            'message/external-body; access-type=URL; URL*0="ftp://"; URL*1="cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"',
            "message/external-body",
            {"access-type": "URL", "url": "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"},
            True,
        ),
        # RFC 2231 section 4.1: both combined, mixing encoded and plain sections.
        (
            "application/x-stuff; title*0*=us-ascii'en'This%20is%20even%20more%20; "
            'title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2="isn\'t it!"',
            "application/x-stuff",
            {"title": "This is even more ***fun*** isn't it!"},
            True,
        ),
        # Sections out of order; a multi-byte character split over two sections.
        (
            "attachment; filename*1*=%A9.pdf; filename*0*=UTF-8''r%C3",
            "attachment",
            {"filename": "ré.pdf"},
            True,
        ),
        # The RFC 2231 form wins over the plain one.
        (
            "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''%E2%82%AC%20rates.pdf",
            "attachment",
            {"filename": "€ rates.pdf"},
            True,
        ),
        ("attachment; filename*=iso-8859-1''caf%E9", "attachment", {"filename": "café"}, True),
        # A gap in the sections: only the consecutive run from 0.
        ("x/y; a*0=one; a*2=three", "x/y", {"a": "one"}, True),
        # Leniency.
        ("text/html;;", "text/html", {}, False),
        ("multipart/mixed; boundary=----=_Part_1", "multipart/mixed", {"boundary": "----=_Part_1"}, False),
        ("text/plain; charset", "text/plain", {}, False),
        ('text/plain; name="unterminated', "text/plain", {"name": "unterminated"}, False),
        ("text/plain; a=1; a=2", "text/plain", {"a": "1"}, False),
        ("text/plain; name=my file.pdf", "text/plain", {"name": "my file.pdf"}, False),
        ("", "", {}, True),
    ],
)
def test_parse_value(value: str, main: str, params: dict[str, str], valid: bool) -> None:
    assert parse_value(value) == (main, params, valid)


def test_decode_base64_is_lenient() -> None:
    assert decode_base64(b"aGVs\r\nbG8=\r\n") == b"hello"
    assert decode_base64(b"aGVsbG8") == b"hello"  # Missing padding.
    assert decode_base64(b"aGk=aGk=") == b"hihi"  # Concatenated blobs.
    assert decode_base64(b" a G k * ") == b"hi"  # Junk ignored.
    assert decode_base64(b"a") == b""
    assert decode_base64(b"") == b""


def test_decode_quoted_printable_is_lenient() -> None:
    assert decode_quoted_printable(b"caf=C3=A9 =\r\nau lait=3d\r\n") == "café au lait=\r\n".encode()
    assert decode_quoted_printable(b"soft=\nbreak") == b"softbreak"
    assert decode_quoted_printable(b"soft=\rbreak") == b"softbreak"
    assert decode_quoted_printable(b"bad =ZZ escape") == b"bad =ZZ escape"
    assert decode_quoted_printable(b"trailing =") == b"trailing "


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        (b"caf\xc3\xa9", "utf-8", "café"),
        (b"caf\xc3\xa9", "UTF8", "café"),
        (b"caf\xe9", "latin1", "café"),
        (b"\x80", "iso-8859-1", "€"),
        (b"caf\xc3\xa9", "us-ascii", "café"),
        (b"caf\xe9", None, "café"),
        (b"caf\xe9", "x-unknown", "café"),
        (b"caf\xe9", "utf-8", "caf\ufffd"),
        (b"caf\xe9", '"iso-8859-1"', "café"),
        (b"\xa4", "iso-8859-15", "€"),
        (b"abc", "base64", "abc"),
        (b"abc", "undefined", "abc"),
        (b"\xb0\xa1", "ks_c_5601-1987", "가"),
        (b"\xa1", "windows-874", "ก"),
        (b"\xa1", "tis-620", "ก"),
        (b"", "utf-8", ""),
    ],
)
def test_decode_charset(data: bytes, charset: str | None, expected: str) -> None:
    assert decode_charset(data, charset) == expected
