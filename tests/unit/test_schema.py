"""`cdnpurge.core.schema.located`: msgspec's validation messages as `field.path: problem`, never the value."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import pytest

from cdnpurge.core.schema import Located, located


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
