"""CloudFront adapter against a real moto server process on loopback: invalidations, limits and errors.

The shared contract suite (`kit.py`) runs here where moto can stand in (`TestContract`: the per-call limit
at N and N+1, undeclared kinds, an unknown distribution); the HTTP faults it injects elsewhere do not
apply to a boto3 client, whose error mapping is checked below with botocore's `Stubber`.

What moto (5.x) does not do, and how it is covered here:
- it ignores `CallerReference`: a repeated reference would create a second invalidation (AWS returns the
  existing one, and refuses the reference with other paths). The local stack's moto server follows AWS's
  documented rule (`cdnpurge_local.cloudfront_references`), so the tests below see what AWS would do;
- it never throttles nor returns TooManyInvalidationsInProgress, and reports `COMPLETED` at once:
  the error-mapping table is checked with botocore's `Stubber` (a unit-level check of our mapping);
- it knows no cache tags (it stores `#tag` items as paths): the client of the tag tests refuses what the
  CloudFront Developer Guide says CloudFront refuses (`cdnpurge_local.cloudfront_tags.enforce_cache_tags`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config as BotocoreConfig
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from contract.kit import AdapterContract, ContractCase

from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RejectedError,
    ThrottledError,
    UnavailableError,
)
from cdnpurge.core.schema import DocumentError
from cdnpurge.core.spec import ProviderSpec, parse_settings
from cdnpurge.runtime.credential_check import Acceptance, check_credentials
from cdnpurge.runtime.execute import request_token
from cdnpurge.runtime.providers.cloudfront import (
    IN_PROGRESS_BACKOFF_SECONDS,
    MAX_TAGS_IN_PROGRESS,
    CloudFrontProvider,
    CloudFrontSettings,
    InvalidationStatus,
    encode_path,
)
from cdnpurge_local.cloudfront_tags import enforce_cache_tags
from cdnpurge_local.distributions import s3_distribution
from cdnpurge_local.iam import enforce_role, function_role
from cdnpurge_local.provision import load_template
from cdnpurge_local.servers import MotoServer, free_port
from cdnpurge_local.stack import TEMPLATE_PATH

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

HOST = "www.example.com"
MOTO = pytest.mark.xdist_group("moto-cloudfront")


# ---------------------------------------------------------------------------------------------------
# moto server: one process for the module, always terminated
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto server as the local stack runs it (`cdnpurge_local.servers`), for this module alone."""
    with MotoServer() as moto:
        yield moto.endpoint


def aws_client(endpoint: str, **config: Any) -> CloudFrontClient:
    return boto3.client(
        "cloudfront",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=BotocoreConfig(**config) if config else None,
    )


@pytest.fixture(scope="module")
def cloudfront(moto_endpoint: str) -> CloudFrontClient:
    return aws_client(moto_endpoint)


@pytest.fixture
def distribution_id(cloudfront: CloudFrontClient) -> str:
    """A fresh distribution per test, so invalidation lists never mix."""
    return s3_distribution(cloudfront, "example-site-content", comment="cdnpurge contract test")


def settings_for(distribution_id: str, **overrides: Any) -> CloudFrontSettings:
    fields: dict[str, Any] = {"name": "cloudfront", "kind": "cloudfront", "distribution_id": distribution_id}
    fields["hosts"] = (HOST,)
    fields.update(overrides)
    return parse_settings(CloudFrontSettings, fields)


def provider(client: CloudFrontClient, distribution_id: str) -> CloudFrontProvider:
    return CloudFrontProvider(settings_for(distribution_id), {}, client)


def request(kind: TargetKind, *targets: str) -> PurgeRequest:
    return PurgeRequest("cloudfront", kind, targets, False, frozenset({"c1"}))


def paths_of(client: CloudFrontClient, distribution_id: str, invalidation_id: str) -> list[str]:
    invalidation = client.get_invalidation(DistributionId=distribution_id, Id=invalidation_id)["Invalidation"]
    return invalidation["InvalidationBatch"]["Paths"].get("Items", [])


