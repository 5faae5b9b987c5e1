"""A local deployment of cdnpurge: the stack, the fake CDN, config in SSM, secrets, the real handler.

Shared by `make demo`, the integration tests, the reliability suite and the benchmark, so all of them
exercise the same wiring a `sam deploy` produces: the handler reads its configuration from SSM and
credentials from Secrets Manager (moto), its idempotency table lives in DynamoDB Local, and its CDN
calls go to the fake CDN on loopback.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aws_lambda_powertools.utilities import parameters

from cdnpurge_local.event_source import Handler, SqsEventSource
from cdnpurge_local.fakecdn.server import Behaviour, FakeCDN
from cdnpurge_local.servers import REPO_ROOT
from cdnpurge_local.stack import LocalStack

HANDLER_PATH = REPO_ROOT / "functions" / "purge" / "app.py"


def load_handler() -> ModuleType:
    """Import functions/purge/app.py the way Lambda does, as a fresh top-level module `app`."""
    spec = importlib.util.spec_from_file_location("app", HANDLER_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {HANDLER_PATH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Deployment:
    stack: LocalStack
    cdn: FakeCDN
    config_text: str
    app: ModuleType

    def event_source(self, handler: Handler | None = None, **options: Any) -> SqsEventSource:
        resources = self.stack.resources
        return SqsEventSource(
            sqs=self.stack.client("sqs"),
            queue_url=resources.queue_url,
            queue_arn=resources.queue_arn,
            handler=handler or self.app.lambda_handler,
            **options,
        )

    def queue_depth(self, *, dead_letter: bool = False) -> int:
        resources = self.stack.resources
        url = resources.dead_letter_queue_url if dead_letter else resources.queue_url
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def delayed_messages(self) -> int:
        """Messages in the purge queue still within their DelaySeconds (a scheduled re-purge, say)."""
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.resources.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])

    def dead_letters(self, *, remove: bool = True) -> list[dict[str, Any]]:
        """Every message in the dead-letter queue (body, attributes and message attributes).

        Taken out of the queue, or with `remove=False` left there (visible again once listed).
        """
        sqs, url = self.stack.client("sqs"), self.stack.resources.dead_letter_queue_url
        taken: list[dict[str, Any]] = []
        while True:
            messages: list[Any] = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=30,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                break
            taken.extend(messages)
        for message in taken:
            if remove:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        return taken


@contextmanager
def deployed(
    config_template: str,
    behaviours: list[Behaviour],
    *,
    secrets: Mapping[str, Mapping[str, str]],
    bucket_name: str = "example-site-content",
    environment: Mapping[str, str] | None = None,
    template_values: Callable[[LocalStack], Mapping[str, str]] | None = None,
    template_parameters: Mapping[str, str] | None = None,
) -> Iterator[Deployment]:
    """Start everything; `config_template` may use `{<provider>_endpoint}` for each fake behaviour,
    `{bucket}`, and whatever `template_values` returns once the stack runs (e.g. a distribution id).
    `template_parameters` override the template's (as `--parameter-overrides` would)."""
    saved = dict(os.environ)
    try:
        with FakeCDN(behaviours) as cdn, LocalStack(bucket_name=bucket_name, parameters=template_parameters) as stack:
            endpoints = {f"{name}_endpoint": cdn.endpoint(name) for name in cdn.behaviours}
            extra = template_values(stack) if template_values else {}
            config_text = config_template.format(**endpoints, **extra, bucket=bucket_name)
            os.environ.pop("AWS_PROFILE", None)
            os.environ.update(stack.lambda_environment())
            os.environ.update(environment or {})
            parameter = os.environ["PURGE_CONFIG"].removeprefix("ssm:")
            stack.client("ssm").put_parameter(Name=parameter, Value=config_text, Type="String", Overwrite=True)
            for name, value in secrets.items():
                stack.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(dict(value)))
            # A fresh Lambda container: Powertools Parameters caches SSM and Secrets Manager values per
            # process, and an earlier deployment in this process used the same names.
            parameters.clear_caches()  # type: ignore[no-untyped-call]
            yield Deployment(stack=stack, cdn=cdn, config_text=config_text, app=load_handler())
    finally:
        os.environ.clear()
        os.environ.update(saved)
