"""A provider's own word on its purge jobs, where an API gives one; elsewhere the edge is the only witness.

Providers that report a job's progress implement `cdnpurge.core.protocol.JobStatus` (CloudFront:
`get_invalidation`, `InProgress` until every edge dropped the paths; Medianova: the job listing filtered by
`opID`). Akamai v3 has no status API: its `estimatedSeconds` is carried in the check as `ready_at`. An error
asking counts as "not known to be pending": the probe decides.
"""

from __future__ import annotations

from collections.abc import Callable

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.protocol import Provider, job_status
from cdnpurge.core.provider_errors import ProviderError


def has_jobs(provider: Provider) -> bool:
    """Whether the provider reports job progress `job_pending` can ask about."""
    return job_status(provider) is not None


def job_pending(
    provider: Provider, job_id: str, deadline: Deadline, *, done: Callable[[str], None] | None = None
) -> bool:
    """True while the provider says the job is still in progress; the call ends before `deadline` (one that
    cannot start raises `OutOfTimeError`: the caller stops asking). `done(job_id)` is told when the provider
    said the job is complete (not when it could not say): its items in progress are released."""
    jobs = job_status(provider)
    if jobs is None:
        return False
    try:
        pending = jobs.job_pending(job_id, deadline)
    except ProviderError:
        return False
    if not pending and done is not None:
        done(job_id)
    return pending
