"""The part of CloudFormation that the local stack needs: load a template, evaluate its intrinsic functions.

Short-form tags (``!Ref``, ``!GetAtt``, ``!Sub`` ...) load as their long-form mappings; ``Evaluator``
resolves Ref, GetAtt, Sub, If, Join, Select, Split and the condition functions against parameter values
and the physical ids of resources created so far; ``creation_order`` orders resources after what they
reference. Kept apart from ``provision`` (which creates resources on moto and DynamoDB Local), so tests of
the template read it the same way without a running server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

import yaml

__all__ = [
    "Evaluator",
    "TemplateError",
    "creation_order",
    "load_template",
    "parameter_values",
]


class TemplateError(Exception):
    """The template uses something this module cannot evaluate or provision faithfully."""


# --------------------------------------------------------------------------------------------------
# Loading: CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...) as their long-form mappings.


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref x`` into ``{"Ref": "x"}`` and ``!Fn x`` into ``{"Fn::Fn": x}``."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"unsupported node for !{suffix}")
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template, short-form intrinsic tags included."""
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    return document


# --------------------------------------------------------------------------------------------------
# Evaluating intrinsic functions against local physical ids.


class _NoValue:
    """``AWS::NoValue``: the property or list item disappears."""


_NO_VALUE: Final = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass
class Evaluator:
    """Resolves intrinsic functions; ``attributes[logical_id]`` holds ``Ref`` and ``GetAtt`` values."""

    parameters: dict[str, str | list[str]]
    condition_definitions: dict[str, Any]
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    _conditions: dict[str, bool] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = self._FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
            if key.startswith("Fn::"):
                raise TemplateError(f"intrinsic function {key} is not supported locally")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.condition_definitions:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(self.condition_definitions[name]))
        return self._conditions[name]

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        return self._attribute(name, "Ref")

    def _get_att(self, argument: list[Any]) -> str:
        logical_id, attribute = (self.resolve(part) for part in argument)
        return self._attribute(str(logical_id), str(attribute))

    def _attribute(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[logical_id][attribute]
        except KeyError:
            what = logical_id if attribute == "Ref" else f"{logical_id}.{attribute}"
            raise TemplateError(f"{what} is not available locally (unknown, or not provisioned yet)") from None

    def _sub(self, argument: str | list[Any]) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        else:
            text, variables = argument[0], self.resolve(argument[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] not in self.parameters:
                logical_id, attribute = name.split(".", 1)
                return self._attribute(logical_id, attribute)
            value = self._ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return _SUB_VARIABLE.sub(replace, text)

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _join(self, argument: list[Any]) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.resolve(items))

    def _select(self, argument: list[Any]) -> Any:
        index, items = (self.resolve(part) for part in argument)
        return items[int(index)]

    def _split(self, argument: list[Any]) -> list[str]:
        delimiter, text = (self.resolve(part) for part in argument)
        return str(text).split(str(delimiter))

    def _equals(self, argument: list[Any]) -> bool:
        left, right = (self.resolve(part) for part in argument)
        return bool(left == right)

    def _not(self, argument: list[Any]) -> bool:
        return not self.resolve(argument[0])

    def _and(self, argument: list[Any]) -> bool:
        return all(self.resolve(part) for part in argument)

    def _or(self, argument: list[Any]) -> bool:
        return any(self.resolve(part) for part in argument)

    _FUNCTIONS: ClassVar[Mapping[str, Callable[[Evaluator, Any], Any]]] = {
        "Ref": _ref,
        "Condition": condition,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::If": _if,
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::And": _and,
        "Fn::Or": _or,
    }


def _references(value: Any) -> Iterator[str]:
    """Logical ids (or parameter names) that ``value`` refers to through Ref, GetAtt or Sub."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                yield argument
            elif key == "Fn::GetAtt" and isinstance(argument, list) and argument:
                yield str(argument[0])
            elif key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                for name in _SUB_VARIABLE.findall(text):
                    if not name.startswith("!"):
                        yield name.split(".", 1)[0]
                if isinstance(argument, list):
                    yield from _references(argument[1:])
            else:
                yield from _references(argument)


def creation_order(resources: Mapping[str, Any], wanted: set[str]) -> list[str]:
    """``wanted`` logical ids, each after the wanted resources it references (template order otherwise)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular reference through {logical_id}")
        visiting.add(logical_id)
        definition = resources[logical_id]
        depends_on = definition.get("DependsOn", [])
        for name in [
            *_references(definition.get("Properties", {})),
            *([depends_on] if isinstance(depends_on, str) else depends_on),
        ]:
            if name in wanted:
                visit(name)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in resources:
        if logical_id in wanted:
            visit(logical_id)
    return order


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str | list[str]]:
    declared: Mapping[str, Any] = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"parameters not declared in the template: {sorted(unknown)}")
    values: dict[str, str | list[str]] = {}
    for name, spec in declared.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no Default and no value was given")
        kind = str(spec.get("Type", "String"))
        is_list = kind == "CommaDelimitedList" or kind.startswith("List<")
        values[name] = [item.strip() for item in raw.split(",")] if is_list else raw
    return values
