"""mox.imapproto.msgcache: cached ENVELOPE/BODY/BODYSTRUCTURE equal what FETCH computes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mox.imapproto import msgcache
from mox.imapproto import write as w
from mox.message.envelope import Envelope
from mox.message.part import parse

ASCII_MSG = b"From: Bob <bob@example.org>\r\nSubject: hi\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n"
UTF8_MSG = (
    "From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\nTo: ü@exämple.org\r\nSubject: =?utf-8?b?w7xiZXI=?=\r\n"
    'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: text/plain; charset=utf-8; name="ä.txt"\r\n'
    "Content-Transfer-Encoding: base64\r\n\r\nw6Q=\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n--x--\r\n"
).encode()


def _fresh(raw: bytes, utf8: bool) -> tuple[bytes, bytes, bytes]:
    p = parse(raw)
    return w.envelope(p.envelope or Envelope(), utf8), w.body_structure(p, False, utf8), w.body_structure(p, True, utf8)


def _cached(c: msgcache.MessageCache, utf8: bool) -> tuple[bytes, bytes, bytes]:
    return c.fetch_envelope(utf8), c.fetch_body(utf8), c.fetch_bodystructure(utf8)


def test_cache_equals_fresh_values_and_round_trips() -> None:
    for raw in (ASCII_MSG, UTF8_MSG):
        part = parse(raw)
        c = msgcache.build(part)
        d = msgcache.decode(msgcache.encode_part(part))
        assert d is not None
        for utf8 in (False, True):
            assert _cached(c, utf8) == _fresh(raw, utf8)
            assert _cached(d, utf8) == _fresh(raw, utf8)
        assert d.body_offset == part.body_offset and d.flags == c.flags
    # Non-ASCII values differ between UTF-8 and other sessions; both are kept.
    c = msgcache.build(parse(UTF8_MSG))
    assert c.fetch_envelope(True) != c.fetch_envelope(False)
    assert b"=?utf-8?b?" in c.fetch_envelope(False)
    # ASCII-only messages store the values once.
    assert len(msgcache.encode_part(parse(ASCII_MSG))) < 40 + 2 * len(b"".join(_fresh(ASCII_MSG, False)))


def test_decode_rejects_other_versions_and_damage() -> None:
    data = msgcache.encode_part(parse(ASCII_MSG))
    assert msgcache.decode(bytes([msgcache.VERSION + 1]) + data[1:]) is None
    assert msgcache.decode(data[:-1]) is None
    assert msgcache.decode(data + b"x") is None
    assert msgcache.decode(b"") is None


def test_search_flags() -> None:
    assert msgcache.search_flags(parse(ASCII_MSG)) == msgcache.PLAIN_TEXT | msgcache.SINGLE_TEXT
    assert msgcache.search_flags(parse(UTF8_MSG)) == 0  # base64 text part
    qp = b"Content-Transfer-Encoding: quoted-printable\r\n\r\na=3Db\r\n"
    assert msgcache.search_flags(parse(qp)) == msgcache.SINGLE_TEXT
    sjis = b"Content-Type: text/plain; charset=shift_jis\r\n\r\nabc\r\n"
    assert msgcache.search_flags(parse(sjis)) == msgcache.SINGLE_TEXT
    latin = b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nabc\r\n"
    assert msgcache.search_flags(parse(latin)) == msgcache.PLAIN_TEXT | msgcache.SINGLE_TEXT
    multi = b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n'
    assert msgcache.search_flags(parse(multi)) == msgcache.PLAIN_TEXT
    c = msgcache.build(parse(multi))
    assert [multi[a:b] for a, b in c.text_ranges] == [b"x"]
    assert msgcache.build(parse(qp)).text_ranges == []
    c = msgcache.build(parse(ASCII_MSG))
    assert [ASCII_MSG[a:b] for a, b in c.text_ranges] == [b"body\r\n"]
    d = msgcache.decode(c.encoded())
    assert d is not None and d.text_ranges == c.text_ranges


header_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(header_text, header_text, st.sampled_from(["text/plain", "image/png", "multipart/mixed"]), st.binary(max_size=50))
def test_cache_equals_fresh_values_for_any_message(subject: str, name: str, ctype: str, body: bytes) -> None:
    raw = (f"From: {name} <a@example.org>\r\nSubject: {subject}\r\nContent-Type: {ctype}; boundary=z\r\n\r\n").encode() + body
    c = msgcache.build(parse(raw))
    d = msgcache.decode(c.encoded())
    assert d is not None
    for utf8 in (False, True):
        assert _cached(d, utf8) == _fresh(raw, utf8)


def test_invalid_idn_host_in_address() -> None:
    # Not a valid IDN: non-UTF-8 sessions get the host as a literal, delivery is unaffected.
    raw = 'From: x <a@"\x80.example>\r\nTo: b@bad\x80host\r\n\r\nbody\r\n'.encode()
    data = msgcache.encode_part(parse(raw))
    d = msgcache.decode(data)
    assert d is not None
    for utf8 in (False, True):
        assert _cached(d, utf8) == _fresh(raw, utf8)
