"""The OData v4 subset Tribe CRM speaks, as the emulator serves it (the client's literal
helpers live in :mod:`syncd_tribe.client`).

A small recursive-descent parser for ``$filter`` (no ``eval``),
``$orderby``, ``$select`` and nested ``$expand``. Like the real server it supports
``eq ne gt ge lt le``, ``and or not``, parentheses, ``contains/startswith/endswith``
(case-insensitive) and navigation paths (``Person/ID``); ``in`` and ``has`` are refused.

Grammar of ``$filter``::

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | comparison
    comparison := operand (("eq"|"ne"|"gt"|"ge"|"lt"|"le") operand)?
    operand    := "(" expr ")" | literal | function "(" expr ("," expr)* ")" | path
    path       := identifier ("/" identifier)*
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class ODataError(ValueError):
    """A query or write the server refuses (answered ``status``, 400 by default)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# -- tokenizer -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<date>\d{4}-\d{2}-\d{2}\b)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[(),/])
""", re.VERBOSE)

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
FUNCTIONS = ("contains", "startswith", "endswith", "tolower", "toupper", "length")
UNSUPPORTED = ("in", "has")


def tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []  # (kind, value): a literal's value is of any OData type
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ODataError(f"unexpected character {text[pos]!r} at position {pos}")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group()
        if kind == "ws":
            continue
        if kind == "string":
            tokens.append(("lit", raw[1:-1].replace("''", "'")))
        elif kind == "guid":
            tokens.append(("lit", raw.lower()))
        elif kind in ("datetime", "date"):
            tokens.append(("lit", parse_datetime(raw)))
        elif kind == "number":
            tokens.append(("lit", float(raw) if any(c in raw for c in ".eE") else int(raw)))
        elif kind == "ident":
            low = raw.lower()
            if low in ("true", "false"):
                tokens.append(("lit", low == "true"))
            elif low == "null":
                tokens.append(("lit", None))
            else:
                tokens.append(("ident", raw))
        else:
            tokens.append((raw, raw))
    tokens.append(("end", None))
    return tokens


def parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- parser: the AST is nested tuples ------------------------------------------------------------
#   ("or", a, b)  ("and", a, b)  ("not", a)  ("cmp", op, a, b)  ("fn", name, args)
#   ("path", ("Person", "ID"))  ("lit", value)


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, Any]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def keyword(self, *words: str) -> str | None:
        kind, value = self.peek()
        if kind == "ident" and value.lower() in words:
            self.pos += 1
            return value.lower()
        return None

    def expect(self, kind: str) -> None:
        got, value = self.take()
        if got != kind:
            raise ODataError(f"expected {kind!r}, found {value!r}")

    def parse(self) -> tuple:
        node = self.expr()
        kind, value = self.peek()
        if kind != "end":
            self._unexpected(value)
        return node

    def _unexpected(self, value: Any):
        if isinstance(value, str) and value.lower() in UNSUPPORTED:
            raise ODataError(f"the operator '{value.lower()}' is not supported")
        raise ODataError(f"unexpected {value!r}")

    def expr(self) -> tuple:
        node = self.and_expr()
        while self.keyword("or"):
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> tuple:
        node = self.unary()
        while self.keyword("and"):
            node = ("and", node, self.unary())
        return node

    def unary(self) -> tuple:
        if self.keyword("not"):
            return ("not", self.unary())
        return self.comparison()

    def comparison(self) -> tuple:
        left = self.operand()
        op = self.keyword(*COMPARISONS)
        if op is None:
            kind, value = self.peek()
            if kind == "ident" and value.lower() in UNSUPPORTED:
                self._unexpected(value)
            return left
        return ("cmp", op, left, self.operand())

    def operand(self) -> tuple:
        kind, value = self.take()
        if kind == "(":
            node = self.expr()
            self.expect(")")
            return node
        if kind == "lit":
            return ("lit", value)
        if kind == "ident":
            if value.lower() in UNSUPPORTED or value.lower() in ("and", "or", "not"):
                self._unexpected(value)
            if self.peek()[0] == "(":
                name = value.lower()
                if name not in FUNCTIONS:
                    raise ODataError(f"the function '{value}' is not supported")
                self.take()
                args = [self.expr()]
                while self.peek()[0] == ",":
                    self.take()
                    args.append(self.expr())
                self.expect(")")
                return ("fn", name, tuple(args))
            path = [value]
            while self.peek()[0] == "/":
                self.take()
                k, v = self.take()
                if k != "ident":
                    raise ODataError(f"expected a property name after '/', found {v!r}")
                path.append(v)
            return ("path", tuple(path))
        self._unexpected(value)
        raise AssertionError  # unreachable


def parse_filter(text: str) -> tuple:
    """The AST of a ``$filter`` expression; :class:`ODataError` when it is not valid."""
    if not text or not text.strip():
        raise ODataError("empty $filter")
    return _Parser(text).parse()


# -- evaluation ----------------------------------------------------------------------------------

Getter = Callable[[Any, tuple[str, ...]], Any]


def _norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _compare(op: str, a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, str):
        b = _as_datetime(b)
    elif isinstance(b, datetime) and isinstance(a, str):
        a = _as_datetime(a)
    a, b = _norm(a), _norm(b)
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if a is None or b is None:
        return False
    try:
        if op == "gt":
            return a > b
        if op == "ge":
            return a >= b
        if op == "lt":
            return a < b
        return a <= b
    except TypeError:
        return False


def _as_datetime(text: str) -> datetime | str:
    try:
        return parse_datetime(text)
    except ValueError:
        return text


def _call(name: str, args: list[Any]) -> Any:
    if name in ("tolower", "toupper", "length"):
        value = args[0]
        if not isinstance(value, str):
            return None
        return value.lower() if name == "tolower" else value.upper() if name == "toupper" \
            else len(value)
    if len(args) != 2:
        raise ODataError(f"{name} takes 2 arguments")
    hay, needle = args
    if not isinstance(hay, str) or not isinstance(needle, str):
        return False
    hay, needle = hay.casefold(), needle.casefold()
    if name == "contains":
        return needle in hay
    return hay.startswith(needle) if name == "startswith" else hay.endswith(needle)


def compile_filter(node: tuple, get: Getter) -> Callable[[Any], Any]:
    """A predicate ``item -> bool`` for an AST; ``get(item, path)`` reads a path."""
    tag = node[0]
    if tag == "lit":
        value = node[1]
        return lambda item: value
    if tag == "path":
        path = node[1]
        return lambda item: get(item, path)
    if tag == "not":
        inner = compile_filter(node[1], get)
        return lambda item: not inner(item)
    if tag in ("and", "or"):
        left, right = compile_filter(node[1], get), compile_filter(node[2], get)
        if tag == "and":
            return lambda item: bool(left(item)) and bool(right(item))
        return lambda item: bool(left(item)) or bool(right(item))
    if tag == "cmp":
        op = node[1]
        left, right = compile_filter(node[2], get), compile_filter(node[3], get)
        return lambda item: _compare(op, left(item), right(item))
    if tag == "fn":
        name = node[1]
        args = [compile_filter(a, get) for a in node[2]]
        return lambda item: _call(name, [a(item) for a in args])
    raise ODataError(f"unknown node {tag!r}")


def eq_candidates(node: tuple) -> tuple[tuple[str, ...], set[Any]] | None:
    """If every match of ``node`` must have ``path`` equal to one of a few literals, return
    ``(path, values)``: a server may then look those up in an index instead of scanning."""
    tag = node[0]
    if tag == "cmp" and node[1] == "eq":
        a, b = node[2], node[3]
        if a[0] == "lit":
            a, b = b, a
        if a[0] == "path" and b[0] == "lit" and b[1] is not None:
            return a[1], {_norm(b[1])}
        return None
    if tag == "or":
        left, right = eq_candidates(node[1]), eq_candidates(node[2])
        if left and right and left[0] == right[0]:
            return left[0], left[1] | right[1]
        return None
    if tag == "and":
        return eq_candidates(node[1]) or eq_candidates(node[2])
    return None


# -- $orderby, $select, $expand ------------------------------------------------------------------


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise ODataError("unbalanced parentheses")
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth or quoted:
        raise ODataError("unbalanced parentheses or quotes")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_orderby(text: str | None) -> list[tuple[tuple[str, ...], bool]]:
    """``"LastName desc, ID"`` -> ``[(("LastName",), True), (("ID",), False)]``."""
    keys = []
    for part in split_top(text or "", ","):
        words = part.split()
        if len(words) > 2 or not _NAME.match(words[0]) or (
                len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ODataError(f"bad $orderby item {part!r}")
        keys.append((tuple(words[0].split("/")), len(words) == 2 and words[1].lower() == "desc"))
    return keys


def parse_select(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = split_top(text, ",")
    for name in names:
        if name != "*" and not _NAME.match(name):
            raise ODataError(f"bad $select item {name!r}")
    return None if "*" in names else names


def parse_expand(text: str | None) -> dict[str, dict[str, Any]]:
    """``"Relation($select=ID,Name;$expand=Address)"`` ->
    ``{"Relation": {"select": ["ID", "Name"], "expand": {"Address": {...}}}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in split_top(text or "", ","):
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?$", item, re.S)
        if not m:
            raise ODataError(f"bad $expand item {item!r}")
        options: dict[str, Any] = {"select": None, "expand": {}}
        for opt in split_top(m.group(2) or "", ";"):
            key, _, value = opt.partition("=")
            key = key.strip().lower()
            if key == "$select":
                options["select"] = parse_select(value)
            elif key == "$expand":
                options["expand"] = parse_expand(value)
            else:
                raise ODataError(f"the $expand option {key!r} is not supported")
        out[m.group(1)] = options
    return out
