"""Who imports what: the pure stages load no adapter, no AWS SDK and no HTTP client; the handler loads an
adapter only once a configuration names its kind, and no pydantic at all; the wings import one way
(core <- runtime <- cli); and no module of the package imports itself back.

The loads are checked in a fresh interpreter (this test process has long since imported everything), so an import
added anywhere under the planner, the decoder or the translator that drags in httpx, boto3 or a
provider adapter fails here, not as a slower cold start in production.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.coldstart import FIRST_BATCH, FIRST_BATCH_CONFIGS

# What a pure stage may load from the provider package: the vocabulary and what the planner reads.
ALLOWED_PROVIDER_MODULES = frozenset(
    {"cdnpurge.runtime.providers", "cdnpurge.core.spec", "cdnpurge.core.provider_errors"}
)


def loaded_after_importing(module: str) -> set[str]:
    script = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(completed.stdout))


def forbidden(loaded: set[str], sdk_packages: tuple[str, ...]) -> list[str]:
    return sorted(
        name
        for name in loaded
        if name.split(".")[0] in sdk_packages
        or (name.startswith("cdnpurge.runtime.providers.") and name not in ALLOWED_PROVIDER_MODULES)
    )


@pytest.mark.parametrize("module", ["cdnpurge.core.plan", "cdnpurge.core.translate"])
def test_the_planner_and_the_translator_load_no_adapter_sdk_or_http_client(module: str) -> None:
    loaded = loaded_after_importing(module)
    assert module in loaded
    assert forbidden(loaded, ("httpx", "boto3", "botocore")) == []


def test_the_decoder_loads_no_adapter_boto3_or_http_client() -> None:
    # Powertools' package import (for its typed event views) loads botocore's top-level package, but no
    # boto3, no client and nothing of ours beyond the decoder.
    loaded = loaded_after_importing("cdnpurge.core.events")
    assert forbidden(loaded, ("httpx", "boto3")) == []
    assert {name for name in loaded if name.split(".")[0] == "botocore"} <= {"botocore"}


# --- the handler loads an adapter only when a configuration names its kind -------------------------------

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "functions" / "purge"
_ADAPTERS_LOADED = (
    "[name for name in sorted(sys.modules) if name.rpartition('.')[0] == 'cdnpurge.runtime.providers'"
    " and name.rpartition('.')[2] in KINDS]"
)
HANDLER_SCRIPT = f"""
import json, sys
from cdnpurge.core.registry import KINDS
import app
before = {_ADAPTERS_LOADED}
from cdnpurge.core.config import parse_config
from cdnpurge.runtime.purgers import build_purgers
config = parse_config(sys.argv[1])
build_purgers(config.providers, environ={{"FASTLY_TOKEN": "fastly-test-token"}})
print(json.dumps({{"at_import": before, "configured": {_ADAPTERS_LOADED}}}))
"""
FASTLY_ONLY = """
version: 1
providers:
  - {name: site, kind: fastly, service_id: SU1Z0isxPaozGVKXdv0eY, hosts: [www.example.com],
     credentials: {token: {env: FASTLY_TOKEN}}}
"""


def in_handler(script: str, *arguments: str, **variables: str) -> Any:
    """What `script` prints last (JSON), run in a fresh interpreter beside the handler (`import app` works, as in
    Lambda's task root), with `variables` added to the environment."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HANDLER), os.environ.get("PYTHONPATH", "")]),
        **variables,
    }
    completed = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        cwd=HANDLER,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_handler_loads_no_adapter_until_a_configuration_names_its_kind() -> None:
    # Given / When: a fresh interpreter importing the handler itself, as Lambda's init does, then building the
    # providers of a Fastly-only configuration
    loaded = in_handler(HANDLER_SCRIPT, FASTLY_ONLY)
    # Then: no adapter module at import (verification asks a job's status by capability, not by class), and
    # the configured kind's alone once the configuration names it
    assert loaded == {"at_import": [], "configured": ["cdnpurge.runtime.providers.fastly"]}


# --- no pydantic on the Lambda's path: its import alone cost every cold start tens of milliseconds ---------

# Before the bench's first batch (the service built, one S3 event planned): on the first import of pydantic,
# record which of our modules asked for it, so that a failure names them.
NO_PYDANTIC_SCRIPT = (
    """
import sys, traceback

asked_by = []


class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "pydantic" and not asked_by:
            asked_by.extend(f"{frame.filename}:{frame.lineno}" for frame in traceback.extract_stack()[:-1]
                            if "cdnpurge" in frame.filename or frame.filename.endswith("app.py"))
        return None


sys.meta_path.insert(0, Watch())
"""
    + FIRST_BATCH
    + """
print(json.dumps({
    "providers": sorted(service.providers),
    "webhooks": [source.name for source in service.config.webhooks],
    "verifies": service.verification is not None,
    "coalesces": [p.name for p in service.config.providers if p.coalesce_seconds],
    "pydantic_loaded": sorted({name.split(".")[0] for name in sys.modules} & {"pydantic", "pydantic_core"}),
    "asked_by": asked_by,
}))
"""
)


