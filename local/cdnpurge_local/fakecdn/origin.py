"""Origins the fake edge fills its cache from: the S3 bucket (moto) or an in-memory origin.

An origin answers one question: what is the current object behind a public path? `S3Origin` reads the
bucket through boto3 (moto server locally), exactly what CloudFront or any CDN with an S3 origin does;
`MemoryOrigin` holds objects in a dict for unit tests and demos that need no AWS at all. Both report
the validators a CDN forwards (`ETag`, `Last-Modified`) and the cache tags the origin attached, read from
object metadata (`x-amz-meta-surrogate-key`, space-separated as Fastly's header; `x-amz-meta-cache-tag`,
comma-separated as Cloudflare's, Akamai's and CloudFront's).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from cdnpurge_local.fakecdn.clock import Clock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Object metadata names (without `x-amz-meta-`) that carry tags, and how each separates them.
TAG_METADATA: Mapping[str, str | None] = {"surrogate-key": None, "cache-tag": ","}
INDEX_DOCUMENT = "index.html"


@dataclass(frozen=True)
class OriginObject:
    """One version of an object as the origin serves it."""

    body: bytes
    etag: str  # quoted, as S3 sends it: '"<md5>"'
    last_modified: datetime
    content_type: str = "application/octet-stream"
    tags: tuple[str, ...] = ()


class OriginError(RuntimeError):
    """The origin failed to answer (not a missing object): the edge answers 502, as a CDN does."""


class Origin(Protocol):
    def fetch(self, host: str, path: str) -> OriginObject | None:
        """The current object behind `path` (percent-encoded, query included) on `host`, or None;
        raises `OriginError` when the origin cannot say."""
        ...


def object_key(path: str, index_document: str = INDEX_DOCUMENT) -> str:
    """The S3 key behind a public path: decoded, without the leading `/` or the query; `/dir/` -> index."""
    key = unquote(urlsplit(path).path).lstrip("/")
    return key + index_document if key.endswith("/") or not key else key


def tags_from_metadata(metadata: Mapping[str, str]) -> tuple[str, ...]:
    """Cache tags from S3 user metadata (names lower-cased by S3), in order, without duplicates."""
    tags: list[str] = []
    for name, separator in TAG_METADATA.items():
        value = metadata.get(name, "")
        tags.extend(tag.strip() for tag in value.split(separator) if tag.strip())
    return tuple(dict.fromkeys(tags))


class S3Origin:
    """A bucket as the origin of every host the edge serves (a CDN distribution with an S3 origin)."""

    def __init__(self, s3: S3Client, bucket: str, *, index_document: str = INDEX_DOCUMENT) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.index_document = index_document

    def fetch(self, host: str, path: str) -> OriginObject | None:
        key = object_key(path, self.index_document)
        try:
            answer = self._s3.get_object(Bucket=self.bucket, Key=key)
            body = answer["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise OriginError(f"s3://{self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise OriginError(f"s3://{self.bucket}/{key}: {exc}") from exc
        return OriginObject(
            body=body,
            etag=answer["ETag"],
            last_modified=answer["LastModified"].astimezone(UTC),
            content_type=answer.get("ContentType", "application/octet-stream"),
            tags=tags_from_metadata(answer.get("Metadata", {})),
        )


@dataclass
class MemoryOrigin:
    """Objects in memory by key, versioned like S3 single-part uploads (the ETag is the body's MD5)."""

    clock: Clock
    index_document: str = INDEX_DOCUMENT
    _objects: dict[str, OriginObject] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, key: str, body: bytes, *, tags: Iterable[str] = (), content_type: str = "text/plain") -> OriginObject:
        """Store a new version of `key` (no leading `/`), stamped with the clock as its Last-Modified."""
        stamped = datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0)
        etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        version = OriginObject(body, etag, stamped, content_type, tuple(tags))
        with self._lock:
            self._objects[key] = version
        return version

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def fetch(self, host: str, path: str) -> OriginObject | None:
        with self._lock:
            return self._objects.get(object_key(path, self.index_document))

    def current(self, bucket: str, key: str, version_header: str) -> str | None:
        """What verification compares with (`cdnpurge.runtime.verification.origin.OriginVersions`): the ETag."""
        if version_header.lower() != "etag":
            raise ValueError(f"MemoryOrigin versions objects by ETag only, not {version_header!r}")
        with self._lock:
            found = self._objects.get(key)
        return None if found is None else found.etag
