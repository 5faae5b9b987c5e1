"""What the origin holds now: the truth a probe's answer is compared with.

The S3 object's current `ETag` (HEAD, `s3:GetObject`), or with `version_header: x-amz-meta-<name>` its
user metadata `<name>`. Read at check time rather than taken from the event, so a newer upload of the
same object after this change is compared with what the edge should now serve, not with a superseded
version.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

META_PREFIX: Final = "x-amz-meta-"


class OriginUnreadable(RuntimeError):
    """The origin could not say (not a missing object): the check is retried later."""


class OriginVersions(Protocol):
    def current(self, bucket: str, key: str, version_header: str) -> str | None:
        """The version the edge should serve for the object, or None when the object is gone."""
        ...


def same_version(served: str | None, origin: str) -> bool:
    """Compare two validators as CDNs rewrite them: weak `W/` prefix and quotes ignored."""
    if served is None:
        return False
    return _bare(served) == _bare(origin)


def _bare(value: str) -> str:
    return value.strip().removeprefix("W/").strip('"')


class S3Versions:
    """`head_object` on the content bucket (s3:GetObject)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def current(self, bucket: str, key: str, version_header: str) -> str | None:
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise OriginUnreadable(f"s3://{bucket}/{key}: {type(exc).__name__}: {exc}"[:300]) from exc
        name = version_header.lower()
        if name.startswith(META_PREFIX):
            value = head.get("Metadata", {}).get(name.removeprefix(META_PREFIX))
            return None if value is None else str(value)
        return str(head["ETag"])