def routed(kind: TargetKind, values: list[str], change: str = "c1") -> list[RoutedTarget]:
    return [RoutedTarget(change, Target(kind, value), None, None) for value in values]


class MotoHarness:
    """CloudFront adapters on one fresh moto distribution; `calls()` counts its invalidations."""

    def __init__(self, client: CloudFrontClient, distribution_id: str, **settings: Any) -> None:
        self.client = client
        self.distribution_id = distribution_id
        self.settings = settings

    def provider(self, **overrides: Any) -> CloudFrontProvider:
        settings = settings_for(**({"distribution_id": self.distribution_id} | self.settings | overrides))
        return CloudFrontProvider(settings, {}, self.client)

    def calls(self) -> int:
        listed = self.client.list_invalidations(DistributionId=self.distribution_id)["InvalidationList"]
        return listed["Quantity"]


@MOTO
class TestContract(AdapterContract):
    case = ContractCase(
        adapter=CloudFrontProvider,
        settings={"distribution_id": "E2QWRUHEXAMPLE", "hosts": (HOST,)},
        limit_kind=TargetKind.PATH,
        targets=lambda n: tuple(f"/p/{i}" for i in range(n)),
        missing={"distribution_id": "E000000NOSUCH"},
    )

    @pytest.fixture
    def harness(self, cloudfront: CloudFrontClient, distribution_id: str) -> MotoHarness:
        return MotoHarness(cloudfront, distribution_id)


# ---------------------------------------------------------------------------------------------------
# Invalidations on moto
# ---------------------------------------------------------------------------------------------------


@MOTO
def test_path_invalidation_lands_with_encoded_paths(cloudfront: CloudFrontClient, distribution_id: str) -> None:
    # Given paths as the rules produce them (already percent-encoded), plus characters CloudFront wants encoded
    req = request(TargetKind.PATH, "/articles/a%20b.html", "/caf\u00e9/menu", "/100%", "/docs/")
    # When
    result = provider(cloudfront, distribution_id).purge(req, idempotency_token=request_token(req))
    # Then
    assert result.provider_id
    assert result.detail in {status.value for status in InvalidationStatus}
    assert paths_of(cloudfront, distribution_id, result.provider_id) == [
        "/articles/a%20b.html",
        "/caf%C3%A9/menu",
        "/100%25",
        "/docs/",
    ]
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]
    assert [item["Id"] for item in listed.get("Items", [])] == [result.provider_id]


@MOTO
def test_prefix_renders_as_a_trailing_wildcard(cloudfront: CloudFrontClient, distribution_id: str) -> None:
    result = provider(cloudfront, distribution_id).purge(
        request(TargetKind.PREFIX, "/dir/", "/img/a%20b"), idempotency_token="t-prefix"
    )
    assert result.provider_id
    assert paths_of(cloudfront, distribution_id, result.provider_id) == ["/dir/*", "/img/a%20b*"]


@MOTO
def test_all_renders_as_slash_star(cloudfront: CloudFrontClient, distribution_id: str) -> None:
    result = provider(cloudfront, distribution_id).purge(request(TargetKind.ALL, "*"), idempotency_token="t-all")
    assert result.provider_id
    assert paths_of(cloudfront, distribution_id, result.provider_id) == ["/*"]


@MOTO
def test_a_retry_sends_the_same_caller_reference(cloudfront: CloudFrontClient, distribution_id: str) -> None:
    # Given one planned request and its token
    req = request(TargetKind.PATH, "/a.html")
    token = request_token(req)
    adapter = provider(cloudfront, distribution_id)
    # When it is sent twice (a retry after a lost response)
    first = adapter.purge(req, idempotency_token=token)
    second = adapter.purge(req, idempotency_token=token)
    # Then both carry the same CallerReference, the key CloudFront deduplicates on
    for result in (first, second):
        assert result.provider_id
        got = cloudfront.get_invalidation(DistributionId=distribution_id, Id=result.provider_id)
        assert got["Invalidation"]["InvalidationBatch"]["CallerReference"] == token


