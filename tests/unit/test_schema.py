"""`cdnpurge.core.schema`: msgspec's validation messages as `field.path: problem`, never the value, and every
problem of a document at once (`convert_every`)."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import msgspec
import pytest

from cdnpurge.core.schema import DocumentError, Located, convert_every, every_problem, located


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
