"""Turn a bucket's S3 -> EventBridge delivery on or off without touching its other notifications.

`PutBucketNotificationConfiguration` replaces the bucket's whole notification configuration: writing
`{"EventBridgeConfiguration": {}}` alone deletes every topic, queue and Lambda notification set up by
anyone else. So the configuration is read, only `EventBridgeConfiguration` is added or removed, and every
other entry is written back exactly as read (ids, events, filters). Nothing is written when nothing changes.

S3 has no conditional write for this document: a change someone else makes between the read and the write
is lost. Run it when nothing else is editing the bucket's notifications (the deploy guide says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

EVENTBRIDGE = "EventBridgeConfiguration"
# The document's other members, as GetBucketNotificationConfiguration returns them, and their names in output.
OTHER_NOTIFICATIONS = {
    "TopicConfigurations": "topic",
    "QueueConfigurations": "queue",
    "LambdaFunctionConfigurations": "Lambda",
}


@dataclass(frozen=True)
class NotificationChange:
    """A bucket's notification configuration before and after turning EventBridge delivery on or off."""

    bucket: str
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def kept(self) -> str:
        """The other notifications, counted by kind: what the write keeps (`1 queue, 0 topic, 0 Lambda`)."""
        counts = (f"{len(self.after.get(member, []))} {label}" for member, label in OTHER_NOTIFICATIONS.items())
        return ", ".join(counts) + " notification(s)"


def with_eventbridge(configuration: dict[str, Any], *, enabled: bool) -> dict[str, Any]:
    """`configuration` with EventBridge delivery on or off and every other member unchanged (a new dict)."""
    merged = {member: value for member, value in configuration.items() if member != EVENTBRIDGE}
    if enabled:
        merged[EVENTBRIDGE] = {}
    return merged


def read_configuration(s3: S3Client, bucket: str) -> dict[str, Any]:
    """The bucket's notification configuration as a document PutBucketNotificationConfiguration accepts."""
    response: dict[str, Any] = dict(s3.get_bucket_notification_configuration(Bucket=bucket))
    return {member: response[member] for member in (*OTHER_NOTIFICATIONS, EVENTBRIDGE) if member in response}


def set_eventbridge(s3: S3Client, bucket: str, *, enabled: bool, dry_run: bool = False) -> NotificationChange:
    """Read, merge and (unless `dry_run` or already so) write the bucket's notification configuration.

    The kept destinations are not re-validated (`SkipDestinationValidation`): S3 accepted them when they were
    set, and a queue or function of someone else's that has since lost its permission must not stop this
    change, nor be sent a fresh `s3:TestEvent`.
    """
    before = read_configuration(s3, bucket)
    change = NotificationChange(bucket, before, with_eventbridge(before, enabled=enabled))
    if change.changed and not dry_run:
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration=change.after,  # type: ignore[arg-type]  # read back from S3 itself
            SkipDestinationValidation=True,
        )
    return change