@MOTO
@MOTO
def test_a_retry_returns_the_existing_invalidation(cloudfront: CloudFrontClient, distribution_id: str) -> None:
    req = request(TargetKind.PATH, "/a.html")
    adapter = provider(cloudfront, distribution_id)
    first = adapter.purge(req, idempotency_token=request_token(req))
    second = adapter.purge(req, idempotency_token=request_token(req))
    assert second.provider_id == first.provider_id
    assert cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]["Quantity"] == 1


@MOTO
def test_a_new_attempt_at_the_same_paths_is_a_new_invalidation(
    cloudfront: CloudFrontClient, distribution_id: str
) -> None:
    # Given a path purged once (its change's first attempt)
    req = request(TargetKind.PATH, "/a.html")
    adapter = provider(cloudfront, distribution_id)
    first = adapter.purge(req, idempotency_token=request_token(req, {"c1": "attempt-1"}))
    # When the same path is purged again by another attempt (a re-purge, an id reused after the window)
    again = adapter.purge(req, idempotency_token=request_token(req, {"c1": "verify-1"}))
    # Then CloudFront creates a second invalidation
    assert again.provider_id != first.provider_id
    assert cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]["Quantity"] == 2


@MOTO
def test_a_reference_reused_for_other_paths_is_refused(cloudfront: CloudFrontClient, distribution_id: str) -> None:
    # AWS: the same CallerReference with a different batch is InvalidationBatchAlreadyExists (HTTP 409)
    adapter = provider(cloudfront, distribution_id)
    adapter.purge(request(TargetKind.PATH, "/a.html"), idempotency_token="t-reused")
    with pytest.raises(ClientError) as refused:
        cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/b.html"]}, "CallerReference": "t-reused"},
        )
    assert refused.value.response["Error"]["Code"] == "InvalidationBatchAlreadyExists"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(RejectedError, match="InvalidationBatchAlreadyExists"):
        adapter.purge(request(TargetKind.PATH, "/b.html"), idempotency_token="t-reused")


@MOTO
def test_status_reads_the_invalidation(cloudfront: CloudFrontClient, distribution_id: str) -> None:
    adapter = provider(cloudfront, distribution_id)
    result = adapter.purge(request(TargetKind.PATH, "/a"), idempotency_token="t-status")
    assert result.provider_id
    # moto completes at once and says "COMPLETED"; AWS says "InProgress" then "Completed"
    assert adapter.status(result.provider_id) is InvalidationStatus.COMPLETED
    with pytest.raises(NotFoundError, match="NoSuchInvalidation"):
        adapter.status("INOSUCHINVALIDATION")


@MOTO
def test_client_is_built_lazily_from_the_endpoint_setting(
    moto_endpoint: str, distribution_id: str, cloudfront: CloudFrontClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given only the IAM-role style environment (no client injected)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    adapter = CloudFrontProvider(settings_for(distribution_id, endpoint=moto_endpoint), {})
    # When
    result = adapter.purge(request(TargetKind.PATH, "/lazy"), idempotency_token="t-lazy")
    # Then
    assert result.provider_id
    assert paths_of(cloudfront, distribution_id, result.provider_id) == ["/lazy"]
    config = adapter.client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}  # type: ignore[attr-defined]
    # Connecting is quick or not at all (botocore cannot cut it per call); reading gets the provider's timeout
    assert (config.connect_timeout, config.read_timeout) == (1.0, 10.0)  # type: ignore[attr-defined]
    adapter.close()


