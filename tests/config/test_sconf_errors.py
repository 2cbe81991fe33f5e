"""Malformed sconf gives an SconfError naming file, line and field, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mox.config import model, sconf
from mox.config.sconf import SconfError


def lines(*ls: str) -> str:
    return "\n".join(ls) + "\n"


# A valid domains.conf to start from (line numbers on the right).
GOOD = [
    "Domains:",  # 1
    "\texample.com:",  # 2
    "\t\tDescription: Example",  # 3
    "Accounts:",  # 4
    "\tmjl:",  # 5
    "\t\tDomain: example.com",  # 6
    "\t\tDestinations:",  # 7
    "\t\t\tmjl@example.com: nil",  # 8
]


def good_with(index: int, *replacement: str) -> str:
    """GOOD with line index (0-based) replaced by the given lines."""
    return lines(*GOOD[:index], *replacement, *GOOD[index + 1 :])


def test_good_base_parses() -> None:
    dyn, linemap = sconf.parse(model.Dynamic, lines(*GOOD), "domains.conf")
    assert dyn.Domains["example.com"].Description == "Example"
    assert dyn.Accounts["mjl"].Destinations == {"mjl@example.com": model.Destination()}
    assert linemap[("Accounts", "mjl", "Destinations", "mjl@example.com")] == 8


ACCOUNT_WITH = ["Domains:", "\tx: nil", "Accounts:", "\tmjl:", "\t\tDomain: x"]  # lines 1-5, then 6...

# (case id, type, text, line, field path, part of the message)
# fmt: off
CASES = [
    # Indentation.
    ("spaces-for-map-entries", model.Dynamic, good_with(1, "    example.com:"), 2, "Domains", "indented with spaces"),
    ("spaces-for-struct-fields", model.Dynamic, good_with(5, "\t    Domain: example.com"), 6, "Accounts.mjl", "indented with one more tab"),
    ("spaces-at-top-level", model.Dynamic, good_with(0, "  Domains:"), 1, "", "starts with a space (mixed tab/space indenting?)"),
    ("tab-then-spaces", model.Dynamic, good_with(2, "\t  Description: x"), 3, "Domains.example.com", "indented with spaces"),
    ("spaces-after-a-field", model.Dynamic, good_with(2, "\t\tDescription: x", "\t  Disabled: true"), 4, "Domains",
     "starts with a space (mixed tab/space indenting?)"),
    ("extra-indent-field", model.Dynamic, good_with(2, "\t\t\tDescription: x"), 3, "Domains.example.com", "indented deeper than expected"),
    ("extra-indent-top-level", model.Dynamic, good_with(0, "\tDomains:"), 1, "", "indented deeper than expected"),
    ("map-without-entries", model.Dynamic, lines("Domains:", "Accounts:"), 2, "Domains", "expected map entries on lines below"),
    ("struct-without-fields-at-eof", model.Dynamic, lines("Domains:", "\tx: nil", "Accounts:", "\tmjl:"), 4, "Accounts.mjl",
     "expected fields on lines below"),
    # Line syntax.
    ("crlf", model.Dynamic, lines(*GOOD).replace("\n", "\r\n"), 1, "", "carriage return"),
    ("cr-on-one-line", model.Dynamic, good_with(2, "\t\tDescription: Example\r"), 3, "", "not CRLF"),
    ("whitespace-only-line", model.Dynamic, good_with(2, "\t\tDescription: Example", "\t\t"), 4, "Domains.example.com", "stray whitespace"),
    ("space-only-line", model.Dynamic, good_with(3, " ", "Accounts:"), 4, "", "stray whitespace"),
    ("empty-key", model.Dynamic, good_with(2, "\t\t: Example"), 3, "Domains.example.com", "empty key"),
    ("empty-map-key", model.Dynamic, good_with(7, "\t\t\t: nil"), 8, "Accounts.mjl.Destinations", "empty key"),
    ("missing-colon", model.Dynamic, good_with(2, "\t\tDescription Example"), 3, "Domains.example.com", "expected 'Key: value'"),
    ("missing-colon-map", model.Dynamic, good_with(7, "\t\t\tmjl@example.com"), 8, "Accounts.mjl.Destinations", "expected 'Key: value'"),
    ("missing-space-after-colon", model.Dynamic, good_with(2, "\t\tDescription:Example"), 3, "Domains.example.com.Description",
     "missing space after colon"),
    ("tab-after-colon", model.Dynamic, good_with(2, "\t\tDescription:\tExample"), 3, "Domains.example.com.Description",
     "missing space after colon"),
    # Keys.
    ("unknown-key", model.Dynamic, good_with(2, "\t\tDescriptoin: x"), 3, "Domains.example.com.Descriptoin", "unknown key 'Descriptoin'"),
    ("case-typo-top-level", model.Dynamic, good_with(3, "accounts:"), 4, "accounts", "did you mean Accounts?"),
    ("case-typo-nested", model.Dynamic, good_with(2, "\t\tdescription: x"), 3, "Domains.example.com.description", "did you mean Description?"),
    ("stray-space-in-key", model.Dynamic, good_with(0, "Domains :"), 1, "Domains ", "stray whitespace in key"),
    ("duplicate-key", model.Dynamic, good_with(2, "\t\tDescription: a", "\t\tDescription: b"), 4, "Domains.example.com.Description",
     "duplicate key"),
    ("duplicate-map-key", model.Dynamic, good_with(7, "\t\t\tmjl@example.com: nil", "\t\t\tmjl@example.com: nil"), 9,
     "Accounts.mjl.Destinations.mjl@example.com", "duplicate key"),
    ("duplicate-top-level-key", model.Dynamic, lines(*GOOD, "Domains:", "\ty: nil"), 9, "Domains", "duplicate key"),
    ("missing-required-top-level", model.Dynamic, lines(*GOOD[:3]), 0, "Accounts", "missing required key"),
    ("missing-required-nested", model.Dynamic, lines(*GOOD[:5], *GOOD[6:]), 5, "Accounts.mjl.Domain", "missing required key"),
    ("missing-required-in-list-item", model.Dynamic, lines(*GOOD, "Routes:", "\t-", "\t\tMinimumAttempts: 2"), 10, "Routes[0].Transport",
     "missing required key"),
    # Scalar values.
    ("bad-bool", model.Dynamic, good_with(2, "\t\tDisabled: yes"), 3, "Domains.example.com.Disabled", "expected true or false, not 'yes'"),
    ("bool-capitalised", model.Dynamic, good_with(2, "\t\tDisabled: True"), 3, "Domains.example.com.Disabled", "not 'True'"),
    ("bool-trailing-space", model.Dynamic, good_with(2, "\t\tDisabled: true "), 3, "Domains.example.com.Disabled", "not 'true '"),
    ("bad-int", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tQuotaMessageSize: 10MB"), 6, "Accounts.mjl.QuotaMessageSize",
     "expected an integer, not '10MB'"),
    ("int-out-of-range", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tQuotaMessageSize: 9223372036854775808"), 6,
     "Accounts.mjl.QuotaMessageSize", "out of range"),
    ("int-negative-out-of-range", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tQuotaMessageSize: -9223372036854775809"), 6,
     "Accounts.mjl.QuotaMessageSize", "out of range"),
    ("int-thousands-of-digits", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tQuotaMessageSize: " + "9" * 5000), 6,
     "Accounts.mjl.QuotaMessageSize", "out of range"),
    ("empty-int", model.Static, lines("QuotaMessageSize: "), 1, "QuotaMessageSize", "expected an integer, not ''"),
    ("bad-float", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tJunkFilter:", "\t\t\tThreshold: high"), 7, "Accounts.mjl.JunkFilter.Threshold",
     "expected a number, not 'high'"),
    ("float-with-comma", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tJunkFilter:", "\t\t\tThreshold: 0,95"), 7,
     "Accounts.mjl.JunkFilter.Threshold", "expected a number"),
    ("bad-duration", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tKeepRetiredMessagePeriod: 3d"), 6, "Accounts.mjl.KeepRetiredMessagePeriod",
     "invalid duration '3d'"),
    ("empty-duration", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tKeepRetiredMessagePeriod: "), 6, "Accounts.mjl.KeepRetiredMessagePeriod",
     'invalid duration ""'),
    ("duration-overflow", model.Dynamic, lines(*ACCOUNT_WITH, "\t\tKeepRetiredMessagePeriod: 9999999999999h"), 6,
     "Accounts.mjl.KeepRetiredMessagePeriod", "out of range"),
    # Values on the same line as a struct, list or map; nil where no map value is.
    ("value-for-struct-in-map", model.Dynamic, good_with(1, "\texample.com: yes"), 2, "Domains.example.com",
     "expected indented fields on lines below, not a value 'yes'"),
    ("value-for-struct-field", model.Dynamic, good_with(2, "\t\tDKIM: yes"), 3, "Domains.example.com.DKIM", "not a value 'yes'"),
    ("nil-for-struct-field", model.Dynamic, good_with(2, "\t\tDKIM: nil"), 3, "Domains.example.com.DKIM", "not a value 'nil'"),
    ("nil-for-optional-struct", model.Dynamic, good_with(2, "\t\tDMARC: nil"), 3, "Domains.example.com.DMARC", "not a value 'nil'"),
    ("nil-for-list", model.Dynamic, good_with(2, "\t\tLocalpartCatchallSeparators: nil"), 3, "Domains.example.com.LocalpartCatchallSeparators",
     "expected list items on lines below"),
    ("value-for-list", model.Dynamic, good_with(2, "\t\tLocalpartCatchallSeparators: +"), 3,
     "Domains.example.com.LocalpartCatchallSeparators", "not a value '+' on the same line"),
    ("value-for-map", model.Dynamic, good_with(6, "\t\tDestinations: mjl@example.com"), 7, "Accounts.mjl.Destinations",
     "expected map entries on lines below, not a value 'mjl@example.com'"),
    ("nil-for-top-level-map", model.Dynamic, good_with(0, "Domains: nil"), 1, "Domains", "not a value 'nil'"),
    ("value-for-list-in-static", model.Static, lines("Listeners:", "\tpublic:", "\t\tIPs: 0.0.0.0"), 3, "Listeners.public.IPs",
     "expected list items"),
    # Lists.
    ("list-item-without-dash", model.Dynamic, good_with(2, "\t\tLocalpartCatchallSeparators:", "\t\t\t+"), 4,
     "Domains.example.com.LocalpartCatchallSeparators[0]", "expected a list item starting with '-'"),
    ("second-item-without-dash", model.Dynamic, good_with(2, "\t\tLocalpartCatchallSeparators:", "\t\t\t- +", "\t\t\t="), 5,
     "Domains.example.com.LocalpartCatchallSeparators[1]", "starting with '-'"),
    ("dash-without-space", model.Dynamic, good_with(2, "\t\tLocalpartCatchallSeparators:", "\t\t\t-+"), 4,
     "Domains.example.com.LocalpartCatchallSeparators[0]", "missing space after '-'"),
    ("value-for-struct-list-item", model.Dynamic, lines(*GOOD, "Routes:", "\t- smarthost"), 10, "Routes[0]",
     "expected indented fields on lines below, not a value 'smarthost'"),
    ("list-without-items", model.Dynamic, good_with(2, "\t\tLocalpartCatchallSeparators:"), 4,
     "Domains.example.com.LocalpartCatchallSeparators", "expected list items starting with '-' on lines below"),
    ("unknown-key-in-list-item", model.Dynamic, lines(*GOOD, "Routes:", "\t-", "\t\tTransprot: x"), 11, "Routes[0].Transprot",
     "unknown key"),
]
# fmt: on


@pytest.mark.parametrize(
    ("cls", "text", "line", "path", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_input_gives_file_line_field_and_message(
    cls: type, text: str, line: int, path: str, message: str
) -> None:
    with pytest.raises(SconfError) as exc:
        sconf.parse(cls, text, "domains.conf")
    e = exc.value
    assert (e.filename, e.line, e.path) == ("domains.conf", line, path), str(e)
    assert message in e.message
    loc = f"domains.conf:{line}" if line else "domains.conf"
    assert str(e) == (f"{loc}: {path}: {e.message}" if path else f"{loc}: {e.message}")


def test_there_are_many_malformed_cases() -> None:
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


def test_comments_and_empty_lines_are_allowed_anywhere_but_not_after_values() -> None:
    text = lines(
        "# top",
        "",
        "Domains:",
        "  # an indented comment, with spaces",
        "\texample.com:",
        "",
        "\t\t\t# deeper",
        "\t\tDescription: Example # not a comment",
        "Accounts:",
        "\t# c",
        "\tmjl:",
        "\t\tDomain: example.com",
    )
    dyn, linemap = sconf.parse(model.Dynamic, text, "domains.conf")
    assert dyn.Domains["example.com"].Description == "Example # not a comment"
    assert linemap[("Domains", "example.com", "Description")] == 8


def test_line_numbers_count_comment_and_empty_lines() -> None:
    text = lines(
        "# one",
        "",
        "Domains:",
        "\tx: nil",
        "",
        "# six",
        "Accounts:",
        "\tmjl:",
        "\t\tDomain: x",
        "\t\tRejectsMailbox: Rejects",
        "\t\tFullName: Me",
        "\t\tNoCustomPassword: perhaps",
    )
    with pytest.raises(SconfError) as exc:
        sconf.parse(model.Dynamic, text, "domains.conf")
    assert (
        str(exc.value)
        == "domains.conf:12: Accounts.mjl.NoCustomPassword: expected true or false, not 'perhaps'"
    )


# Fuzzing: whatever the text, the only exception is SconfError.

PARSE_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_sconf_errors(cls: type, text: str) -> None:
    try:
        sconf.parse(cls, text, "fuzz.conf")
    except SconfError as e:
        assert e.filename == "fuzz.conf"
        assert 0 <= e.line <= text.count("\n") + 1
        assert str(e).startswith("fuzz.conf")


@PARSE_SETTINGS
@given(st.text(max_size=300), st.sampled_from([model.Dynamic, model.Static]))
def test_arbitrary_text_gives_only_sconf_errors(text: str, cls: type) -> None:
    only_sconf_errors(cls, text)


# Lines built from the tokens sconf files are made of, so the parser gets deep.
KEYS = [
    "Domains",
    "Accounts",
    "example.com",
    "mjl",
    "Domain",
    "Destinations",
    "mjl@example.com",
    "DKIM",
    "Selectors",
    "Sign",
    "Routes",
    "Transport",
    "JunkFilter",
    "Threshold",
    "Params",
    "MaxPower",
    "TopWords",
    "KeepRetiredMessagePeriod",
    "QuotaMessageSize",
    "Disabled",
    "Listeners",
    "public",
    "IPs",
    "TLS",
    "KeyCerts",
    "SMTP",
    "Enabled",
    "Port",
    "Hostname",
    "DataDir",
    "LogLevel",
    "Postmaster",
    "Mailbox",
    "Account",
    "LocalpartCatchallSeparators",
    "MTASTS",
    "MaxAge",
    "WebHandlers",
    "WebStatic",
    "Root",
    "PathRegexp",
    "Aliases",
    "Addresses",
    "x",
    "domains",
    "",
]
VALUES = [
    "",
    "nil",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "72h",
    "0.95",
    "1e3",
    "x",
    "9" * 30,
    "inf",
    "-",
    "#",
    " ",
    "\t",
]
token_line = st.builds(
    lambda indent, dash, key, colon, value: "\t" * indent + dash + key + colon + value,
    st.integers(0, 4),
    st.sampled_from(["", "", "", "-", "- ", " ", "  "]),
    st.sampled_from(KEYS),
    st.sampled_from([":", ": ", ":", "", ":\t", " :"]),
    st.sampled_from(VALUES),
)
structured_text = st.lists(
    st.one_of(token_line, st.sampled_from(["", "# c", "\t", "\r", " "])), max_size=25
).map(lambda ls: "\n".join(ls))


@PARSE_SETTINGS
@given(structured_text, st.sampled_from([model.Dynamic, model.Static]))
def test_token_built_text_gives_only_sconf_errors(text: str, cls: type) -> None:
    only_sconf_errors(cls, text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_valid_files_give_only_sconf_errors(data: st.DataObject) -> None:
    # Start from a valid file and damage one or two lines.
    ls = [
        *GOOD,
        "\t\tJunkFilter:",
        "\t\t\tThreshold: 0.95",
        "\t\t\tParams:",
        "\t\t\t\tMaxPower: 0.01",
        "\t\t\t\tTopWords: 10",
    ]
    for _ in range(data.draw(st.integers(1, 2))):
        i = data.draw(st.integers(0, len(ls) - 1))
        ls[i] = data.draw(
            st.one_of(token_line, st.text(max_size=20), st.just(ls[i].replace("\t", "    ", 1)))
        )
    only_sconf_errors(model.Dynamic, "\n".join(ls))
