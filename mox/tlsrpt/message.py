"""Finding the TLS report in a report message (RFC 8460 section 5.3)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from mox import message
from mox.message import Part
from mox.tlsrpt.report import MAX_REPORT_SIZE, Report, ReportError, parse_report

# Report messages larger than this are not looked at (as upstream: 15 MB).
MAX_MESSAGE_SIZE = 15 * 1024 * 1024


class NoReportError(ReportError):
    """The message has no application/tlsrpt+json or application/tlsrpt+gzip part."""


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress gzip data, refusing output larger than limit (a "zip bomb" stays small)."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise ReportError(f"decoding gzip: {e}") from None
    if len(out) > limit:
        raise ReportError(f"decompressed report larger than {limit} bytes")
    if not d.eof:
        raise ReportError("decoding gzip: truncated data")
    return out


def _parts(p: Part) -> Iterator[Part]:
    """The part and its descendants within this message (not into attached messages)."""
    yield p
    for c in p.parts:
        yield from _parts(c)


def parse_message(data: bytes) -> Report:
    """Parse the TLS report in a report message.

    Section 5.3 says multipart/report with report-type "tlsrpt" and a part of
    type application/tlsrpt+gzip (or +json); like upstream, a report that is the
    whole message, or in another multipart, is accepted too. The first such part
    counts. Raises :class:`NoReportError` when there is none, :class:`ReportError`
    when it is malformed.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise ReportError(f"message larger than {MAX_MESSAGE_SIZE} bytes")
    root = message.parse(data)
    for p in _parts(root):
        if p.content_type == "MULTIPART/REPORT":
            rt = p.params.get("report-type", "").lower()
            if rt and rt != "tlsrpt":
                raise ReportError(f"multipart/report with report-type {rt!r}, expected tlsrpt")
        ct = p.content_type.lower()
        if ct == "application/tlsrpt+json":
            return parse_report(p.decoded_body(data))
        if ct == "application/tlsrpt+gzip":
            return parse_report(gunzip_limited(p.decoded_body(data), MAX_REPORT_SIZE))
    raise NoReportError("no tlsrpt report found in message")
