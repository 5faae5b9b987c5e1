"""The runtime's classes cost little to define: none is a dataclass (they are msgspec Structs or plain classes).

Why a dataclass costs every cold start: `test_cold_start_classes` (whose fresh-interpreter import of the
handler this reuses). The runtime is held twice: what the purge handler's import loads, and every other module
of `cdnpurge.runtime` (what a check, a webhook or an HTTP adapter loads later, imported here in-process:
which classes a module defines does not depend on what was imported before it).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

from unit.test_cold_start_classes import dataclasses_at_import

import cdnpurge.runtime

# Where the runtime's per-batch types live: each must be among the modules the handler's import loads.
VALUE_TYPE_MODULES = (
    "cdnpurge.runtime.service",
    "cdnpurge.runtime.execute",
    "cdnpurge.runtime.report",
    "cdnpurge.runtime.after_batch",
    "cdnpurge.runtime.coalesce",
    "cdnpurge.runtime.trail",
    "cdnpurge.runtime.verification.report",
)


def _held(name: str) -> bool:
    return name.startswith("cdnpurge.runtime.")


def test_no_class_of_the_runtime_loaded_by_the_handler_import_is_a_dataclass() -> None:
    # Given: a fresh interpreter
    # When: it imports the purge handler, as Lambda's init does
    found = {name: classes for name, classes in dataclasses_at_import().items() if _held(name)}
    # Then: the runtime's per-batch types were among what it loaded, and no runtime module defines a dataclass
    assert set(VALUE_TYPE_MODULES) <= set(found)
    assert {name: classes for name, classes in found.items() if classes} == {}


def test_no_class_of_the_runtime_loaded_later_is_a_dataclass() -> None:
    # Given: every module of the runtime, the webhook intake, verification's prober and the adapters included
    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(cdnpurge.runtime.__path__, "cdnpurge.runtime.")
        if _held(info.name)
    ]
    # When: their classes are looked at
    found = sorted(
        f"{module.__name__}.{value.__qualname__}"
        for module in modules
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__ == module.__name__ and dataclasses.is_dataclass(value)
    )
    # Then: none is a dataclass
    assert len(modules) > len(VALUE_TYPE_MODULES)
    assert found == []
