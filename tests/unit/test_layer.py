"""The built CoreLayer (.aws-sam/build/CoreLayer, which `make test` builds first): within its size budget,
bytecode only for the runtime's Python, and nothing the function imports pruned away by layers/core/Makefile.

Skipped, with the reason shown, where the layer has not been built (plain pytest without `make sam-build`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.layer import BUILT_LAYER, LAYER_BUDGET_BYTES, ROOT, layer_bytes, mib

# Python 3.13's bytecode magic number (importlib.util.MAGIC_NUMBER on 3.13, the Lambda runtime): a .pyc
# with any other is ignored there, and /opt being read-only, its module is compiled on every cold start.
PYTHON_313_MAGIC = (3571).to_bytes(2, "little") + b"\r\n"

# What the function imports on its way through a batch, lazily imported pieces included: the handler,
# every cdnpurge module, the Parameters providers it reads SSM and Secrets Manager with, and the X-Ray
# patchers of the Tracer's patch_modules.
IMPORTED_BY_THE_FUNCTION = """
import importlib, json, pkgutil, sys
sys.path.insert(0, "functions/purge")
import app, cdnpurge
for module in pkgutil.walk_packages(cdnpurge.__path__, "cdnpurge."):
    importlib.import_module(module.name)
for name in ["aws_lambda_powertools.utilities.parameters.ssm", "aws_lambda_powertools.utilities.parameters.secrets",
             *(f"aws_xray_sdk.ext.{patched}.patch" for patched in app.TRACED_MODULES)]:
    importlib.import_module(name)
print(json.dumps({name: getattr(module, "__file__", None) for name, module in sys.modules.items()}))
"""

# Imported only to try: the library works without it (the Makefile prunes it on purpose).
OPTIONAL = {"yaml._yaml"}  # libyaml's C parser; PyYAML falls back to the pure-Python one cdnpurge uses

needs_built_layer = pytest.mark.skipif(not BUILT_LAYER.is_dir(), reason=f"{BUILT_LAYER} not built (make sam-build)")


@needs_built_layer
def test_the_built_layer_stays_within_its_size_budget() -> None:
    size = layer_bytes(BUILT_LAYER)
    assert size <= LAYER_BUDGET_BYTES, f"CoreLayer is {mib(size)} unzipped, over its {mib(LAYER_BUDGET_BYTES)} budget"


@needs_built_layer
def test_the_built_layer_ships_bytecode_only_for_python_313() -> None:
    stale = [path for path in BUILT_LAYER.rglob("*.pyc") if path.read_bytes()[:4] != PYTHON_313_MAGIC]
    assert not stale, f"bytecode Python 3.13 would ignore: {stale[:5]}"


def shipped(layer_site: Path, module_file: Path, site_packages: Path) -> bool:
    """Whether the layer holds this module (as source, bytecode or an extension of any platform)."""
    relative = module_file.relative_to(site_packages)
    stem = relative.name.split(".")[0]
    return any(layer_site.joinpath(relative.parent).glob(f"{stem}.*"))


@needs_built_layer
def test_nothing_the_function_imports_is_pruned_from_the_layer() -> None:
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", IMPORTED_BY_THE_FUNCTION], check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout
    )
    layer_site = BUILT_LAYER / "python"
    packaged = {path.name.split(".")[0] for path in layer_site.iterdir()}
    missing = []
    for name, file in loaded.items():
        if file is None or name in OPTIONAL or name.split(".")[0] not in packaged or name.startswith("cdnpurge"):
            continue
        module_file = Path(file)
        site_packages = next(parent for parent in module_file.parents if parent.name == "site-packages")
        if not shipped(layer_site, module_file, site_packages):
            missing.append(name)
    assert not missing, f"imported by the function but pruned from CoreLayer: {sorted(missing)}"
