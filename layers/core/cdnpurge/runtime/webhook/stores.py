"""The intake's two writes: the delivery record (a replay is refused) and the purge queue.

The delivery record lives in the idempotency table under `cdnpurge#webhook#<source>#<delivery>` with the
table's TTL attribute (`expiration`), written by a conditional put that succeeds only when no live record
exists: two concurrent deliveries of the same webhook cannot both pass. A record whose send then fails is
deleted, so the sender's retry is not refused as a replay. Each call runs inside `bounded_call` on a client
from `cdnpurge.runtime.bounded.aws` (bounded timeouts and retries), so none outlives the invocation.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from botocore.exceptions import ClientError

from cdnpurge.core.deadline import Deadline
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS

DELIVERY_KEY_PREFIX: Final = "cdnpurge#webhook#"


class DeliveryRecords(Protocol):
    def claim(self, key: str, *, now: float, remember_seconds: int, deadline: Deadline) -> bool:
        """Record the delivery; False when a live record of it exists (a replay or a retry of a success)."""

    def release(self, key: str, *, deadline: Deadline) -> None:
        """Forget the delivery (its message could not be enqueued)."""


class PurgeQueue(Protocol):
    def send(self, body: str, *, deadline: Deadline) -> None: ...


def delivery_key(source: str, delivery_id: str) -> str:
    return f"{DELIVERY_KEY_PREFIX}{source}#{delivery_id}"


class DynamoDBDeliveryRecords:
    """Delivery records in the idempotency table (key `id`, TTL attribute `expiration`); `client` from
    `cdnpurge.runtime.bounded.aws.aws_client`."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(self, key: str, *, now: float, remember_seconds: int, deadline: Deadline) -> bool:
        try:
            with bounded_call(deadline, CALL_SECONDS, need=MIN_CALL_SECONDS, what="delivery record"):
                self._client.put_item(
                    TableName=self._table,
                    Item={"id": {"S": key}, "expiration": {"N": str(int(now) + remember_seconds)}},
                    # TTL deletion lags expiry by up to days: an expired record is as good as absent.
                    ConditionExpression="attribute_not_exists(id) OR expiration < :now",
                    ExpressionAttributeValues={":now": {"N": str(int(now))}},
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, key: str, *, deadline: Deadline) -> None:
        with bounded_call(deadline, CALL_SECONDS, need=MIN_CALL_SECONDS, what="delivery record release"):
            self._client.delete_item(TableName=self._table, Key={"id": {"S": key}})


class SqsPurgeQueue:
    """The purge queue; `client` from `cdnpurge.runtime.bounded.aws.aws_client`."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, body: str, *, deadline: Deadline) -> None:
        with bounded_call(deadline, CALL_SECONDS, need=MIN_CALL_SECONDS, what="purge queue send"):
            self._client.send_message(QueueUrl=self._url, MessageBody=body)
