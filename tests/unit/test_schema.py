"""`cdnpurge.core.schema`: msgspec's validation messages as `field.path: problem`, never the value, and every
problem of a document at once (`convert_every`)."""

from __future__ import annotations

import enum
import importlib
import pkgutil
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec
import pytest

import cdnpurge.core
import cdnpurge.runtime
from cdnpurge.core.config import Config
from cdnpurge.core.events.verify import VerifyCheck
from cdnpurge.core.schema import _RULES, DocumentError, Located, convert_every, every_problem, located, worded
from cdnpurge.runtime.service import LambdaEnvironment


class Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    rate: Annotated[float, msgspec.Meta(le=10_000)] | None = None
    kind: Literal["fastly", "bunny"] = "fastly"

    def __post_init__(self) -> None:
        if self.name == "reserved":
            raise ValueError("the name 'reserved' is taken")


class Document(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    providers: tuple[Entry, ...]


def problem(raw: Any) -> Located:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(raw, Document)
    return located(caught.value)


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"providers": [{}]}, "providers[0].name: field required"),
        (
            {"providers": [{"name": "a", "colour": "red"}]},
            "providers[0].colour: unknown field (not one this document has)",
        ),
        ({"providers": [{"name": "a", "rate": 1e9}]}, "providers[0].rate: Expected `float` <= 10000.0"),
        ({"providers": [{"name": "reserved"}]}, "providers[0]: the name 'reserved' is taken"),
        ({}, "providers: field required"),
        ([], "Expected `object`, got `array`"),
    ],
)
def test_the_field_path_and_the_problem(raw: Any, line: str) -> None:
    assert problem(raw).line() == line


def test_a_prefix_names_where_the_document_sits() -> None:
    assert problem({"providers": [{}]}).line(prefix="config") == "config.providers[0].name: field required"
    assert problem([]).line(prefix="webhooks[1]") == "webhooks[1]: Expected `object`, got `array`"


def test_an_enum_problem_never_quotes_the_value() -> None:
    secret = "sk_live_0123456789abcdef"
    found = problem({"providers": [{"name": "a", "kind": secret}]})
    assert found == Located("providers[0].kind", "not one of the allowed values")
    assert secret not in found.line()


# --- every problem of a document at once ------------------------------------------------------------------


class Kind(enum.Enum):
    URL = "url"
    KEY = "key"