@MOTO
def test_boto3_honours_the_cloudfront_endpoint_variable(
    moto_endpoint: str, distribution_id: str, cloudfront: CloudFrontClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFRONT", moto_endpoint)
    adapter = CloudFrontProvider(settings_for(distribution_id), {})
    result = adapter.purge(request(TargetKind.PATH, "/env"), idempotency_token="t-env")
    assert result.provider_id
    assert paths_of(cloudfront, distribution_id, result.provider_id) == ["/env"]


# ---------------------------------------------------------------------------------------------------
# Planning against the declared limits (pure)
# ---------------------------------------------------------------------------------------------------


def provider_spec(settings: CloudFrontSettings) -> ProviderSpec:
    return CloudFrontProvider.spec_for(settings)


@pytest.mark.parametrize(
    ("kind", "limit"), [(TargetKind.PATH, 3000), (TargetKind.PREFIX, 15)], ids=["paths", "wildcards"]
)
@pytest.mark.parametrize("extra", [0, 1], ids=["N", "N+1"])
def test_planner_never_exceeds_the_in_progress_limits(kind: TargetKind, limit: int, extra: int) -> None:
    # Given N or N+1 targets of one kind
    values = [f"/d{i}/" for i in range(limit + extra)]
    # When
    result = plan(routed(kind, values), {"cloudfront": provider_spec(settings_for("E2QWRUHEXAMPLE"))})
    # Then every request stays within the limit and nothing is lost
    assert not result.errors
    assert [len(req.targets) for req in result.requests] == ([limit] if not extra else [limit, 1])
    assert sorted(v for req in result.requests for v in req.targets) == sorted(values)


def test_all_is_one_wildcard_request_that_covers_the_prefixes() -> None:
    # Given: an invalidation of everything next to 15 prefixes
    items = routed(TargetKind.ALL, ["*"]) + routed(TargetKind.PREFIX, [f"/d{i}/" for i in range(15)])
    # When
    result = plan(items, {"cloudfront": provider_spec(settings_for("E2QWRUHEXAMPLE"))})
    # Then: `/*` already covers every prefix, so it is the only request, serving every change
    assert [(req.kind, len(req.targets)) for req in result.requests] == [(TargetKind.ALL, 1)]
    assert result.requests[0].change_ids == {"c1"}


def test_a_lowered_limit_is_honoured_and_a_raised_one_refused() -> None:
    spec = provider_spec(settings_for("E2QWRUHEXAMPLE", max_targets={"path": 1000}))
    result = plan(routed(TargetKind.PATH, [f"/p{i}" for i in range(1001)]), {"cloudfront": spec})
    assert [len(req.targets) for req in result.requests] == [1000, 1]
    with pytest.raises(ValueError, match="between 1 and the provider's limit 3000"):
        provider_spec(settings_for("E2QWRUHEXAMPLE", max_targets={"path": 3001}))


def test_url_targets_become_paths_and_foreign_hosts_are_plan_errors() -> None:
    spec = provider_spec(settings_for("E2QWRUHEXAMPLE"))
    items = routed(TargetKind.URL, [f"https://{HOST}/a%20b.html?v=2"], "c1") + routed(
        TargetKind.URL, ["https://other.example.net/x"], "c2"
    )
    result = plan(items, {"cloudfront": spec})
    assert [(req.kind, req.targets) for req in result.requests] == [(TargetKind.PATH, ("/a%20b.html?v=2",))]
    (error,) = result.errors
    assert error.change_ids == frozenset({"c2"})
    assert "host is not one of" in error.message


@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [
        (TargetKind.PATH, "/a\nb", "control characters"),
        (TargetKind.PATH, "/a*", "wildcard"),
        (TargetKind.PATH, "a.html", "start with '/'"),
        (TargetKind.PATH, "/" + "x" * 4000, "4000"),
        (TargetKind.PREFIX, "/d*/", "wildcard"),
    ],
)
def test_unexpressible_targets_are_plan_errors_and_rejected_by_purge(
    kind: TargetKind, value: str, problem: str
) -> None:
    spec = provider_spec(settings_for("E2QWRUHEXAMPLE"))
    (error,) = plan(routed(kind, [value]), {"cloudfront": spec}).errors
    assert problem in error.message
    adapter = CloudFrontProvider(settings_for("E2QWRUHEXAMPLE"), {}, client=unused_client())
    with pytest.raises(RejectedError, match=problem):
        adapter.purge(request(kind, value), idempotency_token="t")


