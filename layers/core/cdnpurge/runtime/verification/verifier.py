"""Scheduling verification checks after a batch, and running one check.

After a batch, `plan_checks` turns every (provider, change) this invocation purged at a provider with a
`verify:` block into a check: the change's public URLs at that provider (its URL targets on allow-listed
hosts, its paths on each verify host; at most `max_urls`), when the purge was accepted, and the job ids
(CloudFront, Medianova) or ready time (Akamai `estimatedSeconds`) to wait for. Keys, tags, prefixes and
hosts are verified through the URLs the same rule names; a change with none at a provider, or a published
change (no origin object to compare with), is counted `Unverifiable` instead.

`Verifier.run` runs one check: while the provider says the job is in progress, it checks again later;
then it probes each URL, compares the version header with what the origin holds now, records the first
time each change is seen fresh (`TimeToFresh`, from the event's time), purges again what is still stale
(at most `max_repurges` times, backing off), and past `deadline_seconds` dead-letters the check with the
reason. What it learns goes to a `VerificationListener` (the purge trail) and into the batch's metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

import msgspec

from cdnpurge.core.answers import answer_number
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.events.own import MAX_SECONDS, MIN_EPOCH, ResendRefusedError, resend
from cdnpurge.core.events.verify import (
    MAX_CHANGES_PER_CHECK,
    MAX_CHECK_BYTES,
    MAX_URL_CHARS,
    CheckedChange,
    VerifyCheck,
    change_bytes,
)
from cdnpurge.core.models import Change, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan, router
from cdnpurge.core.protocol import Provider
from cdnpurge.core.spec import ProviderSettings, ProviderSpec
from cdnpurge.core.verify_settings import MAX_DELAY_SECONDS, VerifySettings
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CALL_SECONDS, MIN_CALL_SECONDS
from cdnpurge.runtime.execute import Executor, Outcome, execute_plan, request_token
from cdnpurge.runtime.verification.jobs import has_jobs, job_pending
from cdnpurge.runtime.verification.origin import OriginUnreadable, OriginVersions, same_version
from cdnpurge.runtime.verification.report import Tally, VerificationReport

if TYPE_CHECKING:
    # Built with the first check (`Verifier._prober`): probing loads the HTTP client, which a cold start whose
    # configuration names no HTTP CDN never needs, and a batch that runs no check never uses.
    from cdnpurge.runtime.verification.probe import Probe, Prober

# An edge answering these for an object the origin has: the URL does not serve it (not stale, unverifiable).
NOT_SERVED = frozenset({404, 410})
# Job ids asked about per check run: the rest are taken to be still in progress (asked next time).
MAX_JOB_POLLS = 10


class VerificationListener(Protocol):
    """Where verification reports what it learns (the purge trail implements it)."""

    def fresh(self, provider: str, change_id: str, at: float, url: str) -> None:
        """`url` was first seen serving the origin's version at `at` (epoch seconds)."""

    def stale(
        self, provider: str, change_id: str, url: str, *, served: str | None, origin: str | None, attempt: int
    ) -> None:
        """`url` still served `served` while the origin holds `origin` (None: gone), at check `attempt`."""

    def failed(self, provider: str, change_id: str, reason: str) -> None:
        """The change was still not fresh at the deadline; it is dead-lettered with `reason`."""


class SilentListener:
    """No trail: the metrics and logs are the record."""

    def fresh(self, provider: str, change_id: str, at: float, url: str) -> None:
        return None

    def stale(
        self, provider: str, change_id: str, url: str, *, served: str | None, origin: str | None, attempt: int
    ) -> None:
        return None

    def failed(self, provider: str, change_id: str, reason: str) -> None:
        return None


# -- scheduling ------------------------------------------------------------------------------------


class Purged(msgspec.Struct, frozen=True):
    """One request's acceptance, as a check needs it: which changes, and the provider's job or ETA."""

    provider: str
    change_ids: frozenset[str]
    job_id: str | None
    estimated_seconds: float | None


def purged_from(outcomes: Iterable[Outcome]) -> list[Purged]:
    return [
        Purged(
            outcome.request.provider,
            outcome.request.change_ids,
            outcome.result.provider_id,
            answer_number(outcome.result.extra.get("estimatedSeconds"), low=0.0, high=MAX_SECONDS),
        )
        for outcome in outcomes
        if outcome.result is not None
    ]


