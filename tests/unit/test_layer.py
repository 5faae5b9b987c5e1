"""The built CoreLayer (.aws-sam/build/CoreLayer, which `make test` builds first): within its size budget,
bytecode only for the runtime's Python, and nothing the function imports pruned away by layers/core/Makefile.

Skipped, with the reason shown, where the layer has not been built (plain pytest without `make sam-build`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.layer import BUILT_LAYER, LAYER_BUDGET_BYTES, ROOT, layer_bytes, mib

LAYER_SOURCE = ROOT / "layers" / "core"

# Python 3.13's bytecode magic number (importlib.util.MAGIC_NUMBER on 3.13, the Lambda runtime): a .pyc
# with any other is ignored there, and /opt being read-only, its module is compiled on every cold start.
PYTHON_313_MAGIC = (3571).to_bytes(2, "little") + b"\r\n"

# What the function imports on its way through a batch, lazily imported pieces included: the handler,
# every cdnpurge module but the operator tools (cdnpurge.cli), the Parameters providers it reads SSM and
# Secrets Manager with, the X-Ray patchers of the Tracer's patch_modules, and what httpx imports only when it
# sends (a closed loopback port).
IMPORTED_BY_THE_FUNCTION = """
import importlib, json, pkgutil, sys
sys.path.insert(0, "functions/purge")
import app, cdnpurge, httpx
try:
    httpx.Client(timeout=5).get("http://127.0.0.1:9/")
except httpx.HTTPError:
    pass
for module in pkgutil.walk_packages(cdnpurge.__path__, "cdnpurge."):
    if not module.name.startswith("cdnpurge.cli"):  # the operator tools are not in the layer
        importlib.import_module(module.name)
for name in ["aws_lambda_powertools.utilities.parameters.ssm", "aws_lambda_powertools.utilities.parameters.secrets",
             *(f"aws_xray_sdk.ext.{patched}.patch" for patched in app.TRACED_MODULES)]:
    importlib.import_module(name)
print(json.dumps({name: getattr(module, "__file__", None) for name, module in sys.modules.items()}))
"""

# Imported only to try: the library works without them (the Makefile prunes them on purpose).
OPTIONAL = {
    "yaml._yaml",  # libyaml's C parser; PyYAML falls back to the pure-Python one cdnpurge uses
    "_yaml",  # its old top-level alias
    "anyio",  # httpcore tries it for async use; the sync client cdnpurge uses never needs it
}

needs_built_layer = pytest.mark.skipif(not BUILT_LAYER.is_dir(), reason=f"{BUILT_LAYER} not built (make sam-build)")


@needs_built_layer
def test_the_built_layer_stays_within_its_size_budget() -> None:
    size = layer_bytes(BUILT_LAYER)
    assert size <= LAYER_BUDGET_BYTES, f"CoreLayer is {mib(size)} unzipped, over its {mib(LAYER_BUDGET_BYTES)} budget"


@needs_built_layer
def test_the_built_layer_ships_bytecode_only_for_python_313() -> None:
    stale = [path for path in BUILT_LAYER.rglob("*.pyc") if path.read_bytes()[:4] != PYTHON_313_MAGIC]
    assert not stale, f"bytecode Python 3.13 would ignore: {stale[:5]}"


def with_dependencies(requirements: Iterable[str]) -> set[str]:
    """The distributions these requirements install, their dependencies (and requested extras') included."""
    found: set[str] = set()
    pending = [Requirement(line) for line in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        found.add(name)
        for dependency in map(Requirement, distribution(name).requires or []):
            extras = requirement.extras or {""}
            wanted = dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras)
            if wanted and canonicalize_name(dependency.name) not in found:
                pending.append(dependency)
    return found


def top_level_names(distributions: set[str]) -> set[str]:
    return {
        top
        for top, owners in packages_distributions().items()
        if any(canonicalize_name(owner) in distributions for owner in owners)
    }


def layer_top_level_names(layer_site: Path) -> set[str]:
    """Every top-level module requirements.txt brings, less those the Lambda runtime provides (boto3's)."""
    lines = (LAYER_SOURCE / "requirements.txt").read_text(encoding="utf-8").splitlines()
    installed = top_level_names(with_dependencies(line for line in lines if line and not line.startswith("#")))
    in_layer = {path.name.split(".")[0] for path in layer_site.iterdir()}
    return installed - (top_level_names(with_dependencies(["boto3"])) - in_layer)


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
    packaged = layer_top_level_names(layer_site)
    missing = []
    for name, file in loaded.items():
        optional = any(name == module or name.startswith(f"{module}.") for module in OPTIONAL)
        if file is None or optional or name.split(".")[0] not in packaged or name.startswith("cdnpurge"):
            continue
        module_file = Path(file)
        site_packages = next(parent for parent in module_file.parents if parent.name == "site-packages")
        if not shipped(layer_site, module_file, site_packages):
            missing.append(name)
    assert not missing, f"imported by the function but pruned from CoreLayer: {sorted(missing)}"
