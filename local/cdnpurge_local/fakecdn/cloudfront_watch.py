"""CloudFront invalidations made on moto, seen by the fake edge: polled, then applied after a delay.

The local stack's CloudFront is moto server, a separate process: it cannot call the edge back, it
cannot read the edge's injected clock, and it reports every invalidation `Completed` the moment it
is created. So the edge asks instead: before each request it lists the distribution's invalidations
(`list_invalidations`, every page), reads the paths of each new one (`get_invalidation`), and schedules
them to take effect `completion_delay` seconds after it first saw them. Polling moto keeps the
CloudFront adapter untouched (it talks to real moto, as in production it talks to AWS) and sees every
invalidation whoever made it. What moto cannot model, an invalidation in progress, the watcher reports
itself: `get_invalidation()` answers in boto3's shape with `InProgress` until the delay has passed on
the edge's clock, then `Completed`, so what a caller is told and what the edge serves agree.

For the same reason moto never refuses an invalidation for the distribution's limits in progress (3,000
paths, tag items included, and 15 wildcard paths; over either, CloudFront answers HTTP 400
`TooManyInvalidationsInProgress`): `WatchedCloudFront.create_invalidation` refuses, as CloudFront does,
a batch that would pass either limit beside the invalidations still in progress on the edge's clock. A
batch repeating an earlier `CallerReference` is not refused: CloudFront answers it with the invalidation
it created the first time.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from cdnpurge_local.fakecdn.edge import Edge
from cdnpurge_local.fakecdn.targets import scopes

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

PAGE_SIZE = 100
# CloudFront's limits per distribution, in progress at once (Developer Guide, "Concurrent invalidation
# request maximum"): paths (tag items count as paths) and wildcard paths.
MAX_PATHS_IN_PROGRESS = 3000
MAX_WILDCARDS_IN_PROGRESS = 15
TOO_MANY = "TooManyInvalidationsInProgress"


def items_in_progress(paths: list[str]) -> tuple[int, int]:
    """(paths, wildcard paths) a batch counts against the limits in progress."""
    wildcards = sum(1 for path in paths if path.endswith("*"))
    return len(paths) - wildcards, wildcards


class UnknownInvalidationError(LookupError):
    """Asked about an invalidation the watcher has not seen on the distribution."""


class CloudFrontWatcher:
    """Feeds a distribution's invalidations (moto) to `edge`; attach with `watch(edge)`."""

    def __init__(self, cloudfront: CloudFrontClient, distribution_id: str, *, completion_delay: float = 0.0) -> None:
        self._cloudfront = cloudfront
        self.distribution_id = distribution_id
        self.completion_delay = completion_delay
        self._edge: Edge | None = None
        self._done_at: dict[str, float] = {}  # invalidation id -> when it takes effect on the edge clock
        self._items: dict[str, tuple[int, int]] = {}  # invalidation id -> (paths, wildcards)
        self._references: set[str] = set()  # CallerReferences seen
        self.refused = 0  # invalidations refused with TooManyInvalidationsInProgress
        self._creating = threading.Lock()  # one creation at a time: the limit is checked and taken at once
        self.most_in_progress = (0, 0)  # the most (paths, wildcards) ever in progress at once
        self._lock = threading.Lock()

    def watch(self, edge: Edge) -> None:
        """Start feeding `edge`; invalidations that exist already count as seen now."""
        if edge.provider != "cloudfront":
            raise ValueError(f"a CloudFront watcher feeds a cloudfront edge, not {edge.provider!r}")
        self._edge = edge
        edge.add_poller(self.poll)

    def poll(self) -> None:
        """Schedule on the edge every invalidation not seen before."""
        edge = self._edge
        if edge is None:
            raise RuntimeError("the watcher feeds no edge: call watch(edge) first")
        with self._lock:
            for invalidation_id in self._list_ids():
                if invalidation_id in self._done_at:
                    continue
                batch = self._cloudfront.get_invalidation(DistributionId=self.distribution_id, Id=invalidation_id)
                paths = batch["Invalidation"]["InvalidationBatch"]["Paths"].get("Items", [])
                purge = edge.accept(scopes("cloudfront", [f"path:{path}" for path in paths]), self.completion_delay)
                self._done_at[invalidation_id] = purge.takes_effect_at
                self._items[invalidation_id] = items_in_progress(paths)
                self._references.add(batch["Invalidation"]["InvalidationBatch"]["CallerReference"])
            now = edge.clock()
            live = [items for key, items in self._items.items() if self._done_at[key] > now]
            held = (sum(paths for paths, _ in live), sum(wildcards for _, wildcards in live))
            self.most_in_progress = (max(self.most_in_progress[0], held[0]), max(self.most_in_progress[1], held[1]))

    def in_progress(self) -> tuple[int, int]:
        """(paths, wildcards) of the invalidations in progress now, on the edge's clock."""
        edge = self._edge
        if edge is None:
            raise RuntimeError("the watcher feeds no edge: call watch(edge) first")
        self.poll()
        with self._lock:
            now = edge.clock()
            live = [items for key, items in self._items.items() if self._done_at[key] > now]
        return sum(paths for paths, _ in live), sum(wildcards for _, wildcards in live)

    def create_invalidation(self, cloudfront: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """moto's CreateInvalidation on the watched distribution, refused first (`admit`) as CloudFront would."""
        with self._creating:
            self.admit(list(batch.get("Paths", {}).get("Items", [])), str(batch.get("CallerReference", "")))
            answer: dict[str, Any] = cloudfront.create_invalidation(
                DistributionId=self.distribution_id, InvalidationBatch=batch
            )
            self.poll()
        return answer

    def admit(self, paths: list[str], caller_reference: str) -> None:
        """Refuse, as CloudFront does, a new batch that would pass a limit in progress (ClientError, 400)."""
        with self._lock:
            repeated = caller_reference in self._references
        if repeated:
            return
        held_paths, held_wildcards = self.in_progress()
        new_paths, new_wildcards = items_in_progress(paths)
        if held_paths + new_paths > MAX_PATHS_IN_PROGRESS or held_wildcards + new_wildcards > MAX_WILDCARDS_IN_PROGRESS:
            with self._lock:
                self.refused += 1
            message = (
                f"Your request contains too many invalidations in progress: {held_paths} paths and "
                f"{held_wildcards} wildcard paths on {self.distribution_id}"
            )
            answer: Any = {"Error": {"Code": TOO_MANY, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            raise ClientError(answer, "CreateInvalidation")

    def _list_ids(self) -> list[str]:
        ids: list[str] = []
        paginator = self._cloudfront.get_paginator("list_invalidations")
        for page in paginator.paginate(DistributionId=self.distribution_id, PaginationConfig={"PageSize": PAGE_SIZE}):
            ids.extend(item["Id"] for item in page["InvalidationList"].get("Items", []))
        return ids

    def get_invalidation(self, invalidation_id: str) -> dict[str, Any]:
        """boto3's `get_invalidation` answer with the status the edge lives by (`InProgress`/`Completed`)."""
        edge = self._edge
        if edge is None:
            raise RuntimeError("the watcher feeds no edge: call watch(edge) first")
        self.poll()
        with self._lock:
            done_at = self._done_at.get(invalidation_id)
        if done_at is None:
            raise UnknownInvalidationError(f"no invalidation {invalidation_id!r} on {self.distribution_id}")
        answer: dict[str, Any] = dict(
            self._cloudfront.get_invalidation(DistributionId=self.distribution_id, Id=invalidation_id)
        )
        answer.pop("ResponseMetadata", None)
        status = "Completed" if done_at <= edge.clock() else "InProgress"
        answer["Invalidation"] = {**answer["Invalidation"], "Status": status}
        return answer


class WatchedCloudFront:
    """A CloudFront client for the adapter under test: moto for everything, except that `get_invalidation`
    answers as the watcher does (`InProgress` until the edge applies it), which moto alone cannot."""

    def __init__(self, cloudfront: CloudFrontClient, watcher: CloudFrontWatcher) -> None:
        self._cloudfront = cloudfront
        self._watcher = watcher

    def get_invalidation(self, *, DistributionId: str, Id: str) -> dict[str, Any]:
        if DistributionId != self._watcher.distribution_id:
            raise UnknownInvalidationError(f"not watching distribution {DistributionId!r}")
        return self._watcher.get_invalidation(Id)

    def create_invalidation(self, *, DistributionId: str, InvalidationBatch: dict[str, Any]) -> dict[str, Any]:
        """moto's CreateInvalidation, refused first where CloudFront's limits in progress would be passed."""
        if DistributionId == self._watcher.distribution_id:
            return self._watcher.create_invalidation(self._cloudfront, InvalidationBatch)
        cloudfront: Any = self._cloudfront
        answer: dict[str, Any] = cloudfront.create_invalidation(
            DistributionId=DistributionId, InvalidationBatch=InvalidationBatch
        )
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cloudfront, name)
