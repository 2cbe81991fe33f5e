"""Parsing of Internet messages: MIME structure, headers, addresses, threading keys.

Pure functions over bytes, no I/O, never raising on malformed input. The
RFCs: 5322 (message format), 6532 (UTF-8 headers), 2045/2046 (MIME), 2047
(encoded-words), 2183 (Content-Disposition), 2231 (parameter encoding),
3501/9051 (the IMAP views: ENVELOPE, BODYSTRUCTURE, section numbers), 5256
(base subject for threading), 8970 (preview).

- :func:`parse` gives the MIME tree (:class:`Part`) with byte offsets.
- :func:`parse_headers`, :func:`header_values`, :func:`decode_words` for
  header fields; :func:`parse_address_list` for address fields.
- :func:`normalize_message_id`, :func:`referenced_ids` and
  :func:`thread_subject` compute the keys used for threading.
- :func:`preview` makes the short text shown next to a subject.
"""

from __future__ import annotations

from .address import Address, parse_address_list
from .charset import decode_charset
from .encodedword import decode_words
from .envelope import Envelope, parse_date, parse_envelope
from .headers import header_value, header_values, parse_headers, unfold
from .messageid import normalize_message_id, referenced_ids
from .params import parse_value
from .part import MAX_NESTING_DEPTH, Part, parse
from .preview import html_to_text, preview, preview_part
from .threadsubject import thread_subject
from .transfer import decode_base64, decode_quoted_printable, decode_transfer

__all__ = [
    "MAX_NESTING_DEPTH",
    "Address",
    "Envelope",
    "Part",
    "decode_base64",
    "decode_charset",
    "decode_quoted_printable",
    "decode_transfer",
    "decode_words",
    "header_value",
    "header_values",
    "html_to_text",
    "normalize_message_id",
    "parse",
    "parse_address_list",
    "parse_date",
    "parse_envelope",
    "parse_headers",
    "parse_value",
    "preview",
    "preview_part",
    "referenced_ids",
    "thread_subject",
    "unfold",
]