def plan_checks(
    *,
    changes: Iterable[Change],
    routed: Iterable[RoutedTarget],
    specs: Mapping[str, ProviderSpec],
    settings: Mapping[str, ProviderSettings],
    purged: Iterable[Purged],
    job_providers: frozenset[str],
    now: float,
    report: VerificationReport,
) -> list[VerifyCheck]:
    """The checks owed for what this invocation purged (changes without a URL counted unverifiable)."""
    verifying: dict[str, VerifySettings] = {name: s.verify for name, s in settings.items() if s.verify is not None}
    if not verifying:
        return []
    by_change: dict[tuple[str, str], list[Purged]] = {}
    for purge in purged:
        if purge.provider in verifying:
            for change_id in purge.change_ids:
                by_change.setdefault((purge.provider, change_id), []).append(purge)
    if not by_change:
        return []
    destinations = router(specs)
    probed = {
        name: tuple(dict.fromkeys(host.lower() for host in (verify.hosts or settings[name].hosts)))
        for name, verify in verifying.items()
    }
    targets: dict[tuple[str, str], list[Target]] = {}
    for item in routed:
        for provider in destinations(item.providers, item.target.kind):
            if (provider, item.change_id) in by_change:
                targets.setdefault((provider, item.change_id), []).append(item.target)
    known = {change.id: change for change in changes}
    pending: dict[str, list[tuple[CheckedChange, list[Purged]]]] = {}
    for (provider, change_id), purges in sorted(by_change.items(), key=lambda item: item[0]):
        change = known.get(change_id)
        mine = targets.get((provider, change_id), [])
        verify = verifying[provider]
        urls = urls_for(mine, hosts=probed[provider], limit=verify.max_urls)
        if change is None or change.bucket is None or not urls:
            report.tally(provider).unverifiable += len(mine) or 1
            continue
        # The event's own time, within what a check may carry: never before 2001 nor after the purge.
        changed_at = min(max(change.event_epoch() or now, MIN_EPOCH), now)
        checked = CheckedChange(change.id, change.action, change.bucket, change.key, changed_at, urls)
        pending.setdefault(provider, []).append((checked, purges))
    checks = []
    for provider, entries in pending.items():
        for chunk in _packed(entries):
            accepted = [a for _, each in chunk for a in each]
            jobs = tuple(sorted({a.job_id for a in accepted if a.job_id})) if provider in job_providers else ()
            etas = [a.estimated_seconds for a in accepted if a.estimated_seconds is not None]
            checks.append(
                VerifyCheck(
                    provider=provider,
                    accepted_at=now,
                    changes=tuple(checked for checked, _ in chunk),
                    jobs=jobs,
                    ready_at=now + max(etas) if etas else None,
                    # The lineage's end: the last look after the deadline (rescheduling always ends).
                    expires_at=now + verifying[provider].deadline_seconds + MAX_DELAY_SECONDS,
                )
            )
            report.tally(provider).checks_scheduled += 1
    return checks


def _packed(
    entries: list[tuple[CheckedChange, list[Purged]]],
) -> list[list[tuple[CheckedChange, list[Purged]]]]:
    """Changes to check, grouped into messages of at most MAX_CHANGES_PER_CHECK and MAX_CHECK_BYTES."""
    groups: list[list[tuple[CheckedChange, list[Purged]]]] = []
    size = 0
    for entry in entries:
        grows = change_bytes(entry[0])
        if not groups or len(groups[-1]) == MAX_CHANGES_PER_CHECK or size + grows > MAX_CHECK_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += grows
    return groups


def urls_for(targets: list[Target], *, hosts: tuple[str, ...], limit: int) -> tuple[str, ...]:
    """The public URLs that show a change at a provider: URL targets on the allow-listed `hosts` (lower-case,
    distinct), paths on each, in target order; none longer than a check carries. Called once per change in a
    storm: kept lean."""
    allowed = hosts
    urls: list[str] = []
    for target in sorted(targets) if len(targets) > 1 else targets:
        if target.kind is TargetKind.URL:
            host = target.value.split("/", 3)[2].lower() if target.value.count("/") >= 2 else ""
            if host in allowed:
                urls.append(target.value)
        elif target.kind is TargetKind.PATH:
            urls.extend(f"https://{host}{target.value}" for host in allowed)
    if any(len(url) > MAX_URL_CHARS for url in urls):
        urls = [url for url in urls if len(url) <= MAX_URL_CHARS]
    return tuple(dict.fromkeys(urls) if len(urls) > 1 else urls)[:limit]


