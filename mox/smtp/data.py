"""Message data as it arrives after DATA or BDAT, incrementally and with bounded memory.

DATA (RFC 5321 section 4.1.1.4): the message ends at ``CRLF . CRLF``; a line
starting with a dot has it doubled by the client and removed here
(dot-unstuffing, section 4.5.2). Only CRLF ends a line (section 2.3.8).

As upstream: a bare CR anywhere, and a dot line next to a bare LF
(``\\n.\\n``, ``\\n.\\r\\n``, ``\\r\\n.\\n``), make the message invalid
(SMTP smuggling, CVE-2023-51764 and relatives); the rest of the data is
still read up to the real end, so the reply stays in sync. Other bare LFs are
accepted and, unless pedantic, written as CRLF; pedantic mode refuses them.

BDAT (RFC 3030 section 2): exactly the announced number of octets, no
stuffing; :class:`BdatReader` counts them.

Both keep :class:`ContentStats`: size (with a limit past which data is
counted but no longer written, RFC 1870 section 6.3: the 552 comes after the
data), 8-bit octets (RFC 6152 section 3), NUL octets (RFC 5322 section 2.1
excludes them), and the longest line (RFC 5321 section 4.5.3.1.6).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ContentStats:
    """What has been seen of a message so far."""

    max_size: int
    size: int = 0  # octets of message content, counted also past max_size
    too_large: bool = False
    has_8bit: bool = False
    has_nul: bool = False
    bare_cr: int = 0
    bare_lf: int = 0
    smuggling: bool = False  # dot line next to a bare LF
    max_line: int = 0  # longest line including CRLF
    _cur_line: int = 0
    _pending_cr: bool = False

    def count_bare(self, seg: bytes) -> None:
        """Count CRs and LFs not part of a CRLF pair, over consecutive segments."""
        if not seg:
            return
        joined = 1 if (self._pending_cr and seg[:1] == b"\n") else 0
        pairs = seg.count(b"\r\n") + joined
        ends_cr = seg.endswith(b"\r")
        crs = seg.count(b"\r") + (1 if self._pending_cr else 0) - (1 if ends_cr else 0)
        self.bare_cr += crs - pairs
        self.bare_lf += seg.count(b"\n") - pairs
        self._pending_cr = ends_cr

    def finish_bare(self) -> None:
        """At the end of the message a pending CR is bare."""
        if self._pending_cr:
            self.bare_cr += 1
            self._pending_cr = False

    def add_content(self, seg: bytes) -> bool:
        """Account for message content; False once the message is over the size limit."""
        self.size += len(seg)
        if not self.has_8bit and not seg.isascii():
            self.has_8bit = True
        if not self.has_nul and b"\x00" in seg:
            self.has_nul = True
        nl = seg.rfind(b"\n")
        if nl < 0:
            self._cur_line += len(seg)
            self.max_line = max(self.max_line, self._cur_line)
        else:
            first = seg.find(b"\n")
            longest = self._cur_line + first + 1
            if first != nl:
                longest = max(longest, *(len(x) + 1 for x in seg[first + 1 : nl].split(b"\n")))
            self.max_line = max(self.max_line, longest)
            self._cur_line = len(seg) - nl - 1
        if self.size > self.max_size:
            self.too_large = True
        return not self.too_large


@dataclass(frozen=True, slots=True)
class Fed:
    """Result of one feed: message content to write, input octets consumed, and whether the message ended."""

    content: bytes
    consumed: int
    done: bool


class DataReader:
    """Decoder for DATA content: dot-unstuffing and end detection, fed in pieces.

    Args:
        max_size: content octets allowed; beyond it data is drained, not returned.
        pedantic: bare LF are counted as errors instead of written as CRLF.
    """

    def __init__(self, max_size: int, pedantic: bool = False) -> None:
        self.stats = ContentStats(max_size)
        self.pedantic = pedantic
        self.done = False
        self._line_start = True  # after CRLF, or at the start
        self._after_bare_lf = False

    def feed(self, buf: bytes) -> Fed:
        """Consume what can be consumed of buf.

        Returns:
            The content (empty once over the limit), how many octets of buf
            were used (the rest is either a possible start of the end marker,
            kept until more arrives, or the commands after the end), and
            whether the end marker was seen.
        """
        if self.done:
            return Fed(b"", 0, True)
        out: list[bytes] = []
        i = 0
        n = len(buf)
        st = self.stats
        while i < n:
            if self._line_start and not self._after_bare_lf and buf[i : i + 1] != b"." and not st._pending_cr:
                # Fast path: a run of whole CRLF lines up to the next line that starts with a
                # dot, taken with a few bulk operations instead of line by line. Only used
                # when the run has no bare CR or LF, so nothing needs counting or fixing.
                dot = buf.find(b"\n.", i)
                limit = n if dot < 0 else dot + 1
                last = buf.rfind(b"\n", i, limit)
                if last > i:
                    seg = buf[i : last + 1]
                    pairs = seg.count(b"\r\n")
                    if pairs == seg.count(b"\n") and pairs == seg.count(b"\r"):
                        out.append(seg)
                        i = last + 1
                        continue
            if self._line_start or self._after_bare_lf:
                rem = buf[i : i + 3]
                if self._line_start and rem == b".\r\n":
                    # RFC 5321 section 4.1.1.4: end of mail data.
                    i += 3
                    self.done = True
                    st.finish_bare()
                    return Fed(self._emit(out), i, True)
                if rem in (b".", b".\r"):
                    break  # need more to decide
                if rem.startswith(b".\n") or (self._after_bare_lf and rem == b".\r\n"):
                    st.smuggling = True
                if self._line_start and rem.startswith(b"."):
                    i += 1  # RFC 5321 section 4.5.2: remove the stuffed dot
                self._line_start = False
                self._after_bare_lf = False
            j = buf.find(b"\n", i)
            if j < 0:
                seg = buf[i:]
                i = n
                st.count_bare(seg)
                out.append(seg)
                break
            seg = buf[i : j + 1]
            pending = st._pending_cr
            before = st.bare_lf
            st.count_bare(seg)
            crlf = seg.endswith(b"\r\n") or (seg == b"\n" and pending)
            if crlf:
                self._line_start = True
            else:
                self._after_bare_lf = True
                if not self.pedantic and st.bare_lf > before:
                    seg = seg[:-1] + b"\r\n"
            out.append(seg)
            i = j + 1
        return Fed(self._emit(out), i, False)

    def _emit(self, out: list[bytes]) -> bytes:
        data = b"".join(out)
        if not data:
            return b""
        if self.stats.too_large:
            self.stats.add_content(data)
            return b""
        if not self.stats.add_content(data):
            return b""
        return data

    def error(self) -> str:
        """Why the message must be refused, or empty; checked when done."""
        st = self.stats
        if st.bare_cr or st.smuggling:
            return "invalid bare \\r or \\n, may be smtp smuggling"
        if self.pedantic and st.bare_lf:
            return "invalid bare \\n, lines must end with \\r\\n"
        return ""


class BdatReader:
    """Counts out the octets of one BDAT chunk (RFC 3030 section 2), updating shared stats."""

    def __init__(self, size: int, stats: ContentStats) -> None:
        self.remaining = size
        self.stats = stats

    @property
    def done(self) -> bool:
        return self.remaining == 0

    def feed(self, buf: bytes) -> Fed:
        """Take up to the rest of the chunk from buf; content is empty when over the size limit."""
        take = min(self.remaining, len(buf))
        seg = buf[:take]
        self.remaining -= take
        st = self.stats
        if seg:
            st.count_bare(seg)
            if st.too_large or not st.add_content(seg):
                seg = b""
        return Fed(seg, take, self.remaining == 0)
