"""Progress lines for long CLI runs (`cdnpurge redrive` over thousands of dead letters).

A line every `every` items or every `interval_seconds`, whichever comes first, to stderr so that stdout
stays the command's own output (and a pipe into another tool is not interleaved). A run short enough
to print no progress line prints no closing line either: its stdout summary says it all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Reports `count` items done, with a caller-made detail, at most every `every` items or `interval_seconds`."""

    def __init__(
        self,
        stream: TextIO,
        label: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        every: int = 100,
        interval_seconds: float = 10.0,
    ) -> None:
        self._stream = stream
        self._label = label
        self._clock = clock
        self._every = every
        self._interval = interval_seconds
        self._started = self._last_time = clock()
        self._last_count = 0
        self.reported = False

    def update(self, count: int, detail: Callable[[], str]) -> None:
        """Note `count` items done; print `detail()` when `every` items or `interval_seconds` have passed."""
        now = self._clock()
        if count - self._last_count < self._every and now - self._last_time < self._interval:
            return
        self._last_count, self._last_time = count, now
        self.reported = True
        print(f"{self._label}: {detail()} after {now - self._started:.0f} s", file=self._stream)

    def finish(self, detail: str) -> None:
        """The closing line, with the run's duration, if any progress line was printed."""
        if self.reported:
            print(f"{self._label}: finished: {detail} in {self._clock() - self._started:.1f} s", file=self._stream)
