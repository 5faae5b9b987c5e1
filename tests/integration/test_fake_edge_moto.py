"""The fake edge in front of the moto S3 bucket, learning CloudFront invalidations from moto.

A real moto server process on loopback: objects are read through boto3 as any S3-origin CDN reads them
(ETag and Last-Modified are S3's, tags come from object metadata), and invalidations made on moto's
CloudFront are applied by the edge `completion_delay` seconds after it first saw them, on a manual clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest

from cdnpurge_local.distributions import s3_distribution
from cdnpurge_local.fakecdn.clock import ManualClock
from cdnpurge_local.fakecdn.cloudfront_watch import CloudFrontWatcher, UnknownInvalidationError
from cdnpurge_local.fakecdn.edge import Edge, EdgeServer
from cdnpurge_local.fakecdn.origin import S3Origin
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import DEFAULT_REGION, MotoServer

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_s3 import S3Client

WWW = "www.example.com"
BUCKET = "fake-edge-origin"
pytestmark = pytest.mark.xdist_group("moto-fake-edge")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def s3(moto: MotoServer) -> S3Client:
    client: S3Client = local_client(boto3.session.Session(), "s3", endpoint=moto.endpoint, region=DEFAULT_REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def cloudfront(moto: MotoServer) -> CloudFrontClient:
    client: CloudFrontClient = local_client(
        boto3.session.Session(), "cloudfront", endpoint=moto.endpoint, region=DEFAULT_REGION
    )
    return client


@pytest.fixture
def distribution_id(cloudfront: CloudFrontClient) -> str:
    return s3_distribution(cloudfront, BUCKET, comment="cdnpurge fake edge test")


def view(server: EdgeServer, public_url: str) -> httpx.Response:
    url, headers = server.address(public_url)
    return httpx.get(url, headers=headers)


def publish(s3: S3Client, key: str, body: bytes, tags: str) -> str:
    return s3.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata={"cache-tag": tags})["ETag"]


def invalidate(cloudfront: CloudFrontClient, distribution_id: str, *items: str) -> str:
    created = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": len(items), "Items": list(items)},
            "CallerReference": uuid.uuid4().hex,
        },
    )
    return created["Invalidation"]["Id"]


def test_the_edge_serves_s3_validators_and_metadata_tags_and_stays_stale_after_an_upload(s3: S3Client) -> None:
    # Given an object in the bucket with cache tags in its metadata, served once through a Fastly edge
    key = f"articles/{uuid.uuid4().hex}.html"
    first_etag = publish(s3, key, b"v1", "article-x,articles")
    edge = Edge("fastly", S3Origin(s3, BUCKET), ManualClock())
    with EdgeServer(edge) as server:
        first = view(server, f"https://{WWW}/{key}")
        # When a new version is uploaded
        new_etag = publish(s3, key, b"v2", "article-x,articles")
        second = view(server, f"https://{WWW}/{key}")
        missing = view(server, f"https://{WWW}/no-such-object.html")
    # Then the edge still serves S3's first version, with S3's ETag, Last-Modified and the tags
    assert (first.content, first.headers["ETag"], first.headers["Surrogate-Key"]) == (
        b"v1",
        first_etag,
        "article-x articles",
    )
    assert (second.content, second.headers["ETag"], second.headers["X-Cache"]) == (b"v1", first_etag, "HIT")
    assert first_etag != new_etag
    assert "GMT" in first.headers["Last-Modified"]
    assert missing.status_code == 404


def test_a_cloudfront_invalidation_is_in_progress_until_the_delay_then_completed_and_fresh(
    s3: S3Client, cloudfront: CloudFrontClient, distribution_id: str
) -> None:
    # Given a CloudFront edge (invalidations complete 20 s after they are seen) with three objects cached
    clock = ManualClock()
    folder = uuid.uuid4().hex
    keys = [f"{folder}/a.html", f"{folder}/img/b.png", f"{folder}/c.html"]
    for key in keys:
        publish(s3, key, b"v1", "Shared-Tag" if key.endswith("c.html") else "other")
    edge = Edge("cloudfront", S3Origin(s3, BUCKET), clock)
    watcher = CloudFrontWatcher(cloudfront, distribution_id, completion_delay=20)
    watcher.watch(edge)
    for key in keys:
        assert edge.get(WWW, f"/{key}").body == b"v1"
        publish(s3, key, b"v2", "Shared-Tag" if key.endswith("c.html") else "other")
    # When an invalidation names a path, a wildcard and a cache tag (in another case)
    invalidation_id = invalidate(cloudfront, distribution_id, f"/{folder}/a.html", f"/{folder}/img/*", "#shared-tag")
    assert len(edge.pending()) == 1  # seen now (asking the edge anything polls moto)
    clock.advance(19)
    # Then it is in progress (though moto says completed) and the edge serves every stale copy
    assert watcher.get_invalidation(invalidation_id)["Invalidation"]["Status"] == "InProgress"
    assert [edge.get(WWW, f"/{key}").body for key in keys] == [b"v1", b"v1", b"v1"]
    # And once the delay has passed it is completed and every covered object is fresh
    clock.advance(1)
    assert watcher.get_invalidation(invalidation_id)["Invalidation"]["Status"] == "Completed"
    assert [edge.get(WWW, f"/{key}").body for key in keys] == [b"v2", b"v2", b"v2"]
    assert edge.get(WWW, f"/{keys[0]}").headers["x-amz-meta-cache-tag"] == "other"


def test_the_watcher_knows_only_invalidations_of_its_distribution(
    s3: S3Client, cloudfront: CloudFrontClient, distribution_id: str
) -> None:
    watcher = CloudFrontWatcher(cloudfront, distribution_id)
    watcher.watch(Edge("cloudfront", S3Origin(s3, BUCKET), ManualClock()))
    with pytest.raises(UnknownInvalidationError, match="no invalidation"):
        watcher.get_invalidation("I0000000000000")
    with pytest.raises(ValueError, match="cloudfront edge"):
        CloudFrontWatcher(cloudfront, distribution_id).watch(Edge("fastly", S3Origin(s3, BUCKET), ManualClock()))
