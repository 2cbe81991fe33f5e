"""SEARCH BODY/TEXT decided from raw bytes (mox.imapserver.search.text_fast) agrees with the
full evaluation on decoded text, for messages with transfer encodings, charsets, encoded-words,
folded headers and multiparts."""

from __future__ import annotations

import base64
import quopri

from hypothesis import given, settings
from hypothesis import strategies as st

from mox.imapproto import msgcache
from mox.imapproto import parse as p
from mox.imapserver.search import _header_matches, fast_needle, header_excludes, text_fast, text_full
from mox.message.headers import parse_headers
from mox.message.part import parse

WORDS = ["invoice", "Invoice", "INVOICE", "report", "kelvin", "İnvoice", "\u212aelvin", "straße", "héllo", "foo bar", "x"]
CHARSETS = [None, "utf-8", "us-ascii", "iso-8859-1", "iso-8859-9", "shift_jis", "utf-16"]
CTES = ["7bit", "8bit", "base64", "quoted-printable"]


def _encode_body(text: str, charset: str | None, cte: str) -> bytes:
    data = text.encode(charset or "utf-8", errors="replace")
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if cte == "quoted-printable":
        return quopri.encodestring(data).replace(b"\n", b"\r\n")
    return data.replace(b"\n", b"\r\n")


def _part(media: str, charset: str | None, cte: str, text: str) -> bytes:
    ct = f"Content-Type: {media}" + (f"; charset={charset}" if charset else "") + "\r\n"
    return (ct + f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode() + _encode_body(text, charset, cte)


texts = st.lists(st.sampled_from([*WORDS, " ", "\n", "a", "K"]), max_size=12).map("".join)
leaf = st.tuples(st.sampled_from(["text/plain", "text/html", "application/octet-stream"]), st.sampled_from(CHARSETS), st.sampled_from(CTES), texts)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    subject = draw(texts).replace("\n", " ")
    how = draw(st.sampled_from(["raw", "b", "q", "fold"]))
    if how == "b":
        subj = b"=?utf-8?b?" + base64.b64encode(subject.encode()) + b"?="
    elif how == "q":
        subj = b"=?iso-8859-1?q?" + quopri.encodestring(subject.encode("latin-1", "replace"), header=True).strip() + b"?="
    elif how == "fold":
        subj = subject.replace(" ", "\r\n ", 1).encode()
    else:
        subj = subject.encode()
    header = b"From: a@example.org\r\nSubject: " + subj + b"\r\nX-Invoice: " + draw(texts).replace("\n", " ").encode() + b"\r\n"
    parts = draw(st.lists(leaf, min_size=1, max_size=3))
    if len(parts) == 1:
        media, cs, cte, text = parts[0]
        return header + _part(media, cs, cte, text)
    body = b"".join(b"--b0\r\n" + _part(*p) + b"\r\n" for p in parts)
    return header + b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n' + body + b"--b0--\r\n"


@settings(max_examples=400, deadline=None)
@given(messages(), st.sampled_from(["BODY", "TEXT"]), st.sampled_from([*WORDS, "k", "i", "invoice report", "x-invoice", "subject"]))
def test_text_fast_agrees_with_full_evaluation(raw: bytes, op: str, needle: str) -> None:
    part = parse(raw)
    cache = msgcache.build(part)
    want = text_full(op, needle.lower(), part, raw)
    nb = fast_needle(needle)
    if not nb:
        assert not needle.isascii()
        return
    got = text_fast(op, nb, cache, raw)
    assert got is None or got == want, (got, want)


def _check(raw: bytes, op: str, needle: str, want: bool) -> bool | None:
    part = parse(raw)
    assert text_full(op, needle.lower(), part, raw) is want
    got = text_fast(op, fast_needle(needle), msgcache.build(part), raw)
    assert got is None or got is want
    return got


def test_text_fast_cases() -> None:
    plain = b"Subject: hello\r\n\r\nThe INVOICE is attached.\r\n"
    assert _check(plain, "TEXT", "invoice", True) is True
    assert _check(plain, "BODY", "hello", False) is False
    assert _check(plain, "TEXT", "hello", True) is None  # Header hits are checked by the full evaluation.
    assert _check(plain, "TEXT", "nothere", False) is False
    # A field name is not a value.
    assert _check(plain, "TEXT", "subject", False) is None
    # Folded header: the space after the fold is part of the unfolded value.
    folded = b"Subject: quarterly\r\n report\r\n\r\nbody\r\n"
    assert _check(folded, "TEXT", "quarterly report", True) is None
    # Transfer encodings and encoded-words are decoded by the full evaluation only.
    b64 = b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"an invoice") + b"\r\n"
    assert _check(b64, "BODY", "invoice", True) is None
    qp = b"Content-Transfer-Encoding: quoted-printable\r\n\r\ninv=\r\noice\r\n"
    assert _check(qp, "BODY", "invoice", True) is None
    ew = b"Subject: =?utf-8?q?inv=6Fice?=\r\n\r\nbody\r\n"
    assert _check(ew, "TEXT", "invoice", True) is None
    # U+212A KELVIN SIGN lower-cases to ASCII "k": raw bytes cannot rule out a match.
    kelvin = "Content-Type: text/plain; charset=utf-8\r\n\r\n\u212aelvin\r\n".encode()
    assert _check(kelvin, "BODY", "kelvin", True) is None
    # Shift_JIS and UTF-16 text: ASCII bytes do not map to ASCII characters.
    utf16 = b"Content-Type: text/plain; charset=utf-16\r\n\r\n" + "invoice".encode("utf-16")
    assert _check(utf16, "BODY", "invoice", True) is None
    # Multipart: matches in text parts count, in MIME headers and other parts they do not.
    multi = (
        b'Subject: m\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\n'
        b"see the Invoice\r\n--z\r\nContent-Type: application/pdf; name=invoice.pdf\r\n\r\nreport\r\n--z--\r\n"
    )
    assert _check(multi, "BODY", "invoice", True) is True
    assert _check(multi, "BODY", "report", False) is False
    assert _check(multi, "TEXT", "pdf", False) is False
    assert fast_needle("straße") == b""
    assert fast_needle("a\r\nb") == b""
    assert fast_needle("") == b""


@settings(max_examples=300, deadline=None)
@given(messages(), st.sampled_from(["SUBJECT", "FROM", "X-Invoice", "X-None"]), st.sampled_from([*WORDS, "k", "", "invoice report", "a@"]))
def test_header_keys_from_raw_header_agree(raw: bytes, field: str, needle: str) -> None:
    part = parse(raw)
    key = p.SearchKey("HEADER", text=needle, field=field) if field.startswith("X-") else p.SearchKey(field, text=needle)
    want = _header_matches(key, part.headers(raw))
    header = raw[: part.body_offset]
    assert _header_matches(key, parse_headers(header)) == want
    nb = fast_needle(needle)
    if nb and header_excludes(nb, header):
        assert not want