def first_delay(check: VerifyCheck, settings: VerifySettings) -> int:
    """When to run a new check: after Akamai's estimate, else one interval."""
    wait = settings.interval_seconds
    if check.ready_at is not None:
        wait = max(wait, math.ceil(check.ready_at - check.accepted_at))
    return min(wait, MAX_DELAY_SECONDS)


# -- running a check ---------------------------------------------------------------------------------

Schedule = Callable[[VerifyCheck, int], None]  # enqueue a check with a delay (seconds)


class Pacer(msgspec.Struct, frozen=True):
    """Calls to a provider outside the executor (job-status polls), paced by its token bucket."""

    executor: Executor
    provider: str
    deadline: Deadline

    def next_call(self) -> Deadline:
        """Wait for the provider's next token (`OutOfTimeError` past the deadline); the deadline to call by."""
        if self.provider in self.executor.buckets:
            self.executor.pace(self.provider, self.deadline)
        return self.deadline

    def finished(self, job: str) -> None:
        """The provider said `job` is complete: its items in progress are released for every caller."""
        if self.executor.holds is not None and self.provider in self.executor.providers:
            self.executor.holds.finished(self.provider, job, self.deadline)


DeadLetter = Callable[[VerifyCheck, tuple[str, ...]], None]  # send a failed check with its reasons


