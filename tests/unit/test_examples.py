"""examples/: one configuration per provider kind and a multi-CDN one, each valid, plannable and SSM-sized."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cdnpurge.cli.deploy import parameter_size_warning
from cdnpurge.cli.main import main as cli
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
                assert (reference.secret or "").startswith("cdnpurge/"), f"{path.name}: {provider.name}: {reference}"


WEBHOOK_EXAMPLES = sorted((EXAMPLES / "webhooks").glob("*.yaml"))
# What each CMS example's sample payload purges, as `cdnpurge plan --webhook` prints it (target strings).
WEBHOOK_TARGETS = {
    "contentful": {
        "key:entry-5KsDBWseXY6QegucYAoacS",
        "key:type-blogPost",
        "url:https://www.example.com/blog/hello-world",
    },
    "ghost": {"key:post-6571a2b3c4d5e6f708192a3b", "url:https://www.example.com/hello-world/"},
    "sanity": {"key:post-7d5f3c2a", "key:post", "url:https://www.example.com/posts/hello-world"},
    "standard-webhooks": {
        "key:article-hello-world",
        "key:home",
        "url:https://www.example.com/articles/hello-world",
        "url:https://www.example.com/",
    },
    "strapi": {"key:article-42", "url:https://www.example.com/article/hello-world"},
    "wordpress": {"key:post-123", "key:type-post", "url:https://www.example.com/2026/12/hello-world/"},
}


def test_there_is_a_webhook_example_for_each_cms_the_docs_name() -> None:
    assert {path.stem for path in WEBHOOK_EXAMPLES} == set(WEBHOOK_TARGETS)


@pytest.mark.parametrize("path", WEBHOOK_EXAMPLES, ids=lambda path: path.stem)
def test_webhook_example_plans_its_sample_payload(path: Path) -> None:
    # Given: the example's configuration and the payload its CMS sends
    config = parse_config(path.read_text(encoding="utf-8"), source=str(path))
    [source] = config.webhooks
    assert source.secret.secret.startswith("cdnpurge/webhooks/")  # type: ignore[union-attr]
    out = io.StringIO()
    # When: `cdnpurge plan --webhook FILE --source NAME`
    code = cli(
        ["plan", "-c", str(path), "--webhook", str(path.with_suffix(".json")), "--source", source.name, "-f", "json"],
        out=out,
    )
    # Then: the payload becomes requests with no error, naming what the example says it purges
    document = json.loads(out.getvalue())
    assert code == 0 and not document["errors"]
    [change] = document["changes"]
    assert change["id"].startswith(f"pub:webhook:{source.name}:sha256-")
    targets = {f"{request['kind']}:{target}" for request in document["requests"] for target in request["targets"]}
    assert targets == WEBHOOK_TARGETS[path.stem]
    assert parameter_size_warning(path.read_text(encoding="utf-8")) is None


def test_plan_webhook_names_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(EXAMPLES / "webhooks" / "sanity.yaml")
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"_id": "x"}))
    assert cli(["plan", "-c", config, "--webhook", str(payload), "--source", "nobody"], out=io.StringIO()) == 2
    assert "--source 'nobody': no such webhook source (webhooks: sanity)" in capsys.readouterr().err
    assert cli(["plan", "-c", config, "--webhook", str(payload)], out=io.StringIO()) == 2
    assert "--webhook FILE and --source NAME go together" in capsys.readouterr().err
    assert cli(["plan", "-c", config, "--webhook", str(payload), "--source", "sanity"], out=io.StringIO()) == 2
    assert "webhooks.sanity.map.paths: " in capsys.readouterr().err
