"""`cdnpurge doctor` reads whether the function's role may invalidate a CloudFront distribution from the stack:
the role's InvalidateCloudFront statement names the ARNs of CloudFrontDistributionArns, read as IAM does."""

from __future__ import annotations

import pytest

from cdnpurge.cli.deployed import DeployedStack
from cdnpurge.cli.doctor import role_cannot_invalidate

PLACEHOLDER = "arn:aws:cloudfront::000000000000:distribution/NONE"


def stack(arns: str) -> DeployedStack:
    return DeployedStack(
        name="cdnpurge",
        region="us-east-1",
        status="CREATE_COMPLETE",
        parameters={"CloudFrontDistributionArns": arns},
        outputs={},
        physical_ids={},
    )


@pytest.mark.parametrize(
    "arns",
    [
        "arn:aws:cloudfront::123456789012:distribution/E2QWRUHEXAMPLE",
        f"{PLACEHOLDER}, arn:aws:cloudfront::123456789012:distribution/E2QWRUHEXAMPLE",
        "arn:aws:cloudfront::123456789012:distribution/*",
        "arn:aws:cloudfront::123456789012:distribution/E2QWRUHEXAMPL?",
    ],
)
def test_a_listed_distribution_is_granted(arns: str) -> None:
    assert role_cannot_invalidate(stack(arns), "E2QWRUHEXAMPLE") is None


@pytest.mark.parametrize(
    "arns",
    [PLACEHOLDER, "", "arn:aws:cloudfront::123456789012:distribution/E2QWRUHEXAMPLEX", "arn:aws:cloudfront::1:x/E2"],
)
def test_the_placeholder_or_another_distribution_grants_nothing(arns: str) -> None:
    assert role_cannot_invalidate(stack(arns), "E2QWRUHEXAMPLE") == (
        "the function's role may not invalidate it: CloudFrontDistributionArns names no distribution/E2QWRUHEXAMPLE"
    )
