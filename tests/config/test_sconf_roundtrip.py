"""sconf write and parse are each other's inverse for every value sconf can represent.

The strategies below encode what the format can hold, worked out from upstream's
parser (github.com/mjl-/sconf parse.go):

- A scalar runs from after ``": "`` (or ``"- "``) to the end of the line, so any
  string without line breaks is representable, leading and trailing spaces
  included: only the one space after the colon is part of the syntax.
- In a map, the value ``nil`` means the zero value, so a string ``"nil"`` cannot
  be a map value (it can be a list item or struct field).
- A map key cannot hold ``:``, cannot start with a space or tab (indentation),
  and cannot look like a comment (first non-blank character ``#``).
- Optional fields with zero values are left out, so an optional pointer
  (``X | None``) to a zero value reads back as None.
- A required list or map, and a struct that writes no lines where ``nil`` is
  not possible, would need at least one indented line: upstream's parser
  refuses them, so they are not representable.
- Floats are written like Go's ``%f`` (six decimals, as upstream writes them),
  so only floats that survive that are representable.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mox.config import model, sconf
from mox.config.sconf import INT_MAX, INT_MIN, Duration, option, required

# Test types covering every kind of field sconf supports.


@dataclass
class Flags:
    """All fields optional: written as ``nil`` in a map when all are zero."""

    On: bool = option("Whether it is on.", default=False)
    Note: str = option(default="")


@dataclass
class Item:
    Name: str = required(
        "The name.\nA second paragraph, long enough to be wrapped over more than one line of the comment block."
    )
    Weight: float = option(default=0.0)
    Wait: Duration = option(default=Duration(0))
    Tags: list[str] = option(factory=list)


@dataclass
class Level2:
    Items: list[Item] = required(factory=list)
    Labels: dict[str, str] = option(factory=dict)


@dataclass
class Level1:
    ByName: dict[str, Level2] = option(factory=dict)
    Deeper: Level2 | None = option()
    Count: int = option(default=0)


@dataclass
class Doc:
    Text: str = required("Some # text that looks like a comment marker.")
    OptText: str = option("Optional text.", default="")
    Enabled: bool = required(default=False)
    OptEnabled: bool = option(default=False)
    Count: int = required(default=0)
    OptCount: int = option(default=0)
    Ratio: float = required(default=0.0)
    OptRatio: float = option(default=0.0)
    Period: Duration = required(default=Duration(0))
    OptPeriod: Duration = option(default=Duration(0))
    PeriodPtr: Duration | None = option("A pointer to a scalar, like FirstTimeSenderDelay.")
    BoolPtr: bool | None = option()
    Words: list[str] = required(factory=list)
    OptWords: list[str] = option(factory=list)
    Numbers: list[int] = option(factory=list)
    Periods: list[Duration] = option(factory=list)
    Ratios: list[float] = option(factory=list)
    Switches: list[bool] = option(factory=list)
    Items: list[Item] = option(factory=list)
    Labels: dict[str, str] = option(factory=dict)
    Limits: dict[str, int] = option(factory=dict)
    Switched: dict[str, bool] = option(factory=dict)
    Waits: dict[str, Duration] = option(factory=dict)
    ItemsByName: dict[str, Item] = required(factory=dict)
    FlagsByName: dict[str, Flags] = option(factory=dict)
    Main: Item = required(factory=Item)
    Extra: Item | None = option()
    Settings: Flags = option(factory=Flags)
    SettingsPtr: Flags | None = option()
    Nested: Level1 = option(factory=Level1)
    NestedPtr: Level1 | None = option()


# Strategies, by type.


def _unwrap(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def is_zero(v: Any) -> bool:
    """Go's zero value, recursively for structs, as the writer decides what to leave out."""
    if v is None:
        return True
    if isinstance(v, (list, dict)):
        return not v
    if dataclasses.is_dataclass(v):
        return all(is_zero(getattr(v, f.name)) for f in sconf.fields_of(type(v)))
    return not v


