"""How the deployed function is wired from its environment (no AWS call is made by building it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN

from cdnpurge.config import ConfigError
from cdnpurge.execute import PACING_HEADROOM
from cdnpurge.service import PurgeService

CONFIG = f"""
providers:
  - {{name: fastly, kind: fastly, service_id: {FASTLY_SERVICE}, hosts: [www.example.com], rate_per_second: 10,
     credentials: {{token: {{env: FASTLY_API_TOKEN}}}}}}
"""


@pytest.fixture(autouse=True)
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # boto3 clients are built (never called)


def environment(config: Path, **extra: str) -> dict[str, str]:
    return {
        "PURGE_CONFIG": str(config),
        "IDEMPOTENCY_TABLE_NAME": "table",
        "FASTLY_API_TOKEN": FASTLY_TOKEN,
        **extra,
    }


def test_each_concurrent_invocation_paces_at_its_share_of_the_rate(tmp_path: Path) -> None:
    # Given: MaximumConcurrency 4 (the template passes it as MAXIMUM_CONCURRENCY)
    config = tmp_path / "purge.yaml"
    config.write_text(CONFIG)
    # When
    service = PurgeService.from_environment(environment(config, MAXIMUM_CONCURRENCY="4"))
    # Then: 4 invocations at 2.5/s (less the pacing headroom) never exceed the 10/s the config declares
    assert service.executor.buckets["fastly"].rate == pytest.approx(2.5 * PACING_HEADROOM)


def test_inline_secrets_are_refused_inside_lambda_even_when_allowed(tmp_path: Path) -> None:
    config = tmp_path / "purge.yaml"
    config.write_text(
        "allow_inline_secrets: true\n"
        f"providers: [{{name: fastly, kind: fastly, service_id: {FASTLY_SERVICE}, "
        f"credentials: {{token: {{value: {FASTLY_TOKEN}}}}}}}]\n"
    )
    assert PurgeService.from_environment(environment(config)).providers  # allowed locally
    with pytest.raises(ConfigError, match="allow_inline_secrets is for local use only") as refused:
        PurgeService.from_environment(environment(config, AWS_LAMBDA_FUNCTION_NAME="cdnpurge-purge"))
    assert FASTLY_TOKEN not in str(refused.value)


def test_a_missing_or_malformed_environment_variable_is_named(tmp_path: Path) -> None:
    config = tmp_path / "purge.yaml"
    config.write_text(CONFIG)
    env = environment(config, MAX_RECEIVE_COUNT="five", IDEMPOTENCY_TABLE_NAME="")
    with pytest.raises(ConfigError) as refused:
        PurgeService.from_environment(env)
    assert "environment variable IDEMPOTENCY_TABLE_NAME: required" in str(refused.value)
    assert "environment variable MAX_RECEIVE_COUNT: " in str(refused.value)


def test_the_queues_come_from_the_environment_and_empty_means_unset(tmp_path: Path) -> None:
    config = tmp_path / "purge.yaml"
    config.write_text(CONFIG)
    env = environment(
        config, DEAD_LETTER_QUEUE_URL="https://sqs.example/dlq", PURGE_QUEUE_URL="", MAX_RECEIVE_COUNT="5"
    )
    queues = PurgeService.from_environment(env).queues
    assert (queues.dead_letter_url, queues.purge_url, queues.max_receive_count) == ("https://sqs.example/dlq", None, 5)
