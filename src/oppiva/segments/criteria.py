"""The criteria language: readable conditions over customer features, checked and compiled.

`validate("visits_365d >= 20 and share(\"Fresh\") > 0.3")` parses the text with a Lark LALR
grammar, checks names and types against the feature catalogue and returns a `Criteria`.
A `Criteria` compiles to an Ibis boolean (`to_ibis`, for whole tables) and to a Python
predicate (`to_python`, for one customer at a time); both follow SQL's three-valued logic,
so they always pick the same members.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, cast
from typing import Literal as Lit

from lark import Lark, Token, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from oppiva.analytics.catalogue import FEATURES, FUNCTIONS, NUMERIC, Kind
from oppiva.errors import InvalidInput

FIELD = "criteria"
MAX_LENGTH = 4000
MAX_DEPTH = 40
_INT64_MAX = 2**63 - 1

Span: TypeAlias = tuple[int, int]
"""Where a node was written: character offsets `[start, end)` in the text it was parsed from."""

Value: TypeAlias = int | float | bool | str | dt.date
CompareOp: TypeAlias = Lit["=", "!=", "<", "<=", ">", ">="]
ArithOp: TypeAlias = Lit["+", "-", "*", "/"]

# ---------------------------------------------------------------------------------------------
# The syntax tree


class Node:
    """What every syntax-tree node offers; `span` is ignored by equality."""

    __slots__ = ()

    def format(self) -> str:
        """The canonical text: `parse(node.format()) == node`."""
        return _format(self, 0)  # type: ignore[arg-type]

    def referenced(self) -> Referenced:
        """The features and function calls used, each once, in order of appearance."""
        features: dict[str, None] = {}
        calls: dict[Call, None] = {}
        for node in _walk(self):  # type: ignore[arg-type]
            if isinstance(node, FeatureRef):
                features[node.name] = None
            elif isinstance(node, Call):
                calls[node] = None
        return Referenced(tuple(features), tuple(calls))


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A constant: a whole or decimal number (never negative: `-5` is `Neg`), text, date, bool."""

    value: Value
    kind: Kind = field(init=False)
    span: Span | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _literal_kind(self.value))


@dataclass(frozen=True, slots=True)
class FeatureRef(Node):
    """A feature of the catalogue by name: `visits_365d`."""

    name: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A catalogue function applied to constants: `units_in("Cars", 90)`."""

    name: str
    args: tuple[Literal, ...]
    span: Span | None = field(default=None, compare=False, repr=False)

    @property
    def values(self) -> tuple[Value, ...]:
        """The argument values, as a scope or context receives them."""
        return tuple(arg.value for arg in self.args)


@dataclass(frozen=True, slots=True)
class Neg(Node):
    """Unary minus."""

    operand: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Arith(Node):
    """`+ - * /` on numbers; `/` always divides as decimals and gives null for a zero divisor."""

    op: ArithOp
    left: Expr
    right: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """`= != < <= > >=`; null on either side gives null."""

    op: CompareOp
    left: Expr
    right: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Between(Node):
    """`x [not] between low and high`, bounds included: `x >= low and x <= high`."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InList(Node):
    """`x [not] in (a, b, ...)`: `x = a or x = b ...`."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IsNull(Node):
    """`x is [not] null`: the one test that is never null itself."""

    operand: Expr
    negated: bool = False
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Not(Node):
    """`not x`: null stays null."""

    operand: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class And(Node):
    """`a and b and ...` (two or more): false wins over null, null over true."""

    operands: tuple[Expr, ...]
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Or(Node):
    """`a or b or ...` (two or more): true wins over null, null over false."""

    operands: tuple[Expr, ...]
    span: Span | None = field(default=None, compare=False, repr=False)


Expr: TypeAlias = (
    Literal | FeatureRef | Call | Neg | Arith | Compare | Between | InList | IsNull | Not | And | Or
)


@dataclass(frozen=True, slots=True)
class Referenced:
    """What a criteria reads: feature names and function calls."""

    features: tuple[str, ...]
    calls: tuple[Call, ...]


def _literal_kind(value: object) -> Kind:
    """The kind of a constant, refusing what the text form could not give back unchanged."""
    if isinstance(value, bool):
        return Kind.BOOL
    if isinstance(value, int):
        if not 0 <= value <= _INT64_MAX:
            raise ValueError(f"a whole-number literal is between 0 and {_INT64_MAX}: {value}")
        return Kind.INT
    if isinstance(value, float):
        if not math.isfinite(value) or math.copysign(1.0, value) < 0:
            raise ValueError(f"a decimal literal is finite and not negative: {value}")
        return Kind.FLOAT
    if isinstance(value, str):
        return Kind.TEXT
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return Kind.DATE
    raise TypeError(f"not a criteria constant: {value!r}")


def _children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions, left to right."""
    match node:
        case Literal() | FeatureRef():
            return ()
        case Call(args=args):
            return args
        case Neg(operand=x) | Not(operand=x) | IsNull(operand=x):
            return (x,)
        case Arith(left=a, right=b) | Compare(left=a, right=b):
            return (a, b)
        case Between(operand=x, low=lo, high=hi):
            return (x, lo, hi)
        case InList(operand=x, items=items):
            return (x, *items)
        case And(operands=xs) | Or(operands=xs):
            return xs
    raise TypeError(f"not a criteria node: {node!r}")


