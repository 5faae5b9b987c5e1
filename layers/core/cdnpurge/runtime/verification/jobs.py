"""A provider's own word on its purge jobs, where an API gives one; elsewhere the edge is the only witness.

CloudFront: `get_invalidation` (`InProgress` until every edge dropped the paths). Medianova: the job listing
filtered by `opID` (`pending` until done). Akamai v3 has no status API: its `estimatedSeconds` is carried
in the check as `ready_at`. Any other answer, or an error asking, counts as "not known to be pending": the
probe decides.
"""

from __future__ import annotations

from typing import Final

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.protocol import Provider, ProviderWrapper
from cdnpurge.core.provider_errors import ProviderError
from cdnpurge.runtime.providers.cloudfront import CloudFrontProvider, InvalidationStatus
from cdnpurge.runtime.providers.medianova import MedianovaProvider

MEDIANOVA_PENDING: Final = frozenset({"pending", "processing", "in_progress", "inprogress", "queued", "running"})


def has_jobs(provider: Provider) -> bool:
    """Whether the provider reports job progress `job_pending` can ask about."""
    return isinstance(_unwrapped(provider), CloudFrontProvider | MedianovaProvider)


def job_pending(provider: Provider, job_id: str, deadline: Deadline) -> bool:
    """True while the provider says the job is still in progress; the call ends before `deadline` (one that
    cannot start raises `OutOfTimeError`: the caller stops asking)."""
    inner = _unwrapped(provider)
    try:
        if isinstance(inner, CloudFrontProvider):
            return inner.status(job_id, deadline=deadline) is InvalidationStatus.IN_PROGRESS
        if isinstance(inner, MedianovaProvider):
            listing = inner.job_status(page=1, limit=1, op_id=job_id, deadline=deadline)
            jobs = listing.get("data")
            if isinstance(jobs, list) and jobs and isinstance(jobs[0], dict):
                return str(jobs[0].get("status", "")).lower() in MEDIANOVA_PENDING
    except ProviderError:
        return False
    return False


def _unwrapped(provider: Provider) -> Provider:
    while isinstance(provider, ProviderWrapper):
        provider = provider.inner
    return provider
