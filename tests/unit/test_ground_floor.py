"""The pure stages stay pure: importing them loads no adapter, no AWS SDK and no HTTP client.

Checked in a fresh interpreter (this test process has long since imported everything), so an import
added anywhere under the planner, the decoder or the translator that drags in httpx, boto3 or a
provider adapter fails here, not as a slower cold start in production.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
