"""The registry finds each adapter by its kind: one line in `KINDS` per provider, imported on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cdnpurge.core.registry import KINDS, REGISTRY, adapter_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_kind_maps_to_the_adapter_of_that_kind_in_order() -> None:
    assert list(REGISTRY) == list(KINDS)
    assert all(adapter.kind == kind for kind, adapter in REGISTRY.items())


def test_a_module_without_an_adapter_of_its_kind_is_a_clear_error() -> None:
    # `http` is a module of the package (the shared HTTP adapter base) but holds no adapter of its own
    with pytest.raises(
        TypeError, match=r"cdnpurge.runtime.providers.http.ADAPTER must be the adapter class of kind 'http'"
    ):
        adapter_of("http")


def test_a_fastly_only_config_loads_no_other_adapter() -> None:
    # In a fresh interpreter (this one has imported every adapter): validate a Fastly-only configuration,
    # plan for it and build its provider, as the handler does at cold start.
    script = f"""
import json, sys
from pydantic import SecretStr
from pathlib import Path
from cdnpurge.core.config import parse_config
from cdnpurge.core.registry import KINDS, build_providers, specs
config = parse_config(Path({str(EXAMPLES / "fastly.yaml")!r}).read_text(), require_credentials=True)
specs(config.providers)
build_providers(config.providers, lambda settings: {{"token": SecretStr("not-a-real-token")}})
print(json.dumps(sorted(kind for kind in KINDS if f"cdnpurge.runtime.providers.{{kind}}" in sys.modules)))
print(json.dumps("akamai" in sys.modules or "boto3" in sys.modules))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded, sdk_loaded = map(json.loads, completed.stdout.splitlines())
    assert loaded == ["fastly"]
    assert sdk_loaded is False  # Akamai's EdgeGrid signer and boto3 (CloudFront) stay unloaded


def test_knowing_the_kinds_imports_no_adapter() -> None:
    script = (
        "import sys; from cdnpurge.core.registry import REGISTRY; "
        "assert 'fastly' in REGISTRY and 'nope' not in REGISTRY and len(list(REGISTRY)) == len(REGISTRY); "
        "print(sorted(kind for kind in REGISTRY if f'cdnpurge.runtime.providers.{kind}' in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_an_unknown_kind_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="nope"):
        REGISTRY["nope"]
