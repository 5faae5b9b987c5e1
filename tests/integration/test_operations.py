"""The operator's commands against the local stack, as an operator runs them: `cdnpurge pause`/`resume`,
`doctor` and `redrive`'s filters, with boto3 clients from the environment aimed at moto server and DynamoDB
Local (the stack's own AWS_ENDPOINT_URL* variables), reading the stack through CloudFormation on moto.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest

from cdnpurge.cli.deployed import pause_parameter
from cdnpurge.cli.main import main
from cdnpurge_local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]

STACK = "cdnpurge-ops"


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


def test_pause_disables_the_mapping_and_records_why_then_resume_undoes_both(stack: LocalStack) -> None:
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
