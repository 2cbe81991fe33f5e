from __future__ import annotations

import io
import ipaddress
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlogparse import parse_line, parse_lines

from mox import mlog
from mox.mlog import log as mlog_log
from mox.mlog.log import Level


def test_line_has_upstream_shape(out: io.StringIO) -> None:
    log = mlog.new("smtpserver").with_cid(0x18C3E1)
    log.info("new connection", remote="127.0.0.1:4567", tls=True)
    assert (
        out.getvalue()
        == 'l=info m="new connection" pkg=smtpserver remote=127.0.0.1:4567 tls=true cid=18c3e1\n'
    )


def test_errorx_writes_err_before_pkg(out: io.StringIO) -> None:
    log = mlog.new("queue")
    log.errorx("delivery failed", ConnectionRefusedError("connection refused"), msgid=42)
    log.errorx("no error given", None, msgid=43)
    assert out.getvalue().splitlines() == [
        'l=error m="delivery failed" err="connection refused" pkg=queue msgid=42',
        'l=error m="no error given" pkg=queue msgid=43',
    ]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("user@example.org", "user@example.org"),
        ("", ""),
        ("a b", '"a b"'),
        ("a=b", '"a=b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("tab\there", '"tab\\there"'),
        ("crlf\r\n", '"crlf\\r\\n"'),
        ("nul\x00", '"nul\\x00"'),
        ("del\x7f", '"del\\x7f"'),
        ("café", '"café"'),  # Non-ASCII is quoted, but kept when printable.
        ("c1\x85", '"c1\\u0085"'),
        ("zwsp\u200b", '"zwsp\\u200b"'),
        ("raw\udcff", '"raw\\xff"'),  # Invalid UTF-8 byte decoded with surrogateescape.
    ],
)
def test_values_are_quoted_only_when_needed(out: io.StringIO, value: str, written: str) -> None:
    mlog.new("test").info("x", k=value)
    assert out.getvalue() == f'l=info m="x" pkg=test k={written}\n'


@dataclass
class _Addr:
    host: str
    port: int
    tags: list[str]


class _WithLogString:
    def log_string(self) -> str:
        return "custom form"


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("k", None, ""),
        ("k", True, "true"),
        ("k", False, "false"),
        ("k", 1234, "1234"),
        ("cid", 255, "ff"),
        ("cid", "abc", "abc"),
        ("k", 0.5, "0.5"),
        ("k", b"\xfb\xff", "-_8"),
        ("k", OSError("disk full"), "disk full"),
        ("k", TimeoutError(), "TimeoutError"),
        ("k", timedelta(milliseconds=1500), "1.5s"),
        ("k", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (
            "k",
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T03:04:05+02:00",
        ),
        ("k", ["a", "b"], "[a,b]"),
        ("k", (1, 2), "[1;2]"),
        ("k", {"b", "a"}, "[a,b]"),
        ("k", [], "[]"),
        ("k", ipaddress.ip_address("2001:db8::1"), "2001:db8::1"),
        ("k", _Addr("mx.example", 25, []), "host=mx.example port=25"),
        ("k", _WithLogString(), "custom form"),
        ("level", Level.TRACEAUTH, "traceauth"),
    ],
)
def test_value_rendering(key: str, value: object, text: str) -> None:
    assert mlog.value_string(value, key) == text


@pytest.mark.parametrize(
    ("d", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(microseconds=1), "1µs"),
        (timedelta(microseconds=999), "999µs"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(microseconds=1001), "1.001ms"),
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=61, milliseconds=500), "1m1.5s"),
        (timedelta(hours=1), "1h0m0s"),
        (timedelta(days=1, seconds=61), "24h1m1s"),
        (timedelta(milliseconds=-2), "-2ms"),
    ],
)
def test_durations_are_formatted_like_go(d: timedelta, text: str) -> None:
    assert mlog.format_duration(d) == text


# Values include lone surrogates (from surrogateescape decoding), controls,
# quotes, backslashes and "=".
_any_text = st.text(st.characters(codec=None, exclude_categories=()))
_field_values = st.one_of(_any_text, st.integers(), st.booleans())
_field_names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(lambda k: k != "cid")


