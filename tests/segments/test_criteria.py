"""The criteria language: syntax, canonical text, checks, and the same members from Ibis and Python."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import ibis
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oppiva.analytics.catalogue import FEATURES, Kind
from oppiva.errors import InvalidInput
from oppiva.segments.criteria import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Arith,
    Between,
    Call,
    Compare,
    Criteria,
    Expr,
    FeatureRef,
    InList,
    IsNull,
    Literal,
    MappingContext,
    Neg,
    Not,
    Or,
    parse,
    to_ibis,
    to_python,
    validate,
)

EXAMPLES = [
    "visits_365d >= 20 and avg_basket_365d > 50 and departments_365d > 5",
    'units_in("Cars") >= 2 and months_since_in("Maintenance") <= 12',
    'unbroken_months_in("Magazines") > 36',
    'preferred_channel in ("web", "app")',
    'preferred_channel not in ("web", "app")',
    "last_purchase < 2025-06-01",
    "not omnichannel",
    "spend_365d between 100 and 500",
    "spend_365d not between 100 and 500",
    "first_purchase is null",
    "first_purchase is not null",
    "(visits_30d > 1 or omnichannel) and not (recency_days > 90 and trend_90d < -0.5)",
    'share("Fresh") * 100 >= spend_in("Fresh", 30) / 2 - -1',
    'top_department_365d = "Caf\\u00e9 \\"Central\\"\\n"',
    "omnichannel = true or omnichannel != false",
    "-(-visits_total) + 1.5e-07 > 0",
]


def reason(text: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        validate(text)
    assert caught.value.field == "criteria"
    return caught.value.reason


# --- syntax and canonical text ---------------------------------------------------------------


@pytest.mark.parametrize("text", EXAMPLES)
def test_examples_check_and_format_to_a_fixpoint(text: str) -> None:
    criteria = validate(text)
    canonical = criteria.format()
    assert parse(canonical) == criteria.expr
    assert validate(canonical).format() == canonical


def test_canonical_text_is_lower_case_and_evenly_spaced() -> None:
    criteria = validate(
        'VISITS_365D>=20  AND\n NOT Omnichannel OR units_in( "Cars" ,90)Between 1 AND 2'
    )
    assert criteria.text == (
        'visits_365d >= 20 and not omnichannel or units_in("Cars", 90) between 1 and 2'
    )


def test_precedence() -> None:
    a, b, c = FeatureRef("a"), FeatureRef("b"), FeatureRef("c")
    assert parse("a or b and c") == Or((a, And((b, c))))
    assert parse("(a or b) and c") == And((Or((a, b)), c))
    assert parse("not a = b") == Not(Compare("=", a, b))
    assert parse("a + b * c") == Arith("+", a, Arith("*", b, c))
    assert parse("a - b - c") == Arith("-", Arith("-", a, b), c)
    assert parse("a - (b - c)") == Arith("-", a, Arith("-", b, c))
    assert parse("-a * b") == Arith("*", Neg(a), b)
    assert parse("-5") == Neg(Literal(5))
    assert parse("a and b and c") == And((a, b, c))
    assert parse("(a and b) and c") == And((And((a, b)), c))
    assert parse("a between 1 and 2 and b") == And((Between(a, Literal(1), Literal(2)), b))


def test_literals_keep_their_kind() -> None:
    assert parse("1") == Literal(1)
    assert Literal(1).kind == Kind.INT
    assert Literal(1.0).kind == Kind.FLOAT
    assert parse("1.0") != parse("1")  # the kind takes part in equality
    assert parse("2025-06-01") == Literal(dt.date(2025, 6, 1))
    assert parse('"a\\tb\\\\"') == Literal("a\tb\\")
    with pytest.raises(ValueError, match="not negative"):
        Literal(-1.5)
    with pytest.raises(ValueError, match="finite"):
        Literal(math.inf)
    with pytest.raises(TypeError):
        Literal(dt.datetime(2025, 1, 1))


def test_referenced_lists_features_and_calls_once() -> None:
    criteria = validate(
        'visits_365d > 2 and (share("Fresh") > 0.3 or visits_365d < units_in("Cars", 90))'
        ' and share("Fresh") < 0.9'
    )
    used = criteria.referenced()
    assert used.features == ("visits_365d",)
    assert [(call.name, call.values) for call in used.calls] == [
        ("share", ("Fresh",)),
        ("units_in", ("Cars", 90)),
    ]


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("visits_365d >= ", "line 1, column 16: expected a value"),
        ("visits_365d >= )", "found ')'"),
        ("visits_365d 20", "expected an arithmetic operator (+ - * /), a comparison"),
        ('top_department_365d = "Cars', "a string that is not closed"),
        ("visits_365d > 1 and\n  visits_30d == 2", "line 2, column 15: expected a value"),
        ("(visits_365d > 1", "expected ')'"),
        ("1 < 2 < 3", "found '<'"),
        ("preferred_store in ()", "found ')'"),
        ("last_purchase < 2025-13-01", "not a date (YYYY-MM-DD)"),
        ('top_department_365d = "a\\qb"', "unknown escape"),
        ('top_department_365d = "\\ud800"', "not a surrogate"),
        ("visits_365d = \u0663", "found '\u0663'"),
        ("visits_365d = 99999999999999999999", "too large"),
    ],
)
def test_syntax_errors_say_where_and_what_was_expected(text: str, expected: str) -> None:
    assert expected in reason(text)


def test_the_excerpt_underlines_the_place() -> None:
    lines = reason("visits_365d >= )").splitlines()
    assert lines[1:] == ["  visits_365d >= )", "                 ^"]
    lines = reason("vists_365d > 2 and omnichannel").splitlines()
    assert lines[2] == "  ^^^^^^^^^^"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vists_365d > 2", "unknown feature 'vists_365d'; did you mean visits_365d"),
        ("share > 0.5", "share is a function: write share(...)"),
        ("visits_365d() > 1", "unknown function 'visits_365d' (a feature"),
        ('shares("Fresh") > 0.5', "did you mean share?"),
        ('share("Fresh", 30) > 0.5', "share(text) takes 1 argument; got 2"),
        ("units_in() > 1", "units_in(text, int) takes 1 to 2 arguments; got 0"),
        ("units_in(7) > 1", "argument 1 of units_in(text, int) is text, not a whole number"),
        ('units_in("Cars", 1.5) > 1', "argument 2 of units_in(text, int) is a whole number"),
        ('units_in("Cars", visits_365d) > 1', "arguments are constants"),
        ("last_purchase > 20", "cannot compare a date with a whole number"),
        ('visits_365d in (1, "2")', "cannot compare a whole number with text"),
        ("spend_365d between 2025-01-01 and 5", "cannot compare a decimal number with a date"),
        ("preferred_store + 1 > 2", "'+' works on numbers; this is text"),
        ("-last_purchase < 2025-01-01", "'-' works on numbers; this is a date"),
        ("visits_365d and omnichannel", "'and' joins conditions (true/false); this is a whole"),
        ("not spend_365d", "'not' joins conditions"),
        ("omnichannel < true", "true/false values have no order"),
        ("visits_365d + 1", "must be a condition (true or false); this is a whole number"),
    ],
)
def test_type_errors_name_the_place(text: str, expected: str) -> None:
    message = reason(text)
    assert expected in message
    assert message.startswith("line 1, column ")


def test_absurd_input_is_refused_clearly() -> None:
    assert "limit is 4,000" in reason("x" * (MAX_LENGTH + 1))
    assert "is empty" in reason("  \n ")
    assert "nests too deeply" in reason("-" * 500 + "1 > 0")
    deep = "(" * 1900 + "omnichannel" + ")" * 1900
    assert validate(deep).text == "omnichannel"  # parentheses alone add no depth
    nested = "omnichannel"
    for _ in range(MAX_DEPTH):
        nested = f"not ({nested} and omnichannel)"
    assert "nests too deeply" in reason(nested)


def test_a_criteria_built_in_code_is_checked_too() -> None:
    with pytest.raises(InvalidInput, match="unknown feature 'nope'"):
        Criteria(Compare(">", FeatureRef("nope"), Literal(1)))
    with pytest.raises(InvalidInput, match="'and' joins two conditions or more"):
        Criteria(And((FeatureRef("omnichannel"),)))


# --- meaning ------------------------------------------------------------------------------------


NULL_CASES = [
    # (criteria, features, member?)
    ("visits_365d > 1", {}, False),
    ("not visits_365d > 1", {}, False),
    ("visits_365d > 1 or omnichannel", {"omnichannel": True}, True),
    ("visits_365d > 1 and omnichannel", {"omnichannel": False}, False),
    ("not (visits_365d > 1 and omnichannel)", {"omnichannel": False}, True),
    ("not (visits_365d > 1 or omnichannel)", {"omnichannel": False}, False),
    ("visits_365d is null", {}, True),
    ("visits_365d in (1, 2)", {"visits_365d": 2}, True),
    ("visits_365d not in (1, visits_30d)", {"visits_365d": 2}, False),
    ("visits_365d in (1, visits_30d, 2)", {"visits_365d": 2}, True),
    ("visits_365d between 1 and spend_365d", {"visits_365d": 0}, False),
    ("visits_365d not between 1 and spend_365d", {"visits_365d": 0}, True),
    ("visits_365d not between 1 and spend_365d", {"visits_365d": 2}, False),
    ("spend_365d / visits_365d > 0", {"spend_365d": 5.0, "visits_365d": 0}, False),
    ("(spend_365d / visits_365d) is null", {"spend_365d": 5.0, "visits_365d": 0}, True),
    ("visits_365d / visits_30d = 0.5", {"visits_365d": 1, "visits_30d": 2}, True),
    ('preferred_channel = "Web"', {"preferred_channel": "web"}, False),
    ("last_purchase >= 2025-06-01", {"last_purchase": dt.datetime(2025, 6, 1, 12)}, True),
]


@pytest.mark.parametrize(("text", "features", "member"), NULL_CASES)
def test_three_valued_logic_in_python(text: str, features: dict[str, Any], member: bool) -> None:
    assert to_python(text)(MappingContext(features)) is member


def test_functions_come_from_the_context() -> None:
    member = to_python('share("Fresh") > 0.3 and units_in("Cars", 90) >= 1')
    values = {("share", ("Fresh",)): 0.4, ("units_in", ("Cars", 90)): 1.0}
    assert member(MappingContext({}, values))
    assert not member(MappingContext({}, {("share", ("Fresh",)): 0.4}))


@dataclass(frozen=True)
class Pools:
    """What values the random expressions are built from."""

    ints: st.SearchStrategy[int]
    floats: st.SearchStrategy[float]
    texts: st.SearchStrategy[str]
    dates: st.SearchStrategy[dt.date]


WIDE = Pools(
    ints=st.integers(0, 2**63 - 1),
    floats=st.floats(min_value=0.0, allow_infinity=False).filter(
        lambda x: math.copysign(1.0, x) > 0
    ),
    texts=st.text(),
    dates=st.dates(),
)
SMALL_TEXTS = ["", "a", "B", "web", "é", 'x"y']
SMALL_DATES = [dt.date(2024, 12, 31), dt.date(2025, 1, 1), dt.date(2025, 6, 1)]
SMALL_FLOATS = [0.0, 0.1, 0.5, 1.0, 2.5, 3.0]
NARROW = Pools(
    ints=st.integers(0, 5),
    floats=st.sampled_from(SMALL_FLOATS),
    texts=st.sampled_from(SMALL_TEXTS),
    dates=st.sampled_from(SMALL_DATES),
)
CALLS = [
    Call("share", (Literal("Fresh"),)),
    Call("spend_in", (Literal("Fresh"),)),
    Call("units_in", (Literal("Cars"),)),
    Call("units_in", (Literal("Cars"), Literal(90))),
    Call("visits_in", (Literal("Cars"), Literal(30))),
    Call("months_since_in", (Literal("Maintenance"),)),
    Call("unbroken_months_in", (Literal("Magazines"),)),
]
CALL_KINDS = {"share": Kind.FLOAT, "spend_in": Kind.FLOAT, "units_in": Kind.FLOAT}


def call_kind(call: Call) -> Kind:
    return CALL_KINDS.get(call.name, Kind.INT)


def leaves(pools: Pools, kind: Kind) -> st.SearchStrategy[Expr]:
    """Constants, features and function calls of one kind."""
    constants: dict[Kind, st.SearchStrategy[Any]] = {
        Kind.INT: pools.ints,
        Kind.FLOAT: pools.floats,
        Kind.TEXT: pools.texts,
        Kind.DATE: pools.dates,
        Kind.BOOL: st.booleans(),
    }
    names = sorted(name for name, feature in FEATURES.items() if feature.kind == kind)
    calls = [call for call in CALLS if call_kind(call) == kind]
    options: list[st.SearchStrategy[Expr]] = [
        st.builds(Literal, constants[kind]),
        st.sampled_from(names).map(FeatureRef),
    ]
    if calls:
        options.append(st.sampled_from(calls))
    return st.one_of(options)


def numbers(pools: Pools, depth: int) -> st.SearchStrategy[Expr]:
    leaf = st.one_of(leaves(pools, Kind.INT), leaves(pools, Kind.FLOAT))
    if depth == 0:
        return leaf
    inner = numbers(pools, depth - 1)
    return st.one_of(
        leaf,
        st.builds(Neg, inner),
        st.builds(Arith, st.sampled_from(["+", "-", "*", "/"]), inner, inner),
    )


def conditions(pools: Pools, depth: int) -> st.SearchStrategy[Expr]:
    """Well-typed conditions nesting at most `depth` boolean levels."""
    ordered = st.one_of(
        numbers(pools, 2),
        leaves(pools, Kind.TEXT),
        leaves(pools, Kind.DATE),
    )
    ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
    flags = st.booleans()
    inner = conditions(pools, depth - 1) if depth > 0 else leaves(pools, Kind.BOOL)
    truths = st.one_of(leaves(pools, Kind.BOOL), inner)

    def family(kind_of: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            st.builds(Compare, ops, kind_of, kind_of),
            st.builds(Between, kind_of, kind_of, kind_of, flags),
            st.builds(InList, kind_of, st.lists(kind_of, min_size=1, max_size=3).map(tuple), flags),
        )

    base = st.one_of(
        leaves(pools, Kind.BOOL),
        family(numbers(pools, 2)),
        family(leaves(pools, Kind.TEXT)),
        family(leaves(pools, Kind.DATE)),
        st.builds(Compare, st.sampled_from(["=", "!="]), truths, truths),
        st.builds(IsNull, st.one_of(ordered, leaves(pools, Kind.BOOL)), flags),
    )
    if depth == 0:
        return base
    several = st.lists(inner, min_size=2, max_size=3).map(tuple)
    return st.one_of(
        base,
        st.builds(Not, inner),
        st.builds(And, several),
        st.builds(Or, several),
    )


@settings(max_examples=300, deadline=None)
@given(conditions(WIDE, 3))
def test_format_then_parse_gives_the_same_tree(expr: Expr) -> None:
    criteria = Criteria(expr)
    assert parse(criteria.format()) == expr
    assert validate(criteria.format()) == criteria


# --- Ibis on DuckDB and Python pick the same members ---------------------------------------------

ARROW_TYPES = {
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.BOOL: pa.bool_(),
    Kind.TEXT: pa.string(),
    Kind.DATE: pa.date32(),
}


def column_of(call: Call) -> str:
    return call.format()


def customers() -> st.SearchStrategy[list[dict[str, Any]]]:
    values = {
        Kind.INT: st.integers(-3, 5),
        Kind.FLOAT: st.sampled_from([*SMALL_FLOATS, -1.5, -0.0]),
        Kind.BOOL: st.booleans(),
        Kind.TEXT: st.sampled_from(SMALL_TEXTS),
        Kind.DATE: st.sampled_from(SMALL_DATES),
    }
    columns = {name: feature.kind for name, feature in FEATURES.items()}
    columns |= {column_of(call): call_kind(call) for call in CALLS}
    row = st.fixed_dictionaries({name: st.none() | values[kind] for name, kind in columns.items()})
    return st.lists(row, min_size=1, max_size=8)


@cache
def duckdb() -> Any:
    return ibis.duckdb.connect()


class TableScope:
    """Feature columns and precomputed function columns of one memtable."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.calls = {(call.name, call.values): column_of(call) for call in CALLS}

    def column(self, name: str) -> Any:
        return self.table[name]

    def call(self, name: str, args: tuple[object, ...]) -> Any:
        return self.table[self.calls[name, args]]