def test_more_than_15_wildcards_are_rejected_before_any_call() -> None:
    adapter = CloudFrontProvider(settings_for("E2QWRUHEXAMPLE"), {}, client=unused_client())
    with pytest.raises(RejectedError, match="16 prefix targets"):
        adapter.purge(request(TargetKind.PREFIX, *(f"/{i}/" for i in range(16))), idempotency_token="t")


def test_encoding_keeps_escapes_and_encodes_only_unsafe_characters() -> None:
    assert encode_path("/a%20b/%E2%82%AC") == "/a%20b/%E2%82%AC"
    assert encode_path("/a b~[1]/\u20ac?x=1&y=%zz") == "/a%20b%7E%5B1%5D/%E2%82%AC?x=1&y=%25zz"
    assert encode_path("/keep/(these)!$&'+,;=:@") == "/keep/(these)!$&'+,;=:@"


def test_settings_validate_the_distribution_and_refuse_credentials() -> None:
    with pytest.raises(DocumentError, match="distribution_id"):
        settings_for("e2qwruhexample")
    with pytest.raises(DocumentError, match="IAM role"):
        settings_for("E2QWRUHEXAMPLE", credentials={"token": {"env": "X"}})
    assert CloudFrontProvider.declared.asynchronous
    assert not CloudFrontProvider.declared.soft_purge


# ---------------------------------------------------------------------------------------------------
# Error mapping (moto emits none of these: botocore's Stubber feeds them to a real client)
# ---------------------------------------------------------------------------------------------------


def unused_client() -> CloudFrontClient:
    """A client whose endpoint refuses connections: tests using it must not reach the network."""
    return aws_client(f"http://127.0.0.1:{free_port()}", retries={"max_attempts": 1}, connect_timeout=1)


@pytest.mark.parametrize(
    ("code", "status", "error_class", "retry_after"),
    [
        ("TooManyInvalidationsInProgress", 400, ThrottledError, IN_PROGRESS_BACKOFF_SECONDS),
        ("Throttling", 400, ThrottledError, None),
        ("ThrottlingException", 400, ThrottledError, None),
        ("RequestLimitExceeded", 400, ThrottledError, None),
        ("NoSuchDistribution", 404, NotFoundError, None),
        ("AccessDenied", 403, AuthError, None),
        ("InvalidSignatureException", 403, AuthError, None),
        ("UnrecognizedClientException", 403, AuthError, None),
        ("InvalidArgument", 400, RejectedError, None),
        ("BatchTooLarge", 413, RejectedError, None),
        ("InconsistentQuantities", 400, RejectedError, None),
        ("InvalidationBatchAlreadyExists", 400, RejectedError, None),
        ("ServiceUnavailable", 503, UnavailableError, None),
        ("SomethingNew", 500, UnavailableError, None),
        ("SomethingElse", 400, RejectedError, None),
    ],
)
def test_error_codes_map_to_the_shared_vocabulary(
    code: str, status: int, error_class: type[ProviderError], retry_after: float | None
) -> None:
    # Given a real client whose next CreateInvalidation answers with this AWS error
    client = aws_client("https://cloudfront.amazonaws.com")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "create_invalidation", service_error_code=code, service_message=f"{code} says no", http_status_code=status
        )
        # When
        with pytest.raises(ProviderError) as raised:
            CloudFrontProvider(settings_for("E2QWRUHEXAMPLE"), {}, client).purge(
                request(TargetKind.PATH, "/a"), idempotency_token="t"
            )
    # Then the class, status and AWS message are kept
    assert type(raised.value) is error_class
    assert raised.value.status == status
    assert f"{code} says no" in raised.value.message
    if isinstance(raised.value, ThrottledError):
        assert raised.value.retry_after == retry_after
    assert "testing" not in str(raised.value)


