"""Message previews: a short text to show next to the subject (RFC 8970, IMAP PREVIEW).

RFC 8970 leaves the algorithm to the server ("Preview Text Format": at most 256
characters of plain text). As upstream mox: the first text/plain or text/html
part that is not an attachment is used; quoted text and the "On ... wrote:"
line introducing it become a single "[...]" line, a trailing signature
(a "--" line followed by a few lines) is left out, and lines are kept
(newline-separated), so callers may join or trim them.
"""

from __future__ import annotations

import html.parser
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .part import Part

PREVIEW_MAX_CHARS = 256
"""RFC 8970, preview text format: at most 256 characters."""

_TEXT_LIMIT = 1024 * 1024  # Look at no more than this much body text, as upstream.
_LOOKAHEAD = 10  # Lines of look-ahead for signatures and quotes, as upstream.
_SNIPPED = frozenset({"[...]", "[…]", "..."})


def preview(text: str) -> str:
    """Preview of a plain text body: at most 256 characters, lines ending in newline."""
    lines = [line.strip() for line in text[:_TEXT_LIMIT].split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # Text ending in a newline has no extra empty last line.
    n = len(lines)

    def window_end(i: int) -> int:
        return min(n, i + _LOOKAHEAD)

    def next_line_quoted(i: int) -> bool:
        # The line after i (skipping one empty line) is quoted or a snip mark.
        end = window_end(i)
        if i + 1 < end and lines[i + 1] == "":
            i += 1
        return i + 1 < end and (lines[i + 1].startswith(">") or lines[i + 1] in _SNIPPED)

    def is_signature(i: int) -> bool:
        # A line of only (at least two) dashes, then fewer than 5 lines without empty lines.
        if not lines[i].startswith("--") or lines[i].strip("-"):
            return False
        rest = lines[i + 1 : window_end(i)]
        while rest and rest[-1] == "":
            rest.pop()
        return len(rest) < 5 and "" not in rest

    result = ""

    def snipped() -> bool:
        return result.endswith("[...]\n") or result.endswith("[…]")

    i = 0
    # An "On <date>, <person> wrote:" wrapped over two lines before quoted text.
    if (
        window_end(0) > 3
        and lines[0].startswith("On ")
        and not lines[0].endswith("wrote:")
        and lines[1].endswith(":")
        and next_line_quoted(1)
    ):
        result = "[...]\n"
        i = 3
    while i < n and not is_signature(i):
        line = lines[i]
        i += 1
        if line.startswith(">"):
            if not snipped():
                result += "[...]\n"
            continue
        if line == "":
            continue
        # "On <date>, <person> wrote:" before quoted text: with digits, unless nothing came before.
        if (
            line.endswith(":")
            and (result == "" or any(c.isdigit() for c in line))
            and next_line_quoted(i - 1)
        ):
            if not snipped():
                result += "[...]\n"
            continue
        if line not in _SNIPPED or not snipped():
            result += line + "\n"
        if len(result.encode("utf-8")) > 250:
            break
    return result[:PREVIEW_MAX_CHARS]


# Text in these elements is not shown.
_IGNORE = frozenset({"dialog", "head", "map", "math", "script", "style", "svg", "template", "title"})
# Inline elements do not start a new line (MDN "inline text semantics"); td/th add a space.
_INLINE = frozenset(
    "a abbr b bdi bdo cite code data dfn em i kbd mark q rp rt ruby s samp small span strong sub sup "
    "time u var wbr del ins td th font img".split()
)
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SPACES = re.compile(r"[ \t]+")
_NEWLINES = re.compile(r"\n\n\n+")
_ZERO_WIDTH = re.compile("[\u00a0\u200b\u200c\u200d][\u00a0\u200b\u200c\u200d]+")
_HTML_TEXT_LIMIT = 4 * 1024


class _TextExtractor(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.stack: list[str] = []
        self.ignoring = 0
        self.quote_level = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(tag)
        if tag in _IGNORE:
            self.ignoring += 1
        if tag == "blockquote":
            self.quote_level += 1
        if tag in _VOID:
            self._close_top()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self._close_top()

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.stack:
            return  # Stray end tag.
        while self.stack:
            top = self.stack[-1]
            self._close_top()
            if top == tag:
                break

    def _close_top(self) -> None:
        tag = self.stack.pop()
        if tag in _IGNORE:
            self.ignoring -= 1
        if tag == "blockquote":
            self.quote_level -= 1
        if tag not in _INLINE:
            if not self.text.endswith("\n\n"):
                self.text += "\n"
        elif tag in ("td", "th") and not self.text.endswith(" "):
            self.text += " "

    def handle_data(self, data: str) -> None:
        if self.ignoring:
            return
        s = data.replace("\r", "").replace("\t", " ")
        s = _SPACES.sub(" ", s)
        s = _NEWLINES.sub("\n", s)
        s = _ZERO_WIDTH.sub("", s)
        inline = bool(self.stack) and self.stack[-1] in _INLINE
        ts = s.strip()
        if not inline and ts == "":
            return
        if ts or not (s.endswith(" ") or s.endswith("\n")):
            if self.quote_level > 0:
                q = "> " * self.quote_level
                s = "".join(q + line for line in s.splitlines(keepends=True))
            self.text += s


def html_to_text(markup: str) -> str:
    """Visible text of an HTML document, roughly as rendered; blockquotes become "> " lines.

    Gives up after about 4 KB of text (enough for a preview).
    """
    p = _TextExtractor()
    try:
        for i in range(0, min(len(markup), _TEXT_LIMIT), 4096):
            p.feed(markup[i : i + 4096])
            if len(p.text) >= _HTML_TEXT_LIMIT:
                break
        else:
            p.close()
    except Exception:  # html.parser is lenient, but never let a preview fail a caller.
        pass
    return _SPACES.sub(" ", p.text.strip())


def preview_part(part: Part, raw: bytes) -> str:
    """Preview of a message: from its first textual part that gives one (see module doc)."""
    stack: list[Part] = [part]
    while stack:
        p = stack.pop()
        if p.disposition == "attachment":
            continue
        ct = p.content_type
        if ct == "TEXT/PLAIN":
            s = preview(p.text(raw))
        elif ct == "TEXT/HTML":
            s = preview(html_to_text(p.text(raw)))
        elif ct == "MULTIPART/ENCRYPTED":
            continue
        else:
            children = p.parts[:1] if ct == "MULTIPART/SIGNED" else p.parts
            stack.extend(reversed(children))
            continue
        if s:
            return s
    return ""