def writes_no_lines(v: Any) -> bool:
    """A struct whose fields are all optional and zero writes nothing."""
    return all(f.optional and is_zero(getattr(v, f.name)) for f in sconf.fields_of(type(v)))


line_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
# Biased towards the interesting cases: spaces at either end, comment and list markers, nil.
strings = st.one_of(
    line_text,
    st.sampled_from(
        [
            "",
            " ",
            "  lead",
            "trail  ",
            "\ttab",
            "#hash",
            "- dash",
            "-",
            "nil",
            "a: b",
            "true",
            "0",
            "x\x0by",
            "é ü 日本",
        ]
    ),
)
map_values = strings.filter(lambda s: s != "nil")
map_keys = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n:"), min_size=1, max_size=10),
    st.sampled_from(
        ["x", "nil", "-dash", "a b", "trail ", "\x0b", "mjl@example.com", "@example.com", "a#b", "x-"]
    ),
).filter(lambda k: not k.startswith((" ", "\t")) and not k.lstrip().startswith("#"))
int64s = st.one_of(st.integers(INT_MIN, INT_MAX), st.sampled_from([INT_MIN, INT_MAX, -1, 0, 1]))
durations = int64s.map(Duration)
floats = st.one_of(
    # At most six decimals, as written with Go's %f.
    st.integers(-(10**12), 10**12).map(lambda n: n / 10**6),
    # Large floats are integers: %f writes them exactly.
    st.floats(min_value=2.0**53, max_value=1e300),
    st.floats(min_value=-1e300, max_value=-(2.0**53)),
    st.sampled_from([math.inf, -math.inf, 0.95, 0.01, -0.0]),
)


def strategy(tp: Any, *, nonempty: bool = False, in_map: bool = False) -> st.SearchStrategy[Any]:
    """Values of tp that sconf can represent.

    nonempty: the value must write at least one line (required lists, maps and
    structs); in_map: the value is a map value (where "nil" is special)."""
    inner, ptr = _unwrap(tp)
    if ptr:
        # An optional pointer is None or non-zero: a pointer to zero is left out.
        return st.none() | strategy(inner, nonempty=nonempty).filter(lambda v: not is_zero(v))
    origin = typing.get_origin(tp)
    if origin is list:
        (elem,) = typing.get_args(tp)
        return st.lists(strategy(elem, nonempty=True), min_size=1 if nonempty else 0, max_size=3)
    if origin is dict:
        _, elem = typing.get_args(tp)
        return st.dictionaries(
            map_keys, strategy(elem, in_map=True), min_size=1 if nonempty else 0, max_size=3
        )
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return struct_strategy(tp, nonempty=nonempty)
    if tp is str:
        return map_values if in_map else strings
    if tp is bool:
        return st.booleans()
    if tp is Duration:
        return durations
    if tp is int:
        return int64s
    if tp is float:
        return floats
    raise TypeError(tp)


def struct_strategy(cls: type, *, nonempty: bool = False) -> st.SearchStrategy[Any]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in sconf.fields_of(cls):
        inner, ptr = _unwrap(f.type)
        if not f.optional and ptr:
            # A required pointer is always written, a None as the zero value.
            fields[f.name] = strategy(inner, nonempty=True)
        else:
            fields[f.name] = strategy(f.type, nonempty=not f.optional)
    s = st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))
    if nonempty:
        s = s.filter(lambda v: not writes_no_lines(v))
    return s


# Strict comparison: a parsed 1 must not be True, a Duration not a plain int.


def assert_same(a: Any, b: Any, path: str = "") -> None:
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in sconf.fields_of(type(a)):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def check_linemap(text: str, lines: sconf.LineMap) -> None:
    """Every recorded line holds the key (or list item) it is recorded for."""
    all_lines = text.split("\n")
    for path, n in lines.items():
        line = all_lines[n - 1].lstrip("\t")
        last = path[-1]
        if isinstance(last, int):
            assert line.startswith("-"), (path, line)
        else:
            assert line.startswith(f"{last}:"), (path, line)


