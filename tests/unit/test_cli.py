"""The `cdnpurge` command line: plan output shape, validation messages, dry-run purges, the documented
configuration examples."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from cdnpurge.cli.main import main
from cdnpurge.core.config import parse_config

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
    # Then: the one malformed body is the one error, naming its record and the problem; the rest is planned
    assert document["errors"] == [
        {
            "source_id": "11111111-2222-4333-8444-555555555502",
            "message": "record 11111111-2222-4333-8444-555555555502: body is not JSON: Expecting property name "
            "enclosed in double quotes at line 1 column 40",
        }
    ]
    assert len(document["changes"]) == 3 and document["requests"]
    assert document["ignored"] == [
        "11111111-2222-4333-8444-555555555503: s3:TestEvent for bucket 'example-site-content' "
        "(sent when notifications are configured)"
    ]


def test_invalid_config_is_a_usage_error_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [{name: f, kind: fastly}]")
    code, _ = run("validate", "-c", str(bad))
    assert code == 2
    assert "providers[0].service_id: field required" in capsys.readouterr().err


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


@pytest.mark.parametrize("page", ["README.md", "docs/configuration.md"])
def test_the_documented_configuration_example_is_valid(page: str) -> None:
    text = (ROOT / page).read_text()
    block = re.search(r"^#+ Configuration.*?```yaml\n(.*?)```", text, re.DOTALL | re.MULTILINE)
    assert block is not None
    config = parse_config(block.group(1))
    assert [p.name for p in config.providers]


class StubSqs:
    """Just enough SQS for `cdnpurge redrive`: a DLQ whose received messages stay hidden until released."""

    def __init__(self, messages: list[dict[str, object]], *, refuse: str | None = None) -> None:
        self.dlq = messages
        self.hidden: set[object] = set()
        self.sent: list[dict[str, object]] = []
        self.refuse = refuse

    def receive_message(self, *, QueueUrl: str, MaxNumberOfMessages: int, **options: object) -> dict[str, object]:
        batch = [m for m in self.dlq if m["ReceiptHandle"] not in self.hidden][:MaxNumberOfMessages]
        self.hidden.update(m["ReceiptHandle"] for m in batch)
        return {"Messages": batch}

    def send_message(self, **request: object) -> None:
        if request["MessageBody"] == self.refuse:
            raise RuntimeError("AccessDenied")
        self.sent.append(request)

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> None:
        self.dlq = [m for m in self.dlq if m["ReceiptHandle"] != ReceiptHandle]

    def change_message_visibility(self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        self.hidden.discard(ReceiptHandle)


def dead_letter(number: int, reason: str | None) -> dict[str, object]:
    attributes: dict[str, object] = {"trace": {"DataType": "String", "StringValue": f"t{number}"}}
    if reason is not None:
        attributes["cdnpurge-error"] = {"DataType": "String", "StringValue": reason}
        attributes["cdnpurge-failure"] = {"DataType": "String", "StringValue": "permanent"}
    return {
        "MessageId": f"id-{number}",
        "ReceiptHandle": f"rh-{number}",
        "Body": f"body-{number}",
        "MessageAttributes": attributes,
    }


REDRIVE = ["redrive", "--dlq-url", "https://sqs/dlq", "--queue-url", "https://sqs/queue", "--wait-seconds", "0"]


def test_redrive_dry_run_lists_each_message_with_its_reason_and_moves_nothing() -> None:
    sqs = StubSqs([dead_letter(1, "fastly: failed: injected 401"), dead_letter(2, None)])
    out = io.StringIO()
    assert main([*REDRIVE, "--dry-run"], out=out, sqs=sqs) == 0
    assert "would move id-1 [permanent]: fastly: failed: injected 401" in out.getvalue()
    assert "would move id-2: no reason attached (moved by the queue's redrive policy)" in out.getvalue()
    assert "dry run: 2 message(s) would move; nothing was sent" in out.getvalue()
    assert sqs.sent == [] and len(sqs.dlq) == 2 and sqs.hidden == set()


def test_redrive_moves_messages_back_without_our_attributes_up_to_max() -> None:
    sqs = StubSqs([dead_letter(n, f"reason {n}") for n in range(3)])
    out = io.StringIO()
    assert main([*REDRIVE, "--max", "2"], out=out, sqs=sqs) == 0
    assert [s["MessageBody"] for s in sqs.sent] == ["body-0", "body-1"]
    assert sqs.sent[0]["MessageAttributes"] == {"trace": {"DataType": "String", "StringValue": "t0"}}
    assert [m["MessageId"] for m in sqs.dlq] == ["id-2"]
    assert "done: 2 message(s) moved back to the queue, 0 failed" in out.getvalue()


def test_redrive_keeps_what_it_could_not_send_and_exits_non_zero() -> None:
    sqs = StubSqs([dead_letter(1, "r"), dead_letter(2, "r")], refuse="body-1")
    out = io.StringIO()
    assert main(REDRIVE, out=out, sqs=sqs) == 1
    assert [m["MessageId"] for m in sqs.dlq] == ["id-1"]
    assert "not moved: RuntimeError: AccessDenied" in out.getvalue()


def test_redrive_refuses_to_move_a_queue_into_itself(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["redrive", "--dlq-url", "https://sqs/q", "--queue-url", "https://sqs/q"], sqs=StubSqs([]))
    assert code == 2 and "must be different queues" in capsys.readouterr().err


def test_plan_lists_escalations_in_json_and_text(tmp_path: Path) -> None:
    # Given: Medianova allowed to turn 3+ paths under one directory into a wildcard, and 3 uploads there
    config = tmp_path / "purge.yaml"
    config.write_text(
        """
