"""The classes the handler's import defines cost little to define: none of the planning core's is a dataclass.

Defining a dataclass generates the source of its `__init__`, `__repr__`, `__eq__`, `__hash__` (and, frozen,
`__setattr__`/`__delattr__`) and compiles it, about half a millisecond a class on Python 3.13, paid by every
cold start; a `msgspec.Struct` class has those methods in C and is defined in about a hundredth of that. The
handler is imported in a fresh interpreter, as Lambda's init does, and every class defined by a module of the
package that the import loaded is looked at (this test process has long since imported everything else).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HANDLER = Path(__file__).resolve().parents[2] / "functions" / "purge"
# For each module of the package the import loaded: the dataclasses it defines (classes whose module it is).
DATACLASSES_AT_IMPORT = """
import dataclasses, json, sys
import app
found = {
    name: sorted(
        value.__qualname__
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == name and dataclasses.is_dataclass(value)
    )
    for name, module in list(sys.modules.items())
    if name == "cdnpurge" or name.startswith("cdnpurge.")
}
print(json.dumps(found))
"""
# Core modules whose classes are being moved off dataclasses apart from the rest (the configuration and its
# provider declarations): each leaves this set as its classes become Structs, until the whole of
# `cdnpurge.core` is held to it.
NOT_YET_HELD = frozenset(
    {
        "cdnpurge.core.config",
        "cdnpurge.core.spec",
        "cdnpurge.core.credentials",
        "cdnpurge.core.verify_settings",
        "cdnpurge.core.webhooks.settings",
        "cdnpurge.core.registry",
        "cdnpurge.core.schema",
    }
)
# What the planning core's value types are spread over: each must be among the modules looked at.
VALUE_TYPE_MODULES = (
    "cdnpurge.core.models",
    "cdnpurge.core.gcra",
    "cdnpurge.core.translate",
    "cdnpurge.core.deadline",
    "cdnpurge.core.cost",
    "cdnpurge.core.coalesce",
    "cdnpurge.core.protocol",
    "cdnpurge.core.plan.lanes",
    "cdnpurge.core.plan.packing",
    "cdnpurge.core.events.reading",
    "cdnpurge.core.events.result",
    "cdnpurge.core.events.own",
    "cdnpurge.core.events.verify",
    "cdnpurge.core.events.coalesce",
    "cdnpurge.core.events.repurge",
    "cdnpurge.core.webhooks.signatures",
)


def dataclasses_at_import() -> dict[str, list[str]]:
    """Module -> the dataclasses it defines, for every module of the package the handler's import loads."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HANDLER), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [sys.executable, "-c", DATACLASSES_AT_IMPORT],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        cwd=HANDLER,
    )
    found: dict[str, list[str]] = json.loads(completed.stdout.strip().splitlines()[-1])
    return found


def test_no_class_of_the_planning_core_loaded_by_the_handler_import_is_a_dataclass() -> None:
    # Given: a fresh interpreter
    # When: it imports the purge handler, as Lambda's init does
    found = dataclasses_at_import()
    # Then: the core's value types were among what it loaded, and no core module defines a dataclass
    held = {
        name: classes
        for name, classes in found.items()
        if (name == "cdnpurge.core" or name.startswith("cdnpurge.core.")) and name not in NOT_YET_HELD
    }
    assert set(VALUE_TYPE_MODULES) <= set(held)
    assert {name: classes for name, classes in held.items() if classes} == {}