def roundtrip(value: Any, *, docs: bool, header: str = "") -> None:
    text = sconf.write(value, docs=docs, header=header)
    parsed, lines = sconf.parse(type(value), text, "test.conf")
    assert_same(parsed, value)
    assert parsed == value
    assert sconf.write(parsed, docs=docs, header=header) == text
    check_linemap(text, lines)


ROUNDTRIP_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@ROUNDTRIP_SETTINGS
@given(struct_strategy(Doc), st.booleans())
def test_any_representable_document_reads_back_equal(doc: Doc, docs: bool) -> None:
    roundtrip(doc, docs=docs, header="A header.\nWith two lines." if docs else "")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(struct_strategy(model.Dynamic))
def test_any_domains_conf_model_reads_back_equal(dyn: model.Dynamic) -> None:
    roundtrip(dyn, docs=True, header=model.DYNAMIC_HEADER)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(struct_strategy(model.Static))
def test_any_mox_conf_model_reads_back_equal(static: model.Static) -> None:
    roundtrip(static, docs=False)


def test_string_edges_are_kept_exactly() -> None:
    doc = Doc(
        Text="  two leading spaces, trailing too  ",
        Words=["", " ", "- not an item", "# not a comment", "nil"],
        ItemsByName={"-x": Item(Name="\tstarts with a tab")},
        Main=Item(Name=""),
        Labels={"k": "", "nil": "value of the key nil"},
    )
    text = sconf.write(doc, docs=False)
    assert "Text:   two leading spaces, trailing too  \n" in text
    assert "\t- \n" in text  # the empty string list item: dash, space, nothing
    assert "\t-x:\n" in text
    roundtrip(doc, docs=False)


def test_empty_struct_in_map_is_written_as_nil_and_read_as_zero_value() -> None:
    doc = Doc(
        Words=["w"], ItemsByName={"i": Item(Name="n")}, FlagsByName={"off": Flags(), "on": Flags(On=True)}
    )
    text = sconf.write(doc, docs=False)
    assert "\toff: nil\n" in text
    assert "\ton:\n\t\tOn: true\n" in text
    roundtrip(doc, docs=False)


def test_pointer_to_zero_value_is_left_out_like_upstream() -> None:
    # Upstream's isZeroIgnored: a pointer to a zero value is zero too, so it is not
    # written, and reads back as absent.
    doc = Doc(
        Words=["w"],
        ItemsByName={"i": Item(Name="n")},
        PeriodPtr=Duration(0),
        BoolPtr=False,
        SettingsPtr=Flags(),
    )
    text = sconf.write(doc, docs=False)
    assert "PeriodPtr" not in text and "BoolPtr" not in text and "SettingsPtr" not in text
    parsed, _ = sconf.parse(Doc, text, "t")
    assert parsed.PeriodPtr is None and parsed.BoolPtr is None and parsed.SettingsPtr is None
    # Set explicitly, a pointer to a zero value is read as that value, not None.
    parsed, _ = sconf.parse(Doc, text + "PeriodPtr: 0s\nBoolPtr: false\n", "t")
    assert parsed.PeriodPtr == 0 and type(parsed.PeriodPtr) is Duration
    assert parsed.BoolPtr is False


