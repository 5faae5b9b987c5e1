"""The verification check message, encoded and decoded in one place.

After a batch, the handler enqueues one delayed message per provider (and up to `MAX_CHANGES_PER_CHECK`
changes) on the purge queue: `{"cdnpurge": "verify", "provider": ..., "changes": [...]}` with everything the
check needs (the URLs to probe, when the purge was accepted, the provider's job ids or Akamai's ready
time, how many checks and re-purges came before), so no state is kept anywhere else. The decode stage
acknowledges these records without a change; `cdnpurge.runtime.verification` runs them.

It is one kind of the function's own messages (`cdnpurge.core.events.own`): every field is bounded by its
type, it carries its lineage's end (`expires_at`: the deadline's last look) and send count, and
`decode_check` refuses a check recorded in the future or past its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from cdnpurge.core.events.own import (
    MAX_EPOCH,
    MAX_SECONDS,
    NO_CONTROL,
    Epoch,
    MessagePart,
    OwnMessage,
    ProviderName,
    encode_own,
    read_own,
    refuse_times,
)
from cdnpurge.core.events.reading import MAX_KEY_BYTES, MalformedError
from cdnpurge.core.models import Action

VERIFY_MARKER: Final = "verify"  # value of the "cdnpurge" field of a check message
MAX_CHANGES_PER_CHECK: Final = 50  # bounds the probes one message asks for (x max_urls)
MAX_CHECK_BYTES: Final = 200 * 1024  # a check's body, well under SQS's 256 KiB message limit
MAX_URLS_PER_CHANGE: Final = 20  # `verify.max_urls` is at most 20
MAX_URL_CHARS: Final = 8192  # a probed URL; longer ones are not probed (no edge serves them)
MAX_JOBS: Final = 200  # job ids one check waits for (one per request of up to 50 changes, with room)
MAX_JOB_ID_CHARS: Final = 256  # a CloudFront invalidation id is 14 characters, a Medianova job a UUID
MAX_REPURGES: Final = 10  # `verify.max_repurges` is at most 10
MAX_CHECKS: Final = 5000  # checks of one lineage (it also ends at `expires_at`)
MAX_CHANGE_ID_CHARS: Final = 4096  # an S3 change id: bucket, a key of up to 1024 bytes, a sequencer
MAX_BUCKET_CHARS: Final = 255
_BATCH_ENTRIES: Final = 10  # SendMessageBatch: at most 10 entries ...
_BATCH_BYTES: Final = 256 * 1024  # ... and 256 KiB of bodies in all

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL_CHARS, pattern=NO_CONTROL)]
Urls = Annotated[tuple[Url, ...], msgspec.Meta(max_length=MAX_URLS_PER_CHANGE)]
ChangeId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CHANGE_ID_CHARS, pattern=NO_CONTROL)]
Bucket = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BUCKET_CHARS, pattern=NO_CONTROL)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_BYTES, pattern=NO_CONTROL)]
JobId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_JOB_ID_CHARS, pattern=NO_CONTROL)]
CheckCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_CHECKS)]
RepurgeCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_REPURGES)]
# Akamai's ready time: no more than `MAX_SECONDS` after the purge was accepted (see `read_check`), finite.
ReadyAt = Annotated[float, msgspec.Meta(ge=0, le=MAX_EPOCH + MAX_SECONDS)]


class CheckedChange(MessagePart, frozen=True, forbid_unknown_fields=True):
    """One change to verify at one provider: its object, the URLs that serve it, what is known so far."""

    id: ChangeId
    action: Action
    bucket: Bucket | None
    key: Key | None
    changed_at: Epoch  # epoch seconds of the event (TimeToFresh counts from here)
    urls: Urls
    fresh: Urls = ()  # URLs already seen fresh: not probed again


class VerifyCheck(OwnMessage, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One scheduled check of one provider's purges (a message the function writes to its own queue)."""

    provider: ProviderName
    accepted_at: Epoch  # epoch seconds the purge was accepted (the deadline counts from here)
    changes: Annotated[tuple[CheckedChange, ...], msgspec.Meta(min_length=1, max_length=MAX_CHANGES_PER_CHECK)]
    # provider job ids to wait for (CloudFront invalidations, Medianova jobs)
    jobs: Annotated[tuple[JobId, ...], msgspec.Meta(max_length=MAX_JOBS)] = ()
    ready_at: ReadyAt | None = None  # Akamai: accepted + estimatedSeconds
    attempt: CheckCount = 0  # checks already made
    repurges: RepurgeCount = 0  # purges sent again so far
    cdnpurge: Literal["verify"] = VERIFY_MARKER

    def next(
        self, changes: tuple[CheckedChange, ...], *, repurged: bool, jobs: tuple[str, ...] | None = None
    ) -> VerifyCheck:
        """The check to schedule after this one."""
        return msgspec.structs.replace(
            self,
            changes=changes,
            attempt=min(self.attempt + 1, MAX_CHECKS),
            repurges=min(self.repurges + int(repurged), MAX_REPURGES),
            jobs=self.jobs if jobs is None else jobs,
        )

    def future_times(self) -> tuple[tuple[str, float], ...]:
        changed = ((f"changes[{index}].changed_at", change.changed_at) for index, change in enumerate(self.changes))
        return (("accepted_at", self.accepted_at), *changed)


def encode_check(check: VerifyCheck) -> str:
    return encode_own(check)


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


def read_check(data: str | Mapping[str, Any]) -> VerifyCheck:
    """The check in an SQS body or a parsed document, validated (`read_own`); Akamai's ready time, when
    given, is between the purge's acceptance and a day after it. `MalformedError` names what is wrong."""
    check = read_own(VerifyCheck, data, what="verification message")
    if check.ready_at is not None and not check.accepted_at <= check.ready_at <= check.accepted_at + MAX_SECONDS:
        raise MalformedError(
            f"verification message field ready_at must be within {MAX_SECONDS:.0f} s after accepted_at"
        )
    return check


def decode_check(body: str, *, now: float) -> VerifyCheck:
    """`read_check`, then the times against `now` (`refuse_times`): what `cdnpurge redrive` and the tests
    read a check with; the handler gets its checks from the decode stage (`Decoded.checks`)."""
    check = read_check(body)
    refuse_times(check, what="verification message", now=now)
    return check
