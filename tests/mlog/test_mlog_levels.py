from __future__ import annotations

import asyncio
import io
import ssl
from typing import NoReturn

import pytest
from mlogparse import parse_lines

from mox import mlog
from mox.mlog import log as mlog_log
from mox.mlog.log import Level


def _levels_written(out: io.StringIO) -> list[str]:
    return [dict(p)["l"] for p in parse_lines(out.getvalue())]


def _messages(out: io.StringIO) -> list[str]:
    return [dict(p)["m"] for p in parse_lines(out.getvalue())]


def test_default_level_filters_all_packages(out: io.StringIO) -> None:
    mlog.set_config({"": Level.INFO})
    log = mlog.new("smtpserver")
    log.trace("t")
    log.debug("d")
    log.info("i")
    log.warn("w")
    log.error("e")
    assert _levels_written(out) == ["info", "warn", "error"]


def test_missing_default_means_info(out: io.StringIO) -> None:
    mlog.set_config({"queue": Level.ERROR})
    log = mlog.new("imapserver")
    log.debug("d")
    log.info("i")
    assert _messages(out) == ["i"]


def test_package_level_overrides_default(out: io.StringIO) -> None:
    mlog.set_config({"": Level.ERROR, "queue": Level.DEBUG})
    mlog.new("queue").debug("queue debug")
    mlog.new("smtpserver").debug("smtpserver debug")
    mlog.new("smtpserver").info("smtpserver info")
    mlog.new("smtpserver").error("smtpserver error")
    assert _messages(out) == ["queue debug", "smtpserver error"]


def test_last_pkg_with_config_decides(out: io.StringIO) -> None:
    mlog.set_config({"": Level.ERROR, "queue": Level.DEBUG, "smtpclient": Level.INFO})
    log = mlog.new("queue").with_pkg("smtpclient")
    log.debug("hidden: smtpclient says info")
    log.info("shown")
    other = mlog.new("queue").with_pkg("dkim")  # No entry for dkim: queue's level applies.
    other.debug("shown: queue says debug")
    assert _messages(out) == ["shown", "shown: queue says debug"]


def test_runtime_change_applies_to_existing_loggers(out: io.StringIO) -> None:
    mlog.set_config({"": Level.INFO})
    log = mlog.new("smtpserver")
    child = log.with_cid(7).with_fields(remote="192.0.2.1")
    child.debug("before")
    mlog.set_config({"": Level.INFO, "smtpserver": Level.DEBUG})
    child.debug("after")
    log.debug("parent after")
    mlog.set_config({"": Level.INFO})
    child.debug("reverted")
    assert _messages(out) == ["after", "parent after"]


def test_get_config_returns_a_copy() -> None:
    mlog.set_config({"": Level.INFO, "dkim": Level.TRACE})
    c = mlog.get_config()
    assert c == {"": Level.INFO, "dkim": Level.TRACE}
    assert all(isinstance(v, Level) for v in c.values())
    c["dkim"] = Level.ERROR
    assert mlog.get_config()["dkim"] == Level.TRACE


def test_set_config_rejects_unknown_levels() -> None:
    with pytest.raises(ValueError, match="bad log level"):
        mlog.set_config({"": 3})


def test_print_and_fatal_are_written_at_any_level(out: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    codes: list[int] = []

    def fake_exit(code: int) -> NoReturn:
        codes.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(mlog_log, "_exit", fake_exit)
    mlog.set_config({"": Level.ERROR})
    log = mlog.new("main")
    log.print("log level changed", pkg="queue", level=Level.DEBUG)
    with pytest.raises(SystemExit):
        log.fatalx("cannot start", OSError("address in use"))
    assert codes == [1]
    assert out.getvalue().splitlines() == [
        'l=print m="log level changed" pkg=main pkg=queue level=debug',
        'l=fatal m="cannot start" err="address in use" pkg=main',
    ]


def test_enabled(out: io.StringIO) -> None:
    mlog.set_config({"": Level.INFO, "smtpserver": Level.TRACE})
    log = mlog.new("queue")
    assert not log.enabled(Level.DEBUG)
    assert log.enabled(Level.INFO)
    assert log.enabled(Level.PRINT)
    assert log.level() == Level.INFO
    smtp = mlog.new("smtpserver")
    assert smtp.enabled(Level.TRACE)
    # Any trace level enables all trace lines (they are written redacted).
    assert smtp.enabled(Level.TRACEDATA)
    assert out.getvalue() == ""


# Transcript gating: which lines each configured level shows for an SMTP
# exchange with an AUTH PLAIN response and message data.
_TRANSCRIPT = [
    (Level.TRACE, "RC: ", b"AUTH PLAIN\r\n"),
    (Level.TRACEAUTH, "RC: ", b"AHVzZXIAc2VjcmV0\r\n"),
    (Level.TRACE, "LS: ", b"235 2.7.0 hello\r\n"),
    (Level.TRACEDATA, "RC: ", b"Subject: hi\r\n\r\nbody\r\n"),
]


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (Level.DEBUG, []),
        (
            Level.TRACE,
            [
                ("trace", "RC: AUTH PLAIN\r\n", "12"),
                ("traceauth", "RC: ***", None),
                ("trace", "LS: 235 2.7.0 hello\r\n", "17"),
                ("tracedata", "RC: ...", "21"),
            ],
        ),
        (
            Level.TRACEAUTH,
            [
                ("trace", "RC: AUTH PLAIN\r\n", "12"),
                ("traceauth", "RC: AHVzZXIAc2VjcmV0\r\n", "18"),
                ("trace", "LS: 235 2.7.0 hello\r\n", "17"),
                ("tracedata", "RC: ...", "21"),
            ],
        ),
        (
            Level.TRACEDATA,
            [
                ("trace", "RC: AUTH PLAIN\r\n", "12"),
                ("traceauth", "RC: AHVzZXIAc2VjcmV0\r\n", "18"),
                ("trace", "LS: 235 2.7.0 hello\r\n", "17"),
                ("tracedata", "RC: Subject: hi\r\n\r\nbody\r\n", "21"),
            ],
        ),
    ],
)
def test_trace_levels_redact_auth_and_data(
    out: io.StringIO, configured: Level, expected: list[tuple[str, str, str | None]]
) -> None:
    mlog.set_config({"": Level.INFO, "smtpserver": configured})
    log = mlog.new("smtpserver").with_cid(1)
    for level, prefix, data in _TRANSCRIPT:
        log.trace_line(level, prefix, data)
    got = [(d["l"], d["m"], d.get("size")) for d in map(dict, parse_lines(out.getvalue()))]
    assert got == expected


