"""A CloudFront distribution on moto in front of an S3 bucket: what a user already has in AWS.

The demo, the CloudFront contract test and the integration tests each need one to purge; the template does
not create it (cdnpurge purges a distribution the user owns), so it is made here, once, the same way.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

# AWS's managed "CachingOptimized" cache policy.
CACHING_OPTIMIZED_POLICY = "658327ea-f89d-4fab-a63d-7e88639e58f6"


def s3_distribution(cloudfront: CloudFrontClient, bucket: str, *, comment: str = "cdnpurge test") -> str:
    """A new enabled distribution whose one origin is `bucket`; returns its id."""
    created = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": uuid.uuid4().hex,
            "Comment": comment,
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "content",
                        "DomainName": f"{bucket}.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "content",
                "ViewerProtocolPolicy": "redirect-to-https",
                "CachePolicyId": CACHING_OPTIMIZED_POLICY,
            },
        }
    )
    return created["Distribution"]["Id"]
