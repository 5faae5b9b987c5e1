"""How the deployed function is wired from its environment (no AWS call is made by building it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN, SimulatedClock

from cdnpurge.core.config import ConfigError
from cdnpurge.runtime.execute import PACING_HEADROOM
from cdnpurge.runtime.service import CONFIG_CHECK_SECONDS, PurgeService

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


# --- the configuration is re-read when it changes -----------------------------------------------------

SECOND_PROVIDER = """
  - {name: backup, kind: fastly, service_id: SVC2, hosts: [www.example.com],
     credentials: {token: {env: FASTLY_API_TOKEN}}}
"""


def test_a_changed_configuration_is_applied_within_the_check_interval_keeping_unchanged_pacing(
    tmp_path: Path,
) -> None:
    # Given: a warm service whose Fastly bucket holds a pause asked for by the CDN
    config = tmp_path / "purge.yaml"
    config.write_text(CONFIG)
    clock = SimulatedClock()
    service = PurgeService.from_environment(environment(config), config_clock=clock)
    paced = service.executor.buckets["fastly"]
    paced.pause(clock(), 120.0)
    empty: dict[str, list[object]] = {"Records": []}
    # When: the document gains a provider; a batch before the check interval, then one after it
    config.write_text(CONFIG + SECOND_PROVIDER)
    clock.sleep(CONFIG_CHECK_SECONDS - 1)
    early = service.handle(empty)
    providers_before_the_check = set(service.providers)
    clock.sleep(1)
    later = service.handle(empty)
    # Then: applied at the first check, with Fastly's pacing state carried over
    assert not early.config_change.reloaded and providers_before_the_check == {"fastly"}
    assert later.config_change.reloaded and set(service.providers) == {"fastly", "backup"}
    assert service.executor.buckets["fastly"] is paced
    assert service.executor.buckets["backup"] is not paced
    # When: Fastly's own settings change
    config.write_text(CONFIG.replace("rate_per_second: 10", "rate_per_second: 5") + SECOND_PROVIDER)
    clock.sleep(CONFIG_CHECK_SECONDS)
    service.handle(empty)
    # Then: its pacing starts afresh at the new rate
    assert service.executor.buckets["fastly"] is not paced
    assert service.executor.buckets["fastly"].ceiling == 5 * PACING_HEADROOM


def test_an_invalid_update_is_refused_and_the_previous_configuration_keeps_running(tmp_path: Path) -> None:
    config = tmp_path / "purge.yaml"
    config.write_text(CONFIG)
    clock = SimulatedClock()
    service = PurgeService.from_environment(environment(config), config_clock=clock)
    before = service.config
    config.write_text(CONFIG.replace("kind: fastly", "kind: fastlyy"))
    clock.sleep(CONFIG_CHECK_SECONDS)
    report = service.handle({"Records": []})
    # the field is named, its value never quoted (a value in the wrong field may be a credential)
    assert report.config_change.problem and "providers[0].kind: must be one of" in report.config_change.problem
    assert "fastlyy" not in report.config_change.problem
    assert service.config is before


def test_a_reload_swaps_one_frozen_snapshot_and_changes_nothing_in_the_running_one(tmp_path: Path) -> None:
    # Given: a warm service and the snapshot it runs
    config = tmp_path / "purge.yaml"
    config.write_text(CONFIG)
    clock = SimulatedClock()
    service = PurgeService.from_environment(environment(config), config_clock=clock)
    running = service.runtime
    providers, executor, settings = dict(running.providers), running.executor, running.config
    # When: the document gains a provider and the check interval passes
    config.write_text(CONFIG + SECOND_PROVIDER)
    clock.sleep(CONFIG_CHECK_SECONDS)
    assert service.handle({"Records": []}).config_change.reloaded
    # Then: a new snapshot replaced the old one whole; the old one (what a batch in flight holds) is untouched
    assert service.runtime is not running and set(service.providers) == {"fastly", "backup"}
    assert dict(running.providers) == providers and running.executor is executor and running.config is settings
    # And: neither the snapshot nor the service's view of it can be changed in place
    with pytest.raises(AttributeError):
        running.config = service.config  # type: ignore[misc]
    with pytest.raises(AttributeError):
        service.config = settings  # type: ignore[misc]
