"""How the CLI reports what is not a bug of its own: an AWS error, and a reader that stopped reading.

A missing region, an unreachable endpoint or a denied call is a fact about the user's environment; a
traceback hides it under thirty lines of botocore. The CLI prints one line naming it and exits 2 (usage).
`cdnpurge plan ... | head` closes the pipe early: that is the reader's choice, not an error worth a trace.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

# The shell's status for a process ended by SIGPIPE: what `git log | head` reports, and never a cdnpurge status.
EXIT_READER_GONE = 128 + signal.SIGPIPE

_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"})
_CREDENTIALS_REFUSED = frozenset(
    {
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)


def aws_problem(error: BaseException) -> str | None:
    """One line naming the AWS problem behind `error`, or None if it is not an AWS error.

    Wrappers are looked through: Powertools Parameters raises `GetParameterError` from the ClientError.
    AWS's own messages name the caller, action and resource, never a secret value, so they are kept.
    """
    for cause in _chain(error):
        if isinstance(cause, NoRegionError):
            return "no AWS region configured: set AWS_DEFAULT_REGION, or region in your AWS profile (AWS_PROFILE)"
        if isinstance(cause, NoCredentialsError):
            return "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        if isinstance(cause, EndpointConnectionError):
            endpoint = cause.kwargs.get("endpoint_url", "?")
            return f"cannot reach the AWS endpoint {endpoint}: check the network, the region and AWS_ENDPOINT_URL*"
        if isinstance(cause, ClientError):
            return _client_error(cause)
        if isinstance(cause, BotoCoreError):
            return f"AWS: {cause}"
    return None


def _client_error(error: ClientError) -> str:
    code = str(error.response.get("Error", {}).get("Code", "unknown error"))
    message = error.response.get("Error", {}).get("Message") or ""
    detail = f": {message}" if message else ""
    if code in _ACCESS_DENIED:
        return f"access denied to {error.operation_name} ({code}){detail}"
    if code in _CREDENTIALS_REFUSED:
        return f"AWS refused the credentials for {error.operation_name} ({code}){detail}"
    return f"{error.operation_name} failed: {code}{detail}"


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it was raised from or while handling, innermost last; each one once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def reader_gone(stream: TextIO) -> int:
    """The reader of `stream` closed it: point its descriptor at /dev/null and return the exit status.

    Python's documented recipe (the `signal` module's note on SIGPIPE): without it the interpreter's final
    flush of stdout at exit fails again and prints `Exception ignored ... BrokenPipeError`. A stream with no
    descriptor (a test's StringIO) has nothing to redirect.
    """
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):
        return EXIT_READER_GONE
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)
    return EXIT_READER_GONE
