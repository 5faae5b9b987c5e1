"""The `verify:` block of a provider entry: where to look, how much, and how long to keep trying.

A msgspec Struct, imported by `providers.spec` (the configuration's ground floor loads no HTTP client).
"""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import urlsplit

import msgspec

from cdnpurge.core.schema import worded

# SQS caps a message's delay at 15 minutes: no wait between two checks can be longer.
MAX_DELAY_SECONDS: Final = 900


class VerifySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a provider's purges are verified at its edge (docs/verification.md)."""

    # Public hosts to probe (default: the provider's hosts); each must be one of the provider's hosts or in
    # allowed_hosts. Probes never go to any other host. Kept lower-cased.
    hosts: tuple[str, ...] = ()
    # At most this many URLs probed per change.
    max_urls: Annotated[int, msgspec.Meta(ge=1, le=20)] = 3
    # The response header that proves the version: ETag (compared with the S3 object's ETag), or
    # x-amz-meta-<name> (compared with the object's metadata <name>).
    version_header: Annotated[
        str,
        msgspec.Meta(
            min_length=1, pattern=worded(r"\A[A-Za-z0-9_-]+\Z", "must be a header name (letters, digits, '_' or '-')")
        ),
    ] = "ETag"
    # First check, and backoff unit.
    interval_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_DELAY_SECONDS)] = 10
    # Purge again what is still stale at most this often.
    max_repurges: Annotated[int, msgspec.Meta(ge=0, le=10)] = 2
    # Still stale this long after the purge: dead-lettered with the reason.
    deadline_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 300
    # Per probe.
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=10)] = 3.0
    # Send probes to this base address with the real Host header (the local fake edge); default:
    # https://<host>. Kept without a trailing slash.
    probe_endpoint: str | None = None

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "hosts", tuple(host.lower() for host in self.hosts))
        endpoint = self.probe_endpoint
        if endpoint is not None:
            if not _base_address(endpoint):  # not quoted: an address may carry a key in its query
                raise ValueError("probe_endpoint must be http(s)://host[:port] with no path")
            msgspec.structs.force_setattr(self, "probe_endpoint", endpoint.rstrip("/"))


def _base_address(endpoint: str) -> bool:
    try:
        parts = urlsplit(endpoint)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/")
    except ValueError:  # an unclosed IPv6 bracket
        return False
