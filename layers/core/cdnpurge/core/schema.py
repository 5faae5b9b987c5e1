"""Where a msgspec validation failed and what was wrong, as `field.path: problem`, never quoting the input.

Documents the function reads (its configuration, its own queue messages, its environment) are typed as
msgspec Structs: defining one costs microseconds where a pydantic model costs a millisecond and pydantic's
import alone tens of milliseconds of every cold start (bench/README.md: cold start). msgspec stops at the
first problem and words it as ``Expected `int` >= 1 - at `$.providers[0].rate_per_second` ``; `located`
turns that into a field path the way this project names fields (`providers[0].rate_per_second`) and a
problem that never quotes the value (an enum's message quotes it, and a value pasted into the wrong field may
be a credential).

msgspec stops at the first problem; a document's author should fix every problem in one run, so
`convert_every` converts as msgspec does and, only when that fails, walks the document against its type to
find every problem (`every_problem`), reported together as one `DocumentError`.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeVar, Union, get_args, get_origin

import msgspec

# msgspec's message ends with " - at `$<path>`" when the problem is below the top level.
_AT: Final = re.compile(r" - at `\$(?P<path>[^`]*)`$", re.DOTALL)
# ... or " - at `key` in `$<path>`" when a mapping's key is wrong.
_KEY_AT: Final = re.compile(r" - at `key` in `\$(?P<path>[^`]*)`$", re.DOTALL)
_MISSING: Final = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")
# Messages of msgspec that quote the input: the value is dropped, the rule kept.
NOT_ALLOWED: Final = "not one of the allowed values"
UNKNOWN_FIELD: Final = "unknown field (not one this document has)"
NOT_UNICODE: Final = "is not valid Unicode (a lone surrogate)"
_QUOTING: Final = ((re.compile(r"^Invalid enum value .*$", re.DOTALL), NOT_ALLOWED),)
# A key shown in a path: it reads as a name (a field name, a credential's name: `token`, `client_secret`), in
# lower-case letters, `_` and `-`. Anything else (digits, capitals: what a credential pasted as a key holds) is not.
_NAME: Final = re.compile(r"[a-z][a-z_-]{0,63}")
# A refused pattern is named by the rule it stands for (msgspec's message quotes the regular expression):
# every `msgspec.Meta(pattern=...)` of the package is given through `worded`. Patterns are anchored with \A and
# \Z: msgspec searches with Python's `re`, whose `$` also matches before a final newline ("name\n" would
# pass `^...$`); tests/unit/test_schema.py holds every Struct of the package to both.
_RULES: Final[dict[str, str]] = {}

T = TypeVar("T")


def worded(pattern: str, rule: str) -> str:
    """`pattern`, for a field's `msgspec.Meta`, anchored (`\\A...\\Z`), with the words a refusal says instead
    of the expression."""
    anchored = pattern if pattern.startswith("\\A") and pattern.endswith("\\Z") else rf"\A(?:{pattern})\Z"
    _RULES[f"Expected `str` matching regex {anchored!r}"] = rule
    return anchored


# msgspec's `dec_hook`: builds a value of a type msgspec does not know (e.g. a masked secret) from its input.
DecodeHook = Callable[[type, Any], Any]


class Located(NamedTuple):
    """One validation problem: `where` is the field path (`providers[0].name`, "" at the top level)."""

    where: str
    what: str

    def line(self, *, prefix: str = "") -> str:
        """`prefix.where: what` (or `what` alone when there is no place to name)."""
        place = ".".join(part for part in (prefix, self.where) if part).replace(".[", "[")
        return f"{place}: {self.what}" if place else self.what


def located(error: msgspec.ValidationError) -> Located:
    """The field path and the problem of a msgspec `ValidationError`, in this project's words."""
    message = str(error)
    at = _AT.search(message) or _KEY_AT.search(message)
    path = at.group("path") if at else ""
    what = message[: at.start()] if at else message
    where = path.removeprefix(".")
    if (missing := _MISSING.match(what)) is not None:
        where, what = join_path(where, missing.group("field")), "field required"
    elif (unknown := _UNKNOWN.match(what)) is not None:
        where, what = join_path(where, _key(unknown.group("field"))), UNKNOWN_FIELD
    else:
        what = _RULES.get(what, what)
        for pattern, replacement in _QUOTING:
            if pattern.match(what):
                what = replacement
    if at is not None and at.re is _KEY_AT:
        what = f"a key: {what}"
    return Located(where, what)


def join_path(path: str, part: str) -> str:
    """`path` then `part` (a field name, or an index such as `[0]`)."""
    if not path or not part:
        return path or part
    return f"{path}{part}" if part.startswith("[") else f"{path}.{part}"


def _key(key: object) -> str:
    """A mapping key or an unknown field as a path part: by its name when it reads as one, else `[...]` as
    msgspec shows keys (a credential pasted as a key is never shown)."""
    return key if isinstance(key, str) and _NAME.fullmatch(key) else "[...]"


