"""PurgeFunction: SQS batch (or a raw S3/SNS/EventBridge event) in, partial batch failures out.

Thin on purpose: Powertools decorators, the service built once per cold start (not at import), one
call into the service (which runs the pipeline and dead-letters records that cannot succeed, with
their reasons), logs and metrics from its report, and the `batchItemFailures` response that makes SQS
redeliver only the records that did not complete.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from cdnpurge.runtime.collector import long_lived

if TYPE_CHECKING:
    # Types only: the batch response type alone would load Powertools' whole batch processor at cold start.
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

# What the function calls out to: AWS through botocore (DynamoDB, SQS, SSM, Secrets Manager, CloudFront)
# and the CDNs through httpx. Tracer() alone would patch every library X-Ray supports at cold start.
TRACED_MODULES = ("botocore", "httpx")
# Patched when first imported rather than at init (patching imports the module): httpx loads with the first
# HTTP CDN's adapter or verification's first probe, so a configuration naming only CloudFront never loads it.
PATCHED_ON_FIRST_IMPORT = ("httpx",)

# What init builds (the imports, Powertools' objects, the Tracer's patches) lives as long as the process:
# collection paused meanwhile, then frozen (tens of milliseconds of every cold start, `cdnpurge.runtime.collector`).
with long_lived():
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from wrapt import register_post_import_hook

    from cdnpurge.runtime.observability import attempt_logger, record
    from cdnpurge.runtime.service import PurgeService

    logger = Logger()
    metrics = Metrics()
    tracer = Tracer(patch_modules=[module for module in TRACED_MODULES if module not in PATCHED_ON_FIRST_IMPORT])
    for _module in PATCHED_ON_FIRST_IMPORT:
        # Runs as soon as the module's import completes, before its importer uses it (at once if already
        # imported); a disabled Tracer (outside Lambda) patches nothing.
        register_post_import_hook(lambda _imported, name=_module: tracer.patch((name,)), _module)


@cache
def service() -> PurgeService:
    """Configuration, credentials and clients, built on first use and reused while warm (long-lived, as the
    imports: `cdnpurge.runtime.collector`)."""
    with long_lived():
        return PurgeService.from_environment(on_attempt=attempt_logger(logger))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    try:
        report = service().handle(event, remaining_ms=context.get_remaining_time_in_millis)
    except BaseException:
        # Past every record's and request's fault boundary (`cdnpurge.core.boundary`), only a failure of the batch
        # machinery itself, or the process being stopped, gets here. SQS redelivers the whole batch (what
        # completed is in the idempotency table and is skipped then); say so, with the cause, instead of
        # leaving only Lambda's bare error line.
        logger.exception("batch aborted; SQS will redeliver every record")
        metrics.add_metric(name="BatchAborted", unit=MetricUnit.Count, value=1)
        raise
    record(report, logger, metrics)
    return report.response()