def _walk(node: Expr) -> Iterator[Expr]:
    """Every node, parents before children, left to right; without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(_children(current)))


def _depth(node: Expr) -> tuple[int, Expr]:
    """How deeply the tree nests, and its deepest node; without recursion."""
    deepest, at = 0, node
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > deepest:
            deepest, at = depth, current
        stack.extend((child, depth + 1) for child in _children(current))
    return deepest, at


# ---------------------------------------------------------------------------------------------
# Canonical text

_OR, _AND, _NOT, _PREDICATE, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)


def _precedence(node: Expr) -> int:
    match node:
        case Or():
            return _OR
        case And():
            return _AND
        case Not():
            return _NOT
        case Compare() | Between() | InList() | IsNull():
            return _PREDICATE
        case Arith(op="+" | "-"):
            return _SUM
        case Arith():
            return _PRODUCT
        case Neg():
            return _UNARY
    return _ATOM


def _format(node: Expr, context: int) -> str:
    """`node` as text, in parentheses when its precedence is below what `context` needs."""
    text = _format_bare(node)
    return f"({text})" if _precedence(node) < context else text


def _format_bare(node: Expr) -> str:
    match node:
        case Literal(value=value):
            return _format_value(value)
        case FeatureRef(name=name):
            return name
        case Call(name=name, args=args):
            return f"{name}({', '.join(_format(a, 0) for a in args)})"
        case Neg(operand=x):
            return "-" + (f"({_format(x, 0)})" if isinstance(x, Neg) else _format(x, _UNARY))
        case Arith(op=op, left=a, right=b):
            level = _precedence(node)
            return f"{_format(a, level)} {op} {_format(b, level + 1)}"
        case Compare(op=op, left=a, right=b):
            return f"{_format(a, _SUM)} {op} {_format(b, _SUM)}"
        case Between(operand=x, low=lo, high=hi, negated=negated):
            word = "not between" if negated else "between"
            return f"{_format(x, _SUM)} {word} {_format(lo, _SUM)} and {_format(hi, _SUM)}"
        case InList(operand=x, items=items, negated=negated):
            word = "not in" if negated else "in"
            return f"{_format(x, _SUM)} {word} ({', '.join(_format(i, 0) for i in items)})"
        case IsNull(operand=x, negated=negated):
            return f"{_format(x, _SUM)} is {'not null' if negated else 'null'}"
        case Not(operand=x):
            return f"not {_format(x, _NOT)}"
        case And(operands=xs):
            return " and ".join(_format(x, _NOT) for x in xs)
        case Or(operands=xs):
            return " or ".join(_format(x, _AND) for x in xs)
    raise TypeError(f"not a criteria node: {node!r}")


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


def _format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + "".join(_escape(c) for c in value) + '"'
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value)


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char < " " or "\x7f" <= char <= "\x9f":
        return f"\\u{ord(char):04x}"
    return char


# ---------------------------------------------------------------------------------------------
# Parsing

_GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: NOT not_expr -> not_
    | predicate
?predicate: sum
    | sum COMP_OP sum -> compare
    | sum [NOT] _BETWEEN sum _AND sum -> between
    | sum [NOT] _IN LPAR or_expr (_COMMA or_expr)* RPAR -> in_list
    | sum _IS [NOT] NULL -> is_null
?sum: product
    | sum PLUS product -> arith
    | sum MINUS product -> arith
?product: unary
    | product STAR unary -> arith
    | product SLASH unary -> arith
?unary: atom
    | MINUS unary -> neg
?atom: NUMBER -> number
    | STRING -> string
    | DATE -> date
    | TRUE -> true
    | FALSE -> false
    | NAME -> feature
    | NAME LPAR [or_expr (_COMMA or_expr)*] RPAR -> call
    | LPAR or_expr RPAR -> paren

_OR: "or"i
_AND: "and"i
NOT: "not"i
_BETWEEN: "between"i
_IN: "in"i
_IS: "is"i
NULL: "null"i
TRUE: "true"i
FALSE: "false"i
NAME: /[a-z_][a-z0-9_]*/i
DATE.2: /[0-9]{4}-[0-9]{2}-[0-9]{2}/
NUMBER: /[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/
STRING: /"([^"\\\x00-\x1f]|\\[^\x00-\x1f])*"/
COMP_OP: /<=|>=|!=|<|>|=/
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
LPAR: "("
RPAR: ")"
_COMMA: ","

%ignore /\s+/
"""


