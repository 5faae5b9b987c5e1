"""One deadline, one budget: the value every wait and every I/O call of an invocation takes.

A Lambda invocation ends at a fixed instant; everything it does (provider calls, DynamoDB and SQS writes,
probes at the edge, polling, sleeps between retries) must fit before that instant minus a margin to answer.
Passing a bare float around let each new stage forget to check it. A `Deadline` is the only way to ask for
time: `budget(cap)` gives the seconds one call may take (the smaller of its own cap and the time left) or
refuses with `OutOfTimeError` when the call could not end in time, and `sleep` refuses a wait past the end.

The clock is injected (tests drive it by hand); nothing here reads the wall clock at import.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec

from cdnpurge.core.errors import CdnpurgeError

Clock = Callable[[], float]


class OutOfTimeError(CdnpurgeError):
    """Not started: what is left of the deadline cannot hold this call or wait."""


class Deadline(msgspec.Struct, frozen=True):
    """An absolute end (`ends_at`, on `clock`) that bounds every wait and I/O call made before it."""

    ends_at: float
    clock: Clock = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        """The deadline `seconds` from now on `clock` (a negative or NaN span is an already-passed deadline)."""
        span = 0.0 if math.isnan(seconds) else seconds  # NaN is no time at all
        return cls(clock() + max(0.0, span), clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.ends_at - self.clock())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def allows(self, seconds: float) -> bool:
        """Whether something taking `seconds` started now would end in time."""
        return seconds <= self.remaining()

    def earlier(self, margin: float) -> Deadline:
        """The same deadline `margin` seconds sooner: a stage that must leave time for the stages after it."""
        return Deadline(self.ends_at - max(0.0, margin), self.clock)

    def budget(self, cap: float, *, need: float = 0.0, what: str = "call") -> float:
        """The seconds one call may take in total: its own `cap`, cut to the time left.

        Raises `OutOfTimeError` (naming `what`) when less than `need` seconds (and never zero) are left, so a
        call that could not finish is not started.
        """
        left = self.remaining()
        if left <= 0.0 or left < need:
            raise OutOfTimeError(f"{what}: not started, out of time before the function's deadline")
        return min(cap, left) if cap > 0 else left

    def within(self, cap: float, *, need: float = 0.0, what: str = "call") -> Deadline:
        """The deadline of one call started now: the earlier of `cap` seconds from now and this deadline.

        Raises `OutOfTimeError` as `budget` does, so a call that could not finish is never started. What the
        call does (connect, send, every read of its answer, its retries and their back-off) is then bounded
        by the one value returned (`cdnpurge.runtime.bounded` holds every client to it).
        """
        seconds = self.budget(cap, need=need, what=what)
        return Deadline(min(self.ends_at, self.clock() + seconds), self.clock)

    def sleep(self, seconds: float, sleeper: Callable[[float], None] = time.sleep, *, what: str = "wait") -> None:
        """Wait `seconds`, or refuse with `OutOfTimeError` when the wait would pass the deadline."""
        if not self.allows(seconds):
            raise OutOfTimeError(f"{what}: not started, a {seconds:.1f} s wait would pass the function's deadline")
        if seconds > 0:
            sleeper(seconds)