def members_by_ibis(criteria: Criteria, rows: list[dict[str, Any]]) -> set[int]:
    schema = pa.schema(
        [("id", pa.int64())]
        + [(name, ARROW_TYPES[f.kind]) for name, f in FEATURES.items()]
        + [(column_of(call), ARROW_TYPES[call_kind(call)]) for call in CALLS]
    )
    data = {"id": list(range(len(rows)))} | {
        name: [row[name] for row in rows] for name in schema.names[1:]
    }
    table = ibis.memtable(pa.table(data, schema=schema))
    selected = table.filter(to_ibis(criteria, TableScope(table))).select("id")
    return set(duckdb().to_pyarrow(selected).column("id").to_pylist())


def members_by_python(criteria: Criteria, rows: list[dict[str, Any]]) -> set[int]:
    member = to_python(criteria)
    found = set()
    for i, row in enumerate(rows):
        functions = {(call.name, call.values): row[column_of(call)] for call in CALLS}
        if member(MappingContext(row, functions)):
            found.add(i)
    return found


@pytest.mark.parametrize(("text", "features", "member"), NULL_CASES[:-1])
def test_three_valued_logic_on_duckdb(text: str, features: dict[str, Any], member: bool) -> None:
    row = dict.fromkeys([*FEATURES, *(column_of(call) for call in CALLS)]) | features
    criteria = validate(text)
    assert members_by_ibis(criteria, [row]) == members_by_python(criteria, [row])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(conditions(NARROW, 2), customers())
def test_ibis_and_python_pick_the_same_members(expr: Expr, rows: list[dict[str, Any]]) -> None:
    criteria = Criteria(expr)
    assert members_by_ibis(criteria, rows) == members_by_python(criteria, rows)
