"""WebhookFunction: a signed CMS webhook in (API Gateway HTTP API), a publish message on the purge queue out.

Thin on purpose: the intake is built once per cold start (not at import); each request gets a `Deadline`
that leaves a margin before Lambda's own timeout; the outcome is logged and counted per source (accepted,
duplicate, ignored, rejected by reason, unavailable). It never purges: the purge function reads the queue.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, Final

from cdnpurge.runtime.collector import long_lived

# What the imports build lives as long as the process: collection paused meanwhile, then frozen
# (`cdnpurge.runtime.collector`).
with long_lived():
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    from cdnpurge.core.deadline import Deadline
    from cdnpurge.runtime.webhook.http import HttpResponse
    from cdnpurge.runtime.webhook.intake import IntakeResult, Outcome, WebhookIntake
    from cdnpurge.runtime.webhook.wiring import intake_from_environment

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Time kept back from Lambda's timeout to answer (and flush metrics) after the last call is refused.
ANSWER_MARGIN_SECONDS: Final = 1.0
# Dimensions {service, source}; a rejection {reason, service, source} (the template's dashboard graphs them).
ACCEPTED_METRIC: Final = "WebhookAccepted"
DUPLICATE_METRIC: Final = "WebhookDuplicate"
IGNORED_METRIC: Final = "WebhookIgnored"
REJECTED_METRIC: Final = "WebhookRejected"
UNAVAILABLE_METRIC: Final = "WebhookUnavailable"
METRIC_NAMES: Final = {
    Outcome.ACCEPTED: ACCEPTED_METRIC,
    Outcome.DUPLICATE: DUPLICATE_METRIC,
    Outcome.IGNORED: IGNORED_METRIC,
    Outcome.REJECTED: REJECTED_METRIC,
    Outcome.UNAVAILABLE: UNAVAILABLE_METRIC,
}

# Its own service name (log lines, the metrics' `service` dimension), apart from the purge function's, also when
# both run in one process (the local stack's demo).
SERVICE_NAME: Final = "cdnpurge-webhook"

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(service=SERVICE_NAME)


@cache
def intake() -> WebhookIntake:
    with long_lived():
        return intake_from_environment()


def record(result: IntakeResult) -> None:
    """One log line and one metric per request, with the source (and the reason of a refusal) as dimensions."""
    metrics.add_dimension(name="source", value=result.source)
    if result.reason is not None and result.outcome is Outcome.REJECTED:
        metrics.add_dimension(name="reason", value=result.reason)
    metrics.add_metric(name=METRIC_NAMES[result.outcome], unit=MetricUnit.Count, value=1)
    fields = {"source": result.source, "outcome": result.outcome.value, "reason": result.reason}
    if result.outcome is Outcome.UNAVAILABLE:
        logger.error("webhook not enqueued: dependency unavailable", extra={**fields, "problem": result.problem})
    else:
        logger.info("webhook " + result.outcome.value, extra={**fields, "change_id": result.change_id})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> HttpResponse:
    seconds = context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
    result = intake().handle(event, Deadline.after(seconds))
    record(result)
    return result.response
