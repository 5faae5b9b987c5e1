"""Every I/O call the function makes is bounded by its deadline, by construction, not by each stage remembering.

A stage that talks to the network opens `bounded_call(deadline, cap, what=...)` around the call: the call gets
its own `Deadline` (the earlier of `cap` from now and the stage's deadline), or is refused with
`OutOfTimeError` before anything is sent. The clients the runtime makes come from two factories, and both
read that call deadline on every network operation:

- `cdnpurge.runtime.bounded.http.bounded_http_client` (httpx): connect, TLS, every write and every read is
  given at most the time left to the call's end and fails past it, so the whole call (connect + head + body)
  ends by then, even against an edge that drips its answer one byte at a time;
- `cdnpurge.runtime.bounded.aws.aws_client` (boto3): bounded connect/read timeouts and standard retries;
  every attempt (the first and each retry) is refused unless the connect timeout and some reading fit
  before the call's end, and its read timeout is cut to the time left.

A client from either factory refuses a call made outside `bounded_call` (`UnboundedCallError`): a new stage
that forgets the deadline fails its first test instead of hanging in production. `tests/unit/test_bounded_sites.py`
finds any client, sleep or raw call made outside the factories.

The call deadline travels in a context variable (one per thread, so calls on the ledger's and the
executor's worker threads stay apart); `in_threads` carries it into a thread pool's tasks.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.errors import CdnpurgeError

__all__ = [
    "OutOfTimeError",
    "UnboundedCallError",
    "bounded_call",
    "current_call",
    "in_threads",
    "nested_call",
    "sleep_within",
]

_CALL: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("cdnpurge_call_deadline", default=None)

T = TypeVar("T")
R = TypeVar("R")


class UnboundedCallError(CdnpurgeError):
    """A runtime client was called outside `bounded_call`: a programming error, never a retry."""


@contextmanager
def bounded_call(deadline: Deadline, cap: float, *, what: str, need: float = 0.0) -> Iterator[Deadline]:
    """Run one call (or one operation of several calls) within `cap` seconds and before `deadline`.

    Raises `OutOfTimeError` (naming `what`) without calling anything when less than `need` seconds are left.
    Inside another bounded call (on the same clock) it never ends later than that one: a write a listener
    makes during a verification check is held to the check's end too.
    """
    call = deadline.within(cap, need=need, what=what)
    outer = _CALL.get()
    if outer is not None and outer.clock is call.clock and outer.ends_at < call.ends_at:
        if outer.remaining() <= need or outer.expired():
            raise OutOfTimeError(f"{what}: not started, out of time before the enclosing call's end")
        call = outer
    token = _CALL.set(call)
    try:
        yield call
    finally:
        _CALL.reset(token)


def nested_call(cap: float, *, what: str, need: float = 0.0) -> AbstractContextManager[Deadline]:
    """A call made within the enclosing bounded call (`UnboundedCallError` outside one): a callback that is
    handed no deadline of its own (a verification check's scheduling) is still held to its caller's."""
    return bounded_call(current_call(what), cap, what=what, need=need)


def current_call(what: str) -> Deadline:
    """The deadline of the call being made; `UnboundedCallError` outside `bounded_call`."""
    call = _CALL.get()
    if call is None:
        raise UnboundedCallError(f"{what}: called without a deadline (outside bounded_call)")
    return call


def sleep_within(seconds: float, sleeper: Callable[[float], None], *, what: str) -> None:
    """A back-off inside a bounded call: refused (`OutOfTimeError`) when it would end past the call's end."""
    current_call(what).sleep(seconds, sleeper, what=what)


def in_threads(call: Callable[[T], R], items: Iterable[T], *, threads: int) -> list[R]:
    """`call` on every item on up to `threads` threads, each task within the caller's call deadline (a
    thread pool's tasks do not inherit the submitting thread's context on their own)."""
    listed = list(items)
    if len(listed) <= 1 or threads <= 1:
        return [call(item) for item in listed]
    with ThreadPoolExecutor(min(threads, len(listed))) as pool:
        # One copy of the context per task: a context can be entered by one thread at a time.
        futures = [pool.submit(contextvars.copy_context().run, call, item) for item in listed]
        return [future.result() for future in futures]
