"""The runtime's classes are msgspec Structs (or plain classes), never dataclasses.

Defining a frozen dataclass generates and compiles its `__init__`, `__repr__`, `__eq__`, `__hash__` and
`__setattr__` (about half a millisecond each on Python 3.13); a Struct is made in microseconds. The handler's
import defines every class of the modules it loads on every cold start (bench/README.md: cold start), so a
dataclass added anywhere in the runtime shows here, not as a slower cold start in production.

Checked in a fresh interpreter that imports the purge handler itself (what Lambda's init defines), then every
other module of `cdnpurge.runtime` (what a check, a webhook or an HTTP adapter loads later).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HANDLER = Path(__file__).resolve().parents[2] / "functions" / "purge"
# Not checked here: the provider adapters and the factory that builds them from the configuration, whose
# classes move together with the configuration's models.
NOT_CHECKED = ("cdnpurge.runtime.providers", "cdnpurge.runtime.purgers", "cdnpurge.runtime.credential_check")
SCRIPT = f"""
import dataclasses, importlib, inspect, json, pkgutil, sys

def runtime_modules():
    return sorted(name for name in sys.modules if name.startswith("cdnpurge.runtime.")
                  and not name.startswith({NOT_CHECKED!r}))

def dataclasses_in(modules):
    return sorted(
        f"{{name}}.{{cls.__qualname__}}"
        for name in modules
        for cls in vars(sys.modules[name]).values()
        if inspect.isclass(cls) and cls.__module__ == name and dataclasses.is_dataclass(cls)
    )

import app
at_import = runtime_modules()
import cdnpurge.runtime
for module in pkgutil.walk_packages(cdnpurge.runtime.__path__, "cdnpurge.runtime."):
    importlib.import_module(module.name)
print(json.dumps({{
    "loaded_at_import": len(at_import),
    "at_import": dataclasses_in(at_import),
    "loaded": len(runtime_modules()),
    "anywhere": dataclasses_in(runtime_modules()),
}}))
"""


def test_no_class_of_the_runtime_is_a_dataclass() -> None:
    # Given: a fresh interpreter importing the purge handler, as Lambda's init does
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HANDLER), os.environ.get("PYTHONPATH", "")])}
    # When: it imports app.py, then every other module of the runtime
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, env=environment, cwd=HANDLER
    )
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    # Then: the import defined runtime classes, and none of them (nor any the runtime defines later) is a dataclass
    assert found["loaded_at_import"] > 20 and found["loaded"] > found["loaded_at_import"]
    assert found["at_import"] == []
    assert found["anywhere"] == []
