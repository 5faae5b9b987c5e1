"""The deployed intake, built from the environment the template sets (`WebhookFunction`'s variables).

Nothing is built at import, and no client before its first call: the function builds this once per cold start.
The configuration is the purge function's own document (`PURGE_CONFIG`, its `webhooks:` list), read again at
most every `CONFIG_CHECK_SECONDS` and parsed only when its text changed; secrets come from Powertools' cache
(five minutes, `BoundedParameters`). Every read runs inside `bounded_call` on the runtime's bounded clients.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final

import msgspec

from cdnpurge.core.config import Config, parse_config, read_config_text
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.webhooks.settings import WebhookSource
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS, aws_client
from cdnpurge.runtime.bounded.parameters import BoundedParameters
from cdnpurge.runtime.webhook.intake import WebhookIntake, accepted_secrets
from cdnpurge.runtime.webhook.stores import DynamoDBDeliveryRecords, SqsPurgeQueue

CONFIG_CHECK_SECONDS: Final = 60.0


@lru_cache(maxsize=2)
def _parsed(text: str) -> Config:
    return parse_config(text, source="PURGE_CONFIG")


class ConfigSource(msgspec.Struct):
    """The configuration at `location` (a file or `ssm:/name`), read again once `CONFIG_CHECK_SECONDS` of
    `clock` have passed since the last read."""

    location: str
    read_ssm: Callable[[str], str]
    clock: Callable[[], float] = time.monotonic
    # What the last read found, and when: state kept between calls, never passed in.
    _text: str | None = None
    _read_at: float = 0.0

    def __call__(self, deadline: Deadline) -> Config:
        if self._text is None or self.clock() - self._read_at >= CONFIG_CHECK_SECONDS:
            with bounded_call(deadline, CALL_SECONDS, need=MIN_CALL_SECONDS, what="reading the configuration"):
                self._text = read_config_text(self.location, ssm_reader=self.read_ssm)
            self._read_at = self.clock()
        return _parsed(self._text)


def intake_from_environment(environ: Mapping[str, str] | None = None) -> WebhookIntake:
    """The intake on the runtime's bounded clients (built on their first call)."""
    env = os.environ if environ is None else environ
    parameters = BoundedParameters()

    def secrets(source: WebhookSource, deadline: Deadline) -> tuple[str, ...]:
        with bounded_call(deadline, CALL_SECONDS, need=MIN_CALL_SECONDS, what=f"webhooks.{source.name} secret"):
            return accepted_secrets(source, parameters.secret)

    return WebhookIntake(
        config=ConfigSource(env["PURGE_CONFIG"], parameters.parameter),
        secrets=secrets,
        records=DynamoDBDeliveryRecords(aws_client("dynamodb"), env["IDEMPOTENCY_TABLE_NAME"]),
        queue=SqsPurgeQueue(aws_client("sqs"), env["PURGE_QUEUE_URL"]),
        wall_clock=time.time,
    )
