"""Base subject for threading (RFC 5256 section 2.1), with common non-English prefixes.

The base subject is what remains of a subject after removing reply and
forward markers and mailing list tags, so a reply matches its original:
"Re: [list] Fwd: Hello (fwd)" and "hello" have the same base subject.
RFC 5256 section 2.1 defines the steps, implemented in :func:`thread_subject`:

1. decode RFC 2047 encoded-words, turn tabs and line breaks into spaces,
   collapse runs of spaces (and, as upstream mox, lower-case everything);
2. remove trailing "(fwd)" and whitespace, repeatedly;
3. remove leading "re:", "fw:", "fwd:", each optionally preceded by
   "[blob]"s and optionally followed by one "[blob]" before the colon;
4. remove a leading "[blob]" if something remains after it;
5. repeat 3 and 4; 6. unwrap "[fwd: ...]" and start again at 2.

Extensions beyond the RFC (the ABNF of section 5 allows only re/fw/fwd):
reply/forward prefixes of other languages (:data:`RESPONSE_PREFIXES`),
counters as in "Re[2]:" (already a blob in the RFC), "Re(2):" and "Re^2:",
and the full-width colon of CJK mailers.
"""

from __future__ import annotations

import re

from .encodedword import decode_words

RESPONSE_PREFIXES = (
    "re",  # RFC 5256, Latin "in re".
    "fwd",
    "fw",  # RFC 5256.
    "aw",  # German "Antwort".
    "wg",  # German "Weitergeleitet".
    "sv",  # Danish, Norwegian, Swedish "svar".
    "vs",  # Finnish "vastaus".
    "vb",  # Swedish "vidarebefordrat".
    "antw",  # Dutch "antwoord".
    "doorst",  # Dutch "doorgestuurd".
    "tr",  # French "transféré".
    "rif",  # Italian "riferimento".
    "odp",  # Polish "odpowiedź".
    "ynt",  # Turkish "yanıt".
    "回复",  # Chinese (simplified) reply.
    "回覆",  # Chinese (traditional) reply.
    "答复",  # Chinese reply (Outlook).
    "转发",  # Chinese (simplified) forward.
    "轉寄",  # Chinese (traditional) forward.
)
"""Lower-case reply/forward markers removed from the start of a subject, when followed by a colon."""

_BLOB = r"\[[^\[\]]*\] *"  # RFC 5256 section 5: subj-blob = "[" *BLOBCHAR "]" *WSP
_PREFIX = "|".join(re.escape(p) for p in sorted(RESPONSE_PREFIXES, key=len, reverse=True))
# RFC 5256 section 5: subj-leader = (*subj-blob subj-refwd) / WSP;
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; extended with counters.
_LEADER = re.compile(rf"(?:{_BLOB})*(?:{_PREFIX})(?: *(?:\(\d+\)|\^\d+))? *(?:{_BLOB})?[:\uff1a]")
_BLOB_RE = re.compile(_BLOB)
_WS = re.compile(r"[ \t\n]+")


def thread_subject(subject: str, *, allow_null: bool = False) -> tuple[str, bool]:
    """Return the base subject and whether the subject marks a reply or forward.

    RFC 2047 encoded-words are decoded first (a subject that is already
    decoded is fine, unless it literally contains "=?...?=" text). The base
    subject is lower-cased. If allow_null is false, a base subject containing
    a NUL character is returned as "" (as upstream: such subjects are not
    matched).
    """
    s = decode_words(subject) if "=?" in subject else subject
    # Step 1.
    s = _WS.sub(" ", s.replace("\r", "").lower())
    is_response = False
    while True:
        # Step 2: trailing subj-trailer = "(fwd)" / WSP.
        while True:
            s = s.rstrip(" ")
            if not s.endswith("(fwd)"):
                break
            s = s[:-5]
            is_response = True
        # Steps 3, 4, 5.
        while True:
            prev = s
            # Step 3: subj-leader, repeatedly.
            while True:
                if s.startswith(" "):
                    s = s[1:]
                    continue
                m = _LEADER.match(s)
                if m is None:
                    break
                s = s[m.end() :]
                is_response = True
            # Step 4: a leading subj-blob, if a non-empty base subject remains.
            m = _BLOB_RE.match(s)
            if m is not None and s[m.end() :].strip(" "):
                s = s[m.end() :]
            if s == prev:
                break
        # Step 6: subj-fwd = "[fwd:" subject "]".
        if s.startswith("[fwd:") and s.endswith("]"):
            s = s[5:-1]
            is_response = True
            continue
        break
    if not allow_null and "\x00" in s:
        s = ""
    return s, is_response
