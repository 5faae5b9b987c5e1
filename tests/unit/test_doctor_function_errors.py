"""`cdnpurge doctor` counts each function's failed invocations of the last hour from Lambda's own `Errors`
metric: the purge function's and the webhook intake's, each under its own check with where to look."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdnpurge.cli.deployed import FUNCTION, WEBHOOK_FUNCTION, DeployedStack
from cdnpurge.cli.doctor import ERRORS_WINDOW_SECONDS, Verdict, function_errors

NOW = 1_790_000_000.0
STACK = DeployedStack(
    name="cdnpurge",
    region="us-east-1",
    status="UPDATE_COMPLETE",
    parameters={},
    outputs={},
    physical_ids={FUNCTION: "cdnpurge-PurgeFunction-AbC", WEBHOOK_FUNCTION: "cdnpurge-WebhookFunction-XyZ"},
)


class CloudWatch:
    """GetMetricStatistics answered from `errors` (function name -> the sums of its datapoints)."""

    def __init__(self, errors: dict[str, list[float]]) -> None:
        self.errors = errors
        self.asked: list[dict[str, Any]] = []

    def get_metric_statistics(self, **request: Any) -> dict[str, Any]:
        self.asked.append(request)
        (dimension,) = request["Dimensions"]
        return {"Datapoints": [{"Sum": value} for value in self.errors.get(dimension["Value"], [])]}


@pytest.mark.parametrize(
    ("logical_id", "check", "hint"),
    [(FUNCTION, "function errors", "batch aborted"), (WEBHOOK_FUNCTION, "webhook errors", "WebhookFunctionLogGroup")],
)
def test_each_function_is_judged_by_its_own_errors(logical_id: str, check: str, hint: str) -> None:
    # Given: the webhook intake failed three times in the last hour, the purge function never
    cloudwatch = CloudWatch({"cdnpurge-WebhookFunction-XyZ": [2.0, 1.0]})
    # When: the doctor asks about one function
    found = function_errors(STACK, cloudwatch, NOW, logical_id)
    # Then: it asked Lambda's metric for that function, over the last hour, and judged it alone
    (request,) = cloudwatch.asked
    assert request["Namespace"] == "AWS/Lambda" and request["MetricName"] == "Errors"
    assert request["Dimensions"] == [{"Name": "FunctionName", "Value": STACK.physical(logical_id)}]
    assert request["StartTime"] == datetime.fromtimestamp(NOW - ERRORS_WINDOW_SECONDS, UTC)
    assert found.name == check
    if logical_id == WEBHOOK_FUNCTION:
        assert (found.verdict, found.found) == (Verdict.FAIL, "3 failed invocation(s) in the last hour")
        assert hint in found.fix
    else:
        assert (found.verdict, found.found) == (Verdict.OK, "no failed invocation in the last hour")


@pytest.mark.parametrize(
    ("sums", "verdict", "found"),
    [
        ([float("nan")], Verdict.WARN, "CloudWatch answered a datapoint without a number of errors"),
        (["many"], Verdict.WARN, "CloudWatch answered a datapoint without a number of errors"),
        ([float("inf"), 1e308], Verdict.FAIL, "2000000000000 failed invocation(s) in the last hour"),
        ([-5.0], Verdict.OK, "no failed invocation in the last hour"),
        ([], Verdict.OK, "no failed invocation in the last hour"),
    ],
)
def test_the_numbers_of_cloudwatchs_answer_are_read_as_input(sums: list[Any], verdict: Verdict, found: str) -> None:
    # Given: CloudWatch's datapoints hold no number, an absurd one or a negative one
    cloudwatch = CloudWatch({"cdnpurge-PurgeFunction-AbC": sums})
    # When: the doctor counts the purge function's errors
    check = function_errors(STACK, cloudwatch, NOW, FUNCTION)
    # Then: bounded (at most 10^12 a datapoint, never below 0) or said to be unreadable, never a crash
    assert (check.verdict, check.found) == (verdict, found)
