"""Items in progress (CloudFront's paths and wildcards per distribution), held in the shared meter from just
before a call until the provider says its job is done.

The life of one hold, keyed so every caller of the distribution can end it:

1. before the call: held under the call's idempotency token (`t<token>`; a retry of the same attempt
   replaces its own hold), or the call is deferred until enough is released;
2. after the call: accepted, the hold is renamed to the job the provider answered with (`j<job id>`), which
   a status poll names; refused (throttled, rejected, nothing sent), it is released at once. A call that
   timed out keeps its token's hold: the invalidation may exist, and is counted until the upper bound;
3. whoever learns that the job is complete releases it: verification's status poll, or a caller that
   found the distribution full and asked about the oldest jobs holding it (`MAX_POLLS_WHEN_FULL`);
4. a hold nobody releases expires at the provider's `in_progress_seconds` (CloudFront: 15 minutes), so a
   count is never kept for good when no one asks.

Every step is best effort: a meter that cannot be written leaves the provider's own refusal
(`TooManyInvalidationsInProgress`, a shared throttle) as the guard.
"""

from __future__ import annotations

from collections.abc import Callable

from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.models import PurgeRequest
from cdnpurge.core.protocol import Provider, PurgeResult, job_status
from cdnpurge.core.provider_errors import ProviderError, UnavailableError
from cdnpurge.runtime.meter import HOLD_KEY, Meter, MeterUnavailableError, in_progress_of, in_progress_scope

# Jobs asked about when a call finds the distribution full, the oldest first (each one status call, paced).
MAX_POLLS_WHEN_FULL = 3
_TOKEN, _JOB = "t", "j"


def _job_key(job: str) -> str | None:
    """The hold key of a provider's job id, or None when the id cannot name one (then the token's hold
    stays until its bound)."""
    key = _JOB + job
    return key if HOLD_KEY.fullmatch(key) else None


class InProgressHolds:
    """The executor's side of in-progress holds: `pace(provider, deadline)` takes the provider's token
    before a status poll (the executor's pacing, as verification's polls)."""

    def __init__(self, meter: Meter, providers: dict[str, Provider], pace: Callable[[str, Deadline], None]) -> None:
        self._meter = meter
        self._providers = providers
        self._pace = pace

    def hold(self, request: PurgeRequest, token: str, deadline: Deadline) -> float | None:
        """Hold the call's items: None when held (or the provider has no such limit, or the meter failed);
        else the seconds until enough is released at the latest (the request is deferred)."""
        spec = self._providers[request.provider].spec
        in_progress = in_progress_of(spec, request)
        if in_progress is None:
            return None
        scope, amounts, limits = in_progress
        seconds = spec.capabilities.in_progress_seconds
        try:
            wait = self._meter.hold(scope, _TOKEN + token, amounts, limits, seconds=seconds, deadline=deadline)
            if wait > 0 and self._release_finished(request.provider, scope, list(limits), deadline):
                wait = self._meter.hold(scope, _TOKEN + token, amounts, limits, seconds=seconds, deadline=deadline)
        except (MeterUnavailableError, OutOfTimeError):
            return None
        return wait if wait > 0 else None

    def settle(
        self, request: PurgeRequest, token: str, deadline: Deadline, outcome: PurgeResult | BaseException
    ) -> None:
        """After the call: rename the hold to the job (accepted), release it (refused, or nothing sent), or
        keep it to its bound (the call timed out: the job may exist)."""
        spec = self._providers[request.provider].spec
        scope = in_progress_scope(spec)
        if scope is None or isinstance(outcome, UnavailableError):
            return
        if isinstance(outcome, PurgeResult):
            renamed = _job_key(outcome.provider_id) if outcome.provider_id else None
            if renamed is None:
                return
        elif isinstance(outcome, ProviderError | OutOfTimeError):
            renamed = None
        else:
            return
        names = [limit.name for limit in spec.capabilities.in_progress]
        try:
            self._meter.release(scope, _TOKEN + token, names, deadline, renamed=renamed)
        except (MeterUnavailableError, OutOfTimeError):
            return

    def finished(self, provider: str, job: str, deadline: Deadline) -> None:
        """`job` of `provider` is complete (a status poll said so): its items are no longer in progress."""
        spec = self._providers[provider].spec
        scope, key = in_progress_scope(spec), _job_key(job)
        if scope is None or key is None:
            return
        try:
            self._meter.release(scope, key, [limit.name for limit in spec.capabilities.in_progress], deadline)
        except (MeterUnavailableError, OutOfTimeError):
            return

    def _release_finished(self, provider: str, scope: str, names: list[str], deadline: Deadline) -> bool:
        """Ask the provider about the oldest jobs holding the distribution and release those complete: True
        when any was (the hold is worth trying again)."""
        jobs = job_status(self._providers[provider])
        if jobs is None:
            return False
        released = False
        held = [key for key in self._meter.holders(scope) if key.startswith(_JOB)]
        for key in held[:MAX_POLLS_WHEN_FULL]:
            try:
                self._pace(provider, deadline)
                if not jobs.job_pending(key.removeprefix(_JOB), deadline):
                    self._meter.release(scope, key, names, deadline)
                    released = True
            except ProviderError:
                continue  # not known to be complete: kept
            except (MeterUnavailableError, OutOfTimeError):
                break  # the call is deferred as the refusal said
        return released
