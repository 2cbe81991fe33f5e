"""Benchmark: MIME parsing of messages (mox.message.parse), the cost of every delivery and import.

Generates a corpus of messages: plain text bodies of 2-30 KB, and
multipart/mixed messages with a multipart/alternative text+HTML part and a
base64 attachment. Parses the corpus N times and prints one JSON line with
messages per second and MB per second (best round), plus the cost of the
JSON form the store keeps (to_json + json.dumps, and back).

    .venv/bin/python bench/message_parse.py [--messages 500] [--rounds 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Report

from mox.message import Part, parse

_WORDS = (
    "the quick brown fox jumps over lazy dog mail server message header body part "
    "delivery queue account mailbox thread reply forward attachment invoice meeting"
).split()


def _text(rng: random.Random, size: int) -> bytes:
    lines: list[str] = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12)))
        lines.append(line)
        n += len(line) + 2
    return ("\r\n".join(lines) + "\r\n").encode()


def _header(rng: random.Random, i: int) -> bytes:
    received = b"".join(
        b"Received: from mx%d.example.org (mx%d.example.org [192.0.2.%d])\r\n\tby mail.example.com with ESMTPS id %d\r\n\tfor <rcpt@example.com>; Mon, 2 Jan 2023 15:04:05 +0000\r\n"
        % (k, k, k, rng.randrange(10**9))
        for k in range(3)
    )
    return received + (
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from:to:subject:date;\r\n"
        b"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=dGVzdA==\r\n"
        b"From: =?utf-8?q?J=C3=B6rg_Sender?= <sender@example.org>\r\n"
        b"To: Some One <rcpt@example.com>, other@example.com\r\n"
        b'Cc: "List, Members" <list@lists.example.net>\r\n'
        b"Subject: Re: [list] meeting notes %d\r\n"
        b"Date: Mon, 2 Jan 2023 15:04:05 +0000\r\n"
        b"Message-ID: <%d.%d@example.org>\r\n"
        b"In-Reply-To: <parent%d@example.org>\r\n"
        b"References: <root%d@example.org> <parent%d@example.org>\r\n"
        b"MIME-Version: 1.0\r\n" % (i, i, rng.randrange(10**9), i, i, i)
    )


def corpus(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    msgs: list[bytes] = []
    for i in range(n):
        h = _header(rng, i)
        if i % 2 == 0:
            body = _text(rng, rng.randint(2 * 1024, 30 * 1024))
            msgs.append(h + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body)
        else:
            text = _text(rng, rng.randint(1024, 8 * 1024))
            html = b"<html><body><p>" + text.replace(b"\r\n", b"</p>\r\n<p>") + b"</p></body></html>\r\n"
            att = base64.encodebytes(rng.randbytes(rng.randint(5 * 1024, 60 * 1024))).replace(b"\n", b"\r\n")
            b1 = b"----=_Part_%d_outer" % rng.randrange(10**9)
            b2 = b"----=_Part_%d_alt" % rng.randrange(10**9)
            msgs.append(
                h
                + b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\nThis is a multi-part message in MIME format.\r\n'
                % b1
                + b'--%s\r\nContent-Type: multipart/alternative; boundary="%s"\r\n\r\n' % (b1, b2)
                + b"--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
                % b2
                + text
                + b"--%s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                % b2
                + html
                + b"--%s--\r\n" % b2
                + b'--%s\r\nContent-Type: application/pdf; name="report.pdf"\r\n'
                b"Content-Disposition: attachment;\r\n filename*0*=utf-8''r%%C3%%A9port;\r\n filename*1=\".pdf\"\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" % b1 + att + b"--%s--\r\n" % b1
            )
    return msgs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    msgs = corpus(args.messages, args.seed)
    total = sum(len(m) for m in msgs)

    def best(fn: object) -> float:
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t0)
        return min(times)

    parse_s = best(lambda: [parse(m) for m in msgs])
    parts = [parse(m) for m in msgs]
    encoded = [json.dumps(p.to_json(), separators=(",", ":")) for p in parts]
    to_json_s = best(lambda: [json.dumps(p.to_json(), separators=(",", ":")) for p in parts])
    from_json_s = best(lambda: [Part.from_json(json.loads(s)) for s in encoded])
    result = {
        "bench": "message_parse",
        "messages": len(msgs),
        "bytes": total,
        "rounds": args.rounds,
        "parse_msgs_per_s": round(len(msgs) / parse_s),
        "parse_mb_per_s": round(total / parse_s / 1e6, 1),
        "parse_us_per_msg": round(parse_s / len(msgs) * 1e6, 1),
        "json_bytes_per_msg": round(sum(len(s) for s in encoded) / len(encoded)),
        "to_json_us_per_msg": round(to_json_s / len(msgs) * 1e6, 1),
        "from_json_us_per_msg": round(from_json_s / len(msgs) * 1e6, 1),
    }
    report = Report("MIME parsing and the JSON cache form (best of rounds)")
    report.add(result)
    report.table()


if __name__ == "__main__":
    main()
