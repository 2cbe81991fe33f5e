"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3).

Printable US-ASCII except "&" stands for itself, "&" is written "&-", and
any other run of characters is UTF-16BE in modified base64 ("," for "/",
no padding) between "&" and "-". Decoding is strict: a name that a correct
encoder could not have produced (printable ASCII encoded, padding bits set,
an unpaired surrogate, adjacent encoded runs, raw non-printable bytes) is an
error, as RFC 3501 asks servers to refuse such names.
"""

from __future__ import annotations

import base64

__all__ = ["UTF7Error", "decode", "encode"]


class UTF7Error(ValueError):
    """A mailbox name is not valid modified UTF-7."""


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"


def _direct(c: str) -> bool:
    return 0x20 <= ord(c) <= 0x7E


def encode(name: str) -> str:
    """Encode a Unicode mailbox name as modified UTF-7."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = "".join(run).encode("utf-16-be", "surrogatepass")
            b = base64.b64encode(data, altchars=b"+,").rstrip(b"=")
            out.append("&" + b.decode("ascii") + "-")
            run.clear()

    for c in name:
        if _direct(c):
            flush()
            out.append("&-" if c == "&" else c)
        else:
            run.append(c)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    """Decode a modified UTF-7 mailbox name.

    Raises:
        UTF7Error: the name is not valid modified UTF-7.
    """
    out: list[str] = []
    i = 0
    n = len(name)
    prev_encoded = False
    while i < n:
        c = name[i]
        if not _direct(c):
            raise UTF7Error(f"character {c!r} not allowed in modified UTF-7 name")
        if c != "&":
            out.append(c)
            i += 1
            prev_encoded = False
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise UTF7Error("unterminated base64 run in mailbox name")
        b = name[i + 1 : end]
        i = end + 1
        if not b:
            out.append("&")
            prev_encoded = False
            continue
        if prev_encoded:
            raise UTF7Error("adjacent base64 runs in mailbox name")
        prev_encoded = True
        bb = b.encode("ascii")
        if any(ch not in _B64 for ch in bb):
            raise UTF7Error("invalid character in base64 run of mailbox name")
        if len(bb) % 4 == 1:
            raise UTF7Error("bad base64 length in mailbox name")
        # Unused low bits of the last base64 character must be zero.
        nbits = len(bb) * 6
        extra = nbits % 16
        if extra:
            last = _B64.index(bb[-1])
            if last & ((1 << extra) - 1):
                raise UTF7Error("nonzero padding bits in base64 run of mailbox name")
        data = base64.b64decode(bb + b"=" * (-len(bb) % 4), altchars=b"+,", validate=True)
        if len(data) % 2:
            raise UTF7Error("odd number of bytes in base64 run of mailbox name")
        try:
            s = data.decode("utf-16-be")
        except UnicodeDecodeError as e:
            raise UTF7Error("invalid UTF-16 in mailbox name") from e
        for ch in s:
            if _direct(ch):
                raise UTF7Error("printable ASCII encoded in base64 run of mailbox name")
        out.append(s)
    return "".join(out)
