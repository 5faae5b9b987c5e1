"""The `cdnpurge` command line: plan output shape, validation messages, dry-run purges, README example."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from cdnpurge.cli import main
from cdnpurge.config import parse_config

ROOT = Path(__file__).parents[2]
CONFIG = """
providers:
  - {name: fastly, kind: fastly, service_id: S1, hosts: [www.example.com], credentials: {token: {env: T}}}
rules:
  - {match: "{key*}", paths: ["/{key}"]}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "purge.yaml"
    path.write_text(CONFIG)
    return path


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_plan_json_has_changes_requests_and_errors(config_file: Path) -> None:
    # When
    code, output = run("plan", "-c", str(config_file), "-e", str(ROOT / "events/sqs-s3-put.json"), "-f", "json")
    # Then
    document = json.loads(output)
    assert code == 0
    (change,) = document["changes"]
    assert change["action"] == "created" and change["bucket"] == "example-site-content"
    assert change["key"] == "docs/annual report+2026.pdf"
    assert document["requests"] == [
        {
            "provider": "fastly",
            "kind": "url",
            "targets": ["https://www.example.com/docs/annual%20report%2B2026.pdf"],
            "soft": False,
            "change_ids": [change["id"]],
        }
    ]
    assert document["errors"] == []


def test_plan_reports_each_bad_record_and_exits_non_zero(config_file: Path) -> None:
    code, output = run("plan", "-c", str(config_file), "-e", str(ROOT / "events/sqs-mixed-batch.json"), "-f", "json")
    document = json.loads(output)
    assert code == 1
    assert document["errors"] and all(error["message"] for error in document["errors"])
    assert document["changes"]


def test_invalid_config_is_a_usage_error_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [{name: f, kind: fastly}]")
    code, _ = run("validate", "-c", str(bad))
    assert code == 2
    assert "providers[0].service_id: Field required" in capsys.readouterr().err


def test_purge_dry_run_prints_requests_and_sends_nothing(config_file: Path) -> None:
    code, output = run("purge", "-c", str(config_file), "-p", "fastly", "--key", "a", "--path", "/b", "--dry-run")
    assert code == 0
    assert "would send: fastly key x1 (hard): a" in output
    assert "would send: fastly url x1 (hard): https://www.example.com/b" in output


def test_purge_needs_a_target_and_a_known_provider(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("purge", "-c", str(config_file), "-p", "fastly")[0] == 2
    assert run("purge", "-c", str(config_file), "-p", "nope", "--all")[0] == 2
    assert "is not in the config (known: fastly)" in capsys.readouterr().err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["purge", "--help"])
    assert "cloudfront  cdnpurge purge" in capsys.readouterr().out


def test_readme_configuration_example_is_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Configuration.*?```yaml\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    config = parse_config(block.group(1))
    assert [p.name for p in config.providers]
