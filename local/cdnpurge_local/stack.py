"""The local stack: Amazon DynamoDB Local and moto server on 127.0.0.1, provisioned from ``template.yaml``.

::

    with LocalStack() as stack:
        stack.client("s3").put_object(Bucket=stack.resources.bucket_name, Key="index.html", Body=b"")
        messages = stack.client("sqs").receive_message(QueueUrl=stack.resources.queue_url)

The servers are ``cdnpurge_local.servers``' DynamoDB Local and moto server, each on a free loopback port;
everything started is stopped when the context exits, also on errors.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import boto3
from botocore.config import Config

from cdnpurge_local.provision import (
    DEFAULT_STACK_NAME,
    DUMMY_CREDENTIALS,
    LocalResources,
    local_client,
    provision,
)
from cdnpurge_local.servers import (
    DEFAULT_REGION,
    REPO_ROOT,
    STARTUP_SECONDS,
    DynamoDBLocal,
    MotoServer,
    StackError,
    StartsAndStops,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

__all__ = [
    "DEFAULT_BUCKET",
    "TEMPLATE_PATH",
    "LocalResources",
    "LocalStack",
    "StackError",
]

TEMPLATE_PATH: Final = REPO_ROOT / "template.yaml"
DEFAULT_BUCKET: Final = "cdnpurge-content-local"


# botocore service ids as used in AWS_ENDPOINT_URL_<SERVICE> (upper case, spaces -> underscores).
_MOTO_SERVICE_ENV_IDS: Final = (
    "S3",
    "SQS",
    "SNS",
    "EVENTBRIDGE",
    "SECRETS_MANAGER",
    "SSM",
    "STS",
    "CLOUDFRONT",
)


class LocalStack(StartsAndStops):
    """DynamoDB Local + moto server, provisioned from ``template.yaml``; a context manager.

    Both servers start in parallel; everything started is stopped on exit or if a later step fails.
    """

    def __init__(
        self,
        *,
        template_path: Path = TEMPLATE_PATH,
        bucket_name: str = DEFAULT_BUCKET,
        region: str = DEFAULT_REGION,
        parameters: Mapping[str, str] | None = None,
        stack_name: str = DEFAULT_STACK_NAME,
        startup_timeout: float = STARTUP_SECONDS,
    ) -> None:
        self._template_path = template_path
        self._bucket_name = bucket_name
        self._region = region
        self._parameters = dict(parameters or {})
        self._stack_name = stack_name
        self.dynamodb = DynamoDBLocal(startup_timeout=startup_timeout)
        self.moto = MotoServer(startup_timeout=startup_timeout)
        self._resources: LocalResources | None = None
        self._session: boto3.session.Session | None = None
        self._exit_stack: contextlib.ExitStack | None = None

    @property
    def resources(self) -> LocalResources:
        if self._resources is None:
            raise StackError("the local stack is not running")
        return self._resources

    @property
    def region(self) -> str:
        return self._region

    def start(self) -> None:
        with contextlib.ExitStack() as started:
            for server in (self.dynamodb, self.moto):
                server.launch()
                started.callback(server.stop)
            for server in (self.dynamodb, self.moto):
                server.wait_until_ready()
            self._resources = provision(
                self._template_path,
                moto_endpoint=self.moto.endpoint,
                dynamodb_endpoint=self.dynamodb.endpoint,
                bucket_name=self._bucket_name,
                region=self._region,
                parameters=self._parameters,
                stack_name=self._stack_name,
            )
            self._session = boto3.session.Session()
            self._exit_stack = started.pop_all()

    def stop(self) -> None:
        exit_stack, self._exit_stack = self._exit_stack, None
        self._resources = None
        self._session = None
        if exit_stack is not None:
            exit_stack.close()

    def endpoint_for(self, service: str) -> str:
        """DynamoDB Local for ``dynamodb``; moto server for every other service."""
        return self.dynamodb.endpoint if service == "dynamodb" else self.moto.endpoint

    @overload
    def client(self, service: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service: Literal["sns"]) -> SNSClient: ...
    @overload
    def client(self, service: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service: Literal["events"]) -> EventBridgeClient: ...
    @overload
    def client(self, service: Literal["secretsmanager"]) -> SecretsManagerClient: ...
    @overload
    def client(self, service: Literal["ssm"]) -> SSMClient: ...
    @overload
    def client(self, service: Literal["cloudfront"]) -> CloudFrontClient: ...
    @overload
    def client(self, service: str) -> Any: ...
    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` aimed at the local endpoint, with dummy credentials."""
        if self._session is None:
            raise StackError("the local stack is not running")
        return local_client(
            self._session,
            service,
            endpoint=self.endpoint_for(service),
            region=self._region,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )

    def lambda_environment(self) -> dict[str, str]:
        """Environment for running the handler in-process against this stack.

        ``PurgeFunction``'s variables from the template (table name resolved to the local table), region,
        dummy credentials, and endpoint overrides: DynamoDB -> DynamoDB Local, every other service ->
        moto (``AWS_ENDPOINT_URL`` as the catch-all, so nothing can reach a real AWS endpoint). X-Ray
        tracing is disabled (no daemon locally). Unset ``AWS_PROFILE`` when applying it: an explicit
        profile makes botocore ignore credentials from the environment.
        """
        resources = self.resources
        environment = dict(resources.function_environment)
        environment.update(
            {
                "AWS_REGION": self._region,
                "AWS_DEFAULT_REGION": self._region,
                "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ENDPOINT_URL": self.moto.endpoint,
                "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "IDEMPOTENCY_TABLE_NAME": resources.table_name,
            }
        )
        environment.update(
            {f"AWS_ENDPOINT_URL_{service_id}": self.moto.endpoint for service_id in _MOTO_SERVICE_ENV_IDS}
        )
        return environment


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """``python -m cdnpurge_local.stack``: start the stack, print its environment, run until Ctrl-C."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    with LocalStack() as stack:
        for key, value in sorted(stack.lambda_environment().items()):
            print(f"export {key}={value}")
        print(f"# queue {stack.resources.queue_url}; bucket {stack.resources.bucket_name}; Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
