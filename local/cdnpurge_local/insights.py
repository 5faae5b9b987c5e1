"""A CloudWatch Logs Insights evaluator for the subset of its query language template.yaml's saved queries use,
so a test can run them on the log lines the function really writes (a saved query that filters on a field
the logs never hold returns nothing, silently, on the night it is needed).

Supported, with Logs Insights' documented meaning:

- `fields a, b as c`  which fields each result shows (it filters nothing), `as` naming one for later commands;
- `filter <condition>`  with `ispresent(f)`, `f like "text"` (substring) or `f like /regex/`, `f = "v"` or a
  number, `f > n` / `<` / `>=` / `<=`, `not`, `and`, `or` and parentheses;
- `stats sum(f) as n, count(*) as c, max(f) as m ... by g1, bin(5m)`;
- `sort f asc|desc` and `limit n`.

Fields are discovered as Logs Insights discovers them in JSON log events: nested objects flattened with
dots (`a.b`), and array items named by position (`a.0`, `a.1`): the array itself is not a field, so
`ispresent(Requests)` is false for `"Requests": [2.0]`, which is how Powertools writes every metric value in
its EMF documents. `@message` is the whole line, `@timestamp` the event's time.
Anything else in a query is an InsightsError: a saved query this module cannot read is not tested by it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["InsightsError", "LogEvent", "discovered_fields", "run_query"]


class InsightsError(ValueError):
    """A query uses syntax outside the supported subset."""


@dataclass(frozen=True)
class LogEvent:
    message: str
    timestamp: float


Row = dict[str, Any]
_TOKEN: Final = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<regex>/(?:[^/\\]|\\.)*/)|(?P<number>-?\d+(?:\.\d+)?)'
    r"|(?P<op>>=|<=|!=|[(),=<>*])|(?P<word>[@A-Za-z_][\w.@-]*))"
)
_BIN: Final = re.compile(r"^bin\((\d+)([smhd])\)$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def discovered_fields(event: LogEvent) -> Row:
    """The fields Logs Insights discovers in one event (JSON flattened as described above)."""
    row: Row = {"@message": event.message, "@timestamp": event.timestamp}
    try:
        document = json.loads(event.message)
    except ValueError:
        return row

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                flatten(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list):
            for position, item in enumerate(value):
                flatten(f"{prefix}.{position}", item)
        else:
            row[prefix] = value

    if isinstance(document, Mapping):
        flatten("", document)
    return row


def run_query(query: str, events: list[LogEvent]) -> list[Row]:
    """The query's results on `events`, each a row of the fields it selects (or its stats)."""
    rows = [discovered_fields(event) for event in events]
    shown: list[str] | None = None
    for command in _commands(query):
        verb, _, rest = command.partition(" ")
        if verb == "fields":
            shown = []
            for part in rest.split(","):
                field, _, alias = (word.strip() for word in part.partition(" as "))
                for row in rows:  # an alias is a field for the commands that follow
                    row[alias or field] = row.get(field)
                shown.append(alias or field)
        elif verb == "filter":
            condition = _Parser(_tokens(rest)).condition()
            rows = [row for row in rows if condition(row)]
        elif verb == "stats":
            rows, shown = _stats(rest, rows), None
        elif verb == "sort":
            field, _, order = rest.strip().partition(" ")
            present = [row for row in rows if row.get(field) is not None]
            absent = [row for row in rows if row.get(field) is None]
            rows = sorted(present, key=lambda row: row[field], reverse=order.strip() == "desc") + absent
        elif verb == "limit":
            rows = rows[: int(rest)]
        else:
            raise InsightsError(f"command {verb!r} is not supported")
    if shown is None:
        return rows
    return [{name: row.get(name) for name in shown} for row in rows]


