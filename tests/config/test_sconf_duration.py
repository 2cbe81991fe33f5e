"""Durations in Go's time.Duration syntax: ParseDuration and Duration.String.

Expected values are what Go's time package gives (its documented behaviour
and well-known outputs such as "72h0m0s").
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mox.config.sconf import INT_MAX, INT_MIN, Duration, format_duration, parse_duration

NS = 1
US = 1000 * NS
MS = 1000 * US
S = 1000 * MS
M = 60 * S
H = 60 * M


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1 * NS, "1ns"),
        (999 * NS, "999ns"),
        (1 * US, "1\u00b5s"),  # Go writes the micro sign U+00B5
        (1500 * NS, "1.5\u00b5s"),
        (300 * MS, "300ms"),
        (1 * MS + 1 * NS, "1.000001ms"),
        (999_999_999 * NS, "999.999999ms"),
        (1 * S, "1s"),
        (1500 * MS, "1.5s"),
        (1100 * MS, "1.1s"),
        (61 * S, "1m1s"),
        (-1 * M, "-1m0s"),
        (-1500 * MS, "-1.5s"),
        (-1 * NS, "-1ns"),
        (1 * H, "1h0m0s"),
        (90 * M, "1h30m0s"),
        (72 * H, "72h0m0s"),
        (168 * H, "168h0m0s"),
        (2 * H + 3 * M + 4 * S + 5 * MS, "2h3m4.005s"),
        (1 * H + 1 * NS, "1h0m0.000000001s"),
        (INT_MAX, "2562047h47m16.854775807s"),
        (INT_MIN, "-2562047h47m16.854775808s"),
    ],
)
def test_format_matches_go_duration_string(ns: int, text: str) -> None:
    assert format_duration(ns) == text
    assert str(Duration(ns)) == text
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("0s", 0),
        ("72h", 72 * H),
        ("1.5h", 90 * M),
        ("1h30m", 90 * M),
        ("30m1h", 90 * M),  # units in any order, summed
        ("1h1h", 2 * H),
        ("+5s", 5 * S),
        ("-5s", -5 * S),
        ("-1.5h", -90 * M),
        ("-2m3.4s", -(2 * M + 3400 * MS)),
        ("5.0s", 5 * S),
        ("5.6s", 5600 * MS),
        ("5.s", 5 * S),  # digits before the period suffice
        ("1.h", 1 * H),
        (".5s", 500 * MS),  # digits after the period suffice
        ("1.004s", 1004 * MS),
        ("100.00100s", 100 * S + 1 * MS),
        ("10ns", 10 * NS),
        ("11us", 11 * US),
        ("12\u00b5s", 12 * US),  # micro sign
        ("12\u03bcs", 12 * US),  # greek mu
        ("13ms", 13 * MS),
        ("15m", 15 * M),
        ("10.5s4m", 4 * M + 10500 * MS),
        ("1h2m3s4ms5us6ns", H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
        ("0000000000000000000000001s", 1 * S),  # leading zeros do not overflow
        ("9007199254740993ns", 2**53 + 1),  # exact, not through a float
        ("9223372036854775807ns", INT_MAX),
        ("9223372036854775.807us", INT_MAX),
        ("-9223372036854775808ns", INT_MIN),
        ("-9223372036854775.808us", INT_MIN),
        # Go computes fractions in float64; these come out exact there.
        ("0.3333333333333333333h", 20 * M),
        ("0.100000000000000000000h", 6 * M),
    ],
)
def test_parse_matches_go_parse_duration(text: str, ns: int) -> None:
    d = parse_duration(text)
    assert d == ns
    assert type(d) is Duration


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",  # a number without unit is only allowed for 0
        "00",
        "-",
        "+",
        "h",
        "s",
        ".",
        "-.",
        ".s",
        "+.s",
        "1x",
        "1d",  # no days in Go
        "1H",  # units are case-sensitive
        "1hh",
        "1h-5m",  # a sign only at the start
        "1h 5m",
        " 1h",
        "1h ",
        "1m0",  # every number needs a unit
        "--1s",
        "1e3s",
        "9223372036854775808ns",  # one more than the largest int64
        "-9223372036854775809ns",
        "2562048h",
        "99999999999999999999999999999h",
        "1" * 5000 + "s",
    ],
)
def test_parse_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@settings(max_examples=500)
@given(st.integers(INT_MIN, INT_MAX))
def test_format_then_parse_is_identity_for_every_int64(ns: int) -> None:
    text = format_duration(ns)
    assert parse_duration(text) == ns
    assert text.isascii() or "\u00b5s" in text


@settings(max_examples=300)
@given(st.integers(0, 10**6), st.integers(0, 10**6 - 1), st.sampled_from(["ms", "s", "m", "h"]))
def test_decimal_fractions_parse_to_exact_nanoseconds(whole: int, frac: int, unit: str) -> None:
    # Six fraction digits of a unit of at least 1ms are whole nanoseconds, exact
    # with Go's float64 arithmetic too (unit/10**6 is an integer).
    size = {"ms": MS, "s": S, "m": M, "h": H}[unit]
    text = f"{whole}.{frac:06d}{unit}"
    assert parse_duration(text) == whole * size + frac * size // 10**6


@settings(max_examples=300)
@given(st.text(st.sampled_from("0123456789.+-hmsnuµ μx"), max_size=12))
def test_parse_gives_value_error_or_a_duration(text: str) -> None:
    try:
        d = parse_duration(text)
    except ValueError:
        return
    assert INT_MIN <= d <= INT_MAX
    assert parse_duration(format_duration(d)) == d