class Verifier(msgspec.Struct):
    """Runs checks: everything a check touches is injected (clock, probers, origin, purging, queues)."""

    settings: Mapping[str, ProviderSettings]
    providers: Mapping[str, Provider]
    specs: Mapping[str, ProviderSpec]
    executor: Executor
    origin: OriginVersions
    schedule: Schedule
    dead_letter: DeadLetter
    clock: Callable[[], float]  # epoch seconds
    listener: VerificationListener = msgspec.field(default_factory=SilentListener)
    prober_factory: Callable[[VerifySettings, frozenset[str]], Prober] | None = None
    _probers: dict[str, Prober] = msgspec.field(default_factory=dict)

    def run(self, check: VerifyCheck, report: VerificationReport, *, deadline: Deadline) -> None:
        """One check, every call of it (job status, origin, probes, purges) ending before `deadline`; what
        it leaves unprobed waits for the next run of the check."""
        provider_settings = self.settings.get(check.provider)
        verify = None if provider_settings is None else provider_settings.verify
        if provider_settings is None or verify is None:
            report.tally(check.provider).unverifiable += len(check.changes)
            return  # verification turned off since the check was scheduled
        now = self.clock()
        elapsed = now - check.accepted_at
        tally = report.tally(check.provider)
        if elapsed < verify.deadline_seconds and self._put_back_while_pending(check, verify, now, report, deadline):
            return
        prober = self._prober(check.provider, verify, provider_settings.hosts)
        remaining: list[CheckedChange] = []
        stale_urls: list[tuple[str, str]] = []  # (change id, url)
        reasons: dict[str, str] = {}
        for change in check.changes:
            if deadline.expired():
                remaining.append(change)
                continue
            looked, stale, reason = self._check_change(check, change, verify, prober, tally, deadline=deadline)
            if not looked.urls:  # every URL answered "not here": nothing showed the version (unverifiable)
                continue
            if len(looked.fresh) == len(looked.urls):
                seconds = max(0.0, self.clock() - change.changed_at)
                tally.time_to_fresh.append(seconds)
                tally.seen_fresh.append((change.id, seconds, looked.urls))
                continue
            remaining.append(looked)
            stale_urls.extend((change.id, url) for url in stale)
            reasons[change.id] = reason
        if not remaining:
            return
        now = self.clock()
        if now - check.accepted_at >= verify.deadline_seconds:
            self._give_up(check, remaining, reasons, report)
            return
        repurged, jobs = False, tuple[str, ...]()
        if stale_urls and check.repurges < verify.max_repurges:
            accepted, jobs = self._purge_again(check, stale_urls, deadline)
            tally.repurged += accepted
            repurged = True
        following = check.next(tuple(remaining), repurged=repurged, jobs=jobs)
        self._reschedule(following, self._delay(check, verify, now), report, reasons)

    def _put_back_while_pending(
        self, check: VerifyCheck, verify: VerifySettings, now: float, report: VerificationReport, deadline: Deadline
    ) -> bool:
        """Check again later, probing nothing, while Akamai's estimate has not passed or a job is in progress."""
        tally = report.tally(check.provider)
        if check.ready_at is not None and now < check.ready_at:
            tally.waiting += 1
            self._reschedule(check, min(MAX_DELAY_SECONDS, max(1, math.ceil(check.ready_at - now))), report, {})
            return True
        provider = self.providers.get(check.provider)
        still = () if provider is None else _pending_jobs(provider, check.jobs, self._pacer(check.provider, deadline))
        if not still:
            return False
        tally.waiting += 1
        # Every interval, not backing off: a job's end is news worth seeing within one interval.
        until_deadline = math.ceil(check.accepted_at + verify.deadline_seconds - now)
        delay = max(1, min(verify.interval_seconds, until_deadline))
        self._reschedule(check.next(check.changes, repurged=False, jobs=still), delay, report, {})
        return True

    def _give_up(
        self, check: VerifyCheck, remaining: list[CheckedChange], reasons: Mapping[str, str], report: VerificationReport
    ) -> None:
        """Past the deadline: what was seen stale (or never answered) is dead-lettered with its reason; what the
        time budget left unprobed gets one more look."""
        failed = tuple(c for c in remaining if c.id in reasons)
        for change in failed:
            self.listener.failed(check.provider, change.id, reasons[change.id])
        report.tally(check.provider).failed += len(failed)
        if failed:
            report.failures.extend(reasons[c.id] for c in failed)
            self.dead_letter(check.next(failed, repurged=False, jobs=()), tuple(reasons[c.id] for c in failed))
        unprobed = tuple(c for c in remaining if c.id not in reasons)
        if unprobed:
            self._reschedule(check.next(unprobed, repurged=False, jobs=()), 1, report, {})

    def _reschedule(
        self, check: VerifyCheck, delay: int, report: VerificationReport, reasons: Mapping[str, str]
    ) -> None:
        """Enqueue `check` again after `delay` seconds, one more send of its lineage (`resend`); past the
        lineage's send cap or end time, its changes are dead-lettered with the reason instead, so no check
        is rescheduled forever."""
        try:
            following = resend(check, now=self.clock(), delay_seconds=delay)
        except ResendRefusedError as exc:
            ended = f"verification ended: {exc.message}"
            why = {c.id: f"{reasons[c.id]}; {ended}" if c.id in reasons else ended for c in check.changes}
            for change in check.changes:
                self.listener.failed(check.provider, change.id, why[change.id])
            report.tally(check.provider).failed += len(check.changes)
            report.failures.extend(why.values())
            self.dead_letter(check, tuple(why.values()))
            return
        self.schedule(following, delay)

    def _check_change(
        self,
        check: VerifyCheck,
        change: CheckedChange,
        verify: VerifySettings,
        prober: Prober,
        tally: Tally,
        *,
        deadline: Deadline,
    ) -> tuple[CheckedChange, list[str], str]:
        """Probe a change's URLs not yet seen fresh, while the deadline leaves time: the change as now known
        (URLs that do not serve the object at all dropped, those seen fresh in `fresh`), its stale URLs, and
        why it is not fresh yet (empty when time ran out before anything was seen: looked at next time)."""
        try:
            if change.bucket is None or change.key is None:
                origin = None
            else:
                with bounded_call(deadline, CALL_SECONDS, what="reading the origin's version", need=MIN_CALL_SECONDS):
                    origin = self.origin.current(change.bucket, change.key, verify.version_header)
        except OriginUnreadable as exc:
            return change, [], f"origin unreadable for {change.id}: {exc}"
        except OutOfTimeError:
            return change, [], ""
        fresh = list(change.fresh)
        stale: list[str] = []
        unserved: list[str] = []
        reason = ""
        elapsed = round(self.clock() - check.accepted_at)
        for url in change.urls:
            if url in change.fresh:
                continue
            try:
                probe = prober.probe(url, deadline)
            except OutOfTimeError:  # the rest of the change's URLs are probed next time
                break
            tally.probes += 1
            if _is_fresh(probe, origin):
                fresh.append(url)
                self.listener.fresh(check.provider, change.id, self.clock(), url)
                continue
            if origin is not None and probe.status in NOT_SERVED:
                # The object exists but this URL is not one the edge serves it at (a rule's alias path the
                # origin has no object for): it cannot show the version, so it is not verified.
                unserved.append(url)
                tally.unverifiable += 1
                continue
            if probe.error is None and (probe.status or 0) < 500:
                stale.append(url)
                tally.stale += 1
                tally.seen_stale.append((change.id, url, _served(probe), origin))
                self.listener.stale(
                    check.provider, change.id, url, served=_served(probe), origin=origin, attempt=check.attempt + 1
                )
            reason = reason or _reason(url, probe, origin, verify.version_header, elapsed)
        urls = tuple(url for url in change.urls if url not in unserved)
        looked = CheckedChange(
            change.id, change.action, change.bucket, change.key, change.changed_at, urls, tuple(fresh)
        )
        return looked, stale, reason

    def _purge_again(
        self, check: VerifyCheck, stale: list[tuple[str, str]], deadline: Deadline
    ) -> tuple[int, tuple[str, ...]]:
        """Purge the stale URLs once more through the planner and executor (paced, retried, before
        `deadline`): the URLs accepted, and the provider's job ids for them (the next check waits for those
        jobs, as for the first purge's, before it probes again).

        Each re-purge is an attempt of its own (`verify-<n>`, n counting this check's re-purges): CloudFront
        would answer a repeated `CallerReference` with the first invalidation and invalidate nothing, while
        a redelivered check message (the same n) must not create a second one."""
        provider = check.provider
        generation = f"verify-{check.repurges + 1}"
        routed = [
            RoutedTarget(change_id, Target(TargetKind.URL, url), frozenset({provider}), None)
            for change_id, url in stale
        ]
        requests = plan(routed, {provider: self.specs[provider]}).requests
        outcomes = execute_plan(
            requests,
            self.executor,
            deadline,
            lambda _outcome: None,
            token_for=lambda request: request_token(request, dict.fromkeys(request.change_ids, generation)),
        )
        accepted = [o for o in outcomes if o.ok and o.result is not None]
        provider_jobs = has_jobs(self.providers[provider]) if provider in self.providers else False
        jobs = tuple(o.result.provider_id for o in accepted if provider_jobs and o.result and o.result.provider_id)
        return sum(len(o.request.targets) for o in accepted), jobs

    def _delay(self, check: VerifyCheck, verify: VerifySettings, now: float) -> int:
        """Back off: interval x 2^attempt, never past the deadline's last look (nor SQS's 15 minutes)."""
        backoff = verify.interval_seconds * 2 ** min(check.attempt, 10)
        until_deadline = check.accepted_at + verify.deadline_seconds - now
        return int(max(1, min(backoff, MAX_DELAY_SECONDS, math.ceil(until_deadline))))

    def _pacer(self, provider: str, deadline: Deadline) -> Pacer:
        return Pacer(self.executor, provider, deadline)

    def _prober(self, provider: str, verify: VerifySettings, provider_hosts: tuple[str, ...]) -> Prober:
        prober = self._probers.get(provider)
        if prober is None:
            hosts = frozenset(host.lower() for host in (verify.hosts or provider_hosts))
            if self.prober_factory is not None:
                prober = self.prober_factory(verify, hosts)
            else:
                from cdnpurge.runtime.verification.probe import Prober

                prober = Prober(
                    hosts=hosts,
                    version_header=verify.version_header,
                    timeout_seconds=verify.timeout_seconds,
                    probe_endpoint=verify.probe_endpoint,
                )
            self._probers[provider] = prober
        return prober

    def close(self) -> None:
        for prober in self._probers.values():
            prober.close()
        self._probers.clear()