def _commands(query: str) -> Iterator[str]:
    """The query's commands: split at `|` outside quotes and regexes."""
    current, quote = "", ""
    for character in query:
        if quote:
            current += character
            if character == quote:
                quote = ""
        elif character in '"/':
            quote, current = character, current + character
        elif character == "|":
            yield current.strip()
            current = ""
        else:
            current += character
    if current.strip():
        yield " ".join(current.split())


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise InsightsError(f"cannot read {text[position:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


Condition = Callable[[Row], bool]


class _Parser:
    """Recursive descent: or > and > not > comparison."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self._tokens = tokens
        self._at = 0

    def condition(self) -> Condition:
        result = self._or()
        if self._at != len(self._tokens):
            raise InsightsError(f"unexpected {self._tokens[self._at][1]!r}")
        return result

    def _peek(self) -> str:
        return self._tokens[self._at][1] if self._at < len(self._tokens) else ""

    def _take(self) -> tuple[str, str]:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _or(self) -> Condition:
        left = self._and()
        while self._peek() == "or":
            self._take()
            left = _either(left, self._and())
        return left

    def _and(self) -> Condition:
        left = self._not()
        while self._peek() == "and":
            self._take()
            left = _both(left, self._not())
        return left

    def _not(self) -> Condition:
        if self._peek() == "not":
            self._take()
            inner = self._not()
            return lambda row: not inner(row)
        return self._atom()

    def _atom(self) -> Condition:
        if self._peek() == "(":
            self._take()
            inner = self._or()
            if self._take()[1] != ")":
                raise InsightsError("missing )")
            return inner
        kind, word = self._take()
        if word == "ispresent":
            self._take()
            _, field = self._take()
            self._take()
            return lambda row: row.get(field) is not None
        if kind != "word":
            raise InsightsError(f"expected a field, got {word!r}")
        _, operator = self._take()
        value_kind, value = self._take()
        if operator == "like":
            if value_kind == "regex":
                pattern = re.compile(value[1:-1])
                return lambda row: row.get(word) is not None and bool(pattern.search(str(row[word])))
            text = json.loads(value)
            return lambda row: row.get(word) is not None and text in str(row[word])
        literal: Any = json.loads(value) if value_kind == "string" else float(value)
        compare: dict[str, Callable[[Any, Any], bool]] = {
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
        }
        if operator not in compare:
            raise InsightsError(f"operator {operator!r} is not supported")
        check = compare[operator]
        return lambda row: row.get(word) is not None and check(row[word], literal)


def _either(first: Condition, second: Condition) -> Condition:
    return lambda row: first(row) or second(row)


def _both(first: Condition, second: Condition) -> Condition:
    return lambda row: first(row) and second(row)


_AGGREGATES: Final[Mapping[str, Callable[[list[Any]], Any]]] = {
    "sum": sum,
    "max": max,
    "min": min,
    "avg": lambda values: sum(values) / len(values),
}
_AGGREGATE: Final = re.compile(r"^(sum|count|max|min|avg)\(([^)]*)\)(?:\s+as\s+(\S+))?$")


def _stats(text: str, rows: list[Row]) -> list[Row]:
    aggregations_text, _, by_text = text.partition(" by ")
    aggregations = []
    for part in _split_top(aggregations_text):
        match = _AGGREGATE.match(part.strip())
        if match is None:
            raise InsightsError(f"stats {part.strip()!r} is not supported")
        function, field, name = match.groups()
        aggregations.append((function, field.strip(), name or part.strip()))
    groups: dict[tuple[Any, ...], list[Row]] = {}
    keys = [key.strip() for key in _split_top(by_text)] if by_text else []
    for row in rows:
        groups.setdefault(tuple(_group_value(key, row) for key in keys), []).append(row)
    results = []
    for group, members in groups.items():
        result: Row = dict(zip(keys, group, strict=True))
        for function, field, name in aggregations:
            values = [member[field] for member in members if field != "*" and member.get(field) is not None]
            if function == "count":
                result[name] = len(members) if field in ("*", "") else len(values)
            elif not values:
                result[name] = None
            else:
                result[name] = _AGGREGATES[function](values)
        results.append(result)
    return results


def _group_value(key: str, row: Row) -> Any:
    match = _BIN.match(key)
    if match is None:
        return row.get(key)
    span = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return row["@timestamp"] // span * span


def _split_top(text: str) -> list[str]:
    """`text` split at commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for character in text:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += character
    return [*parts, current] if current.strip() else parts
