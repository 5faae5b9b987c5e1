"""The operator's commands against the local stack, as an operator runs them: `cdnpurge pause`/`resume`,
`doctor` and `redrive`'s filters, with boto3 clients from the environment aimed at moto server and DynamoDB
Local (the stack's own AWS_ENDPOINT_URL* variables), reading the stack through CloudFormation on moto.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator

import pytest
from helpers import FASTLY_PROVIDERS, FASTLY_SERVICE
from reliability.tally import hostile

from cdnpurge.cli.deployed import pause_parameter
from cdnpurge.cli.main import main
from cdnpurge_local.distributions import s3_distribution
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN
from cdnpurge_local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]

STACK = "cdnpurge-ops"
FASTLY_TOKEN = "fastly-token-the-fake-accepts-0123456789"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        bucket_name="cdnpurge-it-ops", stack_name=STACK, parameters={"AlarmEmail": "oncall@example.com"}
    ) as local_stack:
        saved = dict(os.environ)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(local_stack.lambda_environment())
        try:
            yield local_stack
        finally:
            os.environ.clear()
            os.environ.update(saved)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out, wall_clock=lambda: 1_800_000_000.0)
    return status, out.getvalue()


def mapping_state(stack: LocalStack) -> str:
    function = stack.resources.physical_ids["PurgeFunction"]
    client = stack.client("lambda")
    (mapping,) = client.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    return str(mapping["State"])


def test_pause_disables_the_mapping_and_records_why_then_resume_undoes_both(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a running stack
    assert mapping_state(stack) == "Enabled"
    # When purging is paused with a reason
    status, out = run("pause", "--stack", STACK, "--reason", "Fastly API outage, INC-123", "--by", "alice")
    # Then the mapping is disabled and the reason, author and time are kept and shown
    assert status == 0, out
    assert mapping_state(stack) in ("Disabled", "Disabling")
    assert "paused since 2027-01-15T08:00:00Z by alice: Fastly API outage, INC-123" in out
    recorded = stack.client("ssm").get_parameter(Name=pause_parameter(STACK))["Parameter"]["Value"]
    assert "INC-123" in recorded
    # And `status --stack` says so before answering
    status_code, _ = run("status", "--stack", STACK, "--since", "1h")
    assert status_code == 1  # nothing recorded in the last hour
    assert "purging is PAUSED: paused since 2027-01-15T08:00:00Z by alice" in capsys.readouterr().err
    # And pausing again is harmless
    assert run("pause", "--stack", STACK, "--reason", "still out", "--by", "bob")[1].count("already paused") == 1
    # When resumed
    status, out = run("resume", "--stack", STACK)
    # Then the mapping runs and the record is gone
    assert status == 0 and "resumed" in out
    assert mapping_state(stack) in ("Enabled", "Enabling")
    with pytest.raises(stack.client("ssm").exceptions.ParameterNotFound):
        stack.client("ssm").get_parameter(Name=pause_parameter(STACK))


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["pause", "--stack", STACK, "--reason", "  "], "--reason is empty"),
        (["pause", "--stack", STACK, "--reason", "two\nlines"], "one line"),
        (["pause", "--stack", STACK, "--reason", "x" * 501], "keep it to 500"),
        (["pause", "--stack", "no-such-stack", "--reason", "r"], "no stack 'no-such-stack'"),
        (["resume", "--stack", "no-such-stack"], "no stack 'no-such-stack'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    stack: LocalStack, argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run(*argv)
    error = capsys.readouterr().err
    assert status == 2
    assert complaint in error and error.count("\n") == 1
    assert mapping_state(stack) in ("Enabled", "Enabling")


CONFIG = FASTLY_PROVIDERS


def doctor(*extra: str) -> tuple[int, dict[str, dict[str, str]]]:
    status, out = run("doctor", "--stack", STACK, "--format", "json", *extra)
    document = json.loads(out)
    return status, {check["name"]: check for check in document["checks"]}


def test_doctor_names_every_broken_link_with_its_fix(stack: LocalStack) -> None:
    # Given a stack just deployed: no configuration yet, the alarm email unconfirmed
    status, checks = doctor()
    # Then each broken link fails with what to run, and the working ones pass
    assert status == 1
    assert checks["stack"]["verdict"] == "ok" and checks["region"]["verdict"] == "ok"
    assert checks["eventbridge"]["verdict"] == "ok" and checks["s3 rule"]["verdict"] == "ok"
    assert checks["configuration"]["verdict"] == "FAIL"
    assert "put-parameter --name /cdnpurge/core/config" in checks["configuration"]["fix"]
    assert checks["alarm destinations"]["verdict"] == "FAIL"
    assert "not confirmed" in checks["alarm destinations"]["found"]
    assert checks["paused"]["verdict"] == "ok" and checks["dead letters"]["verdict"] == "ok"
    assert checks["function errors"]["verdict"] == "ok" and checks["webhook errors"]["verdict"] == "ok"


@pytest.fixture(scope="module")
def fastly() -> Iterator[FakeCDN]:
    with FakeCDN([FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE)]) as cdn:
        yield cdn


def test_doctor_reads_the_configuration_its_secrets_and_asks_the_provider(stack: LocalStack, fastly: FakeCDN) -> None:
    ssm, secrets = stack.client("ssm"), stack.client("secretsmanager")
    config = CONFIG.format(fastly_endpoint=fastly.endpoint("fastly"))
    ssm.put_parameter(Name="/cdnpurge/core/config", Value=config, Type="String", Overwrite=True)
    # A secret that does not exist yet: named, never a value
    _, checks = doctor()
    assert checks["configuration"]["verdict"] == "ok"
    assert checks["secrets"]["verdict"] == "FAIL"
    assert "cannot read secret cdnpurge/fastly" in checks["secrets"]["found"]
    assert checks["credentials"]["verdict"] == "warn"
    # A token Fastly never issued: readable, and refused by GET /tokens/self
    secrets.create_secret(Name="cdnpurge/fastly", SecretString=json.dumps({"token": "s3cr3t-token-value-0000"}))
    _, checks = doctor()
    assert checks["secrets"]["verdict"] == "ok"
    assert (
        checks["credentials"]["verdict"] == "FAIL"
        and "fastly refused (fastly: HTTP 401" in checks["credentials"]["found"]
    )
    assert "s3cr3t" not in json.dumps(checks)
    # The right token: accepted, and nothing was purged by asking
    secrets.put_secret_value(SecretId="cdnpurge/fastly", SecretString=json.dumps({"token": FASTLY_TOKEN}))
    _, checks = doctor()
    assert checks["credentials"]["verdict"] == "ok"
    assert checks["credentials"]["found"] == "fastly accepted (GET /tokens/self)"
    assert fastly.purged("fastly") == []
    # A configuration that does not validate names the field
    ssm.put_parameter(Name="/cdnpurge/core/config", Value="providers: []\n", Type="String", Overwrite=True)
    _, checks = doctor()
    assert checks["configuration"]["verdict"] == "FAIL" and "providers" in checks["configuration"]["found"]
    ssm.put_parameter(Name="/cdnpurge/core/config", Value=config, Type="String", Overwrite=True)


def test_doctor_reads_a_cloudfront_distribution_and_names_a_role_that_may_not_invalidate_it(
    stack: LocalStack,
) -> None:
    # Given a CloudFront provider on a distribution the stack's moto has, and one it lacks; the stack is deployed
    # with the CloudFrontDistributionArns placeholder, so the function's role may invalidate neither
    ssm = stack.client("ssm")
    try:  # whatever configuration an earlier test left is put back after (this test may also run alone)
        before: str | None = ssm.get_parameter(Name="/cdnpurge/core/config")["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        before = None
    distribution_id = s3_distribution(stack.client("cloudfront"), stack.resources.bucket_name)
    config = (
        "providers:\n"
        f"  - {{name: cf, kind: cloudfront, distribution_id: {distribution_id}, hosts: [www.example.com]}}\n"
        "  - {name: gone, kind: cloudfront, distribution_id: E000000NOSUCH, hosts: [www.example.com]}\n"
    )
    ssm.put_parameter(Name="/cdnpurge/core/config", Value=config, Type="String", Overwrite=True)
    try:
        # When
        _, checks = doctor()
    finally:
        if before is None:
            ssm.delete_parameter(Name="/cdnpurge/core/config")
        else:
            ssm.put_parameter(Name="/cdnpurge/core/config", Value=before, Type="String", Overwrite=True)
    # Then the distribution was read (GetDistribution), and the role's missing grant is what fails
    credentials = checks["credentials"]
    assert credentials["verdict"] == "FAIL"
    assert (
        f"cf refused (the function's role may not invalidate it: CloudFrontDistributionArns names no "
        f"distribution/{distribution_id})" in credentials["found"]
    )
    assert "NoSuchDistribution" in credentials["found"]  # the missing one is said too
    assert f"list distribution/{distribution_id} in CloudFrontDistributionArns" in credentials["fix"]
    assert (
        stack.client("cloudfront").list_invalidations(DistributionId=distribution_id)["InvalidationList"]["Quantity"]
        == 0
    )


def test_doctor_sees_eventbridge_off_a_pause_and_dead_letters(stack: LocalStack) -> None:
    bucket = stack.resources.bucket_name
    assert run("disable-eventbridge", "--bucket", bucket)[0] == 0
    assert run("pause", "--stack", STACK, "--reason", "provider outage", "--by", "carol")[0] == 0
    stack.client("sqs").send_message(QueueUrl=stack.resources.dead_letter_queue_url, MessageBody="{}")
    try:
        status, checks = doctor()
        assert status == 1
        assert checks["eventbridge"]["verdict"] == "FAIL"
        assert checks["eventbridge"]["fix"] == f"cdnpurge enable-eventbridge --bucket {bucket}"
        assert checks["paused"]["verdict"] == "FAIL" and "by carol: provider outage" in checks["paused"]["found"]
        assert checks["dead letters"]["verdict"] == "warn" and "1 message" in checks["dead letters"]["found"]
        # The text form: one line per check, a fix under each failure, a summary
        status, text = run("doctor", "--stack", STACK)
        assert "fix: cdnpurge resume --stack cdnpurge-ops" in text
        assert text.rstrip().splitlines()[-1].startswith(f"{STACK}: 14 checks, ")
    finally:
        run("enable-eventbridge", "--bucket", bucket)
        run("resume", "--stack", STACK)
        stack.client("sqs").purge_queue(QueueUrl=stack.resources.dead_letter_queue_url)


def test_doctor_catches_the_region_mistake() -> None:
    # Given a stack deployed in us-east-1 for a bucket in eu-west-1
    with LocalStack(bucket_name="cdnpurge-it-eu", stack_name="cdnpurge-eu", region="us-east-1") as stack:
        s3 = stack.client("s3")
        s3.create_bucket(Bucket="cdnpurge-it-eu-west", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        saved = dict(os.environ)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update(stack.lambda_environment())
        try:
            cloudformation = stack.client("cloudformation")
            cloudformation.update_stack(
                StackName="cdnpurge-eu",
                UsePreviousTemplate=True,
                Parameters=[
                    {
                        "ParameterKey": key,
                        "ParameterValue": "cdnpurge-it-eu-west" if key == "ContentBucketName" else value,
                    }
                    for key, value in stack.resources.parameters.items()
                ],
            )
            status, out = run("doctor", "--stack", "cdnpurge-eu", "--format", "json")
        finally:
            os.environ.clear()
            os.environ.update(saved)
    checks = {check["name"]: check for check in json.loads(out)["checks"]}
    assert status == 1
    assert checks["region"]["verdict"] == "FAIL"
    assert "is in eu-west-1, the stack in us-east-1" in checks["region"]["found"]
    assert checks["region"]["fix"].startswith("deploy the stack in eu-west-1")


def dead_letter(stack: LocalStack, body: str, failure: str, reasons: str) -> None:
    stack.client("sqs").send_message(
        QueueUrl=stack.resources.dead_letter_queue_url,
        MessageBody=body,
        MessageAttributes={
            "cdnpurge-error": {"DataType": "String", "StringValue": reasons},
            "cdnpurge-failure": {"DataType": "String", "StringValue": failure},
        },
    )


def bodies(stack: LocalStack, url: str) -> list[str]:
    sqs, found = stack.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        for message in messages:
            found.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(found)


def test_redrive_moves_only_what_the_filters_name(stack: LocalStack) -> None:
    # Given dead letters from a Fastly outage, a Bunny refusal and a verification failure
    resources = stack.resources
    dead_letter(stack, "fastly-1", "retries-exhausted", "fastly: failed: 503 Service Unavailable")
    dead_letter(stack, "fastly-2", "retries-exhausted", "bunny: ok; fastly: failed: 503 Service Unavailable")
    dead_letter(stack, "bunny-1", "permanent", "bunny: refused: 400 invalid URL")
    dead_letter(stack, "verify-1", "verification-failed", "fastly-eu: still stale at https://www.example.com/a")
    dlq, queue = resources.dead_letter_queue_url, resources.queue_url
    common = ("redrive", "--dlq-url", dlq, "--queue-url", queue, "--wait-seconds", "0")
    # When listing the Fastly outage's dead letters: exactly those two, and nothing moves
    status, out = run(*common, "--provider", "fastly", "--dry-run")
    assert status == 0 and "dry run: 2 message(s) would move" in out
    assert "left 2 message(s) not matching (provider fastly)" in out
    # When moving the exhausted retries at most one at a time
    status, out = run(*common, "--reason", "retries-exhausted", "--max", "1")
    assert status == 0 and "done: 1 message(s) moved" in out
    status, out = run(*common, "--provider", "fastly", "--reason", "503")
    assert "done: 1 message(s) moved" in out
    # Then the queue holds the two Fastly messages; the others are still dead letters
    assert bodies(stack, queue) == ["fastly-1", "fastly-2"]
    # --since: what was dead-lettered within the last hour, seen from two hours later, is nothing
    out_io = io.StringIO()
    later = main([*common, "--since", "1h", "--dry-run"], out=out_io, wall_clock=lambda: time.time() + 7200)
    assert later == 0 and "dry run: 0 message(s) would move" in out_io.getvalue()
    assert bodies(stack, dlq) == ["bunny-1", "verify-1"]


def test_redrive_refuses_a_bad_age(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["redrive", "--dlq-url", "a", "--queue-url", "b", "--since", "yesterday"])
    assert exit_info.value.code == 2
    assert "'yesterday' is not a duration" in capsys.readouterr().err


@pytest.mark.parametrize(
    "alarm",
    ["ConfigReloadFailedAlarm", "WebhookFunctionErrorsAlarm", "WebhookFunctionThrottlesAlarm", "WebhookRejectedAlarm"],
)
def test_doctor_names_the_alarms_firing_now(stack: LocalStack, alarm: str) -> None:
    # The purge function's alarms and the webhook intake's alike
    cloudwatch = stack.client("cloudwatch")
    name = f"{STACK}-{alarm}-LOCAL"
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="firing, for the test")
    try:
        _, checks = doctor()
        assert checks["alarms"]["verdict"] == "FAIL"
        assert checks["alarms"]["found"] == f"1 in ALARM: {alarm}"
        assert "docs/runbook.md" in checks["alarms"]["fix"]
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="over")


def test_messages_wait_for_the_poller_however_many_are_sent_while_the_mapping_is_enabled(stack: LocalStack) -> None:
    # Given the stack's event source mapping, enabled as CloudFormation reports it
    assert mapping_state(stack) == "Enabled"
    sqs, queue = stack.client("sqs"), stack.resources.queue_url
    redrive = json.loads(
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    )
    sent = [f"unpolled-{number}" for number in range(int(redrive["maxReceiveCount"]) + 2)]
    # When more messages are sent than the redrive policy's receive count allows
    for body in sent:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    received = []
    for _ in range(5):
        received += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
    ours = [message for message in received if message["Body"] in sent]
    for message in received:
        if message in ours:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        else:  # another test's message: back to the queue as it was
            sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    # Then each is received once, by its first consumer, and none was moved to the dead-letter queue unread
    assert sorted(message["Body"] for message in ours) == sorted(sent)
    assert {message["Attributes"]["ApproximateReceiveCount"] for message in ours} == {"1"}


# A value written where the operator's tools read it (SSM by hand or a script, a dead letter's attributes, a CDN's
# error): a line break and a fake row, terminal controls, a bidi override, and a screenful.
FORGED_ROW = "\nok    paused                   purging runs\x1b[2J\r\u202e"
SCREENFUL = "x" * 100_000


def test_text_read_back_from_aws_cannot_print_a_row_of_its_own(stack: LocalStack) -> None:
    # Given: a pause record written by hand in SSM, and dead letters whose reasons carry a forged row
    stack.client("ssm").put_parameter(
        Name=pause_parameter(STACK),
        Value=json.dumps({"reason": "outage" + FORGED_ROW + SCREENFUL, "by": "mallory" + FORGED_ROW, "at": "x\ny"}),
        Type="String",
        Overwrite=True,
    )
    # SQS refuses ESC in an attribute (InvalidMessageContents): a dead letter's forged row is line breaks and bidi
    forged_attribute = FORGED_ROW.replace("\x1b", "")
    dead_letter(stack, "forged-1", "permanent" + forged_attribute, "fastly: refused" + forged_attribute + SCREENFUL)
    resources = stack.resources
    try:
        # When: doctor and a redrive dry run show them
        doctor_status, doctor_text = run("doctor", "--stack", STACK)
        common = ("redrive", "--dlq-url", resources.dead_letter_queue_url, "--queue-url", resources.queue_url)
        redrive_status, redrive_text = run(*common, "--wait-seconds", "0", "--dry-run")
    finally:
        run("resume", "--stack", STACK)
        bodies(stack, resources.dead_letter_queue_url)  # drained (PurgeQueue is allowed once a minute)
    # Then: every line is one the command wrote (no forged row, no control, no screenful), and the values show
    assert doctor_status == 1 and redrive_status == 0
    for text in (doctor_text, redrive_text):
        lines = text.splitlines()
        assert not [line for line in lines if line.startswith(("ok    paused", "\x1b"))], text[:2000]
        assert all(len(line) < 1_500 and "\x1b" not in line and "\u202e" not in line for line in lines)
    assert "by mallory\\x0aok    paused" in doctor_text
    assert "moving" not in redrive_text and "would move forged" not in redrive_text
    assert "[permanent\\x0aok    paused" in redrive_text and "chars)" in redrive_text
    hostile("output", 2)


def test_a_redrive_run_looks_at_a_bounded_number_of_dead_letters(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: three dead letters, and runs that look at two at most
    monkeypatch.setattr("cdnpurge.cli.redrive.MAX_LOOKED_AT", 2)
    for number in range(3):
        dead_letter(stack, f"bounded-{number}", "permanent", "fastly: refused")
    resources = stack.resources
    common = ("redrive", "--dlq-url", resources.dead_letter_queue_url, "--queue-url", resources.queue_url)
    try:
        # When
        status, out = run(*common, "--wait-seconds", "0", "--dry-run")
    finally:
        bodies(stack, resources.dead_letter_queue_url)
    # Then: it stops, saying so, with what it held made visible again
    assert status == 0 and out.count("  would move ") == 2
    assert "stopped after looking at 2 dead letters: run again for the rest" in out
    hostile("output")
