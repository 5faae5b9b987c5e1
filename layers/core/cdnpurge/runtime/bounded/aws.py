"""The one boto3 client factory of the runtime: bounded timeouts, standard retries, every attempt in time.

Every AWS client the function makes (DynamoDB, SQS, S3, SSM, Secrets Manager, CloudFront) comes from
`aws_client`: connect and read timeouts of a few seconds instead of botocore's default minute, retries in
botocore's `standard` mode (not `legacy`), and a `before-send` hook that holds each attempt (the first and
every retry) to the current call's deadline (`cdnpurge.runtime.bounded.bounded_call`):

- an attempt (the first or a retry) is refused with `OutOfTimeError`, nothing sent, once the call's end has
  passed, so a table answering slowly (1.5 s a call, inside botocore's bounds) can no longer take the
  function past its deadline call after call;
- the attempt's read timeout is cut to the time left (botocore's per-request `read_timeout`), so a hanging
  endpoint (SSM, Secrets Manager) is cut at the call's end. Connecting keeps the client's own connect
  timeout (botocore has no per-request one): a call ends at most that long (1 s) after its end, which the
  stages' margins hold (and they start no AWS call with less than `MIN_CALL_SECONDS` left);
- a call made outside `bounded_call` is refused (`UnboundedCallError`).

AWS's answers are small JSON documents read in one or a few socket reads; unlike an edge, an AWS endpoint
does not drip, so a read cut to the time left at the attempt's start bounds the call.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Final

from cdnpurge.core.deadline import OutOfTimeError
from cdnpurge.runtime.bounded import current_call

if TYPE_CHECKING:
    import boto3

CONNECT_SECONDS: Final = 1.0
READ_SECONDS: Final = 2.0
# Attempts per call, the first included (standard mode's `max_attempts`).
MAX_ATTEMPTS: Final = 2
# The longest one call can take: its attempts of connect + read, and botocore's back-off (at most 1 s).
CALL_SECONDS: Final = MAX_ATTEMPTS * (CONNECT_SECONDS + READ_SECONDS) + 1.0
# A stage does not start an AWS call with less than one attempt's time left (`bounded_call`'s `need`).
MIN_CALL_SECONDS: Final = CONNECT_SECONDS + READ_SECONDS

# The boto3 session every client is made from, with the AWS_* environment it was made under. A session costs
# a cold start tens of milliseconds (its handlers, its endpoint resolver, its loader's caches of endpoints and
# service models), and the first batch of a deployed function makes three or four clients (SSM, Secrets
# Manager, DynamoDB, then SQS, CloudFront, S3); one session makes them all. A session reads credentials and its
# profile once, so a changed AWS_* environment (tests, the operator tools) gets a new one, as a new session per
# client did. Sessions are not thread-safe (clients are): clients are made under the lock.
_SESSION_LOCK: Final = threading.Lock()
_shared_session: list[tuple[tuple[tuple[str, str], ...], boto3.session.Session]] = []


def _aws_environment() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_")))


def _session() -> boto3.session.Session:
    """The shared session (made under `_SESSION_LOCK`), made again when the AWS_* environment changed."""
    import boto3

    environment = _aws_environment()
    if not _shared_session or _shared_session[0][0] != environment:
        _shared_session[:] = [(environment, boto3.session.Session())]
    return _shared_session[0][1]


def aws_client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    default_region: str | None = None,
    session: boto3.session.Session | None = None,
    connect_timeout: float = CONNECT_SECONDS,
    read_timeout: float = READ_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> Any:
    """A boto3 client for `service` whose every call must run inside `bounded_call` and ends by its deadline.

    Without `endpoint_url`, boto3 honours `AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL` (the local stack);
    without `region_name`, the session's region, else `default_region`; without `session`, the runtime's shared
    one (`_session`).
    """
    # Imported here: the stages that only name the bounds (dead letters, visibility) load no AWS SDK.
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
    )
    with _SESSION_LOCK:
        session = session or _session()
        region = region_name or session.region_name or default_region
        client = session.client(service, endpoint_url=endpoint_url, region_name=region, config=config)  # type: ignore[call-overload]
    client.meta.events.register("before-send", _AttemptInTime(read_timeout))
    return client


class _AttemptInTime:
    """The `before-send` hook: refuse an attempt that cannot end in time; cut its read timeout."""

    def __init__(self, read_timeout: float) -> None:
        self._read = read_timeout

    def __call__(self, request: Any, event_name: str = "before-send", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        left = current_call(operation).remaining()
        if left <= 0:
            raise OutOfTimeError(f"{operation}: not sent, out of time before the function's deadline")
        context = getattr(request, "context", None)
        if context is not None:
            context["read_timeout"] = min(self._read, left)
