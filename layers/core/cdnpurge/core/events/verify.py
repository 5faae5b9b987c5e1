"""The verification check message, encoded and decoded in one place.

After a batch, the handler enqueues one delayed message per provider (and up to `MAX_CHANGES_PER_CHECK`
changes) on the purge queue: `{"cdnpurge": "verify", "provider": ..., "changes": [...]}` with everything the
check needs (the URLs to probe, when the purge was accepted, the provider's job ids or Akamai's ready
time, how many checks and re-purges came before), so no state is kept anywhere else. The decode stage
acknowledges these records without a change (`is_verify_document`); `cdnpurge.runtime.verification` runs them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from cdnpurge.core.errors import show
from cdnpurge.core.events.reading import MalformedError, is_object, json_kind
from cdnpurge.core.models import Action

VERIFY_MARKER: Final = "verify"  # value of the "cdnpurge" field of a check message
MAX_CHANGES_PER_CHECK: Final = 50  # bounds the probes one message asks for (x max_urls)
MAX_CHECK_BYTES: Final = 200 * 1024  # a check's body, well under SQS's 256 KiB message limit
_BATCH_ENTRIES: Final = 10  # SendMessageBatch: at most 10 entries ...
_BATCH_BYTES: Final = 256 * 1024  # ... and 256 KiB of bodies in all
_BODY_PREFIX: Final = '{"cdnpurge":"verify"'


@dataclass(frozen=True)
class CheckedChange:
    """One change to verify at one provider: its object, the URLs that serve it, what is known so far."""

    id: str
    action: Action
    bucket: str | None
    key: str | None
    changed_at: float  # epoch seconds of the event (TimeToFresh counts from here)
    urls: tuple[str, ...]
    fresh: tuple[str, ...] = ()  # URLs already seen fresh: not probed again


@dataclass(frozen=True)
class VerifyCheck:
    """One scheduled check of one provider's purges."""

    provider: str
    accepted_at: float  # epoch seconds the purge was accepted (the deadline counts from here)
    changes: tuple[CheckedChange, ...]
    jobs: tuple[str, ...] = ()  # provider job ids to wait for (CloudFront invalidations, Medianova jobs)
    ready_at: float | None = None  # Akamai: accepted + estimatedSeconds
    attempt: int = 0  # checks already made
    repurges: int = 0  # purges sent again so far

    def next(
        self, changes: tuple[CheckedChange, ...], *, repurged: bool, jobs: tuple[str, ...] | None = None
    ) -> VerifyCheck:
        """The check to schedule after this one."""
        return replace(
            self,
            changes=changes,
            attempt=self.attempt + 1,
            repurges=self.repurges + int(repurged),
            jobs=self.jobs if jobs is None else jobs,
        )


def encode_check(check: VerifyCheck) -> str:
    body: dict[str, Any] = {
        "cdnpurge": VERIFY_MARKER,
        "provider": check.provider,
        "accepted_at": round(check.accepted_at, 3),
        "attempt": check.attempt,
        "repurges": check.repurges,
        "jobs": list(check.jobs),
        "changes": [
            {
                "id": change.id,
                "action": change.action.value,
                "bucket": change.bucket,
                "key": change.key,
                "changed_at": round(change.changed_at, 3),
                "urls": list(change.urls),
                "fresh": list(change.fresh),
            }
            for change in check.changes
        ],
    }
    if check.ready_at is not None:
        body["ready_at"] = round(check.ready_at, 3)
    return json.dumps(body, separators=(",", ":"))


def change_bytes(change: CheckedChange) -> int:
    """An upper estimate of what one change adds to a check's body (for packing checks under the limit)."""
    return 160 + len(change.id) + len(change.key or "") + len(change.bucket or "") + 2 * sum(map(len, change.urls))


def send_batches(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """SendMessageBatch requests for `entries` (each with a `MessageBody`): at most 10 and 256 KiB each."""
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        body = len(entry["MessageBody"].encode())
        if not batches or len(batches[-1]) == _BATCH_ENTRIES or size + body > _BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += body
    return batches


def is_verify_body(body: str) -> bool:
    """A cheap look at an SQS body: is it a check message (as `encode_check` writes them)?"""
    return body.startswith(_BODY_PREFIX)


def check_records(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(messageId, body) of every SQS record of `event` that carries a check message."""
    records = event.get("Records")
    if not isinstance(records, list):
        return []
    # Runs over every record of every batch (a storm's too): a dict check, not an ABC isinstance.
    return [
        (str(record.get("messageId")), record["body"])
        for record in records
        if type(record) is dict
        and isinstance(record.get("body"), str)
        and is_verify_body(record["body"])
        and record.get("eventSource") == "aws:sqs"
    ]


def is_verify_document(doc: Mapping[str, Any]) -> bool:
    return doc.get("cdnpurge") == VERIFY_MARKER


def decode_check(body: str) -> VerifyCheck:
    """The check in an SQS body; `MalformedError` names what is wrong."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise MalformedError(f"verification message is not JSON: {exc}") from None
    if not is_object(doc) or not is_verify_document(doc):
        raise MalformedError("not a verification message")
    what = "verification message"
    provider = _text(doc, "provider", what)
    changes = doc.get("changes")
    if not isinstance(changes, list) or not changes or len(changes) > MAX_CHANGES_PER_CHECK:
        raise MalformedError(
            f"{what} field changes must be an array of 1 to {MAX_CHANGES_PER_CHECK}, got {json_kind(changes)}"
        )
    jobs = doc.get("jobs", [])
    if not isinstance(jobs, list) or not all(isinstance(job, str) for job in jobs):
        raise MalformedError(f"{what} field jobs must be an array of strings")
    ready_at = doc.get("ready_at")
    return VerifyCheck(
        provider=provider,
        accepted_at=_number(doc, "accepted_at", what),
        changes=tuple(_change(raw, f"{what} changes[{index}]") for index, raw in enumerate(changes)),
        jobs=tuple(jobs),
        ready_at=None if ready_at is None else _number(doc, "ready_at", what),
        attempt=int(_number(doc, "attempt", what)),
        repurges=int(_number(doc, "repurges", what)),
    )


def _change(raw: object, what: str) -> CheckedChange:
    if not is_object(raw):
        raise MalformedError(f"{what} must be an object, got {json_kind(raw)}")
    action = _text(raw, "action", what)
    if action not in (Action.CREATED.value, Action.REMOVED.value, Action.PUBLISHED.value):
        raise MalformedError(f"{what} field action {show(action)} is not created, removed or published")
    return CheckedChange(
        id=_text(raw, "id", what),
        action=Action(action),
        bucket=_optional(raw, "bucket", what),
        key=_optional(raw, "key", what),
        changed_at=_number(raw, "changed_at", what),
        urls=_texts(raw, "urls", what),
        fresh=_texts(raw, "fresh", what),
    )


def _text(doc: Mapping[str, Any], name: str, what: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedError(f"{what} field {name} must be a non-empty string, got {json_kind(value)}")
    return value


def _optional(doc: Mapping[str, Any], name: str, what: str) -> str | None:
    return None if doc.get(name) is None else _text(doc, name, what)


def _texts(doc: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    values = doc.get(name, [])
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise MalformedError(f"{what} field {name} must be an array of strings")
    return tuple(values)


def _number(doc: Mapping[str, Any], name: str, what: str) -> float:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedError(f"{what} field {name} must be a number, got {json_kind(value)}")
    return float(value)
