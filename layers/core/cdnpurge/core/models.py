"""The value types every stage of the pipeline speaks: decode -> translate -> plan -> execute.

They are immutable so that a plan can be hashed, compared and replayed: the planner is a pure function of
these values, and the executor's idempotency keys are derived from them.

The types built once per change, per target or per request (`Change`, `Target`, `PurgeRequest` and
`RoutedTarget`) are `NamedTuple`s: a frozen dataclass's `__init__` stores each field through
`object.__setattr__`, so building a `Change` took half as long as parsing the SQS body it came from, four
times what the tuple takes, and a storm builds up to four such values per record. A tuple is as immutable and
hashable; like any tuple it is also iterable and equal to a plain tuple of the same values, which nothing
here relies on. The types built per error or per batch are frozen `msgspec.Struct`s: defining a frozen dataclass
generates and compiles its methods (about half a millisecond a class, paid on every cold start); a Struct class
shares msgspec's, written in C.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

import msgspec


class Action(StrEnum):
    """What happened to the content a change describes."""

    CREATED = "created"
    REMOVED = "removed"
    PUBLISHED = "published"


class TargetKind(StrEnum):
    """What a purge target names at the CDN.

    `url` is absolute, `path` host-relative (starts with `/`), `prefix` a host-relative path prefix
    (rendered as a wildcard or pattern by providers that support one), `key` a surrogate key or cache tag,
    `host` every object of one hostname, `all` everything the provider account/service caches.
    """

    URL = "url"
    PATH = "path"
    PREFIX = "prefix"
    KEY = "key"
    HOST = "host"
    ALL = "all"


class Target(NamedTuple):
    """One thing to purge; ordered (by kind, then value) so plans are deterministic."""

    kind: TargetKind
    value: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.value}"


class Change(NamedTuple):
    """One content change decoded from an event.

    `id` is the idempotency identity of the change itself: S3 bucket/key plus sequencer (or version),
    the SNS MessageId or the EventBridge event id. A later upload of the same object has a new sequencer,
    so it gets a new id and is purged again; a redelivery of the same event keeps its id.
    `source_id` names the SQS message (or raw record) the change came from, so failures map back to it.
    """

    id: str
    action: Action
    source_id: str
    bucket: str | None = None
    key: str | None = None
    event_time: str | None = None
    # Targets a publisher named explicitly (SNS/EventBridge "content published").
    keys: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    soft: bool | None = None
    # The AWS account of a change from another account's bucket (its S3 event forwarded to this stack's bus);
    # part of the id then. None for this account's own changes and for publish messages.
    account: str | None = None

    def event_epoch(self) -> float | None:
        """The event's ISO 8601 time as seconds since the epoch; None when absent or not a time."""
        if not self.event_time:
            return None
        try:
            moment = datetime.fromisoformat(self.event_time)
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()

    def describe(self) -> str:
        if self.bucket is not None:
            return f"{self.action.value} s3://{self.bucket}/{self.key}"
        parts = [f"{name}={list(values)}" for name, values in self._published() if values]
        return f"{self.action.value} " + " ".join(parts)

    def _published(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return (("keys", self.keys), ("paths", self.paths), ("urls", self.urls), ("hosts", self.hosts))


class RoutedTarget(NamedTuple):
    """A target owed to some providers because of one change (a `NamedTuple`: see above)."""

    change_id: str
    target: Target
    providers: frozenset[str] | None  # None: every configured provider
    soft: bool | None


class DecodeFailure(msgspec.Struct, frozen=True):
    """A record that could not be turned into changes; only its own source fails. `unexpected`: by an
    exception the decoder did not anticipate (`cdnpurge.core.boundary`), counted apart from malformed input."""

    source_id: str
    message: str
    unexpected: bool = False


class PurgeRequest(NamedTuple):
    """One call to one provider: a single target kind, within every declared limit of that provider.

    `change_ids` are the changes this call serves, so the outcome can be mapped back to the records.
    """

    provider: str
    kind: TargetKind
    targets: tuple[str, ...]
    soft: bool
    change_ids: frozenset[str] = frozenset()

    def describe(self) -> str:
        mode = "soft" if self.soft else "hard"
        return f"{self.provider} {self.kind.value} x{len(self.targets)} ({mode})"


class PlanFailure(msgspec.Struct, frozen=True):
    """A change whose targets a provider cannot express: reported, never silently dropped. `unexpected`:
    converting or rendering raised an exception no one anticipated (`cdnpurge.core.boundary`)."""

    provider: str
    change_ids: frozenset[str]
    message: str
    unexpected: bool = False


class Escalation(msgspec.Struct, frozen=True):
    """The planner purged more than was asked for, to need fewer requests (configured per provider).

    `kind` is what the targets became (`prefix`: paths/URLs sharing a directory, `all`: everything);
    `targets` the new targets, `replaced` how many planned targets they stand for, and `requests_before` /
    `requests_after` the provider's request count without and with it. Logged and counted, never silent.
    """

    provider: str
    kind: TargetKind
    targets: tuple[str, ...]
    replaced: int
    requests_before: int
    requests_after: int
    soft: bool = False

    def describe(self) -> str:
        return (
            f"{self.provider}: {self.replaced} targets -> {len(self.targets)} {self.kind.value} "
            f"({self.requests_before} -> {self.requests_after} requests)"
        )


class Plan(msgspec.Struct, frozen=True):
    requests: tuple[PurgeRequest, ...]
    errors: tuple[PlanFailure, ...] = ()
    escalations: tuple[Escalation, ...] = ()