def _pending_jobs(provider: Provider, jobs: tuple[str, ...], pacer: Pacer) -> tuple[str, ...]:
    """The jobs still in progress, each asked once, paced at the provider's rate, before the pacer's
    deadline; those not asked (past `MAX_JOB_POLLS`, or out of time) are taken to be still in progress and
    asked next time."""
    pending: list[str] = []
    for number, job in enumerate(jobs):
        if number >= MAX_JOB_POLLS:
            pending.extend(jobs[number:])
            break
        try:
            if job_pending(provider, job, pacer.next_call(), done=pacer.finished):
                pending.append(job)
        except OutOfTimeError:
            pending.extend(jobs[number:])
            break
    return tuple(pending)


def _is_fresh(probe: Probe, origin: str | None) -> bool:
    if probe.error is not None or probe.status is None:
        return False
    if origin is None:
        return probe.status in (404, 410)
    return probe.status < 400 and same_version(probe.version, origin)


def _served(probe: Probe) -> str | None:
    return probe.version if probe.status is not None and probe.status < 400 else f"HTTP {probe.status}"


def _reason(url: str, probe: Probe, origin: str | None, header: str, elapsed: int) -> str:
    if probe.error is not None:
        return f"no answer from {url} after {elapsed} s: {probe.error}"
    held = "gone" if origin is None else origin
    return f"still stale at {url} after {elapsed} s: {header} {_served(probe)}, origin {held}"