def test_stubbed_success_reads_id_and_status() -> None:
    client = aws_client("https://cloudfront.amazonaws.com")
    req = request(TargetKind.PATH, "/a")
    with Stubber(client) as stubber:
        stubber.add_response(
            "create_invalidation",
            {
                "Location": "https://cloudfront.amazonaws.com/2020-05-31/distribution/E2QWRUHEXAMPLE/invalidation/I1",
                "Invalidation": {
                    "Id": "I1",
                    "Status": "InProgress",
                    "CreateTime": "2024-01-01T00:00:00Z",
                    "InvalidationBatch": {"Paths": {"Quantity": 1, "Items": ["/a"]}, "CallerReference": "tok"},
                },
            },
            {
                "DistributionId": "E2QWRUHEXAMPLE",
                "InvalidationBatch": {"Paths": {"Quantity": 1, "Items": ["/a"]}, "CallerReference": "tok"},
            },
        )
        result = CloudFrontProvider(settings_for("E2QWRUHEXAMPLE"), {}, client).purge(req, idempotency_token="tok")
    assert (result.provider_id, result.detail) == ("I1", "InProgress")


def test_an_unknown_invalidation_status_is_a_rejected_error() -> None:
    # Given: a CreateInvalidation answer with a status CloudFront does not document
    client = aws_client("https://cloudfront.amazonaws.com")
    batch = {"Paths": {"Quantity": 1, "Items": ["/a"]}, "CallerReference": "tok"}
    with Stubber(client) as stubber:
        stubber.add_response(
            "create_invalidation",
            {
                "Invalidation": {
                    "Id": "I1",
                    "Status": "Paused",
                    "CreateTime": "2024-01-01T00:00:00Z",
                    "InvalidationBatch": batch,
                }
            },
            {"DistributionId": "E2QWRUHEXAMPLE", "InvalidationBatch": batch},
        )
        # When
        with pytest.raises(ProviderError) as raised:
            CloudFrontProvider(settings_for("E2QWRUHEXAMPLE"), {}, client).purge(
                request(TargetKind.PATH, "/a"), idempotency_token="tok"
            )
    # Then: one of the shared error classes (which the executor and metrics know), not the bare base class
    assert type(raised.value) is RejectedError
    assert "unknown invalidation status 'Paused'" in raised.value.message


def test_unreachable_endpoint_is_unavailable() -> None:
    adapter = CloudFrontProvider(settings_for("E2QWRUHEXAMPLE"), {}, client=unused_client())
    with pytest.raises(UnavailableError, match="EndpointConnectionError calling CreateInvalidation") as raised:
        adapter.purge(request(TargetKind.PATH, "/a"), idempotency_token="t")
    assert raised.value.retryable


def test_missing_credentials_are_an_auth_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    adapter = CloudFrontProvider(settings_for("E2QWRUHEXAMPLE", endpoint=f"http://127.0.0.1:{free_port()}"), {})
    with pytest.raises(AuthError, match="no AWS credentials"):
        adapter.purge(request(TargetKind.PATH, "/a"), idempotency_token="t")


# ---------------------------------------------------------------------------------------------------
# Cache tags (`cache_tags: true`): moto knows no tags, so its client enforces the documented rules
# (`cdnpurge_local.cloudfront_tags`, written from the Developer Guide, not from the adapter)
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tag_aware(moto_endpoint: str) -> CloudFrontClient:
    return enforce_cache_tags(aws_client(moto_endpoint))


