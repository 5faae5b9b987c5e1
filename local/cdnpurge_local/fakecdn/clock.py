"""The clock the fake edge and the job-keeping fakes read, so tests move time instead of sleeping.

Production-shaped code takes a `Clock` (any zero-argument callable returning seconds, `time.monotonic`
by default); tests pass a `ManualClock` and `advance()` it past a purge's completion delay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Clock = Callable[[], float]


class ManualClock:
    """A clock that only moves when told to; safe to read from the edge's server threads."""

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds` (never back: a purge's completion must not be undone) and return now."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        with self._lock:
            self._now += seconds
            return self._now