class _Problem(Exception):
    """A refusal found while building or checking the tree, before the text is quoted."""

    def __init__(self, message: str, span: Span | None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span


def _tok(token: Token) -> Span:
    return (token.start_pos or 0, token.end_pos or 0)


def _span(*parts: Token | Expr | None) -> Span | None:
    spans = [_tok(p) if isinstance(p, Token) else p.span for p in parts if p is not None]
    known = [s for s in spans if s is not None]
    return (min(s[0] for s in known), max(s[1] for s in known)) if known else None


class _Build:
    """Lark callbacks, run as the LALR parser reduces: the tree is built without recursion."""

    def or_expr(self, children: list[Expr]) -> Expr:
        return Or(tuple(children), span=_span(children[0], children[-1]))

    def and_expr(self, children: list[Expr]) -> Expr:
        return And(tuple(children), span=_span(children[0], children[-1]))

    def not_(self, children: list[Any]) -> Expr:
        keyword, operand = children
        return Not(operand, span=_span(keyword, operand))

    def compare(self, children: list[Any]) -> Expr:
        left, op, right = children
        return Compare(str(op), left, right, span=_span(left, right))  # type: ignore[arg-type]

    def between(self, children: list[Any]) -> Expr:
        operand, negated, low, high = children
        return Between(operand, low, high, negated is not None, span=_span(operand, high))

    def in_list(self, children: list[Any]) -> Expr:
        operand, negated, _lpar, *items, rpar = children
        return InList(operand, tuple(items), negated is not None, span=_span(operand, rpar))

    def is_null(self, children: list[Any]) -> Expr:
        operand, negated, null = children
        return IsNull(operand, negated is not None, span=_span(operand, null))

    def arith(self, children: list[Any]) -> Expr:
        left, op, right = children
        return Arith(str(op), left, right, span=_span(left, right))  # type: ignore[arg-type]

    def neg(self, children: list[Any]) -> Expr:
        minus, operand = children
        return Neg(operand, span=_span(minus, operand))

    def number(self, children: list[Token]) -> Expr:
        (token,) = children
        text = str(token)
        try:
            value: Value = int(text) if text.isdigit() else float(text)
            return Literal(value, span=_tok(token))
        except ValueError:
            raise _Problem("this number is too large", _tok(token)) from None

    def string(self, children: list[Token]) -> Expr:
        (token,) = children
        return Literal(_unescape(token), span=_tok(token))

    def date(self, children: list[Token]) -> Expr:
        (token,) = children
        try:
            return Literal(dt.date.fromisoformat(str(token)), span=_tok(token))
        except ValueError:
            raise _Problem("not a date (YYYY-MM-DD)", _tok(token)) from None

    def true(self, children: list[Token]) -> Expr:
        return Literal(True, span=_tok(children[0]))

    def false(self, children: list[Token]) -> Expr:
        return Literal(False, span=_tok(children[0]))

    def feature(self, children: list[Token]) -> Expr:
        (token,) = children
        return FeatureRef(str(token).lower(), span=_tok(token))

    def call(self, children: list[Any]) -> Expr:
        name, _lpar, *args, rpar = children
        args = [a for a in args if a is not None]
        for arg in args:
            if not isinstance(arg, Literal):
                raise _Problem(
                    "a function's arguments are constants (a string or a number)", arg.span
                )
        return Call(str(name).lower(), tuple(args), span=_span(name, rpar))

    def paren(self, children: list[Any]) -> Expr:
        return children[1]  # type: ignore[no-any-return]


def _unescape(token: Token) -> str:
    """The text between the quotes, with `\\\\ \\" \\n \\t \\r \\uXXXX` decoded."""
    body, out, i = str(token)[1:-1], [], 0
    start = (token.start_pos or 0) + 1
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = body[i + 1]
        if code in _UNESCAPES:
            out.append(_UNESCAPES[code])
            i += 2
        elif code == "u" and _is_character(body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            where = (start + i, start + i + 2)
            message = 'unknown escape; use \\\\, \\", \\n, \\t, \\r or \\uXXXX (not a surrogate)'
            raise _Problem(message, where)
    return "".join(out)


def _is_character(text: str) -> bool:
    """Four hex digits naming a character (surrogates are halves of one, not characters)."""
    if len(text) != 4 or any(c not in "0123456789abcdefABCDEF" for c in text):
        return False
    return not 0xD800 <= int(text, 16) <= 0xDFFF


_PARSER = Lark(_GRAMMAR, parser="lalr", transformer=_Build(), maybe_placeholders=True)


def parse(text: str) -> Expr:
    """The syntax tree of `text`, not yet checked against the catalogue (see `validate`)."""
    if len(text) > MAX_LENGTH:
        raise InvalidInput(FIELD, f"is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
    if not text.strip():
        raise InvalidInput(FIELD, "is empty; write a condition such as visits_365d >= 2")
    try:
        tree = cast("Expr", _PARSER.parse(text))
    except UnexpectedInput as exc:
        raise InvalidInput(FIELD, _syntax_reason(text, exc)) from None
    except _Problem as problem:
        raise InvalidInput(FIELD, _reason(text, problem)) from None
    depth, deepest = _depth(tree)
    if depth > MAX_DEPTH:
        too_deep = _Problem(f"nests too deeply (more than {MAX_DEPTH} levels)", deepest.span)
        raise InvalidInput(FIELD, _reason(text, too_deep))
    return tree


# ---------------------------------------------------------------------------------------------
# Error messages

_VALUE_START = frozenset({"NUMBER", "STRING", "DATE", "NAME", "TRUE", "FALSE", "LPAR"})
_ARITH = frozenset({"PLUS", "MINUS", "STAR", "SLASH"})
_WORDS = {
    "VALUE": "a value (number, string, date, true, false, feature, function call or '(')",
    "ARITH": "an arithmetic operator (+ - * /)",
    "COMP_OP": "a comparison (= != < <= > >=)",
    "NUMBER": "a number",
    "STRING": "a string",
    "DATE": "a date",
    "NAME": "a feature or function name",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "LPAR": "'('",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "NOT": "'not'",
    "_BETWEEN": "'between'",
    "_IN": "'in'",
    "_IS": "'is'",
    "NULL": "'null'",
    "_AND": "'and'",
    "_OR": "'or'",
    "_COMMA": "','",
    "RPAR": "')'",
    "$END": "the end",
}
_ORDER = {name: i for i, name in enumerate(_WORDS)}


def _expected(names: set[str] | frozenset[str]) -> str:
    """Lark's terminal names as words: 'a number, a string or ')''."""
    names = set(names)
    if names >= _VALUE_START:
        names = (names - _VALUE_START - {"MINUS"}) | {"VALUE"}
    if names >= _ARITH:
        names = (names - _ARITH) | {"ARITH"}
    return _alternatives(
        [_WORDS.get(n, n) for n in sorted(names, key=lambda n: _ORDER.get(n, len(_ORDER)))]
    )


def _alternatives(words: Sequence[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_reason(text: str, exc: UnexpectedInput) -> str:
    # The parser's own list of what it accepts here is exact; the lexer's and the table's
    # lists may hold terminals that only some paths through this state allow.
    interactive = getattr(exc, "interactive_parser", None)
    accepted = interactive.accepts() if interactive is not None else None
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        char = text[at]
        found = "a string that is not closed" if char == '"' else repr(char)
        problem = _Problem(
            f"expected {_expected(accepted or exc.allowed)}; found {found}", (at, at + 1)
        )
    elif isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        found = f"'{_clip(str(exc.token))}'"
        problem = _Problem(
            f"expected {_expected(accepted or exc.expected)}; found {found}", _tok(exc.token)
        )
    else:
        expected = accepted or getattr(exc, "expected", None) or set()
        problem = _Problem(f"expected {_expected(expected)}; found the end", (len(text), len(text)))
    return _reason(text, problem)


def _clip(text: str, width: int = 30) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _reason(text: str | None, problem: _Problem) -> str:
    """The message, with the line, column and an excerpt underlining the place when known."""
    if text is None or problem.span is None:
        return problem.message
    start, end = problem.span
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    line_no = text.count("\n", 0, start) + 1
    column = start - line_start + 1
    # A window of the line around the place, so long one-liners stay readable.
    left = max(line_start, start - 40)
    right = min(line_end, max(end, start + 1) + 30)
    excerpt = ("…" if left > line_start else "") + text[left:right]
    excerpt += "…" if right < line_end else ""
    pad = start - left + (1 if left > line_start else 0)
    marks = "^" * max(1, min(end, line_end) - start)
    return f"line {line_no}, column {column}: {problem.message}\n  {excerpt}\n  {' ' * pad}{marks}"


# ---------------------------------------------------------------------------------------------
# Types

_KIND_WORDS = {
    Kind.INT: "a whole number",
    Kind.FLOAT: "a decimal number",
    Kind.BOOL: "a condition (true/false)",
    Kind.TEXT: "text",
    Kind.DATE: "a date",
}


def _comparable(a: Kind, b: Kind) -> bool:
    return a == b or (a in NUMERIC and b in NUMERIC)


def _kind(node: Expr) -> Kind:
    """The kind of `node`, or `_Problem` where names or kinds do not fit."""
    match node:
        case Literal(kind=kind):
            return kind
        case FeatureRef(name=name):
            return _feature_kind(node, name)
        case Call():
            return _call_kind(node)
        case Neg(operand=x):
            _need_number(x, "'-'")
            return _kind(x)
        case Arith(op=op, left=a, right=b):
            ka, kb = _need_number(a, f"'{op}'"), _need_number(b, f"'{op}'")
            return Kind.INT if op != "/" and ka == kb == Kind.INT else Kind.FLOAT
        case Compare(op=op, left=a, right=b):
            _need_comparable(node, _kind(a), _kind(b), ordered=op not in ("=", "!="))
            return Kind.BOOL
        case Between(operand=x, low=lo, high=hi):
            kx = _kind(x)
            _need_comparable(lo, kx, _kind(lo), ordered=True)
            _need_comparable(hi, kx, _kind(hi), ordered=True)
            return Kind.BOOL
        case InList(operand=x, items=items):
            kx = _kind(x)
            for item in items:
                _need_comparable(item, kx, _kind(item), ordered=False)
            return Kind.BOOL
        case IsNull(operand=x):
            _kind(x)
            return Kind.BOOL
        case Not(operand=x):
            _need_condition(x, "'not'")
            return Kind.BOOL
        case And(operands=xs) | Or(operands=xs):
            word = "'and'" if isinstance(node, And) else "'or'"
            if len(xs) < 2:
                raise _Problem(f"{word} joins two conditions or more", node.span)
            for x in xs:
                _need_condition(x, word)
            return Kind.BOOL
    raise TypeError(f"not a criteria node: {node!r}")


def _feature_kind(node: FeatureRef, name: str) -> Kind:
    if name in FEATURES:
        return FEATURES[name].kind
    if name in FUNCTIONS:
        raise _Problem(f"{name} is a function: write {name}(...)", node.span)
    raise _Problem(f"unknown feature '{name}'{_suggest(name, FEATURES)}", node.span)


def _call_kind(node: Call) -> Kind:
    function = FUNCTIONS.get(node.name)
    if function is None:
        hint = " (a feature, written without parentheses)" if node.name in FEATURES else ""
        raise _Problem(
            f"unknown function '{node.name}'{hint}{_suggest(node.name, FUNCTIONS)}", node.span
        )
    most = len(function.args)
    least = most - function.optional
    signature = f"{function.name}({', '.join(kind.value for kind in function.args)})"
    if not least <= len(node.args) <= most:
        count = f"{least} to {most}" if least != most else str(most)
        took = f"{count} argument{'s' if most > 1 else ''}"
        raise _Problem(f"{signature} takes {took}; got {len(node.args)}", node.span)
    for i, (arg, kind) in enumerate(zip(node.args, function.args, strict=False), start=1):
        if arg.kind != kind:
            wanted, got = _KIND_WORDS[kind], _KIND_WORDS[arg.kind]
            raise _Problem(f"argument {i} of {signature} is {wanted}, not {got}", arg.span)
    return function.kind


def _suggest(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"; did you mean {_alternatives(close)}?" if close else ""


def _need_number(node: Expr, word: str) -> Kind:
    kind = _kind(node)
    if kind not in NUMERIC:
        raise _Problem(f"{word} works on numbers; this is {_KIND_WORDS[kind]}", node.span)
    return kind


def _need_condition(node: Expr, word: str) -> None:
    kind = _kind(node)
    if kind != Kind.BOOL:
        raise _Problem(
            f"{word} joins conditions (true/false); this is {_KIND_WORDS[kind]}", node.span
        )


def _need_comparable(node: Expr, a: Kind, b: Kind, *, ordered: bool) -> None:
    if not _comparable(a, b):
        raise _Problem(f"cannot compare {_KIND_WORDS[a]} with {_KIND_WORDS[b]}", node.span)
    if ordered and a == Kind.BOOL:
        raise _Problem("true/false values have no order; use = or !=", node.span)


def _check(expr: Expr, text: str | None) -> None:
    """Refuse a tree that nests too deeply, names what the catalogue lacks or mixes kinds."""
    depth, deepest = _depth(expr)
    try:
        if depth > MAX_DEPTH:
            raise _Problem(f"nests too deeply (more than {MAX_DEPTH} levels)", deepest.span)
        kind = _kind(expr)
        if kind != Kind.BOOL:
            message = f"must be a condition (true or false); this is {_KIND_WORDS[kind]}"
            raise _Problem(message, expr.span)
    except _Problem as problem:
        raise InvalidInput(FIELD, _reason(text, problem)) from None


@dataclass(frozen=True, slots=True)
class Criteria:
    """A checked condition: every name is in the catalogue and every kind fits."""

    expr: Expr

    def __post_init__(self) -> None:
        _check(self.expr, None)

    @property
    def text(self) -> str:
        """The canonical text, as a saved definition stores it."""
        return self.expr.format()

    def format(self) -> str:
        """The canonical text."""
        return self.expr.format()

    def referenced(self) -> Referenced:
        """The features and function calls the condition reads."""
        return self.expr.referenced()


def validate(text: str) -> Criteria:
    """Parse and check `text`; `InvalidInput` (field "criteria") says where and why it fails."""
    expr = parse(text)
    _check(expr, text)
    return Criteria(expr)


def _criteria(criteria: Criteria | str) -> Criteria:
    return criteria if isinstance(criteria, Criteria) else validate(criteria)


# ---------------------------------------------------------------------------------------------
# Ibis

_IBIS_TYPES = {
    Kind.INT: "int64",
    Kind.FLOAT: "float64",
    Kind.BOOL: "boolean",
    Kind.TEXT: "string",
    Kind.DATE: "date",
}


class IbisScope(Protocol):
    """Where the feature columns and function values of one customer table come from."""

    def column(self, name: str) -> Any:
        """The column of feature `name` (an `ibis.Value`)."""
        ...

    def call(self, name: str, args: tuple[object, ...]) -> Any:
        """The column of `name(*args)` (an `ibis.Value`)."""
        ...


def to_ibis(criteria: Criteria | str, scope: IbisScope) -> Any:
    """A boolean Ibis expression that is true exactly for the members (never null)."""
    return _ibis(_criteria(criteria).expr, scope).fill_null(False)


def _balanced(op: Callable[[Any, Any], Any], values: Sequence[Any]) -> Any:
    """`op` folded as a balanced tree, so long chains do not nest deeply in SQL."""
    if len(values) == 1:
        return values[0]
    middle = len(values) // 2
    return op(_balanced(op, values[:middle]), _balanced(op, values[middle:]))


_IBIS_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": lambda a, b: a.cast("float64") / b.cast("float64").nullif(0.0),
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _ibis(node: Expr, scope: IbisScope) -> Any:
    import ibis  # only for the engine: the till and the command line's start do without it

    match node:
        case Literal(value=value, kind=kind):
            return ibis.literal(value, type=_IBIS_TYPES[kind])
        case FeatureRef(name=name):
            return scope.column(name).cast(_IBIS_TYPES[FEATURES[name].kind])
        case Call(name=name):
            return scope.call(name, node.values).cast(_IBIS_TYPES[FUNCTIONS[name].kind])
        case Neg(operand=x):
            return -_ibis(x, scope)
        case Arith(op=op, left=a, right=b):
            return _IBIS_ARITH[op](_ibis(a, scope), _ibis(b, scope))
        case Compare(op=op, left=a, right=b):
            return _COMPARE[op](_ibis(a, scope), _ibis(b, scope))
        case Between(operand=x, low=lo, high=hi, negated=negated):
            value = _ibis(x, scope)
            inside = (value >= _ibis(lo, scope)) & (value <= _ibis(hi, scope))
            return ~inside if negated else inside
        case InList(operand=x, items=items, negated=negated):
            value = _ibis(x, scope)
            found = _balanced(operator.or_, [value == _ibis(item, scope) for item in items])
            return ~found if negated else found
        case IsNull(operand=x, negated=negated):
            value = _ibis(x, scope)
            return value.notnull() if negated else value.isnull()
        case Not(operand=x):
            return ~_ibis(x, scope)
        case And(operands=xs):
            return _balanced(operator.and_, [_ibis(x, scope) for x in xs])
        case Or(operands=xs):
            return _balanced(operator.or_, [_ibis(x, scope) for x in xs])
    raise TypeError(f"not a criteria node: {node!r}")


# ---------------------------------------------------------------------------------------------
# Python


class Context(Protocol):
    """One customer's values: a feature by name, a function by name and arguments."""

    def get(self, name: str, /) -> object | None:
        """The value of feature `name`, or None (null)."""
        ...

    def call(self, name: str, args: tuple[object, ...], /) -> object | None:
        """The value of `name(*args)`, or None (null)."""
        ...


class MappingContext:
    """A `Context` over plain mappings: `MappingContext({"visits_365d": 3}, {("share", ("Fresh",)): 0.3})`."""

    __slots__ = ("features", "functions", "get")

    def __init__(
        self,
        features: Mapping[str, object],
        functions: Mapping[tuple[str, tuple[object, ...]], object] | None = None,
    ) -> None:
        self.features = features
        self.functions = functions or {}
        self.get: Callable[[str], object | None] = features.get  # the mapping's own, no wrapper

    def call(self, name: str, args: tuple[object, ...], /) -> object | None:
        """The value stored under `(name, args)`, or None."""
        return self.functions.get((name, args))


Evaluator: TypeAlias = Callable[[Context], Any]


def to_python(criteria: Criteria | str) -> Callable[[Context], bool]:
    """A predicate over one customer's `Context`: True exactly for members."""
    evaluate = _python(_criteria(criteria).expr)

    def member(context: Context) -> bool:
        result = evaluate(context)
        return result is not None and bool(result)

    return member


def _python(node: Expr) -> Evaluator:
    """A closure computing `node` for one context, None standing for null."""
    match node:
        case Literal(value=value):
            return lambda context: value
        case FeatureRef(name=name):
            if FEATURES[name].kind == Kind.DATE:
                return lambda context: _as_date(context.get(name))
            return lambda context: context.get(name)
        case Call(name=name):
            args = node.values
            if FUNCTIONS[name].kind == Kind.DATE:
                return lambda context: _as_date(context.call(name, args))
            return lambda context: context.call(name, args)
        case Neg(operand=x):
            return _python_neg(_python(x))
        case Arith(op=op, left=a, right=b):
            return _python_binary(_PY_ARITH[op], a, b)
        case Compare(op=op, left=a, right=b):
            return _python_binary(_COMPARE[op], a, b)
        case Between(operand=x, low=lo, high=hi, negated=negated):
            inside = _python_between(_python(x), _python(lo), _python(hi))
            return _python_not(inside) if negated else inside
        case InList(operand=x, items=items, negated=negated):
            found = _python_in(_python(x), items)
            return _python_not(found) if negated else found
        case IsNull(operand=x, negated=negated):
            tested = _python(x)
            if negated:
                return lambda context: tested(context) is not None
            return lambda context: tested(context) is None
        case Not(operand=x):
            return _python_not(_python(x))
        case And(operands=xs):
            return _python_and(tuple(_python(x) for x in xs))
        case Or(operands=xs):
            return _python_or(tuple(_python(x) for x in xs))
    raise TypeError(f"not a criteria node: {node!r}")


def _as_date(value: object) -> object:
    return value.date() if isinstance(value, dt.datetime) else value


def _divide(a: Any, b: Any) -> float | None:
    return None if b == 0 else float(a) / float(b)


_PY_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _divide,
}


def _python_binary(op: Callable[[Any, Any], Any], a: Expr, b: Expr) -> Evaluator:
    """`op(a, b)`, null when either side is; the common `feature op constant` without detours."""
    if isinstance(a, FeatureRef) and FEATURES[a.name].kind != Kind.DATE and isinstance(b, Literal):
        name, constant = a.name, b.value

        def feature_constant(context: Context) -> Any:
            x = context.get(name)
            return None if x is None else op(x, constant)

        return feature_constant
    left, right = _python(a), _python(b)

    def binary(context: Context) -> Any:
        x = left(context)
        if x is None:
            return None
        y = right(context)
        return None if y is None else op(x, y)

    return binary


def _python_neg(operand: Evaluator) -> Evaluator:
    def neg(context: Context) -> Any:
        x = operand(context)
        return None if x is None else -x

    return neg


def _python_not(operand: Evaluator) -> Evaluator:
    def not_(context: Context) -> Any:
        x = operand(context)
        return None if x is None else not x

    return not_


def _python_between(operand: Evaluator, low: Evaluator, high: Evaluator) -> Evaluator:
    def between(context: Context) -> Any:
        x = operand(context)
        if x is None:
            return None
        lo, hi = low(context), high(context)
        above = None if lo is None else x >= lo
        below = None if hi is None else x <= hi
        if above is False or below is False:
            return False
        return None if above is None or below is None else True

    return between


def _python_in(operand: Evaluator, items: tuple[Expr, ...]) -> Evaluator:
    if all(isinstance(item, Literal) for item in items):
        constants = frozenset(item.value for item in items)  # type: ignore[union-attr]

        def in_constants(context: Context) -> Any:
            x = operand(context)
            return None if x is None else x in constants

        return in_constants
    evaluators = tuple(_python(item) for item in items)

    def in_list(context: Context) -> Any:
        x = operand(context)
        if x is None:
            return None
        unknown = False
        for item in evaluators:
            y = item(context)
            if y is None:
                unknown = True
            elif x == y:
                return True
        return None if unknown else False

    return in_list


def _python_and(operands: tuple[Evaluator, ...]) -> Evaluator:
    def and_(context: Context) -> Any:
        unknown = False
        for operand in operands:
            x = operand(context)
            if x is None:
                unknown = True
            elif not x:
                return False
        return None if unknown else True

    return and_


def _python_or(operands: tuple[Evaluator, ...]) -> Evaluator:
    def or_(context: Context) -> Any:
        unknown = False
        for operand in operands:
            x = operand(context)
            if x is None:
                unknown = True
            elif x:
                return True
        return None if unknown else False

    return or_