providers:
  - {name: medianova, kind: medianova, organization_uuid: 550e8400-e29b-41d4-a716-446655440000,
     resource_uuid: 660f9511-f30c-52e5-b827-557766551111, prefix_escalation_at: 3, credentials: {token: {env: T}}}
"""
    )
    template = json.loads((ROOT / "events/s3-put.json").read_text())
    records = []
    for number in range(3):
        record = json.loads(json.dumps(template["Records"][0]))
        record["s3"]["object"]["key"] = f"img/{number}.png"
        record["s3"]["object"]["sequencer"] = f"0A{number}"
        records.append(record)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"Records": records}))
    # When
    code, output = run("plan", "-c", str(config), "-e", str(event), "-f", "json")
    text_code, text = run("plan", "-c", str(config), "-e", str(event))
    # Then
    document = json.loads(output)
    assert code == text_code == 0
    assert [request["targets"] for request in document["requests"]] == [["/img/"]]
    assert document["escalations"] == [
        {
            "provider": "medianova",
            "kind": "prefix",
            "targets": ["/img/"],
            "replaced": 3,
            "requests_before": 1,
            "requests_after": 1,
        }
    ]
    assert "escalated: medianova: 3 targets -> 1 prefix (1 -> 1 requests)" in text


@pytest.mark.parametrize("option", ["--path", "--prefix", "--url"])
def test_purge_refuses_dot_segments_before_anything_is_sent(
    config_file: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    value = "https://www.example.com/a/../../purge_all" if option == "--url" else "/a/%2e%2e/purge_all"
    code, output = run("purge", "-c", str(config_file), "-p", "fastly", option, value)
    assert code == 2 and output == ""
    assert f"cdnpurge: {option} {value!r} contains a '.' or '..' path segment" in capsys.readouterr().err


def test_redrive_leaves_what_was_dead_lettered_again_during_the_run() -> None:
    # Given: one old dead letter, and one that entered the DLQ after the run began (its cause not fixed)
    again = {**dead_letter(2, "fastly: refused"), "Attributes": {"SentTimestamp": str(2**62)}}
    sqs = StubSqs([{**dead_letter(1, "r"), "Attributes": {"SentTimestamp": "1"}}, again])
    out = io.StringIO()
    # When
    assert main(REDRIVE, out=out, sqs=sqs) == 0
    # Then: only the old one moved; the new one is visible in the DLQ again, and the run ended
    assert [s["MessageBody"] for s in sqs.sent] == ["body-1"]
    assert [m["MessageId"] for m in sqs.dlq] == ["id-2"] and "rh-2" not in sqs.hidden
    assert "left 1 message(s) dead-lettered after this run began" in out.getvalue()


def test_purge_for_real_prints_each_attempt_and_retries_a_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import FASTLY_SERVICE, FASTLY_TOKEN, key_purge_config

    from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
    from cdnpurge_local.fakecdn.server import FakeCDN, Fault

    # Given: the fake Fastly on loopback answering the first call with a 503, and a config aimed at it
    monkeypatch.setenv("FASTLY_API_TOKEN", FASTLY_TOKEN)
    with FakeCDN([FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE)]) as cdn:
        config = key_purge_config(tmp_path, cdn.endpoint("fastly"))
        cdn.inject("fastly", Fault(status=503))
        # When
        code, output = run("purge", "-c", str(config), "-p", "fastly", "--key", "article-1")
        received = cdn.received_by("fastly")
    # Then: the retry is visible, the purge lands, and the token never shows
    assert code == 0
    assert re.search(r"attempt 1: fastly key x1 \(hard\) -> UnavailableError: fastly: HTTP 503: injected 503", output)
    assert re.search(r"attempt 2: fastly key x1 \(hard\) -> ok \(id fake-\d+\)", output)
    assert "done: 1 request(s) accepted, 0 failed" in output
    assert [(r.path, r.status) for r in received] == [
        (f"/service/{FASTLY_SERVICE}/purge/article-1", s) for s in (503, 200)
    ]
    assert FASTLY_TOKEN not in output


def test_purge_help_shows_one_example_per_registered_provider_kind(capsys: pytest.CaptureFixture[str]) -> None:
    from cdnpurge.core.registry import REGISTRY

    # When
    with pytest.raises(SystemExit) as exited:
        main(["purge", "--help"], out=io.StringIO())
    help_text = capsys.readouterr().out
    # Then: a new provider kind cannot be registered without an example of how to purge with it
    assert exited.value.code == 0
    for kind in REGISTRY:
        examples = re.findall(rf"^  {kind} +cdnpurge purge -c \S+ -p \S+ .+$", help_text, flags=re.MULTILINE)
        assert len(examples) == 1, f"{kind}: {examples}"
