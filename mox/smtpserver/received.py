"""The ``Received:`` trace header added to incoming messages (RFC 5321 section 4.4, RFC 3848, RFC 8314 section 4.3)."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

# RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters; fold there.
FOLD_WIDTH = 78


@dataclass
class ReceivedInfo:
    """What the trace header says about a connection and a message."""

    ehlo: str  # as the client gave it
    remote_ip: str
    remote_hostname: str = ""  # verified reverse name (iprev), if any
    local_hostname: str = ""
    local_ip: str = ""
    tls_version: str = ""  # e.g. "TLS1.3"
    tls_cipher: str = ""
    authenticated: bool = False
    smtputf8: bool = False
    connection_id: str = ""
    recipient: str = ""  # only for single-recipient messages, to not disclose others
    timestamp: float | None = None


def with_protocol(info: ReceivedInfo) -> str:
    """The protocol type for the "with" clause (RFC 3848; RFC 6531 section 3.7.3 for UTF8)."""
    proto = "ESMTP"
    if info.tls_version:
        proto += "S"
    if info.authenticated:
        proto += "A"
    if info.smtputf8:
        proto = "UTF8SMTP" + proto.removeprefix("ESMTP")
    return proto


def received_header(info: ReceivedInfo) -> bytes:
    """The complete header field, folded, ending in CRLF."""
    parts = [f"from {info.ehlo or '[' + info.remote_ip + ']'}"]
    remote = f"[{info.remote_ip}]" if ":" not in info.remote_ip else f"[IPv6:{info.remote_ip}]"
    parts.append(f"({info.remote_hostname} {remote})" if info.remote_hostname else f"({remote})")
    by = f"by {info.local_hostname}"
    if info.local_ip:
        by += f" ([{info.local_ip}])" if ":" not in info.local_ip else f" ([IPv6:{info.local_ip}])"
    parts.append(by)
    if info.tls_version:
        # Comment as RFC 8314 section 4.3 suggests.
        parts.append(f"({info.tls_version}{' ' + info.tls_cipher if info.tls_cipher else ''})")
    parts.append("via tcp")
    parts.append(f"with {with_protocol(info)}")
    if info.connection_id:
        parts.append(f"id {info.connection_id}")
    if info.recipient:
        parts.append(f"for <{info.recipient}>")
    date = email.utils.formatdate(info.timestamp, localtime=False)
    parts[-1] += ";"
    parts.append(date)
    return fold("Received", parts)


def fold(name: str, words: list[str]) -> bytes:
    """A header field from words, folded with CRLF + tab before words that would pass FOLD_WIDTH."""
    line = f"{name}:"
    out = []
    for w in words:
        if len(line) + 1 + len(w) > FOLD_WIDTH and line.strip() != f"{name}:":
            out.append(line)
            line = "\t" + w
        else:
            line += " " + w
    out.append(line)
    return ("\r\n".join(out) + "\r\n").encode("utf-8")
