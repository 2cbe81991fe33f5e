"""Finding the aggregate report in a report message (RFC 7489 section 7.2.1.1).

The RFC allows any MIME structure; reports come as the whole message or as
an attachment, as plain XML, gzip or zip (with one file), sometimes labelled
application/octet-stream: the content is then recognised by its first bytes.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

from mox import message
from mox.dmarcrpt.feedback import MAX_REPORT_SIZE, Feedback, FeedbackError, parse_feedback
from mox.message import Part
from mox.tlsrpt.message import gunzip_limited

# Report messages larger than this are not looked at (as upstream: 15 MB).
MAX_MESSAGE_SIZE = 15 * 1024 * 1024


class NoReportError(FeedbackError):
    """The message has no part with an aggregate report."""


_XML_TYPES = {"text/xml", "application/xml"}
_GZIP_TYPES = {"application/gzip", "application/x-gzip", "application/gzip-compressed", "application/x-gzip-compressed"}
_ZIP_TYPES = {"application/zip", "application/x-zip", "application/x-zip-compressed", "application/zip-compressed"}


def _kind(p: Part, body: bytes) -> str:
    ct = p.content_type.lower()
    if ct in _XML_TYPES:
        return "xml"
    if ct in _GZIP_TYPES:
        return "gzip"
    if ct in _ZIP_TYPES:
        return "zip"
    if ct in ("application/octet-stream", "text/plain") or (p.filename() or "").lower().endswith((".xml", ".gz", ".zip")):
        # Recognise by content (magic numbers), as senders label reports loosely.
        if body.startswith(b"\x1f\x8b"):
            return "gzip"
        if body.startswith(b"PK\x03\x04"):
            return "zip"
        if body.lstrip()[:5] in (b"<?xml", b"<feed"):
            return "xml"
    return ""


def unzip_report(data: bytes) -> bytes:
    """The single file in a zip archive, at most MAX_REPORT_SIZE bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            files = [i for i in z.infolist() if not i.is_dir()]
            if len(files) != 1:
                raise FeedbackError(f"zip has {len(files)} files, expected 1")
            with z.open(files[0]) as f:
                out = f.read(MAX_REPORT_SIZE + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, RuntimeError) as e:
        raise FeedbackError(f"reading zip: {e}") from None
    if len(out) > MAX_REPORT_SIZE:
        raise FeedbackError(f"decompressed report larger than {MAX_REPORT_SIZE} bytes")
    return out


def _parts(p: Part) -> Iterator[Part]:
    yield p
    for c in p.parts:
        yield from _parts(c)


def parse_report_bytes(body: bytes, kind: str) -> Feedback:
    """Parse report content of a kind ("xml", "gzip", "zip")."""
    if kind == "gzip":
        try:
            body = gunzip_limited(body, MAX_REPORT_SIZE)
        except ValueError as e:
            raise FeedbackError(str(e)) from None
    elif kind == "zip":
        body = unzip_report(body)
    return parse_feedback(body)


def parse_message(data: bytes) -> Feedback:
    """Parse the aggregate report in a message: the first part holding one.

    Raises :class:`NoReportError` when there is none, :class:`FeedbackError`
    when the report is malformed.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise FeedbackError(f"message larger than {MAX_MESSAGE_SIZE} bytes")
    root = message.parse(data)
    for p in _parts(root):
        if p.is_multipart:
            continue
        body = p.decoded_body(data)
        kind = _kind(p, body)
        if kind:
            return parse_report_bytes(body, kind)
    raise NoReportError("no dmarc aggregate report found in message")
