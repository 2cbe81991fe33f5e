"""Message previews (RFC 8970)."""

from __future__ import annotations

import pytest

from mox.message import html_to_text, parse, preview, preview_part


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Upstream mox's table.
        ("", ""),
        ("single line", "single line\n"),
        ("single line\n", "single line\n"),
        ("> quoted\n", "[...]\n"),
        ("> quoted\nresponse\n", "[...]\nresponse\n"),
        ("> quoted\n[...]\nresponse after author snip\n", "[...]\nresponse after author snip\n"),
        ("[...]\nresponse after author snip\n", "[...]\nresponse after author snip\n"),
        ("[…]\nresponse after author snip\n", "[…]\nresponse after author snip\n"),
        (
            ">> quoted0\n> quoted1\n>quoted2\n[...]\nresponse after author snip\n",
            "[...]\nresponse after author snip\n",
        ),
        (">quoted\n\n>quoted\ncoalesce line-separated quotes\n", "[...]\ncoalesce line-separated quotes\n"),
        ("On <date> <user> wrote:\n> hi\nresponse", "[...]\nresponse\n"),
        ("On <longdate>\n<user> wrote:\n> hi\nresponse", "[...]\nresponse\n"),
        ("> quote\nresponse\n--\nsignature\n", "[...]\nresponse\n"),
        ("> quote\nline1\nline2\nline3\n", "[...]\nline1\nline2\nline3\n"),
        # More.
        ("Hi,\r\n\r\nsee you at 10.\r\n\r\n-- \r\nBob\r\nexample.org\r\n", "Hi,\nsee you at 10.\n"),
        ("On Mon, 2 Jan 2023, Bob wrote:\n> question?\n\nanswer", "[...]\nanswer\n"),
    ],
)
def test_preview(body: str, expected: str) -> None:
    assert preview(body) == expected


def test_preview_is_at_most_256_characters() -> None:
    s = preview("é" * 1000)
    assert len(s) == 256


def test_html_to_text() -> None:
    markup = """<!doctype html><html><head><title>t</title><style>x{}</style><script>s()</script></head>
<body><div>line1</div><div>line2</div>
<div><a href="about:blank">link1   </a> text <span>word</span><span>word2</span>.</div>
<table><tr><td>col1</td><th>col2</th></tr><tr><td>row2</td></tr></table><br>after&nbsp;br &amp; more
</body></html>"""
    assert (
        preview(html_to_text(markup))
        == "line1\nline2\nlink1 text wordword2.\ncol1 col2\nrow2\nafter\xa0br & more\n"
    )
    quoted = (
        "<div>On ... someone wrote:</div><blockquote>something worth replying</blockquote><div>agreed</div>"
    )
    assert preview(html_to_text(quoted)) == "[...]\nagreed\n"


def test_preview_part_picks_first_text_part_and_skips_attachments() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nattached text\r\n"
        b"--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n"
        b"--c\r\nContent-Type: text/html\r\n\r\n<p>the html</p>\r\n"
        b"--c\r\nContent-Type: text/plain\r\n\r\nthe text\r\n--c--\r\n"
        b"--b--\r\n"
    )
    assert preview_part(parse(raw), raw) == "the html\n"
    raw = b"Content-Type: multipart/encrypted; boundary=b\r\n\r\n--b\r\n\r\nsecret\r\n--b--\r\n"
    assert preview_part(parse(raw), raw) == ""
    raw = b"Content-Type: image/png\r\n\r\nxx"
    assert preview_part(parse(raw), raw) == ""
    raw = b"Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n"
    assert preview_part(parse(raw), raw) == "café\n"
