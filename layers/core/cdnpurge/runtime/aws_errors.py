"""One line naming an AWS problem: a missing region or credentials, an unreachable endpoint, a denied call.

These are facts about the caller's environment, and a traceback hides them under thirty lines of botocore.
The CLI prints the line and exits 2; a credential that cannot be read is reported with it (its owner and
secret name first), in the CLI and in the function's logs alike. AWS's own messages name the caller,
action and resource, never a secret value, so they are kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

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

    Wrappers are looked through: Powertools Parameters raises `GetParameterError` while handling the
    ClientError.
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