def test_floats_are_written_like_go_percent_f() -> None:
    doc = Doc(Words=["w"], ItemsByName={"i": Item(Name="n")}, Ratio=0.95, Ratios=[0.0, -1.5, 1e20, math.inf])
    text = sconf.write(doc, docs=False)
    assert "Ratio: 0.950000\n" in text
    assert "\t- 0.000000\n\t- -1.500000\n\t- 100000000000000000000.000000\n\t- inf\n" in text


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (Doc(Text="two\nlines", Words=["w"], ItemsByName={"i": Item(Name="n")}), "Text: multi-line strings"),
        (
            Doc(Text="carriage\rreturn", Words=["w"], ItemsByName={"i": Item(Name="n")}),
            "Text: multi-line strings",
        ),
        (Doc(Words=[], ItemsByName={"i": Item(Name="n")}), "Words: a required list cannot be empty"),
        (Doc(Words=["w"], ItemsByName={}), "ItemsByName: a required map cannot be empty"),
        (
            Doc(Words=["w"], ItemsByName={"i": Item(Name="n")}, Labels={"k": "nil"}),
            "Labels.k: the map value 'nil'",
        ),
        (Doc(Words=["w"], ItemsByName={"a:b": Item(Name="n")}), "map key 'a:b' cannot be written"),
        (Doc(Words=["w"], ItemsByName={"": Item(Name="n")}), "map key '' cannot be written"),
        (Doc(Words=["w"], ItemsByName={" x": Item(Name="n")}), "map key ' x' cannot be written"),
        (Doc(Words=["w"], ItemsByName={"#x": Item(Name="n")}), "map key '#x' cannot be written"),
        (Doc(Words=["w"], ItemsByName={"\x0b#x": Item(Name="n")}), "cannot be written"),
        (
            Doc(
                Words=["w"], ItemsByName={"i": Item(Name="n")}, Nested=Level1(ByName={"x": Level2(Items=[])})
            ),
            "a required list cannot be empty",
        ),
    ],
)
def test_unrepresentable_values_are_refused_when_writing(doc: Doc, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        sconf.write(doc)
    assert message in str(exc.value)


@dataclass
class WithRequiredEmptyable:
    Settings: Flags = required(factory=Flags)
    List: list[Flags] = option(factory=list)


def test_struct_that_would_write_no_lines_is_refused() -> None:
    # Upstream writes "Settings:" with nothing below, which its parser refuses.
    with pytest.raises(ValueError, match="Settings: a struct without any field set"):
        sconf.write(WithRequiredEmptyable())
    with pytest.raises(ValueError, match="a struct without any field set"):
        sconf.write(WithRequiredEmptyable(Settings=Flags(On=True), List=[Flags()]))
    roundtrip(WithRequiredEmptyable(Settings=Flags(Note=" n"), List=[Flags(On=True)]), docs=True)


def test_model_defaults_are_go_zero_values() -> None:
    # Writing leaves out optional zero values; reading fills in defaults. The two
    # agree only when every default is the zero value, as in Go.
    seen: set[type] = set()

    def walk(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        inst = cls()
        for f in sconf.fields_of(cls):
            value = getattr(inst, f.name)
            zero = sconf.zero_value(f.type)
            assert value == zero and type(value) is type(zero), f"{cls.__name__}.{f.name}"
            for t in (f.type, *typing.get_args(f.type)):
                for tt in (t, *typing.get_args(t)):
                    if isinstance(tt, type) and dataclasses.is_dataclass(tt):
                        walk(tt)

    walk(model.Static)
    walk(model.Dynamic)
    assert len(seen) > 40


@pytest.mark.parametrize(
    ("name", "cls"), [("localserve-mox.conf", model.Static), ("localserve-domains.conf", model.Dynamic)]
)
def test_upstream_files_are_written_back_line_for_line(upstream_config: Path, name: str, cls: type) -> None:
    # Apart from comments (our own documentation), we write what upstream writes:
    # field order, "72h0m0s", "0.950000", "Domain: " for an empty required string.
    text = (upstream_config / name).read_text()
    parsed: Any
    parsed, _ = sconf.parse(cls, text, name)
    ours = sconf.write(parsed, docs=False)

    def values(t: str) -> list[str]:
        return [line for line in t.split("\n") if line.strip() and not line.strip().startswith("#")]

    assert values(ours) == values(text)
    roundtrip(parsed, docs=True)
