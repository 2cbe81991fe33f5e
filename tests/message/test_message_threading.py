"""Threading keys: base subject (RFC 5256 section 2.1), canonical message-ids, referenced ids."""

from __future__ import annotations

import pytest

from mox.message import normalize_message_id, parse, referenced_ids, thread_subject


@pytest.mark.parametrize(
    ("subject", "base", "is_response"),
    [
        # Upstream mox's table.
        ("test", "test", False),
        (" a  b\tc\r\n d\t", "a b c d", False),
        ("test (fwd) (fwd) ", "test", True),
        ("re: test", "test", True),
        ("fw: test", "test", True),
        ("fwd: test", "test", True),
        ("fwd [tag] Test", "fwd [tag] test", False),
        ("[list] re: a b c\t", "a b c", True),
        ("[list] fw: a b c", "a b c", True),
        ("[tag1][tag2] [tag3]\t re: a b c", "a b c", True),
        ("[tag1][tag2] [tag3]\t re: a \u0000b c", "", True),
        ("[list] fw:[tag] a b c", "a b c", True),
        ("[list] re: [list] fwd: a b c\t", "a b c", True),
        ("[fwd: a b c]", "a b c", True),
        ("[fwd: [fwd: a b c]]", "a b c", True),
        ("[fwd: [list] re: a b c]", "a b c", True),
        ("[nonlist]", "[nonlist]", False),
        ("fwd [list]:", "", True),
        # RFC 5256 rules.
        ("Re: Re: RE: Hello", "hello", True),
        ("Re:Hello", "hello", True),
        ("RE : Hello", "hello", True),
        ("Re [2]: Hello", "hello", True),
        ("Re[2]: Hello", "hello", True),
        ("Hello (fwd)", "hello", True),
        ("Hello(FWD)", "hello", True),
        ("[PATCH] fix bug", "fix bug", False),
        ("[PATCH v2 1/3] fix bug", "fix bug", False),
        ("[a] [b] topic", "topic", False),
        ("Re: [list] Re: [list] topic", "topic", True),
        ("[Fwd: Re: meeting]", "meeting", True),
        ("", "", False),
        ("   ", "", False),
        ("Regarding: nothing", "regarding: nothing", False),
        ("Fwd:", "", True),
        ("Hello World", "hello world", False),
        ("Re: Hello\u0000World", "", True),
        # Extensions: other languages, counters, full-width colon.
        ("AW: Hallo", "hallo", True),
        ("WG: Hallo", "hallo", True),
        ("SV: Hej", "hej", True),
        ("VS: Moi", "moi", True),
        ("Antw: Hoi", "hoi", True),
        ("TR: Bonjour", "bonjour", True),
        ("RIF: Ciao", "ciao", True),
        ("Odp: Cześć", "cześć", True),
        ("RE(3): Hello", "hello", True),
        ("Re^2: Hello", "hello", True),
        ("回复：你好", "你好", True),
        ("转发: 你好", "你好", True),
        ("AW: WG: Re: [ext] Sommerfest", "sommerfest", True),
        # Encoded-words are decoded first.
        ("=?utf-8?q?Re=3A_caf=C3=A9?=", "café", True),
        ("=?iso-8859-1?q?AW=3A_M=FCnchen?= (fwd)", "münchen", True),
    ],
)
def test_thread_subject(subject: str, base: str, is_response: bool) -> None:
    assert thread_subject(subject) == (base, is_response)


def test_thread_subject_allow_null() -> None:
    assert thread_subject("a\u0000b", allow_null=True) == ("a\u0000b", False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Upstream mox's table.
        ("bogus", ""),
        ("<bogus@host", ""),
        ("bogus@host>", ""),
        ("<>", ""),
        ("<user@domain>", "user@domain"),
        ("<USER@DOMAIN>", "user@domain"),
        ("<user@[10.0.0.1]>", "user@[10.0.0.1]"),
        ("<user@domain> (added by postmaster@isp.example)", "user@domain"),
        ("<user@domain> other", "user@domain"),
        ("<User@Domain@Time>", "user@domain@time"),
        ("<User>", "user"),
        # More.
        ("  <a@b.example>  ", "a@b.example"),
        ("<a@b.example>junk", ""),
        ('<"quoted"@example.com>', "quoted@example.com"),
        ('<"Quoted.Dots"@Example.com>', "quoted.dots@example.com"),
        ('<"with space"@example.com>', '"with space"@example.com'),
        ("<id@bad_label.example>", "id@bad_label.example"),
        ("<1234.5678@tést.example>", "1234.5678@tést.example"),
        ("<CAF=abc+def/ghi@mail.gmail.com>", "caf=abc+def/ghi@mail.gmail.com"),
        ("<a@b> <c@d>", "a@b"),
        ("", ""),
    ],
)
def test_normalize_message_id(value: str, expected: str) -> None:
    assert normalize_message_id(value) == expected


def refs_of(msg: str) -> list[str]:
    raw = msg.encode()
    p = parse(raw)
    h = p.headers(raw)
    refs = [v.decode() for k, v in h if k.lower() == "references"]
    irt = [v.decode() for k, v in h if k.lower() == "in-reply-to"]
    return referenced_ids(refs, irt)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        # Upstream mox's table.
        ("References: bogus\r\n", []),
        ("References: <User@host>\r\n", ["user@host"]),
        ("References: <User@tést.example>\r\n", ["user@tést.example"]),
        ("References: <User@xn--tst-bma.example>\r\n", ["user@xn--tst-bma.example"]),
        ("References: <User@bad_label.domain>\r\n", ["user@bad_label.domain"]),
        ("References: <truncated@hos <user@host>\r\n", ["user@host"]),
        ("References: <previously wrapped@host>\r\n", ["previouslywrapped@host"]),
        ("References: <user1@host> <user2@other.example>\r\n", ["user1@host", "user2@other.example"]),
        ("References: <missinghost>\r\n", ["missinghost"]),
        ("References: <user@host@time>\r\n", ["user@host@time"]),
        ("References: bogus bad <user@host>\r\n", ["user@host"]),
        ("In-Reply-To: <user@host> more stuff\r\nReferences: bogus bad\r\n", ["user@host"]),
        # More: folding inside an id, order kept, In-Reply-To ignored when References has ids.
        ("References: <a@x>\r\n <b@\r\n x>\r\n", ["a@x", "b@x"]),
        ("References: <root@x> <parent@x>\r\nIn-Reply-To: <other@x>\r\n", ["root@x", "parent@x"]),
        ('References: <"q"@x>\r\n', ["q@x"]),
        ("In-Reply-To: <first@x> <second@x>\r\n", ["first@x"]),
        ("In-Reply-To: junk\r\nIn-Reply-To: <later@x>\r\n", ["later@x"]),
        ("Subject: none\r\n", []),
    ],
)
def test_referenced_ids(msg: str, expected: list[str]) -> None:
    assert refs_of(msg + "\r\n") == expected
