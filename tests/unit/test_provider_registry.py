"""The registry finds each adapter by its kind: one line in `KINDS` per provider, imported on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from msgspec.structs import replace

from cdnpurge.core.config import parse_config
from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import JobStatus, Provider, ProviderWrapper, PurgeResult, job_status
from cdnpurge.core.registry import KINDS, REGISTRY, adapter_of
from cdnpurge.core.spec import DeclaredProvider
from cdnpurge.runtime.verification.jobs import job_pending

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FASTLY_ONLY = "providers: [{name: site, kind: fastly, service_id: S1, hosts: [www.example.com]}]"


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
from cdnpurge.core.credentials import Secret
from pathlib import Path
from cdnpurge.core.config import parse_config
from cdnpurge.core.registry import KINDS, build_providers, specs
config = parse_config(Path({str(EXAMPLES / "fastly.yaml")!r}).read_text(), require_credentials=True)
specs(config.providers)
build_providers(config.providers, lambda settings: {{"token": Secret("not-a-real-token")}})
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


def test_the_providers_that_report_job_progress_implement_job_status_and_declare_asynchronous() -> None:
    # Verification asks a job's progress by capability (`JobStatus`, `Capabilities.asynchronous`), never by
    # adapter class: a new provider with a status API is asked by implementing the protocol, nothing else.
    adapters = {kind: adapter_of(kind) for kind in KINDS}
    reporting = set()
    for kind, adapter in adapters.items():
        assert isinstance(adapter, type) and issubclass(adapter, DeclaredProvider)
        if issubclass(adapter, JobStatus):
            reporting.add(kind)
            assert adapter.declared.asynchronous, f"{kind} reports jobs, so its purges are asynchronous"
    assert reporting == {"cloudfront", "medianova"}


class _Jobs:
    """A provider with jobs of its own (its spec says whether it is asynchronous), for what `job_status` finds."""

    def __init__(self, like: Provider, *, asynchronous: bool) -> None:
        self.name = like.name
        self.spec = replace(like.spec, capabilities=replace(like.spec.capabilities, asynchronous=asynchronous))

    def purge(self, request: PurgeRequest, *, idempotency_token: str, deadline: Deadline | None = None) -> PurgeResult:
        raise AssertionError("verification never purges through job_status")

    def job_pending(self, job_id: str, deadline: Deadline) -> bool:
        return job_id == "running"


def test_job_status_finds_the_adapter_inside_its_wrappers_and_asks_only_an_asynchronous_one() -> None:
    # Given: a provider reporting jobs, wrapped twice (redaction and rotation wrap every built provider), one
    # with the method that is not asynchronous, and Fastly, which reports no jobs
    settings = parse_config(FASTLY_ONLY).providers[0]
    fastly = REGISTRY["fastly"](settings, {"token": Secret("fastly-test-token")})
    reporting, synchronous = _Jobs(fastly, asynchronous=True), _Jobs(fastly, asynchronous=False)
    # When / Then
    assert job_status(ProviderWrapper(ProviderWrapper(reporting))) is reporting
    assert job_status(ProviderWrapper(synchronous)) is None
    assert job_status(fastly) is None
    assert job_pending(ProviderWrapper(reporting), "running", Deadline.after(5))
    assert not job_pending(reporting, "done", Deadline.after(5))
    assert not job_pending(synchronous, "running", Deadline.after(5))
