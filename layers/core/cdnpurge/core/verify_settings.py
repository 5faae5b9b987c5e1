"""The `verify:` block of a provider entry: where to look, how much, and how long to keep trying.

Pure pydantic, imported by `providers.spec` (the configuration's ground floor loads no HTTP client).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

# SQS caps a message's delay at 15 minutes: no wait between two checks can be longer.
MAX_DELAY_SECONDS: Final = 900


class VerifySettings(BaseModel):
    """How a provider's purges are verified at its edge (docs/verification.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: tuple[str, ...] = Field(
        default=(),
        description="Public hosts to probe (default: the provider's hosts); each must be one of the provider's "
        "hosts or in allowed_hosts. Probes never go to any other host.",
    )
    max_urls: int = Field(default=3, ge=1, le=20, description="At most this many URLs probed per change.")
    version_header: str = Field(
        default="ETag",
        min_length=1,
        description="The response header that proves the version: ETag (compared with the S3 object's ETag), "
        "or x-amz-meta-<name> (compared with the object's metadata <name>).",
    )
    interval_seconds: int = Field(default=10, ge=1, le=MAX_DELAY_SECONDS, description="First check, and backoff unit.")
    max_repurges: int = Field(default=2, ge=0, le=10, description="Purge again what is still stale at most this often.")
    deadline_seconds: int = Field(
        default=300, ge=1, le=3600, description="Still stale this long after the purge: dead-lettered with the reason."
    )
    timeout_seconds: float = Field(default=3.0, gt=0, le=10, description="Per probe.")
    probe_endpoint: str | None = Field(
        default=None,
        description="Send probes to this base address with the real Host header (the local fake edge); "
        "default: https://<host>.",
    )

    @field_validator("hosts")
    @classmethod
    def _lower(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(host.lower() for host in hosts)

    @field_validator("version_header")
    @classmethod
    def _header_name(cls, name: str) -> str:
        if not all(c.isalnum() or c in "-_" for c in name):
            raise ValueError(f"{name!r} is not an HTTP header name")
        return name

    @field_validator("probe_endpoint")
    @classmethod
    def _endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"probe_endpoint {endpoint!r} must be http(s)://host[:port] with no path")
        return endpoint.rstrip("/")