def test_the_handler_and_its_first_batch_load_no_pydantic(tmp_path: Path) -> None:
    # Given: the cold-start bench's configuration with every optional feature (Fastly with verification and
    # coalescing, CloudFront, a webhook source, re-purges, the trail) and the environment the template sets
    configuration, variables = FIRST_BATCH_CONFIGS["features"]
    config = tmp_path / "purge.yaml"
    config.write_text(configuration)
    # When: a fresh interpreter imports the handler, builds its service (clients built, never called) and plans
    # one S3 event, as the bench's first batch does
    state = in_handler(
        NO_PYDANTIC_SCRIPT,
        str(ROOT / "events" / "sqs-s3-put.json"),
        PURGE_CONFIG=str(config),
        IDEMPOTENCY_TABLE_NAME="cdnpurge-idempotency",
        AWS_DEFAULT_REGION="us-east-1",
        FASTLY_TOKEN="fastly-test-token",
        **variables,
    )
    # Then: every feature was built, and pydantic never loaded (who asked for it is named if it did)
    assert state["providers"] == ["cloudfront", "fastly"] and state["webhooks"] == ["publisher"]
    assert state["verifies"] and state["coalesces"] == ["fastly"]
    assert state["asked_by"] == []
    assert state["pydantic_loaded"] == []


# --- what the handler's import leaves for later: its cold-start guarantees -------------------------------------

# Loaded by the first verification check (its prober) or the first HTTP adapter, never by the import itself:
# the HTTP client (httpx, which the Tracer patches when it is first imported), its transport (httpcore, h11)
# and the probe. asyncio: nothing the function runs uses it (the X-Ray SDK's wrapt 2 imported it;
# layers/core/requirements.txt holds wrapt at 1.x).
LAZY_AT_IMPORT = (
    "asyncio",
    "cdnpurge.runtime.bounded.http",
    "cdnpurge.runtime.verification.probe",
    "h11",
    "httpcore",
    "httpx",
)
COLD_START_SCRIPT = f"""
import gc, json, sys
import app
loaded = [name for name in {list(LAZY_AT_IMPORT)!r} if name in sys.modules]
frozen, collecting = gc.get_freeze_count(), gc.isenabled()
import httpx
print(json.dumps({{
    "loaded": loaded,
    "frozen": frozen,
    "collecting": collecting,
    "client_once_imported": httpx.Client.__module__,
}}))
"""


def test_the_handler_import_loads_nothing_left_for_later_and_freezes_what_it_built() -> None:
    # Given: a fresh interpreter with Lambda's task root set (Tracer enabled: it patches at import)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HANDLER), os.environ.get("PYTHONPATH", "")]),
        "LAMBDA_TASK_ROOT": str(HANDLER),
        "AWS_REGION": "us-east-1",
    }
    # When: it imports app.py, as Lambda's init does
    completed = subprocess.run(
        [sys.executable, "-c", COLD_START_SCRIPT], capture_output=True, text=True, check=True, env=environment
    )
    state = json.loads(completed.stdout.strip().splitlines()[-1])
    # Then: nothing that only a check or an HTTP call needs is loaded; what the import built is frozen out of
    # the collector's sight, and collection runs again for what invocations allocate
    assert state["loaded"] == []
    assert state["frozen"] > 10_000
    assert state["collecting"] is True
    # And: httpx, once something imports it, is traced (X-Ray's instrumented client)
    assert state["client_once_imported"] == "aws_xray_sdk.ext.httpx.patch"


# --- imports point one way: core <- runtime <- cli, and no module imports itself back --------------------

PACKAGE = ROOT / "layers" / "core"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package by dotted name: its file, and whether it is a package's __init__."""
    modules = {}
    for path in sorted((PACKAGE / "cdnpurge").rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


MODULES = _modules()


def imported_names(module: str) -> set[str]:
    """Every module `module`'s source imports, wherever the import stands (top level, a function, a
    TYPE_CHECKING block): what a reader, and a circle, counts; `from a import b` names `a.b` if it is one."""
    path, is_package = MODULES[module]
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in MODULES)
    return names


def _internal_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        edges = set()
        for name in imported_names(module):
            known = name
            while known and known not in MODULES:  # `cdnpurge.core.plan.plan` is the module cdnpurge.core.plan
                known = known.rpartition(".")[0]
            if known and known != module:
                edges.add(known)
        graph[module] = edges
    return graph


def _wing(module: str, wing: str) -> bool:
    return module == f"cdnpurge.{wing}" or module.startswith(f"cdnpurge.{wing}.")


@pytest.mark.parametrize(
    ("wing", "refused"),
    [
        ("core", ("cdnpurge.runtime", "cdnpurge.cli", "boto3", "botocore", "httpx")),
        ("runtime", ("cdnpurge.cli",)),
    ],
)
def test_a_wing_imports_nothing_of_the_wings_built_on_it(wing: str, refused: tuple[str, ...]) -> None:
    # The planning core is pure (no AWS SDK, no HTTP client: those are the runtime's), and the runtime never
    # reaches into the operator tools, which the Lambda layer does not ship.
    crossings = sorted(
        f"{module} imports {name}"
        for module in MODULES
        if _wing(module, wing)
        for name in imported_names(module)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in refused)
    )
    assert crossings == []


def test_no_module_of_the_package_imports_itself_back() -> None:
    # Tarjan's strongly connected components over every import of the sources: a circle is one of two or more.
    graph = _internal_graph()
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for imported in graph[module]:
            if imported not in order:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], order[imported])
        if low[module] == order[module]:
            component: list[str] = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in order:
            visit(module)
    assert circles == []


def test_the_import_graph_sees_the_imports_it_judges() -> None:
    # The checks above are only as good as the graph: it must see a TYPE_CHECKING import and a relative one.
    graph = _internal_graph()
    assert "cdnpurge.core.config" in graph["cdnpurge.core.translate"]  # under TYPE_CHECKING
    assert "cdnpurge.runtime.trail" in graph["cdnpurge.runtime.report"]
    assert "cdnpurge.cli.main" in graph["cdnpurge.cli.__main__"]
