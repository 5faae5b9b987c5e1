"""The settings of template.yaml that the code and docs rely on, which `sam validate --lint` would not
miss if they disappeared: runtime and architecture, the SQS event source's batching, partial failures
and concurrency cap (passed to the function, which paces at its share), the queue's visibility timeout."""

from __future__ import annotations

from typing import Any

from cdnpurge_local.provision import load_template
from cdnpurge_local.stack import TEMPLATE_PATH


def resources() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)["Resources"]  # type: ignore[no-any-return]


def test_the_function_runs_python_313_on_arm64_with_the_shared_layer() -> None:
    function = resources()["PurgeFunction"]["Properties"]
    assert (function["Runtime"], function["Architectures"]) == ("python3.13", ["arm64"])
    assert function["Layers"] == [{"Ref": "CoreLayer"}]
    assert resources()["CoreLayer"]["Metadata"]["BuildMethod"] == "makefile"


def test_the_queue_feeds_the_function_in_batches_with_partial_failures_and_a_concurrency_cap() -> None:
    function = resources()["PurgeFunction"]["Properties"]
    (event,) = function["Events"].values()
    properties = event["Properties"]
    assert event["Type"] == "SQS" and properties["Queue"] == {"Fn::GetAtt": ["PurgeQueue", "Arn"]}
    assert properties["BatchSize"] == {"Ref": "BatchSize"}
    assert properties["MaximumBatchingWindowInSeconds"] == {"Ref": "MaximumBatchingWindowInSeconds"}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The cap and the function's pacing share are the same parameter
    assert properties["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaximumConcurrency"}
    assert function["Environment"]["Variables"]["MAXIMUM_CONCURRENCY"] == {"Ref": "MaximumConcurrency"}


def test_a_batch_is_never_redelivered_while_it_can_still_be_running() -> None:
    # AWS guidance for SQS event sources: visibility timeout at least six times the function timeout
    queue = resources()["PurgeQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * resources()["PurgeFunction"]["Properties"]["Timeout"]