def tagged(distribution_id: str = "E2QWRUHEXAMPLE", **overrides: Any) -> CloudFrontSettings:
    return settings_for(distribution_id, cache_tags=True, **overrides)


@MOTO
class TestTaggedContract(AdapterContract):
    """The shared suite again for a distribution with cache tags, its per-call limit on tag items."""

    case = ContractCase(
        adapter=CloudFrontProvider,
        settings={"distribution_id": "E2QWRUHEXAMPLE", "hosts": (HOST,), "cache_tags": True},
        limit_kind=TargetKind.KEY,
        targets=lambda n: tuple(f"Tag-{i}" for i in range(n)),
        missing={"distribution_id": "E000000NOSUCH"},
    )

    @pytest.fixture
    def harness(self, tag_aware: CloudFrontClient, distribution_id: str) -> MotoHarness:
        return MotoHarness(tag_aware, distribution_id, cache_tags=True)


@MOTO
def test_keys_go_as_tag_items_deduped_case_insensitively(tag_aware: CloudFrontClient, distribution_id: str) -> None:
    # Given keys from two changes, the same tag in two cases
    items = routed(TargetKind.KEY, ["Product:TV", "brand"], "c1") + routed(TargetKind.KEY, ["product:tv"], "c2")
    spec = provider_spec(tagged(distribution_id))
    # When planned and sent
    result = plan(items, {"cloudfront": spec})
    (req,) = result.requests
    sent = CloudFrontProvider(tagged(distribution_id), {}, tag_aware).purge(req, idempotency_token=request_token(req))
    # Then one tag item each, in the same Paths.Items CloudFront reads paths from, serving both changes
    assert not result.errors
    assert (req.kind, req.targets, req.change_ids) == (TargetKind.KEY, ("brand", "product:tv"), frozenset({"c1", "c2"}))
    assert sent.provider_id
    assert paths_of(tag_aware, distribution_id, sent.provider_id) == ["#brand", "#product:tv"]


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("a,b", "without ',' or '*'"),
        ("img*", "without ',' or '*'"),
        ("two words", "without ',' or '*'"),
        ("caf\u00e9", "without ',' or '*'"),
        ("tab\there", "without ',' or '*'"),
        ("x" * 257, "256-character"),
    ],
    ids=["comma", "wildcard", "space", "non-ascii", "control", "257-chars"],
)
def test_an_invalid_tag_fails_its_change_alone(tag: str, problem: str) -> None:
    # Given a bad tag for one change, good targets for another
    items = routed(TargetKind.KEY, [tag], "bad") + routed(TargetKind.KEY, ["good"], "ok")
    # When
    result = plan(items, {"cloudfront": provider_spec(tagged())})
    # Then only the bad change fails, naming why; the good tag is still sent
    (error,) = result.errors
    assert error.change_ids == {"bad"}
    assert problem in error.message
    assert [(req.targets, req.change_ids) for req in result.requests] == [(("good",), frozenset({"ok"}))]
    adapter = CloudFrontProvider(tagged(), {}, client=unused_client())
    with pytest.raises(RejectedError, match=re.escape(problem)):
        adapter.purge(request(TargetKind.KEY, tag), idempotency_token="t")


@MOTO
def test_the_longest_and_oddest_valid_tags_are_accepted(tag_aware: CloudFrontClient, distribution_id: str) -> None:
    values = ("x" * 256, "!#$%&'()+-./:;<=>?@[\\]^_`{|}~", "product:electronics")
    req = request(TargetKind.KEY, *values)
    result = CloudFrontProvider(tagged(distribution_id), {}, tag_aware).purge(req, idempotency_token="t-odd")
    assert result.provider_id
    assert paths_of(tag_aware, distribution_id, result.provider_id) == ["#" + value for value in values]


