"""`cdnpurge canary` on the local stack: the canary object goes S3 -> EventBridge -> the queue -> the real handler
-> the fake Fastly, and its purge is read back from the trail; the object is deleted afterwards.

Lambda polls the queue while the canary waits: the canary's `sleep` is where the test lets the handler
drain the queue, so no test waits on a wall clock.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from helpers import FASTLY_PROVIDERS, fastly_deployment

from cdnpurge.cli.canary import canary
from cdnpurge.cli.deployed import read_stack
from cdnpurge.cli.main import main
from cdnpurge.cli.status import TrailReader
from cdnpurge_local.harness import Deployment
from cdnpurge_local.provision import DEFAULT_STACK_NAME, load_template
from cdnpurge_local.stack import TEMPLATE_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("flow")]

BUCKET = "cdnpurge-it-canary"
CONFIG = (
    FASTLY_PROVIDERS
    + """\
rules:
  - bucket: {bucket}
    match: "{{key*}}"
    paths: ["/{{key}}"]
allowed_hosts: [www.example.com]
"""
)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with fastly_deployment(CONFIG, bucket_name=BUCKET) as app:
        yield app


class FakeClock:
    """The canary's clock, advanced by each sleep (nothing waits for real)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_canary_is_purged_reported_and_cleaned_up(deployment: Deployment) -> None:
    stack = read_stack(deployment.stack.client("cloudformation"), DEFAULT_STACK_NAME)
    s3 = deployment.stack.client("s3")
    trail = TrailReader(deployment.stack.client("dynamodb"), stack.outputs["PurgeTrailTableName"])
    clock, source = FakeClock(), deployment.event_source()

    def lambda_runs_meanwhile(seconds: float) -> None:
        source.drain()
        clock.now += seconds

    # When the canary runs while the function drains the queue
    result = canary(
        stack,
        s3=s3,
        trail=trail,
        key="cdnpurge-canary/run-1.html",
        timeout_seconds=60,
        clock=clock,
        sleep=lambda_runs_meanwhile,
    )
    # Then Fastly purged its path, the canary says so with a time, and the object is gone again
    assert result.ok, result
    (fastly,) = result.providers
    assert fastly.provider == "fastly" and fastly.purged_after is not None and not fastly.verified
    assert any("/cdnpurge-canary/run-1.html" in purged for purged in deployment.cdn.purged("fastly"))
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="cdnpurge-canary/")


def test_a_canary_nobody_purges_times_out_and_still_cleans_up(deployment: Deployment) -> None:
    stack = read_stack(deployment.stack.client("cloudformation"), DEFAULT_STACK_NAME)
    s3 = deployment.stack.client("s3")
    trail = TrailReader(deployment.stack.client("dynamodb"), stack.outputs["PurgeTrailTableName"])
    clock = FakeClock()

    def paused(seconds: float) -> None:  # the function does not run (purging paused)
        clock.now += seconds

    result = canary(
        stack, s3=s3, trail=trail, key="cdnpurge-canary/run-2.html", timeout_seconds=30, clock=clock, sleep=paused
    )
    assert result.timed_out and not result.ok and result.providers == ()
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="cdnpurge-canary/")
    deployment.event_source().drain()


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--prefix", "no-slash"], "must be a key prefix ending in '/'"),
        (["--timeout", "5"], "must be between 10 and 3600"),
        (["--stack", "nope"], "no stack 'nope'"),
    ],
)
def test_canary_bad_input_is_one_line_and_exit_2(
    deployment: Deployment, argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_args = [] if "--stack" in argv else ["--stack", DEFAULT_STACK_NAME]
    try:
        status = main(["canary", *stack_args, *argv], out=io.StringIO())
    except SystemExit as exit_info:
        status = int(str(exit_info.code))
    error = capsys.readouterr().err
    assert status == 2 and complaint in error


def test_canary_json_from_the_command_line_times_out_when_nothing_drains(deployment: Deployment) -> None:
    out = io.StringIO()
    ticks = iter(range(0, 10_000, 5))
    status = main(
        ["canary", "--stack", DEFAULT_STACK_NAME, "--timeout", "10", "--format", "json"],
        out=out,
        clock=lambda: float(next(ticks)),
    )
    document = json.loads(out.getvalue())
    assert status == 1 and document["ok"] is False and document["timed_out"] is True
    deployment.event_source().drain()


def test_the_scheduled_canary_event_is_a_change_every_provider_purges(deployment: Deployment) -> None:
    # Given the event the template's CanaryRule sends: its InputTemplate with a scheduled event's id and
    # time put in as EventBridge puts them (JSON values), and ${...} resolved as CloudFormation would
    template = load_template(TEMPLATE_PATH)
    (target,) = template["Resources"]["CanaryRule"]["Properties"]["Targets"]
    text = target["InputTransformer"]["InputTemplate"]["Fn::Sub"]
    values = {"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1", "CanaryPath": "/cdnpurge-canary"}
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    sqs, queue = deployment.stack.client("sqs"), deployment.stack.resources.queue_url
    for run_id in ("0d9c1a5e-0000-4000-8000-000000000001", "0d9c1a5e-0000-4000-8000-000000000002"):
        body = text.replace("<id>", json.dumps(run_id)).replace("<time>", json.dumps("2027-01-15T08:00:00Z"))
        sqs.send_message(QueueUrl=queue, MessageBody=body)
        deployment.event_source().drain()
    # Then each run purged the canary path at Fastly: two runs, two purges (never skipped as a duplicate)
    purged = [
        entry for entry in deployment.cdn.purged("fastly") if entry == "url:www.example.com/cdnpurge-canary (hard)"
    ]
    assert len(purged) == 2
