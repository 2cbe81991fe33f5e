"""Address lists (RFC 5322 section 3.4, obsolete syntax of section 4.4) and the IMAP envelope."""

from __future__ import annotations

import datetime as dt

import pytest

from mox.message import Address, parse, parse_address_list, parse_date, parse_envelope, parse_headers


def triples(value: str) -> list[tuple[str, str, str]]:
    return [(a.name, a.user, a.host) for a in parse_address_list(value)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Fred Foobar <foobar@Blurdybloop.example>", [("Fred Foobar", "foobar", "blurdybloop.example")]),
        ("mooch@owatagu.siam.edu.example", [("", "mooch", "owatagu.siam.edu.example")]),
        ("<boss@nil.test>", [("", "boss", "nil.test")]),
        # RFC 5322 appendix A.1.2 and A.1.3.
        (
            'Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>, <boss@nil.test>, "Giant; \\"Big\\" Box" <sysservices@example.net>',
            [
                ("Mary Smith", "mary", "x.test"),
                ("", "jdoe", "example.org"),
                ("Who?", "one", "y.test"),
                ("", "boss", "nil.test"),
                ('Giant; "Big" Box', "sysservices", "example.net"),
            ],
        ),
        # Groups are flattened; an empty group gives nothing.
        (
            "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, x@y.test",
            [
                ("Ed Jones", "c", "a.test"),
                ("", "joe", "where.test"),
                ("John", "jdoe", "one.test"),
                ("", "x", "y.test"),
            ],
        ),
        ("Undisclosed recipients:;", []),
        # RFC 5322 appendix A.5: comments and whitespace.
        (
            "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
            [("Pete", "pete", "silly.test")],
        ),
        # Old style: comment as the name.
        ("jdoe@machine.example (John Doe)", [("John Doe", "jdoe", "machine.example")]),
        # Obsolete: route, CFWS in local part and domain, empty elements, "." in phrase.
        ("<@node.test,@node2.test:mary@example.net>", [("", "mary", "example.net")]),
        ("john . doe @ example . com", [("", "john.doe", "example.com")]),
        ("a@b.test,,, c@d.test", [("", "a", "b.test"), ("", "c", "d.test")]),
        ("Joe Q. Public <john.q.public@example.com>", [("Joe Q. Public", "john.q.public", "example.com")]),
        # Quoted local parts: normalised.
        ('"john"@example.com', [("", "john", "example.com")]),
        ('"john doe"@example.com', [("", '"john doe"', "example.com")]),
        ('"a\\"b"@example.com', [("", '"a\\"b"', "example.com")]),
        # Encoded-words in names, also (wrongly) inside quotes; UTF-8 names and IDN hosts.
        (
            "=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
            [("André Pirard", "PIRARD", "vm1.ulg.ac.be")],
        ),
        ('"=?utf-8?q?J=C3=B6rg?=" <j@example.de>', [("Jörg", "j", "example.de")]),
        ("=?utf-8?q?A?= =?utf-8?q?B?= <ab@example.com>", [("AB", "ab", "example.com")]),
        ("Jörg <jörg@bücher.example>", [("Jörg", "jörg", "xn--bcher-kva.example")]),
        # IP literal.
        ("root@[192.0.2.1]", [("", "root", "[192.0.2.1]")]),
        # Garbage and edge cases.
        ("<>", []),
        ("", []),
        ("undisclosed-recipients", [("", "undisclosed-recipients", "")]),
        ("Just A Name", [("Just A Name", "", "")]),
        ('"unterminated <a@b.test>', [("unterminated <a@b.test>", "", "")]),
        ("a@b.test (unclosed comment", [("unclosed comment", "a", "b.test")]),
        ("<a@b.test", [("", "a", "b.test")]),
        ("Name <a@b.test> trailing junk, c@d.test", [("Name", "a", "b.test"), ("", "c", "d.test")]),
    ],
)
def test_parse_address_list(value: str, expected: list[tuple[str, str, str]]) -> None:
    assert triples(value) == expected


def test_address_str() -> None:
    assert str(Address("", "a", "b.test")) == "a@b.test"
    assert str(Address("Mary Smith", "mary", "x.test")) == "Mary Smith <mary@x.test>"
    assert str(Address("Smith, Mary", "mary", "x.test")) == '"Smith, Mary" <mary@x.test>'


def test_envelope_from_headers() -> None:
    raw = (
        b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
        b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
        b"Subject: =?utf-8?q?afternoon?=\r\n meeting\r\n"
        b"To: mooch@owatagu.siam.edu.example\r\n"
        b"To: second@example.org\r\n"
        b"Cc: a@b.test\r\nBcc: c@d.test\r\nReply-To: r@e.test\r\nSender: s@f.test\r\n"
        b"In-Reply-To: <parent@example>\r\n"
        b"Message-Id: <B27397-0100000@Blurdybloop.example>\r\n"
        b"Message-Id: <second@example>\r\n"
        b"\r\nHello Joe\r\n"
    )
    env = parse(raw).envelope
    assert env is not None
    assert env == parse_envelope(parse_headers(raw))
    assert env.date == "Mon, 7 Feb 1994 21:52:25 -0800 (PST)"
    assert env.subject == "afternoon meeting"
    assert [a.user for a in env.to] == ["mooch", "second"]
    assert [a.user for a in env.cc] == ["a"]
    assert [a.user for a in env.bcc] == ["c"]
    assert [a.user for a in env.reply_to] == ["r"]
    assert [a.user for a in env.sender] == ["s"]
    assert env.in_reply_to == "<parent@example>"
    assert env.message_id == "<B27397-0100000@Blurdybloop.example>"


def test_parse_date() -> None:
    d = parse_date("Mon, 7 Feb 1994 21:52:25 -0800 (PST)")
    assert d == dt.datetime(1994, 2, 7, 21, 52, 25, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    d = parse_date("7 Feb 1994 21:52 GMT")
    assert d is not None and d.utcoffset() == dt.timedelta(0)
    assert parse_date("not a date") is None
    assert parse_date("") is None
