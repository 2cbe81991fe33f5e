"""The maildir format: info flags, dovecot-keywords, file names, listing, the record stream."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mox.store.maildir import (
    KeywordLetters,
    MaildirError,
    RecordError,
    RecordReader,
    encode_record,
    format_dovecot_keywords,
    iter_records,
    list_maildir,
    maildir_message,
    message_filename,
    parse_dovecot_keywords,
    parse_info,
    received_from_filename,
)
from mox.store.mbox import ImportProblem
from mox.store.model import Flags


def test_dovecot_keywords_parse_skips_bad_lines() -> None:
    data = b"0 Old\n1 $Junk\n3 NonJunk\nx Bad\n30 TooFar\n1 Duplicate\n4 bad(kw\n\n5 $Forwarded\n"
    kws, problems = parse_dovecot_keywords(data)
    assert kws == ["old", "$junk", "", "nonjunk", "", "$forwarded"]
    assert len(problems) == 4
    assert any("bad index" in p for p in problems) and any("out of range" in p for p in problems)


def test_info_flags_and_keyword_letters() -> None:
    kws = ["old", "$junk", "", "nonjunk", "$forwarded", "$mdnsent", "$phishing"]
    flags, keywords = parse_info("1700000000.M1P2.host,S=123:2,DFPRSTabcdefgz", kws)
    assert (
        flags
        == Flags.DRAFT
        | Flags.FLAGGED
        | Flags.ANSWERED
        | Flags.SEEN
        | Flags.DELETED
        | Flags.JUNK
        | Flags.NOTJUNK
        | Flags.FORWARDED
        | Flags.MDNSENT
        | Flags.PHISHING
    )
    assert keywords == ["old"]
    assert parse_info("1700000000.M1P2.host", kws) == (Flags.NONE, [])
    assert parse_info("name:1,S", kws) == (Flags.NONE, [])


def test_received_time_from_name() -> None:
    assert received_from_filename("1700000000.M1P2.host:2,S") == 1700000000.0
    assert received_from_filename("1700000000.M1P2") is None  # upstream wants three parts
    assert received_from_filename("abc.def.ghi") is None
    m = maildir_message("cur/msg1:2,S", b"Subject: x\n\nbody\n", 1600000000.5, [], "md/cur/msg1:2,S")
    assert (m.data, m.flags, m.received) == (b"Subject: x\r\n\r\nbody\r\n", Flags.SEEN, 1600000000.5)


def test_export_file_names_sort_flag_letters() -> None:
    letters = KeywordLetters()
    name, lost = message_filename(
        1700000000.7, 12, Flags.SEEN | Flags.DRAFT | Flags.JUNK, ["zeta", "alpha"], letters
    )
    assert name == "1700000000.12.mox:2,DSabc"
    assert letters.keywords == ["$Junk", "zeta", "alpha"] and lost == []
    name, _ = message_filename(1, 13, Flags.NONE, ["alpha"], letters)
    assert name == "1.13.mox:2,c"
    assert format_dovecot_keywords(letters.keywords) == b"0 $Junk\n1 zeta\n2 alpha\n"


def test_only_26_keyword_letters() -> None:
    letters = KeywordLetters()
    kws = [f"k{i}" for i in range(30)]
    name, lost = message_filename(1, 1, Flags.NONE, kws, letters)
    assert lost == ["k26", "k27", "k28", "k29"]
    assert name.endswith(":2," + "abcdefghijklmnopqrstuvwxyz")


def make_maildir(root: Path) -> Path:
    md = root / "md"
    for d in ("new", "cur", "tmp"):
        (md / d).mkdir(parents=True)
    (md / "cur" / "1700000010.a.host:2,S").write_bytes(b"Subject: 3\n\nc\n")
    (md / "new" / "1700000002.b.host").write_bytes(b"Subject: 2\n\nb\n")
    (md / "cur" / "1700000001.c.host:2,a").write_bytes(b"Subject: 1\n\na\n")
    (md / "cur" / "no-time-in-name").write_bytes(b"Subject: 4\n\nd\n")
    (md / "cur" / ".hidden").write_bytes(b"not a message")
    (md / "cur" / "subdir").mkdir()
    (md / "tmp" / "1700000000.x.host").write_bytes(b"being delivered")
    (md / "dovecot-keywords").write_bytes(b"0 $Forwarded\n")
    return md


def test_listing_orders_by_time_and_skips_hidden_and_tmp(tmp_path: Path) -> None:
    md = make_maildir(tmp_path)
    listing = list_maildir(md)
    assert [n for n, _ in listing.messages] == [
        "cur/1700000001.c.host:2,a",
        "new/1700000002.b.host",
        "cur/1700000010.a.host:2,S",
        "cur/no-time-in-name",
    ]
    assert listing.keywords_file == md / "dovecot-keywords"
    assert [p.reason for p in listing.problems] == ["not a regular file, skipped"]
    with pytest.raises(MaildirError, match="not a maildir"):
        list_maildir(tmp_path)


def test_record_stream_round_trips_in_any_chunking(tmp_path: Path) -> None:
    md = make_maildir(tmp_path)
    unreadable = md / "cur" / "1700000003.d.host"
    unreadable.write_bytes(b"x")
    os.chmod(unreadable, 0)
    problems: list[ImportProblem] = []
    seen: list[tuple[int, int]] = []
    stream = b"".join(iter_records(list_maildir(md), problems, lambda n, b: seen.append((n, b))))
    if os.geteuid() != 0:  # root reads anything
        assert any(p.position.endswith("1700000003.d.host") for p in problems)
    for chunk in (1, 3, 50, len(stream)):
        r = RecordReader()
        recs = []
        for i in range(0, len(stream), chunk):
            recs += r.feed(stream[i : i + chunk])
        r.close()
        assert recs[0].name == "dovecot-keywords" and recs[0].data == b"0 $Forwarded\n"
        assert recs[1].name == "cur/1700000001.c.host:2,a" and recs[1].data == b"Subject: 1\n\na\n"
    assert seen[-1][0] == len(list_maildir(md).messages)


def test_record_reader_refuses_malformed_streams() -> None:
    with pytest.raises(RecordError, match="malformed"):
        RecordReader().feed(b"not json\n")
    with pytest.raises(RecordError, match="exceeds"):
        RecordReader(max_size=10).feed(encode_record("cur/x", b"x" * 11, 0))
    r = RecordReader()
    r.feed(encode_record("cur/x", b"abc", 0) + b"ab")
    with pytest.raises(RecordError, match="middle"):
        r.close()
