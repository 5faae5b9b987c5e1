"""examples/: one configuration per provider kind and a multi-CDN one, each valid, plannable and SSM-sized."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdnpurge.cli.deploy import parameter_size_warning
from cdnpurge.core.config import parse_config
from cdnpurge.core.registry import REGISTRY, specs
from cdnpurge.runtime.pipeline import preview

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
# Registered kinds whose example is still to be written: each one named here on purpose, never by default.
KINDS_WITHOUT_EXAMPLE: frozenset[str] = frozenset()
MULTI_CDN = EXAMPLES / "multi-cdn.yaml"


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", example_files(), ids=lambda path: path.name)
def test_example_is_valid_fits_a_standard_parameter_and_plans_an_upload(path: Path) -> None:
    # Given
    text = path.read_text(encoding="utf-8")
    # When
    config = parse_config(text, source=str(path))
    event = json.loads((ROOT / "events/sqs-s3-put.json").read_text())
    _, translation, plan, _ = preview(event, config, specs(config.providers))
    # Then: it stores as a Standard SSM parameter, and an upload becomes requests with no error
    assert parameter_size_warning(text) is None
    assert not translation.errors and not plan.errors
    assert plan.requests


def test_every_registered_provider_kind_has_its_own_example() -> None:
    for kind in sorted(set(REGISTRY) - KINDS_WITHOUT_EXAMPLE):
        path = EXAMPLES / f"{kind}.yaml"
        assert path.is_file(), f"provider kind {kind!r} has no {path.relative_to(ROOT)}: add one (or name it in "
        "KINDS_WITHOUT_EXAMPLE until it is written)"
        config = parse_config(path.read_text(encoding="utf-8"), source=str(path))
        assert {provider.kind for provider in config.providers} == {kind}
    stale = {kind for kind in KINDS_WITHOUT_EXAMPLE if (EXAMPLES / f"{kind}.yaml").is_file()}
    assert not stale, f"{sorted(stale)} have examples now: remove them from KINDS_WITHOUT_EXAMPLE"


def test_multi_cdn_example_routes_one_upload_to_several_providers() -> None:
    config = parse_config(MULTI_CDN.read_text(encoding="utf-8"), source=str(MULTI_CDN))
    assert len({provider.kind for provider in config.providers}) >= 3
    event = json.loads((ROOT / "events/sqs-s3-put.json").read_text())
    _, _, plan, _ = preview(event, config, specs(config.providers))
    assert {request.provider for request in plan.requests} == {"fastly", "cloudfront"}


def test_examples_name_secrets_under_the_default_secrets_prefix() -> None:
    # The function may read only secrets under SecretsPrefix (default cdnpurge/): an example must work as is.
    for path in example_files():
        config = parse_config(path.read_text(encoding="utf-8"), source=str(path))
        for provider in config.providers:
            for reference in provider.credentials.values():
                assert reference.secret.startswith("cdnpurge/"), f"{path.name}: {provider.name}: {reference}"
