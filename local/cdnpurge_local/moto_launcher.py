"""Run moto server with its S3 -> EventBridge events made to follow AWS's documented shape.

moto 5.x sends every S3 EventBridge event with one fixed `id` and one fixed `sequencer`, and the object
key unencoded. AWS documents `id` as "a UUID generated for every event", and the sequencer as the value
that orders events for the same key; cdnpurge keys idempotency on both, so with moto's constants two
different uploads would look like one redelivered event. We also encode the key as S3 notifications are
(`quote_plus`, the form Powertools' `S3EventBridgeNotificationObject.key` decodes), so the one decoding
rule in `cdnpurge.core.events` is exercised end to end. An email subscription is listed as pending until
confirmed, as in AWS (`with_pending_confirmation`). CloudFront follows AWS's documented `CallerReference`
rule (`cdnpurge_local.cloudfront_references`), and SQS its documented message characters and byte size
(`cdnpurge_local.sqs_contents`). moto's Lambda never polls a queue (`without_lambda_polling`):
the function's event source mapping exists for the operator's tools, while the tests run the handler
in-process. Everything else is moto's own code, unchanged.

    python -m cdnpurge_local.moto_launcher -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import copy
import itertools
import re
import sys
import uuid
from typing import Any
from urllib.parse import quote_plus

_sequencers = itertools.count(0x617F08299329D189)


def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    """moto's `_send_event_bridge_message` with a fresh id and sequencer per event and an encoded key."""
    from moto.core.utils import unix_time
    from moto.events.models import events_backends
    from moto.s3.notifications import _detail_type

    event: Any = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": _detail_type(event_name),
        "source": "aws.s3",
        "account": account_id,
        "time": unix_time(),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": {
                "key": quote_plus(key.name, safe="/"),
                "size": key.size,
                "eTag": key.etag.replace('"', ""),
                "version-id": key.version_id,
                "sequencer": format(next(_sequencers), "X"),
            },
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            "reason": event_name.split(":")[1],
        },
    }
    backend = events_backends[account_id][bucket.region_name]
    for event_bus in backend.event_buses.values():
        for rule in event_bus.rules.values():
            try:
                rule.send_to_targets(event, transform_input=False)
            except Exception as error:  # delivery is asynchronous in AWS: never fail the S3 call
                print(f"moto_launcher: delivering S3 event failed: {error!r}", file=sys.stderr)


def with_eventbridge_configuration(get_bucket_notification: Any) -> Any:
    """moto's GetBucketNotificationConfiguration, also returning `EventBridgeConfiguration` when it is on.

    moto 5.x stores it (and sends events by it) but leaves it out of the response; AWS returns it (an
    empty element), and `cdnpurge enable-eventbridge` reads it to know whether anything needs writing.
    """

    def get_with_eventbridge(response: Any) -> Any:
        status, headers, body = get_bucket_notification(response)
        configuration = response.backend.get_bucket_notification_configuration(response.bucket_name)
        if configuration is None or configuration.event_bridge is None:
            return status, headers, body
        text = body.decode() if isinstance(body, bytes) else str(body)
        element = "<EventBridgeConfiguration></EventBridgeConfiguration>"
        if "</NotificationConfiguration>" in text:
            text = text.replace("</NotificationConfiguration>", f"{element}</NotificationConfiguration>")
        else:  # no other notification: moto wrote a self-closing <NotificationConfiguration .../>
            text = re.sub(
                r"<NotificationConfiguration([^>]*)/>",
                rf"<NotificationConfiguration\1>{element}</NotificationConfiguration>",
                text,
            )
        headers = {name: value for name, value in headers.items() if name.lower() != "content-length"}
        return status, headers, text

    return get_with_eventbridge


# Protocols whose subscriptions wait for the endpoint's owner to confirm (SNS sends them a confirmation).
_CONFIRMED_BY_OWNER = ("email", "email-json")


def _as_listed(subscription: Any) -> Any:
    if subscription.protocol not in _CONFIRMED_BY_OWNER:
        return subscription
    pending = copy.copy(subscription)
    pending.arn = "PendingConfirmation"
    return pending


def with_pending_confirmation(list_subscriptions: Any) -> Any:
    """moto's ListSubscriptions(ByTopic), listing an email subscription as AWS does before its owner confirms.

    AWS documents ListSubscriptionsByTopic's `SubscriptionArn` as `PendingConfirmation` until the owner follows
    the link in the confirmation email; moto confirms every subscription at once, which would make
    `cdnpurge doctor`'s "alarm email confirmed" check pass on a stack whose alarms reach nobody. No email is
    ever sent locally, so an email subscription stays pending, as an unconfirmed one does in AWS.
    """

    def listed(self: Any, *args: Any, **kwargs: Any) -> Any:
        subscriptions, next_token = list_subscriptions(self, *args, **kwargs)
        return [_as_listed(subscription) for subscription in subscriptions], next_token

    return listed


def without_lambda_polling() -> None:
    """Queues never hand their messages to moto's own Lambda.

    The local stack registers the function's SQS event source mapping on moto (`cdnpurge_local.cfn_stack`) so
    `cdnpurge doctor`, `pause` and `resume` read and switch it as they would in AWS. moto then receives every
    message sent to the queue for that mapping and tries to run the function in a container (there is none),
    which counts a receive on every message before the handler under test sees it: a record dead-lettered "at
    once" would carry a receive count of 2. The mapping stays readable and switchable; only the delivery is off.
    """
    from moto.sqs.models import Queue

    def mappings(_queue: Queue) -> dict[str, Any]:
        return {}  # a fresh empty dict: nothing is ever delivered, and what moto's Lambda adds to it is dropped

    def ignore(_queue: Queue, _value: dict[str, Any]) -> None:
        """moto's Queue sets its (empty) mappings at creation."""

    Queue.lambda_event_source_mappings = property(mappings, ignore)  # type: ignore[assignment]


def main() -> None:
    from moto.s3 import notifications
    from moto.s3.responses import S3Response
    from moto.server import main as moto_main
    from moto.sns.models import SNSBackend

    from cdnpurge_local.cloudfront_references import enforce_caller_references
    from cdnpurge_local.sqs_contents import enforce_message_contents

    enforce_caller_references()
    enforce_message_contents()
    without_lambda_polling()
    notifications._send_event_bridge_message = send_event_bridge_message
    for name in ("list_subscriptions", "list_subscriptions_by_topic"):
        setattr(SNSBackend, name, with_pending_confirmation(getattr(SNSBackend, name)))
    S3Response.get_bucket_notification = with_eventbridge_configuration(S3Response.get_bucket_notification)  # type: ignore[method-assign]
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
