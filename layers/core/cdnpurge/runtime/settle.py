"""claim and settle: the pipeline's side of the ledger (`cdnpurge.runtime.ledger` is the store itself).

`claim` asks the ledger for every (provider, change) a batch owes; whatever the store could not answer is
UNAVAILABLE and is never purged blindly. `Settlement` then marks each claimed pair complete as soon as
every request serving it succeeded (within `COMPLETION_LINGER_SECONDS`), and releases the rest at the end,
so a Lambda killed mid-batch leaves only the pairs still in flight, or just purged, to be purged again on
redelivery. Ledger failures become `LedgerFailure` records (logged, counted), never exceptions: a purge
that happened stays acknowledged even if it could not be recorded.

Settling fits inside the invocation: every ledger operation (claiming, each completion write, the release)
is one bounded call (`cdnpurge.runtime.bounded.bounded_call`) that ends by `settle_by`, so no call and no
back-off runs past it, however slowly the table answers. What is not written then is reported like any
store failure: a completion not recorded lets a redelivery purge again
(harmless), and a claim not released expires at this invocation's deadline (its `in_progress_expiration`),
after which the redelivered record claims it again.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import msgspec

from cdnpurge.core.deadline import Deadline
from cdnpurge.core.errors import describe_error
from cdnpurge.core.models import Plan, PurgeRequest
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.bounded.aws import CONNECT_SECONDS
from cdnpurge.runtime.execute import Outcome
from cdnpurge.runtime.ledger import (
    BATCH_WRITE_ITEMS,
    Attempt,
    Claim,
    Ledger,
    LedgerOperation,
    LedgerUnavailableError,
    Pair,
)
from cdnpurge.runtime.progress import advanced, purged_digests, records_progress

PURGED: dict[str, Any] = {"purged": True}  # the result stored with a completed (provider, change)
# How long the completion writer waits for a full BatchWriteItem before writing fewer records.
COMPLETION_LINGER_SECONDS = 0.1
# The longest one ledger operation (a claim of the whole batch, a completion write, the release) may take,
# when the deadline leaves more: a few rounds of parallel calls and their back-offs.
LEDGER_OPERATION_SECONDS = 10.0


class LedgerFailure(msgspec.Struct, frozen=True):
    """One ledger operation that failed for some pairs (see `LedgerUnavailableError`): data for the
    report, logs and metrics, not an exception."""

    operation: LedgerOperation
    pairs: tuple[Pair, ...]
    cause: str


def claim(
    ledger: Ledger, pairs: list[Pair], remaining_ms: int | None, *, deadline: Deadline | None = None
) -> tuple[dict[Pair, Claim], tuple[LedgerFailure, ...]]:
    """Claim every owed pair, ending before `deadline` (None: within `LEDGER_OPERATION_SECONDS`); whatever
    the store could not answer (in time) is UNAVAILABLE, never purged blindly."""
    if not pairs:
        return {}, ()
    try:
        with _ledger_call(deadline, "claiming"):
            return ledger.claim(pairs, remaining_ms), ()
    except Exception as exc:  # what the store did not answer (all of it, if unmapped) stays UNAVAILABLE
        answered = exc.claims if isinstance(exc, LedgerUnavailableError) else {}
        failure = _ledger_failure(LedgerOperation.CLAIM, pairs, exc)
    claims = {pair: answered.get(pair, Claim.UNAVAILABLE) for pair in pairs}
    return claims, (failure,)


def _ledger_call(deadline: Deadline | None, what: str) -> AbstractContextManager[Deadline]:
    """One ledger operation as one bounded call: within `LEDGER_OPERATION_SECONDS`, before `deadline`."""
    until = deadline or Deadline.after(LEDGER_OPERATION_SECONDS)
    # Only a connection's time is needed to start: the release comes right after the provider calls stop,
    # with little more than `AWS_CALL_SECONDS` before `settle_by`, and a claim not released stays busy until
    # the invocation's deadline (its redeliveries find it held by this invocation meanwhile).
    return bounded_call(until, LEDGER_OPERATION_SECONDS, what=f"idempotency store: {what}", need=CONNECT_SECONDS)


def _ledger_failure(operation: LedgerOperation, pairs: Iterable[Pair], error: Exception) -> LedgerFailure:
    """The pairs an operation could not record: those the ledger names, else all it was given."""
    if isinstance(error, LedgerUnavailableError):
        return LedgerFailure(operation, error.pairs, error.cause)
    return LedgerFailure(operation, tuple(pairs), describe_error(error))


class Settlement:
    """Marks each claimed pair complete as soon as every request serving it succeeded; releases the rest.

    A pair named by a plan error, or served by any failed or deferred request, is released at the end so
    that a retry may claim it again. Ledger failures are collected, never raised: a purge that happened
    stays acknowledged even if it could not be recorded.

    Completions are written beside the provider calls by one writer thread, so marking never delays a
    purge. The writer lingers briefly for a full `BatchWriteItem`, and whatever completes while a write
    is in flight goes into the next one, so a storm of one-target requests (Fastly URLs) is recorded 25
    records a call, not one round trip per purge.
    """

    def __init__(
        self,
        claimed: set[Pair],
        the_plan: Plan,
        ledger: Ledger,
        *,
        settle_by: Deadline | None = None,
        attempts: Mapping[Pair, Attempt] | None = None,
    ) -> None:
        """`settle_by`: every ledger call ends before it (None: each operation within
        `LEDGER_OPERATION_SECONDS`)."""
        self._claimed = claimed
        self._attempts = dict(attempts or {})
        self._purged: dict[Pair, list[PurgeRequest]] = defaultdict(list)  # accepted requests per unfinished pair
        self._unparked: set[Pair] = set()  # pairs whose release (and so their progress) was not written
        self._ledger = ledger
        self._settle_by = settle_by
        self._waiting: Counter[Pair] = Counter(
            pair
            for request in the_plan.requests
            for pair in ((request.provider, change) for change in request.change_ids)
            if pair in claimed
        )
        self._failed = {(e.provider, c) for e in the_plan.errors for c in e.change_ids} & claimed
        self._completed: set[Pair] = set()
        self._unwritten: list[Pair] = []  # completed, not yet handed to the ledger
        self._closing = False
        self._write_failures: list[LedgerFailure] = []
        self._changed = threading.Condition()
        self._writer = threading.Thread(target=self._write_completions, name="ledger-complete", daemon=True)
        self._writer.start()
        # Pairs whose attempt purged every target on earlier receives (`progress.skip_done` left nothing to send)
        nothing_left = sorted(
            pair
            for pair in claimed - set(self._waiting) - self._failed
            if pair in self._attempts and self._attempts[pair].done
        )
        if nothing_left:
            with self._changed:
                self._completed.update(nothing_left)
                self._unwritten.extend(nothing_left)
                self._changed.notify()

    def record(self, outcome: Outcome) -> None:
        provider = outcome.request.provider
        pairs = [(provider, change) for change in outcome.request.change_ids if (provider, change) in self._claimed]
        with self._changed:
            if not outcome.ok:
                self._failed.update(pairs)
                return
            ready = []
            for pair in pairs:
                self._waiting[pair] -= 1
                if self._waiting[pair] == 0 and pair not in self._failed:
                    ready.append(pair)
                elif pair in self._attempts:
                    self._purged[pair].append(outcome.request)
            self._completed.update(ready)
            if ready:
                self._unwritten.extend(ready)
                self._changed.notify()

    def _write_completions(self) -> None:
        while True:
            with self._changed:
                while not self._unwritten and not self._closing:
                    self._changed.wait()
                self._changed.wait_for(
                    lambda: self._closing or len(self._unwritten) >= BATCH_WRITE_ITEMS,
                    timeout=COMPLETION_LINGER_SECONDS,
                )
                batch, self._unwritten = self._unwritten, []
            if not batch:
                return  # closing, and everything is written
            try:
                with _ledger_call(self._settle_by, "recording completions"):
                    self._ledger.complete(batch, PURGED)
            except Exception as exc:  # collected, never raised: see the class docstring
                self._write_failures.append(_ledger_failure(LedgerOperation.COMPLETE, batch, exc))

    def finish(self) -> tuple[set[Pair], list[LedgerFailure]]:
        failures = self._wait_for_writes()
        # Anything claimed and neither completed nor failed (cannot happen with a consistent plan) is
        # released too: better purged again than never.
        release = self._claimed - self._completed
        failures.extend(self._release(release))
        return set(self._completed), failures

    @property
    def advanced(self) -> set[Pair]:
        """Pairs this batch completed or moved forward durably: some of their targets purged *and recorded* in
        the attempt it parked. A purge not recorded (the attempt's record is full, or parking it failed) is no
        progress: the next receive would purge the same targets again, and a record continued for it would
        circle for ever (`cdnpurge.runtime.continuation` continues only what advanced)."""
        with self._changed:
            recorded = {
                pair
                for pair, purged in self._purged.items()
                if pair in self._attempts
                and pair not in self._unparked
                and records_progress(self._attempts[pair], purged_digests(purged))
            }
            return set(self._completed) | recorded

    def _parked(self, pairs: Iterable[Pair]) -> dict[Pair, Attempt]:
        """The attempt of each released pair we know one of, with what this batch purged for it."""
        with self._changed:
            return {
                pair: advanced(self._attempts[pair], purged_digests(self._purged.get(pair, ())))
                for pair in pairs
                if pair in self._attempts
            }

    def abandon(self) -> None:
        """The batch is dying (an unexpected error): release what is not done, best effort."""
        self._wait_for_writes()
        self._release(self._claimed - self._completed)

    def _wait_for_writes(self) -> list[LedgerFailure]:
        """Wait for every completion write; their failures become one `LedgerFailure` (one log line)."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._writer.join()
        failures = self._write_failures
        if not failures:
            return []
        pairs = sorted(pair for failure in failures for pair in failure.pairs)
        return [LedgerFailure(LedgerOperation.COMPLETE, tuple(pairs), failures[0].cause)]

    def _release(self, pairs: Iterable[Pair]) -> list[LedgerFailure]:
        pairs = sorted(pairs)
        if not pairs:
            return []
        try:
            with _ledger_call(self._settle_by, "releasing claims"):
                self._ledger.release(pairs, RuntimeError("purge not completed"), self._parked(pairs))
        except Exception as exc:  # collected, never raised: see the class docstring
            with self._changed:
                self._unparked.update(pairs)
            return [_ledger_failure(LedgerOperation.RELEASE, pairs, exc)]
        return []
