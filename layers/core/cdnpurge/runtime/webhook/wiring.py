"""The deployed intake, built from the environment the template sets (`WebhookFunction`'s variables).

Nothing is built at import: the function builds this once per cold start. The configuration is the purge
function's own document (`PURGE_CONFIG`, its `webhooks:` list), read through Powertools' 5-minute cache and
parsed again only when its text changed; secrets are cached for a minute, so a rotation's new secret is in
use within one minute of being stored (rotate as docs/webhooks.md says: both accepted meanwhile).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from cdnpurge.core.config import Config, parse_config, read_config_text
from cdnpurge.core.webhooks.settings import WebhookSource
from cdnpurge.runtime.webhook.intake import WebhookIntake, accepted_secrets
from cdnpurge.runtime.webhook.stores import DynamoDBDeliveryRecords, SqsPurgeQueue, client_config

SECRET_MAX_AGE_SECONDS: Final = 60


def _webhook_secret_reader(name: str) -> Any:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(name, max_age=SECRET_MAX_AGE_SECONDS)


@lru_cache(maxsize=2)
def _parsed(text: str) -> Config:
    return parse_config(text, source="PURGE_CONFIG")


def config_loader(location: str, *, ssm_reader: Callable[[str], str] | None = None) -> Callable[[], Config]:
    """The configuration now (cached reads; parsed once per distinct text)."""

    def load() -> Config:
        return _parsed(read_config_text(location, ssm_reader=ssm_reader))

    return load


def intake_from_environment(environ: Mapping[str, str] | None = None) -> WebhookIntake:
    """The intake with boto3 clients bounded as `stores.CALL_SECONDS` assumes."""
    import boto3

    env = os.environ if environ is None else environ
    config = client_config()
    dynamodb = boto3.client("dynamodb", config=config)  # type: ignore[call-overload]
    sqs = boto3.client("sqs", config=config)  # type: ignore[call-overload]

    def secrets(source: WebhookSource) -> tuple[str, ...]:
        return accepted_secrets(source, _webhook_secret_reader)

    return WebhookIntake(
        config=config_loader(env["PURGE_CONFIG"]),
        secrets=secrets,
        records=DynamoDBDeliveryRecords(dynamodb, env["IDEMPOTENCY_TABLE_NAME"]),
        queue=SqsPurgeQueue(sqs, env["PURGE_QUEUE_URL"]),
        wall_clock=time.time,
    )
