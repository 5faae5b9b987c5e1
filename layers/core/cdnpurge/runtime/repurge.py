"""Re-purge scheduling: with `repurge_delay_seconds` set, S3 changes purged by a batch are purged once
more that much later, for origins whose replicas lag behind the bucket (the CDN may have refetched a stale
copy right after the first purge).

The message itself (its body, and how a change id marks a re-purge) is encoded and decoded in one place,
`cdnpurge.core.events.repurge`; here is only which changes get one and the SQS send, with the queue's own
`DelaySeconds`. Best effort: a failed send is reported, logged and counted; the first purge stands.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.errors import describe_error
from cdnpurge.core.events.repurge import is_repurge, repurge_messages
from cdnpurge.core.models import Change
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS
from cdnpurge.runtime.ledger import Pair


class RepurgeScheduling(msgspec.Struct, frozen=True):
    """What the re-purge step did for one batch."""

    scheduled: tuple[str, ...] = ()  # change ids a delayed second purge was enqueued for
    errors: tuple[str, ...] = ()  # sends that failed (redacted)


def repurge_candidates(
    changes: Iterable[Change], *, owed: Iterable[Pair], completed: Iterable[Pair], duplicates: Iterable[Pair]
) -> tuple[Change, ...]:
    """S3 changes now purged at every provider they are owed to, at least one of them by this batch.

    Re-purges themselves are never re-purged, and a change this batch only skipped as a duplicate
    already had its re-purge scheduled by the invocation that purged it.
    """
    owed_by_change: dict[str, set[Pair]] = defaultdict(set)
    for pair in owed:
        owed_by_change[pair[1]].add(pair)
    done = set(completed)
    settled = done | set(duplicates)
    return tuple(
        change
        for change in changes
        if change.bucket is not None
        and not is_repurge(change)
        and owed_by_change[change.id]
        and owed_by_change[change.id] <= settled
        and owed_by_change[change.id] & done
    )


def schedule_repurge(
    sqs: Any,
    queue_url: str,
    changes: tuple[Change, ...],
    *,
    delay_seconds: int,
    redact: Callable[[str], str],
    deadline: Deadline,
) -> RepurgeScheduling:
    """Enqueue the re-purge messages for `changes` on the purge queue, delayed by `delay_seconds`, each send
    ending before `deadline` (one that cannot is reported like a failed one: the first purge stands)."""
    scheduled: list[str] = []
    errors: list[str] = []
    for body, change_ids in repurge_messages(changes):
        try:
            with bounded_call(deadline, CALL_SECONDS, what="scheduling a re-purge", need=MIN_CALL_SECONDS):
                sqs.send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay_seconds)
        except OutOfTimeError:
            errors.append(f"{len(change_ids)} change(s): not sent: out of time before the function's deadline")
            continue
        except Exception as exc:  # best effort: the first purge happened
            errors.append(f"{len(change_ids)} change(s): {describe_error(exc, redact)}")
            continue
        scheduled.extend(change_ids)
    return RepurgeScheduling(tuple(scheduled), tuple(errors))