class Reference(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    env: Annotated[str, msgspec.Meta(min_length=1)]


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entries: Annotated[tuple[Entry, ...], msgspec.Meta(min_length=1)]
    limits: dict[Kind, int] = {}
    credentials: dict[str, Reference] = {}
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 1.0


def every(raw: Any) -> list[str]:
    with pytest.raises(DocumentError) as caught:
        convert_every(raw, Settings)
    return caught.value.lines()


def test_every_problem_of_a_document_is_found_each_at_its_path() -> None:
    # Given: a problem in nearly every place a document can hold one
    raw = {
        "entries": [{}, {"name": "reserved"}, {"name": "a", "rate": 1e9, "kind": "nope", "colour": 1}, 3],
        "limits": {"tag": 1, "url": "many"},
        "credentials": {"token": {}, "sk_live 0123": {"env": ""}},
        "timeout": 0,
        "extra": True,
    }
    # When / Then: each is named at its place, in the document's order
    assert every(raw) == [
        "entries[0].name: field required",
        "entries[1]: the name 'reserved' is taken",
        "entries[2].rate: Expected `float` <= 10000.0",
        "entries[2].kind: must be one of ['fastly', 'bunny']",
        "entries[2].colour: unknown field (not one this document has)",
        "entries[3]: Expected `object`, got `int`",
        "limits: a key: must be one of ['url', 'key']",
        "limits.url: Expected `int`, got `str`",
        "credentials.token.env: field required",
        "credentials[...].env: Expected `str` of length >= 1",  # a key that reads as no name: not shown
        "timeout: Expected `float` > 0.0",
        "extra: unknown field (not one this document has)",
    ]


def test_a_struct_is_refused_as_a_whole_only_when_its_fields_pass() -> None:
    # A rule across fields (`__post_init__`) is judged once the fields it reads are valid.
    assert every({"entries": [{"name": "reserved", "rate": 1e9}]}) == ["entries[0].rate: Expected `float` <= 10000.0"]
    assert every({"entries": []}) == ["entries: Expected `array` of length >= 1"]


def test_a_valid_document_converts_as_msgspec_converts_it() -> None:
    raw = {"entries": [{"name": "a", "kind": "bunny"}], "limits": {"url": 3}}
    assert convert_every(raw, Settings) == msgspec.convert(raw, Settings)
    assert every_problem(raw, Settings) == []


def test_no_problem_quotes_the_value_given() -> None:
    secret = "sk_live_0123456789abcdef"
    raw = {"entries": [{"name": secret, "kind": secret, "rate": secret}], "limits": {secret: secret}, "x": secret}
    lines = every(raw)
    assert lines and not [line for line in lines if secret in line]


def test_a_problem_of_several_lines_gives_one_line_each_under_its_path() -> None:
    error = DocumentError([Located("rules[0]", "first\nsecond"), Located("", "top")])
    assert error.lines(prefix="config") == ["config.rules[0]: first", "config.rules[0]: second", "config: top"]
    assert str(error) == "rules[0]: first\nrules[0]: second\ntop"


def _patterns(info: msgspec.inspect.Type, seen: set[type]) -> Iterator[tuple[str, str]]:
    """(where, pattern) of every string pattern reachable from a msgspec type description."""
    if isinstance(info, msgspec.inspect.StrType) and info.pattern is not None:
        yield "", info.pattern
    elif isinstance(info, msgspec.inspect.StructType):
        if info.cls in seen:
            return
        seen.add(info.cls)
        for field in info.fields:
            for where, pattern in _patterns(field.type, seen):
                yield f"{info.cls.__qualname__}.{field.name}" + (f" > {where}" if where else ""), pattern
    elif isinstance(info, msgspec.inspect.UnionType):
        for option in info.types:
            yield from _patterns(option, seen)
    elif isinstance(info, msgspec.inspect.TupleType):
        for item in info.item_types:
            yield from _patterns(item, seen)
    elif isinstance(info, msgspec.inspect.DictType):
        yield from _patterns(info.key_type, seen)
        yield from _patterns(info.value_type, seen)
    elif hasattr(info, "item_type"):  # list, set, frozenset, variable-length tuple
        yield from _patterns(info.item_type, seen)


def _described(struct: type[msgspec.Struct]) -> msgspec.inspect.Type | None:
    try:
        return msgspec.inspect.type_info(struct)
    except (TypeError, NameError):  # a run-time object's type, or one imported for type checking only
        return None


def test_every_pattern_of_the_package_is_anchored_and_worded() -> None:
    # Given: every Struct the Lambda's package defines (configuration, own messages, environment, ...)
    modules = [
        importlib.import_module(info.name)
        for package in (cdnpurge.core, cdnpurge.runtime)
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
    ]
    structs = {
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, msgspec.Struct) and value.__module__ == module.__name__
    }
    # When: the string patterns of their fields are collected (from every Struct msgspec can read: those
    # holding a lock, a client or a callable are run-time objects, never read from a document)
    described = {struct: info for struct in structs if (info := _described(struct)) is not None}
    found = dict(pattern for info in described.values() for pattern in _patterns(info, set()))
    # Then: each is anchored with \A and \Z (`$` lets a final newline through) and refused in words
    assert {Config, VerifyCheck, LambdaEnvironment} <= set(described)
    assert len(found) >= 10
    unanchored = {where: p for where, p in found.items() if not (p.startswith("\\A") and p.endswith("\\Z"))}
    unworded = {where: p for where, p in found.items() if f"Expected `str` matching regex {p!r}" not in _RULES}
    assert unanchored == {}
    assert unworded == {}


class Named(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(pattern=worded(r"[a-z]+", "must be lower-case letters"))]


@pytest.mark.parametrize("value", ["fastly\n", "fastly\r\n", "\nfastly"])
def test_a_final_newline_does_not_pass_a_pattern(value: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({"name": value}, Named)
    assert located(caught.value) == Located("name", "must be lower-case letters")


class Templates(msgspec.Struct):
    paths: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()


def test_a_lone_surrogate_read_laxly_is_a_problem_at_its_place() -> None:
    # Given: a text with a lone surrogate (a YAML "\ud800" escape) where a list is expected, read laxly as a
    # configuration is (msgspec then encodes the text, which raises UnicodeEncodeError, not a ValidationError)
    raw = {"paths": "/a", "urls": "\ud800"}
    # When: converted
    with pytest.raises(DocumentError) as caught:
        convert_every(raw, Templates, strict=False)
    # Then: the problem is named at its field, beside the others
    assert caught.value.lines() == [
        "paths: Expected `array`, got `str`",
        "urls: is not valid Unicode (a lone surrogate)",
    ]
