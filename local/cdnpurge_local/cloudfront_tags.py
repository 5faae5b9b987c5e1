"""CloudFront's documented cache-tag rules, for the local stand-ins that do not know tags.

moto (5.x) stores any `Paths.Items` entry as a path, and the benchmark's fake (`bench/cloudfront_fake.py`)
predates tags, so neither would notice an adapter sending a tag CloudFront refuses. Both apply these rules,
written from the CloudFront Developer Guide ("What you need to know when invalidating tags") independently of
the adapter's own checks, so a test compares the adapter with the documentation, not with itself:

- a tag item starts with `#`; the tag is visible ASCII (33-126) without commas, at most 256 characters;
- no `*` wildcard; tags are case-insensitive (`#A` and `#a` are one tag).

What the guide leaves open (the in-progress limit for tag items; what a distribution without a
`CacheTagConfig` answers to a tag item) is not modelled: the stand-ins follow the documented part only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

TAG_MARK = "#"
MAX_TAG_CHARACTERS = 256
# Visible ASCII 33-126 except `*` (42) and `,` (44).
_TAG = re.compile(r"[!-)+\--~]+")


def tag_item_problem(item: str) -> str | None:
    """Why CloudFront refuses this `Paths.Items` entry as a tag item; None if it is a valid one or a path."""
    if not item.startswith(TAG_MARK):
        return None
    tag = item[len(TAG_MARK) :]
    if not tag:
        return "an empty cache tag"
    if len(tag) > MAX_TAG_CHARACTERS:
        return f"cache tag longer than {MAX_TAG_CHARACTERS} characters"
    if not _TAG.fullmatch(tag):
        return f"cache tag {tag[:40]!r} has characters other than visible ASCII without ',' and '*'"
    return None


def tag_of(item: str) -> str | None:
    """The tag a valid tag item names, in one case (tags are case-insensitive); None for a path."""
    return item[len(TAG_MARK) :].lower() if item.startswith(TAG_MARK) else None


def enforce_cache_tags(client: CloudFrontClient) -> CloudFrontClient:
    """Make `client` refuse, before it reaches moto, a CreateInvalidation whose tag items break the rules,
    with the `InvalidArgument` error CloudFront answers invalid items with; returns the client."""

    def check(params: dict[str, Any], **_: Any) -> None:
        items = params.get("InvalidationBatch", {}).get("Paths", {}).get("Items", [])
        for item in items:
            problem = tag_item_problem(item)
            if problem is not None:
                message = f"Invalid tag invalidation item: {problem}"
                raise ClientError({"Error": {"Code": "InvalidArgument", "Message": message}}, "CreateInvalidation")

    client.meta.events.register("before-parameter-build.cloudfront.CreateInvalidation", check)
    return client