def test_tracer_follows_level_switches(out: io.StringIO) -> None:
    mlog.set_config({"": Level.TRACE})
    rc = mlog.new("imapserver").tracer("C: ")
    rc(b"a1 LOGIN mjl secret\r\n")
    rc.level = Level.TRACEAUTH
    rc(b"a2 AUTHENTICATE PLAIN AHVzZXI=\r\n")
    rc.level = Level.TRACE
    rc("a3 LOGOUT\r\n")
    assert _messages(out) == ["C: a1 LOGIN mjl secret\r\n", "C: ***", "C: a3 LOGOUT\r\n"]
    out.truncate(0)
    out.seek(0)
    mlog.set_config({"": Level.DEBUG})
    rc(b"not written\r\n")
    assert out.getvalue() == ""


def test_generic_log_redacts_like_transcripts(out: io.StringIO) -> None:
    mlog.set_config({"": Level.TRACE})
    log = mlog.new("sasl")
    log.log(Level.TRACEAUTH, "password is hunter2")
    log.log(Level.TRACEDATA, "big blob")
    log.log(Level.DEBUG, "debug", err=ValueError("bad"), k=1)
    assert out.getvalue().splitlines() == [
        'l=traceauth m="***" pkg=sasl',
        'l=tracedata m="..." pkg=sasl',
        'l=debug m="debug" err=bad pkg=sasl k=1',
    ]


def test_check_picks_level_by_error_kind(out: io.StringIO) -> None:
    mlog.set_config({"": Level.DEBUG})
    log = mlog.new("smtpserver")
    log.check(None, "nothing")
    log.check(TimeoutError("read timeout"), "reading command")
    log.check(asyncio.CancelledError(), "cancelled")
    log.check(ConnectionResetError(104, "Connection reset by peer"), "writing response")
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    alert.reason = "TLSV1_ALERT_UNKNOWN_CA"  # As set by the ssl module for a received alert.
    log.check(alert, "tls alert from remote")
    log.check(ssl.SSLError(1, "[SSL] internal error"), "tls")
    log.check(PermissionError("denied"), "closing file")
    assert [(d["l"], d["m"]) for d in map(dict, parse_lines(out.getvalue()))] == [
        ("info", "reading command"),
        ("info", "cancelled"),
        ("debug", "writing response"),
        ("debug", "tls alert from remote"),
        ("error", "tls"),
        ("error", "closing file"),
    ]


def test_is_closed_follows_causes() -> None:
    try:
        try:
            raise BrokenPipeError()
        except BrokenPipeError as e:
            raise RuntimeError("flush failed") from e
    except RuntimeError as e:
        assert mlog.is_closed(e)
    assert not mlog.is_closed(ValueError("x"))


def test_parse_level_accepts_upstream_names() -> None:
    names = ["tracedata", "traceauth", "trace", "debug", "info", "warn", "error", "fatal", "print"]
    assert [mlog.parse_level(n) for n in names] == sorted(Level)
    assert [str(mlog.parse_level(n)) for n in names] == names


@pytest.mark.parametrize("name", ["", "INFO", "verbose", "warning", " info"])
def test_parse_level_error_lists_valid_names(name: str) -> None:
    with pytest.raises(mlog.UnknownLevelError) as ei:
        mlog.parse_level(name)
    msg = str(ei.value)
    assert repr(name) in msg
    assert "tracedata, traceauth, trace, debug, info, warn, error, fatal, print" in msg


def test_metric_counts_count_written_lines() -> None:
    mlog.set_config({"": Level.INFO})
    before = mlog.metric_counts()
    log = mlog.new("test")
    log.debug("not written, not counted")
    log.info("i")
    log.warn("w")
    log.error("e")
    log.errorx("e", None)
    after = mlog.metric_counts()
    assert {k: after[k] - before[k] for k in after} == {"info": 1, "warn": 1, "error": 2}


def test_new_cid_is_unique_and_increasing() -> None:
    cids = [mlog.new_cid() for _ in range(1000)]
    assert cids == sorted(set(cids))


async def test_with_context_takes_cid_of_current_task(out: io.StringIO) -> None:
    log = mlog.new("http")

    async def handle(cid: int) -> None:
        mlog.current_cid.set(cid)
        await asyncio.sleep(0)
        log.with_context().info("request")

    await asyncio.gather(handle(0x10), handle(0x20))
    log.with_context().info("no cid")
    assert out.getvalue().splitlines() == [
        'l=info m="request" pkg=http cid=10',
        'l=info m="request" pkg=http cid=20',
        'l=info m="no cid" pkg=http',
    ]
