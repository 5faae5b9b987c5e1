"""A local stand-in for Lambda's SQS event source mapping, driving the real handler.

It does what the managed poller does: receive up to `batch_size` messages (gathering for up to the
batching window), build the `aws:sqs` event with the fields Lambda sends, invoke the handler with a
Lambda-shaped context, delete the messages the response does not list in `batchItemFailures`, and
leave the listed ones for redelivery. When the handler raises, nothing is deleted: the whole batch comes
back, as in AWS. Redelivery and the DLQ are the queue's own (moto applies the redrive policy).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdnpurge_local.event_builders import sqs_record

SQS_RECEIVE_MAX = 10  # SQS ReceiveMessage returns at most 10 messages per call


@dataclass
class LocalLambdaContext:
    """The attributes and method Powertools and our handler read from a Lambda context."""

    timeout_seconds: float = 120.0
    function_name: str = "cdnpurge-PurgeFunction-local"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: What the remaining time is measured on. A test that must not depend on how long a cold start takes
    #: on a loaded machine passes a clock that stands still: the function then always has its full timeout.
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (self.clock() - self.started)) * 1000))


Handler = Callable[[dict[str, Any], LocalLambdaContext], Mapping[str, Any]]


@dataclass(frozen=True)
class Invocation:
    event: dict[str, Any]
    response: Mapping[str, Any] | None
    deleted: int
    failed: tuple[str, ...]
    error: BaseException | None = None
    # The handler answered (or raised) after its timeout, on the invocation's clock: Lambda would have
    # killed it, and every record would come back, whatever it did.
    past_deadline: bool = False


@dataclass
class SqsEventSource:
    sqs: Any  # a boto3 SQS client
    queue_url: str
    queue_arn: str
    handler: Handler
    batch_size: int = 100
    batching_window_seconds: float = 0.5
    #: SQS long polling: how long the first ReceiveMessage of a batch waits for a message to become
    #: visible (Lambda's poller waits 20 s; 0 here, as tests send before they poll). A test waiting for a
    #: delayed message sets it, so SQS itself says when the message is there, with no sleep in the test.
    receive_wait_seconds: int = 0
    timeout_seconds: float = 120.0
    lambda_clock: Callable[[], float] = time.monotonic  # the invocations' clock (see LocalLambdaContext)
    region: str = "us-east-1"
    invocations: list[Invocation] = field(default_factory=list)
    on_invocation: Callable[[Invocation], None] | None = None  # told of each invocation (test tallies)

    def poll_once(self) -> Invocation | None:
        """One batch: receive, invoke, settle. None when the queue had nothing to deliver."""
        messages = self._receive_batch()
        if not messages:
            return None
        event = {"Records": [self._record(message) for message in messages]}
        context = LocalLambdaContext(timeout_seconds=self.timeout_seconds, clock=self.lambda_clock)
        try:
            response = self.handler(event, context)
        except BaseException as error:  # the whole batch returns to the queue, as with Lambda
            if isinstance(error, KeyboardInterrupt | SystemExit):  # the test run itself is stopping
                raise
            self._make_visible([m["ReceiptHandle"] for m in messages])
            late = context.get_remaining_time_in_millis() == 0
            return self._ran(Invocation(event, None, 0, tuple(m["MessageId"] for m in messages), error, late))
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_RECEIVE_MAX):
            chunk = done[start : start + SQS_RECEIVE_MAX]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        self._make_visible([m["ReceiptHandle"] for m in messages if m["MessageId"] in failed])
        late = context.get_remaining_time_in_millis() == 0
        return self._ran(Invocation(event, response, len(done), tuple(sorted(failed)), past_deadline=late))

    def _ran(self, invocation: Invocation) -> Invocation:
        self.invocations.append(invocation)
        if self.on_invocation is not None:
            self.on_invocation(invocation)
        return invocation

    def drain(self, *, max_batches: int = 50) -> list[Invocation]:
        """Poll until the queue is empty (bounded), returning this drain's invocations."""
        ran = []
        for _ in range(max_batches):
            invocation = self.poll_once()
            if invocation is None:
                break
            ran.append(invocation)
        return ran

    def _receive_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        window_ends = time.monotonic() + self.batching_window_seconds
        while len(messages) < self.batch_size:
            wanted = min(SQS_RECEIVE_MAX, self.batch_size - len(messages))
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=wanted,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0 if messages else self.receive_wait_seconds,
            ).get("Messages", [])
            messages.extend(received)
            if not received and (messages or time.monotonic() >= window_ends):
                break
            if not received:
                time.sleep(0.05)
        return messages

    def _make_visible(self, receipt_handles: list[str]) -> None:
        """Failed records come back at once instead of after the visibility timeout (local speed-up)."""
        for receipt in receipt_handles:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)

    def _record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        attributes = message.get("Attributes", {})
        now_millis = str(int(time.time() * 1000))
        return sqs_record(
            message["Body"],
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            attributes={
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", now_millis),
                "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", now_millis),
            },
            message_attributes={
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value.get("DataType", "String"),
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            queue_arn=self.queue_arn,
            md5_of_body=message.get("MD5OfBody", ""),
            region=self.region,
        )
