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
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from cdnpurge_local.fakecdn.edge import Edge
from cdnpurge_local.fakecdn.targets import scopes

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

PAGE_SIZE = 100


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

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cloudfront, name)