@given(msg=_any_text, fields=st.dictionaries(_field_names, _field_values, max_size=5))
def test_any_values_make_one_parseable_line(msg: str, fields: dict[str, object]) -> None:
    buf = io.StringIO()
    mlog.set_output(buf)
    mlog.new("test").info(msg, **fields)
    text = buf.getvalue()
    assert text.count("\n") == 1
    expected = [("l", "info"), ("m", msg), ("pkg", "test")] + [
        (k, mlog.value_string(v)) for k, v in fields.items()
    ]
    assert parse_line(text) == expected


@given(data=st.binary(max_size=200))
def test_transcript_bytes_round_trip(data: bytes) -> None:
    buf = io.StringIO()
    mlog.set_output(buf)
    mlog.set_config({"": Level.TRACEDATA})
    mlog.new("smtpserver").trace_line(Level.TRACEDATA, "RC: ", data)
    pairs = dict(parse_line(buf.getvalue()))
    assert pairs["m"].startswith("RC: ")
    assert pairs["m"][4:].encode("utf-8", "surrogateescape") == data
    assert pairs["size"] == str(len(data))


@given(key=_any_text)
def test_odd_field_names_are_made_safe(key: str) -> None:
    buf = io.StringIO()
    mlog.set_output(buf)
    mlog.new("test").with_fields(**{key: "v"}).info("x")
    pairs = parse_line(buf.getvalue())
    assert pairs[-1][1] == "v"
    assert len(pairs) == 4


def test_fields_order_call_then_logger_then_func(out: io.StringIO) -> None:
    calls: list[int] = []

    def fn() -> dict[str, object]:
        calls.append(1)
        return {"delta": timedelta(microseconds=250), "username": "mjl"}

    mlog.set_config({"": Level.INFO})
    log = mlog.new("imapserver").with_fields(cid=1).with_func(fn)
    log.debug("not written")
    assert calls == []
    log.info("command", cmd="select")
    assert calls == [1]
    assert parse_lines(out.getvalue()) == [
        [
            ("l", "info"),
            ("m", "command"),
            ("pkg", "imapserver"),
            ("cmd", "select"),
            ("cid", "1"),
            ("delta", "250µs"),
            ("username", "mjl"),
        ]
    ]


def test_with_fields_keeps_parent_unchanged(out: io.StringIO) -> None:
    parent = mlog.new("http").with_fields(a=1)
    child = parent.with_fields(b=2, a=3)
    parent.info("p")
    child.info("c")
    assert out.getvalue().splitlines() == [
        'l=info m="p" pkg=http a=1',
        'l=info m="c" pkg=http a=3 b=2',
    ]


def test_with_pkg_adds_pkg_once(out: io.StringIO) -> None:
    log = mlog.new("queue").with_pkg("smtpclient").with_pkg("smtpclient")
    log.info("dial")
    assert out.getvalue() == 'l=info m="dial" pkg=queue pkg=smtpclient\n'


def test_command_line_format(out: io.StringIO) -> None:
    log = mlog.new("ctl")
    log.info("logfmt first")
    out.truncate(0)
    out.seek(0)
    mlog.set_logfmt(False)
    log.errorx("open database", OSError("no such file"), path="/tmp/x y")
    log.info("multi\nline")
    mlog.set_config({"": Level.TRACE})
    log.trace("EHLO\r\n")
    assert out.getvalue().splitlines() == [
        'error: open database: no such file; pkg=ctl; path="/tmp/x y"',
        "info: multi\\nline; pkg=ctl",
        'trace: "EHLO\\r\\n"; pkg=ctl',
    ]


def test_timestamps_only_when_asked(out: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlog_log, "_now", lambda: datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC))
    log = mlog.new("test")
    log.info("without")
    mlog.set_timestamps(True)
    log.info("with")
    assert out.getvalue().splitlines() == [
        'l=info m="without" pkg=test',
        't=2024-05-06T07:08:09.123Z l=info m="with" pkg=test',
    ]


class _WriteRecorder(io.StringIO):
    """Records each write, to check that every line is written in one call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_concurrent_threads_write_whole_lines() -> None:
    rec = _WriteRecorder()
    mlog.set_output(rec)
    mlog.set_config({"": Level.INFO})

    def worker(n: int) -> None:
        log = mlog.new("worker").with_cid(n)
        for i in range(200):
            log.info("line with a longer message", i=i, text="x y z " * 10)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rec.writes) == 8 * 200
    assert all(w.endswith("\n") and w.count("\n") == 1 for w in rec.writes)
    lines = parse_lines(rec.getvalue())
    assert sorted(dict(p)["cid"] for p in lines) == sorted(f"{n:x}" for n in range(8) for _ in range(200))
