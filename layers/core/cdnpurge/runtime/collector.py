"""The garbage collector at a cold start: paused while init builds what lives as long as the process.

A cold start is one burst of allocation: boto3, Powertools, msgspec and the runtime's own modules leave some
60,000 tracked objects (modules, classes, functions, their dicts), and the service built on the first batch
adds its clients and service models. As they pile up, CPython's collector scans them again and again and
finds next to nothing to free (a few hundred objects after the whole import); those scans cost a cold start
tens of milliseconds of CPU (bench/README.md). Inside `long_lived()` collection is paused; on leaving, every
object then tracked is frozen (`gc.freeze`: moved out of the collector's sight, the pattern the gc module
documents for long-lived start-up state), and collection resumes for what invocations allocate.

What is frozen is never collected as a cycle: right for modules and for the service that lives as long as
the container. A service replaced by a configuration reload is freed by reference counting like anything
else; only cycles within that first snapshot outlive it, once per container.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived() -> Iterator[None]:
    """Collection paused inside; on leaving (even by an exception), what was built is frozen, and collection
    resumes as it was before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