@MOTO
@pytest.mark.parametrize("item", ["#a,b", "#a*", "#", "#" + "y" * 257, "#caf\u00e9"])
def test_the_test_double_refuses_what_cloudfront_refuses(
    tag_aware: CloudFrontClient, distribution_id: str, item: str
) -> None:
    # The double must be able to fail: a raw call with a bad tag item never reaches moto
    with pytest.raises(ClientError, match="InvalidArgument"):
        tag_aware.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={"Paths": {"Quantity": 1, "Items": [item]}, "CallerReference": uuid.uuid4().hex},
        )


@pytest.mark.parametrize("extra", [0, 1], ids=["N", "N+1"])
def test_tags_per_call_count_against_the_paths_in_progress(extra: int) -> None:
    values = [f"tag-{i}" for i in range(MAX_TAGS_IN_PROGRESS + extra)]
    result = plan(routed(TargetKind.KEY, values), {"cloudfront": provider_spec(tagged())})
    assert [len(req.targets) for req in result.requests] == [MAX_TAGS_IN_PROGRESS] + [1] * extra
    adapter = CloudFrontProvider(tagged(), {}, client=unused_client())
    with pytest.raises(RejectedError, match=f"{MAX_TAGS_IN_PROGRESS + 1} key targets"):
        adapter.purge(
            request(TargetKind.KEY, *(f"t{i}" for i in range(MAX_TAGS_IN_PROGRESS + 1))), idempotency_token="t"
        )


def test_without_cache_tags_a_key_is_a_plan_error_not_a_silent_no_op() -> None:
    # A distribution without CacheTagConfig ignores tags: refuse rather than pay for nothing
    (error,) = plan(routed(TargetKind.KEY, ["article-1"]), {"cloudfront": provider_spec(settings_for("E1"))}).errors
    assert "cannot purge by key" in error.message
    assert not CloudFrontProvider.spec_for(settings_for("E1")).capabilities.supports(TargetKind.KEY)
    assert CloudFrontProvider.spec_for(tagged("E1")).billing_key == "E1"


# ---------------------------------------------------------------------------------------------------
# The credential check (`cdnpurge doctor`): GetDistribution with the adapter's AWS credentials
# ---------------------------------------------------------------------------------------------------


@MOTO
def test_the_credential_check_reads_the_distribution_and_invalidates_nothing(
    cloudfront: CloudFrontClient, distribution_id: str
) -> None:
    # When
    result = check_credentials(provider(cloudfront, distribution_id), [])
    # Then
    assert (result.acceptance, result.detail) == (Acceptance.ACCEPTED, f"GetDistribution {distribution_id}")
    assert cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]["Quantity"] == 0


@MOTO
def test_the_credential_check_of_a_distribution_moto_lacks_is_unknown(cloudfront: CloudFrontClient) -> None:
    result = check_credentials(provider(cloudfront, "E000000NOSUCH"), [])
    assert result.acceptance is Acceptance.UNKNOWN and "NoSuchDistribution" in result.detail


@MOTO
def test_credentials_iam_does_not_let_read_the_distribution_are_refused(
    moto_endpoint: str, distribution_id: str
) -> None:
    # Given the adapter's client authorised as AWS would by the function's own role, which may invalidate the
    # distribution but not read it (no cloudfront:GetDistribution): AWS answers AccessDenied
    account = "123456789012"
    arn = f"arn:aws:cloudfront::{account}:distribution/{distribution_id}"
    role = function_role(
        load_template(TEMPLATE_PATH),
        parameters={"ContentBucketName": "site-content", "CloudFrontDistributionArns": arn},
        region="us-east-1",
        account=account,
    )
    assert role.allows("cloudfront:CreateInvalidation", arn) and not role.allows("cloudfront:GetDistribution", arn)
    guarded = enforce_role(aws_client(moto_endpoint), role, region="us-east-1", account=account)
    # When / Then
    result = check_credentials(provider(guarded, distribution_id), [])
    assert result.acceptance is Acceptance.REFUSED and "AccessDenied" in result.detail