class DocumentError(ValueError):
    """A document that does not convert to its type, with every problem found, each at its field path."""

    def __init__(self, problems: Sequence[Located]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.lines()))

    def lines(self, *, prefix: str = "") -> list[str]:
        """One `prefix.path: problem` line per problem (a problem of several lines, one line each)."""
        return [
            Located(problem.where, line).line(prefix=prefix)
            for problem in self.problems
            for line in problem.what.splitlines()
        ]


def convert_every(raw: Any, type_: type[T], *, dec_hook: DecodeHook | None = None, strict: bool = True) -> T:
    """`msgspec.convert(raw, type_)`, or a `DocumentError` naming every problem of `raw`, not only the first:
    only a document that fails pays for the search (`every_problem`)."""
    try:
        return msgspec.convert(raw, type_, dec_hook=dec_hook, strict=strict)
    except (msgspec.ValidationError, UnicodeEncodeError) as first:
        found = every_problem(raw, type_, dec_hook=dec_hook, strict=strict)
        raise DocumentError(found or [_problem_of(first)]) from None


def _problem_of(error: msgspec.ValidationError | UnicodeEncodeError) -> Located:
    """`located(error)`; a lone surrogate (which a YAML or JSON escape can write) where msgspec reads a text
    it would encode, when not converting strictly, stops it with a `UnicodeEncodeError` instead."""
    return Located("", NOT_UNICODE) if isinstance(error, UnicodeEncodeError) else located(error)


def every_problem(
    raw: Any, annotation: Any, *, dec_hook: DecodeHook | None = None, strict: bool = True
) -> list[Located]:
    """Every problem of `raw` against `annotation` (a type as msgspec takes it); [] when it converts.

    Each part is converted alone against its own annotation: a Struct's given fields (plus its missing
    required fields and unknown ones), the items of a tuple, list or set, a mapping's keys and values,
    recursing into what holds parts of its own. A value whose parts all convert is refused as a whole (a
    Struct's `__post_init__`, a length bound) with msgspec's own problem."""

    def convert(value: Any, part: Any) -> None:
        msgspec.convert(value, part, dec_hook=dec_hook, strict=strict)

    return list(_problems(raw, annotation, "", convert))


def _problems(raw: Any, annotation: Any, where: str, convert: Callable[[Any, Any], None]) -> Iterator[Located]:
    try:
        convert(raw, annotation)
        return
    except (msgspec.ValidationError, UnicodeEncodeError) as exc:
        first = _problem_of(exc)
    shape = _shape(annotation, raw)
    found = list(_part_problems(raw, shape, where, convert))
    if found:
        yield from found
    else:
        yield Located(join_path(where, first.where), _worded(first.what, shape) if not first.where else first.what)


def _shape(annotation: Any, raw: Any) -> Any:
    """The type whose parts `raw` is checked against: without `Annotated` bounds, and the one type of an
    optional one given a value (`X | None` -> `X`)."""
    if get_origin(annotation) is Annotated:
        return _shape(get_args(annotation)[0], raw)
    if get_origin(annotation) in (Union, types.UnionType) and raw is not None:
        given = [option for option in get_args(annotation) if option is not type(None)]
        return _shape(given[0], raw) if len(given) == 1 else annotation
    return annotation


def _part_problems(raw: Any, shape: Any, where: str, convert: Callable[[Any, Any], None]) -> Iterator[Located]:
    origin, args = get_origin(shape), get_args(shape)
    if isinstance(shape, type) and issubclass(shape, msgspec.Struct) and isinstance(raw, dict):
        yield from _struct_problems(raw, shape, where, convert)
    elif origin in (tuple, list, set, frozenset) and args and isinstance(raw, list | tuple):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = list(zip(raw, args, strict=False)) if len(args) == len(raw) else []
        else:
            items = [(item, args[0]) for item in raw]
        for position, (item, annotation) in enumerate(items):
            yield from _problems(item, annotation, f"{where}[{position}]", convert)
    elif origin is dict and len(args) == 2 and isinstance(raw, dict):
        key_type, value_type = args
        for key, value in raw.items():
            for problem in _problems(key, key_type, "", convert):
                yield Located(where, f"a key: {problem.what}")
            yield from _problems(value, value_type, join_path(where, _key(key)), convert)


def _struct_problems(
    raw: dict[Any, Any], struct: type[msgspec.Struct], where: str, convert: Callable[[Any, Any], None]
) -> Iterator[Located]:
    fields = msgspec.structs.fields(struct)
    for field in fields:
        if field.encode_name in raw:
            yield from _problems(raw[field.encode_name], field.type, join_path(where, field.encode_name), convert)
        elif field.required:
            yield Located(join_path(where, field.encode_name), "field required")
    if struct.__struct_config__.forbid_unknown_fields:
        known = {field.encode_name for field in fields}
        for key in raw:
            if key not in known:
                yield Located(join_path(where, _key(key)), UNKNOWN_FIELD)


def _worded(what: str, shape: Any) -> str:
    """msgspec's problem of a value, naming the allowed values of an enum or Literal (never the value given)."""
    if what != NOT_ALLOWED:
        return what
    if get_origin(shape) is Literal:
        return f"must be one of {list(get_args(shape))}"
    if isinstance(shape, type) and issubclass(shape, enum.Enum):
        return f"must be one of {[member.value for member in shape]}"
    return what
