"""Operator commands bound their input: each hostile file or option ends in one line on stderr and exit 2,
never a traceback, a RecursionError, or tens of thousands of queries."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from reliability.tally import hostile

from cdnpurge.cli.main import main

CONFIG = """
providers:
  - {{name: fastly, kind: fastly, service_id: S1, hosts: [www.example.com], credentials: {{token: {{env: T}}}}{extra}}}
rules:
  - {{match: "{{key*}}", paths: ["/{{key}}"]}}
"""
ROW = {"scenario": "s", "size": 10, "purger": "cdnpurge", "calls": 5, "wall_seconds": 1.0}


def run(argv: list[str], capsys: pytest.CaptureFixture[str], **clients: Any) -> tuple[int, str]:
    code = main(argv, out=io.StringIO(), **clients)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RecursionError" not in err
    return code, err


def _one_line(err: str) -> str:
    (line,) = err.strip().splitlines()
    assert line.startswith("cdnpurge: ")
    return line


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('{"runs":' + "[" * 5000 + "]" * 5000 + "}", "deeper than 32 levels"),
        (json.dumps({"runs": [ROW | {"wall_seconds": float("inf")}]}), "wall_seconds: Input should be a finite number"),
        (json.dumps({"runs": [ROW | {"wall_seconds": float("nan")}]}), "wall_seconds: Input should be a finite number"),
        (json.dumps({"runs": [ROW | {"size": 10**400}]}), "size: Input should be less than or equal to"),
        (json.dumps({"runs": [ROW | {"wall_seconds": 1e308}]}), "wall_seconds: Input should be less than or equal"),
        (json.dumps({"runs": [ROW | {"scenario": "x" * 100_000}]}), "scenario: String should have at most 200"),
    ],
)
def test_report_refuses_a_hostile_run_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, problem: str
) -> None:
    path = tmp_path / "run.json"
    path.write_text(document)
    code, err = run(["report", str(path), "-o", str(tmp_path)], capsys)
    assert code == 2 and problem in _one_line(err)
    hostile("output")


def test_report_draws_labels_as_the_text_they_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"runs": [ROW | {"scenario": "$x$ \\b \x1b[2J\r", "purger": "a$\\\\b$"}]}))
    code, _ = run(["report", str(path), "-o", str(tmp_path), "-f", "svg"], capsys)
    assert code == 0
    drawn = (tmp_path / "run.calls.svg").read_text()
    assert "$x$" in drawn and "\x1b" not in drawn
    hostile("output")


class CountingDynamoDB:
    """A DynamoDB client that counts the queries asked of it (and has nothing)."""

    def __init__(self) -> None:
        self.queries = 0

    def get_paginator(self, operation: str) -> CountingDynamoDB:
        assert operation == "query"
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        self.queries += 1
        return [{"Items": []}]


def test_status_since_is_bounded_by_the_trails_retention(capsys: pytest.CaptureFixture[str]) -> None:
    dynamodb = CountingDynamoDB()
    code, err = run(["status", "--table", "trail", "--since", "400d"], capsys, dynamodb=dynamodb)
    assert code == 2 and "reaches past what the trail keeps (604800 s" in _one_line(err)
    assert dynamodb.queries == 0
    # and within it, one query per hour and shard, as before (nothing found: exit 1)
    assert main(["status", "--table", "trail", "--since", "2h"], out=io.StringIO(), dynamodb=dynamodb) == 1
    assert 0 < dynamodb.queries < 100
    hostile("output")


@pytest.mark.parametrize(
    "event",
    ["[" * 5000 + "]" * 5000, '{"Records":' + "[" * 100_000 + "]" * 100_000 + "}"],
)
def test_plan_refuses_a_deeply_nested_event_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], event: str
) -> None:
    config, path = tmp_path / "purge.yaml", tmp_path / "event.json"
    config.write_text(CONFIG.format(extra=""))
    path.write_text(event)
    code, err = run(["plan", "-c", str(config), "-e", str(path)], capsys)
    assert code == 2 and "deeper than 32 levels" in _one_line(err)
    hostile("output")


@pytest.mark.parametrize(
    "document",
    [
        "providers: " + "[" * 5000 + "]" * 5000,
        "providers:\n" + "".join(" " * depth + "- \n" for depth in range(0, 3000, 1)),
        "providers:\n" + "".join(" " * depth + f"k{depth}:\n" for depth in range(0, 6000, 2)),
    ],
)
def test_validate_refuses_deeply_nested_yaml_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(document)
    code, err = run(["validate", "-c", str(path)], capsys)
    assert code == 2 and "deep.yaml" in _one_line(err)
    hostile("output")


@pytest.mark.parametrize("rate", ["1e-300", "0", "-1", "1e9", ".nan", ".inf"])
def test_an_absurd_rate_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str], rate: str) -> None:
    path = tmp_path / "purge.yaml"
    path.write_text(CONFIG.format(extra=f", rate_per_second: {rate}"))
    code, err = run(["validate", "-c", str(path)], capsys)
    assert code == 2 and "rate_per_second" in err
    hostile("output")


@pytest.mark.parametrize("value", ["token-not-real\n", " token-not-real", "token\x7fnot-real", "token\rnot-real"])
def test_a_credential_with_whitespace_or_a_control_is_a_configuration_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    path = tmp_path / "purge.yaml"
    path.write_text(CONFIG.format(extra=""))
    monkeypatch.setenv("T", value)
    code, err = run(["purge", "-c", str(path), "-p", "fastly", "--key", "k"], capsys)
    line = _one_line(err)
    assert code == 2 and "providers.fastly.credentials.token" in line and "not-real" not in line
    hostile("output")
