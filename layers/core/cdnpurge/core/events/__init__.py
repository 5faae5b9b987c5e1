"""The decode stage: whatever Lambda receives -> `Change` records, one `DecodeFailure` per bad record.

Why a stage of its own: every trigger shape (S3 notification, S3 -> SNS, S3 -> EventBridge, SNS and
EventBridge "content published", each direct or as an SQS body) must end up as the same `Change`, with an
identity that survives redelivery, and a malformed record must fail *only itself* so the handler can
report it in `batchItemFailures` while the rest of the batch is purged. `decode_event` never raises.

Shapes (an SQS body, an SNS `Message` and a direct invocation are all decoded by the same dispatcher):

- SQS batch (`Records[].eventSource == "aws:sqs"`): each `body` is one of the documents below;
  `source_id` is the SQS `messageId`.
- S3 notification (`Records[].eventSource == "aws:s3"`): one change per record.
- `s3:TestEvent` (sent when a notification configuration is saved): acknowledged, listed in `ignored`.
- SNS envelope (`Type: Notification`; also the direct SNS event's `Records[].Sns`): `Message` holds an
  S3 notification, a TestEvent, or a publish message. `SubscriptionConfirmation` is ignored.
- EventBridge (`detail-type` + `source` + `detail`): `aws.s3` "Object Created"/"Object Deleted", or
  "Content Published" from any source.
- A bare publish message as the SQS body: what an SNS -> SQS subscription with raw message delivery
  sends (the template's subscription is not raw, so its bodies are SNS envelopes; both are accepted).
- A re-purge message (`{"cdnpurge": "repurge", "changes": [...]}`): what the handler itself enqueues, with
  an SQS delay, after purging S3 changes when `repurge_delay_seconds` is set (origin replication lag).
  Each change keeps its bucket, key and action; its id gets the `#repurge` suffix, so the ledger treats
  the second purge as a change of its own (not a redelivery of the first) and a redelivered re-purge
  message is still skipped.

S3 event names: `ObjectCreated:*` -> CREATED; `ObjectRemoved:*` (incl. `DeleteMarkerCreated`) and
`LifecycleExpiration:*` -> REMOVED, since the origin now answers 404. Restore, tagging, ACL, lifecycle
transition, Intelligent-Tiering, replication and RRS-lost events leave the bytes a GET returns unchanged,
so they are ignored (not errors: retrying them could never succeed). Unknown event names are errors so a
new AWS event type is seen rather than silently dropped. EventBridge detail-types map the same way.

Change ids (idempotency identity): `s3:{bucket}/{key}@{sequencer}` with the *decoded* key, falling back to
`version:{versionId}`, `etag:{eTag}`, then `time:{eventTime}` when a record has no sequencer; the same S3
operation seen through a notification and through EventBridge carries the same sequencer, so it gets the
same id. Publish messages: `pub:{id}` when the publisher set `id`, else `sns:{MessageId}`,
`events:{event id}`, or `sqs:{messageId}` for raw delivery. Direct (non-SQS) invocations use the change id
as `source_id`, and the event id (or `"event"`) for errors.

Key encoding: S3 notification keys are form-URL-encoded (`+` is a space, `%2B` a plus) and are decoded
exactly once with `unquote_plus`. EventBridge keys are decoded the same way: the AWS EventBridge event
reference does not say either way (its examples use plain keys), and Powertools' own
`S3EventBridgeNotificationObject.key` applies `unquote_plus`. Note moto 5.x sends EventBridge keys *raw*,
so local tests through that path must avoid `+` and `%` in keys.

Modules: `envelopes` (SQS, SNS, EventBridge, dispatch; `decode_event`), `s3` (notifications and
EventBridge S3 events), `published` ("content published" messages), `repurge` (the re-purge message,
both ways), `verify` (the check message), `own` (the schema of the function's own messages), `fastpath` (plain
S3 records of a storm), `reading` (origins, field readers), `result` (`Decoded`, `Sink`, the per-unit boundary).
"""

from cdnpurge.core.events.envelopes import decode_event
from cdnpurge.core.events.reading import (
    MAX_BODY_BYTES,
    MAX_KEY_BYTES,
    MAX_TARGETS,
)
from cdnpurge.core.events.repurge import REPURGE_SUFFIX, is_repurge, repurge_messages
from cdnpurge.core.events.result import Decoded

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_KEY_BYTES",
    "MAX_TARGETS",
    "REPURGE_SUFFIX",
    "Decoded",
    "decode_event",
    "is_repurge",
    "repurge_messages",
]
