"""Medianova adapter against the fake Medianova purge API on loopback: jobs, listing, limits and errors.

The errors, limits and secrets every provider shares are checked by the contract suite (`kit.py`) through
`TestContract`; this file holds what is particular to Medianova."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from contract.kit import HttpCase, HttpContract

from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import AuthError, NotFoundError, RejectedError, UnavailableError
from cdnpurge.core.spec import parse_settings
from cdnpurge.runtime.providers.medianova import MedianovaProvider, MedianovaSettings
from cdnpurge_local.fakecdn.medianova import MedianovaBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN, Fault

TOKEN = "medianova-test-token-not-real"
ORG = "00000000-aaaa-4000-8000-000000000001"
RESOURCE = "00000000-bbbb-4000-8000-000000000002"
JOBS_PATH = f"/cdn/{ORG}/job/{RESOURCE}/purge"


def behaviour(**options: Any) -> MedianovaBehaviour:
    return MedianovaBehaviour(token=TOKEN, organization_uuid=ORG, resource_uuid=RESOURCE, **options)


@pytest.fixture
def cdn() -> Iterator[FakeCDN]:
    with FakeCDN([behaviour()]) as fake:
        yield fake


def settings(endpoint: str | None = None, **overrides: Any) -> MedianovaSettings:
    values: dict[str, Any] = {
        "name": "mn",
        "kind": "medianova",
        "organization_uuid": ORG,
        "resource_uuid": RESOURCE,
        "endpoint": endpoint,
        "hosts": ("www.example.com",),
    }
    return parse_settings(MedianovaSettings, values | overrides)


def provider(cdn: FakeCDN, *, token: str = TOKEN, **overrides: Any) -> MedianovaProvider:
    return MedianovaProvider(settings(cdn.endpoint("medianova"), **overrides), {"token": Secret(token)})


def request(kind: TargetKind, *targets: str) -> PurgeRequest:
    return PurgeRequest("mn", kind, targets, False, frozenset({"c1"}))


def paths(count: int) -> tuple[str, ...]:
    return tuple(f"/assets/file-{i:03d}.js" for i in range(count))


def raw(cdn: FakeCDN, method: str, body: Any = None, params: dict[str, Any] | None = None) -> httpx.Response:
    """A call the adapter would never make, to check the fake refuses it as Medianova does."""
    return httpx.request(
        method,
        cdn.endpoint("medianova") + JOBS_PATH,
        json=body,
        params=params,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


class TestContract(HttpContract):
    case = HttpCase(
        adapter=MedianovaProvider,
        settings={"organization_uuid": ORG, "resource_uuid": RESOURCE},
        limit_kind=TargetKind.PATH,
        targets=paths,
        missing={"resource_uuid": "res-x"},
        behaviour=behaviour,
        credentials={"token": TOKEN},
        over_limit_status=422,
    )


# -- create purge jobs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["data", "flat", "opid"])
def test_path_purge_creates_a_job_and_reads_its_id_from_any_shape(cdn: FakeCDN, shape: str) -> None:
    # Given
    cdn.behaviours["medianova"].response_shape = shape  # type: ignore[attr-defined]
    # When
    result = provider(cdn).purge(request(TargetKind.PATH, "/a.html", "/b/c.css?v=2"), idempotency_token="t")
    # Then
    (received,) = cdn.received_by("medianova")
    assert (received.method, received.path) == ("POST", JOBS_PATH)
    assert received.body == {"resource_uuid": RESOURCE, "file_path": ["/a.html", "/b/c.css?v=2"]}
    assert received.headers["authorization"] == "<redacted>"
    assert result.provider_id == "00000000-0000-4000-8000-000000000001"
    assert cdn.purged("medianova") == ["path:/a.html", "path:/b/c.css?v=2"]


@pytest.mark.parametrize(
    ("prefix", "wire"), [("/img/", "/img/*"), ("/img", "/img*"), ("/", "/*"), ("/img/*", "/img/*")]
)
def test_prefix_is_sent_as_a_wildcard(cdn: FakeCDN, prefix: str, wire: str) -> None:
    # Given
    adapter = provider(cdn)
    # When
    adapter.purge(request(TargetKind.PREFIX, prefix), idempotency_token="t")
    # Then
    assert adapter.spec.render(Target(TargetKind.PREFIX, prefix)) == wire
    (received,) = cdn.received_by("medianova")
    assert received.body["file_path"] == [wire]


def test_a_prefix_purges_the_path_it_names_which_the_planner_counts_as_covered(cdn: FakeCDN) -> None:
    # Given: the path /img and a file below it, and the prefix /img, which the planner says covers both
    routed = [
        RoutedTarget("c1", Target(TargetKind.PREFIX, "/img"), None, None),
        RoutedTarget("c2", Target(TargetKind.PATH, "/img"), None, None),
        RoutedTarget("c3", Target(TargetKind.PATH, "/img/a/b.png"), None, None),
    ]
    adapter = provider(cdn)
    # When
    result = plan(routed, {"mn": adapter.spec})
    for planned in result.requests:
        adapter.purge(planned, idempotency_token="t")
    # Then: one prefix request serving all three changes, and Medianova purges both paths with it
    assert [(r.kind, r.targets, set(r.change_ids)) for r in result.requests] == [
        (TargetKind.PREFIX, ("/img",), {"c1", "c2", "c3"})
    ]
    fake = cdn.behaviours["medianova"]
    assert isinstance(fake, MedianovaBehaviour)
    assert fake.covered("/img") and fake.covered("/img/a/b.png")


def test_capabilities_are_async_path_and_prefix_without_soft() -> None:
    # Given / When
    caps = MedianovaProvider.spec_for(settings()).capabilities
    # Then
    assert dict(caps.max_targets) == {TargetKind.PATH: 100, TargetKind.PREFIX: 100}
    assert caps.asynchronous and not caps.soft_purge


# -- limits ------------------------------------------------------------------------------------------------


def test_the_planner_never_sends_more_than_100_paths_and_turns_urls_into_paths() -> None:
    # Given: 250 paths, the same one as a URL of the configured host, and a soft wish
    spec = MedianovaProvider.spec_for(settings())
    routed = [RoutedTarget("c1", Target(TargetKind.PATH, p), None, True) for p in paths(250)]
    routed.append(RoutedTarget("c2", Target(TargetKind.URL, "https://www.example.com/assets/file-000.js"), None, None))
    routed.append(RoutedTarget("c3", Target(TargetKind.URL, "https://other.example/x.js"), None, None))
    # When
    result = plan(routed, {"mn": spec})
    # Then
    assert [len(r.targets) for r in result.requests] == [100, 100, 50]
    assert not any(r.soft for r in result.requests)  # no soft purge at Medianova: always hard
    assert "c2" in result.requests[0].change_ids
    (error,) = result.errors
    assert "not one of mn's hosts" in error.message


def test_the_planner_respects_a_lowered_limit() -> None:
    # Given
    spec = MedianovaProvider.spec_for(settings(max_targets={"path": 40}))
    routed = [RoutedTarget("c1", Target(TargetKind.PATH, p), None, None) for p in paths(101)]
    # When
    result = plan(routed, {"mn": spec})
    # Then
    assert [len(r.targets) for r in result.requests] == [40, 40, 21]


def test_a_relative_path_is_refused_before_calling_and_by_the_fake(cdn: FakeCDN) -> None:
    # When / Then: the adapter refuses it (not a canonical path) without a call
    with pytest.raises(RejectedError, match="must start with '/'"):
        provider(cdn).purge(request(TargetKind.PATH, "img/a.png"), idempotency_token="t")
    assert cdn.received_by("medianova") == []
    # and the fake answers what Medianova does for one sent anyway
    response = raw(cdn, "POST", {"resource_uuid": RESOURCE, "file_path": ["img/a.png"]})
    assert response.status_code == 422 and "must be absolute paths" in response.text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"resource_uuid": RESOURCE, "file_path": []}, 422, "1 to 100 items, got 0"),
        ({"resource_uuid": "other", "file_path": ["/a"]}, 400, "must match the resource_uuid in the path"),
        ({"file_path": ["/a"]}, 400, "are required"),
        ({"resource_uuid": RESOURCE, "file_path": "/a"}, 422, "array of strings"),
    ],
)
def test_the_fake_refuses_malformed_bodies(cdn: FakeCDN, body: dict[str, Any], status: int, message: str) -> None:
    # When
    response = raw(cdn, "POST", body)
    # Then
    assert response.status_code == status
    assert message in response.json()["message"]


# -- job listing -------------------------------------------------------------------------------------------


def test_job_status_lists_jobs_and_filters_by_op_id(cdn: FakeCDN) -> None:
    # Given: three jobs
    adapter = provider(cdn)
    ids = [adapter.purge(request(TargetKind.PATH, f"/{i}"), idempotency_token="t").provider_id for i in range(3)]
    # When
    listing = adapter.job_status(page=1, limit=2)
    second_page = adapter.job_status(page=2, limit=2)
    one = adapter.job_status(op_id=ids[1])
    # Then
    assert [job["opID"] for job in listing["data"]] == [ids[2], ids[1]]
    assert [job["opID"] for job in second_page["data"]] == [ids[0]]
    assert [job["file_path"] for job in one["data"]] == [["/1"]]
    get = [r for r in cdn.received_by("medianova") if r.method == "GET"]
    assert get[0].path == f"{JOBS_PATH}?page=1&limit=2"
    assert get[2].path == f"{JOBS_PATH}?page=1&limit=10&opID={ids[1]}"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"page": 0}, "page must be an integer >= 1"),
        ({"limit": 0}, "limit must be an integer between 1 and 100"),
        ({"limit": 101}, "limit must be an integer between 1 and 100"),
        ({"op_id": ""}, "op_id must not be empty"),
    ],
)
def test_job_status_checks_bounds_before_calling(cdn: FakeCDN, arguments: dict[str, Any], message: str) -> None:
    # When / Then
    with pytest.raises(ValueError, match=message):
        provider(cdn).job_status(**arguments)
    assert cdn.received_by("medianova") == []


def test_job_status_accepts_the_boundaries(cdn: FakeCDN) -> None:
    # When
    low = provider(cdn).job_status(page=1, limit=1)
    high = provider(cdn).job_status(page=1, limit=100)
    # Then
    assert low["data"] == [] and high["meta"]["limit"] == 100


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page": 0, "limit": 10}, "page must be at least 1"),
        ({"page": 1, "limit": 101}, "limit must be between 1 and 100"),
        ({"page": 1, "limit": 0}, "limit must be between 1 and 100"),
        ({"limit": 10}, "required"),
    ],
)
def test_the_fake_refuses_listing_parameters_out_of_bounds(cdn: FakeCDN, params: dict[str, Any], message: str) -> None:
    # When
    response = raw(cdn, "GET", params=params)
    # Then
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_job_status_maps_errors_like_purge(cdn: FakeCDN) -> None:
    # Given
    cdn.inject("medianova", Fault(status=503))
    # When / Then
    with pytest.raises(UnavailableError):
        provider(cdn).job_status()
    with pytest.raises(AuthError):
        provider(cdn, token="medianova-wrong-token-not-real").job_status()


# -- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"organization_uuid": "org-missing"}, "Organization org-missing"),
        ({"resource_uuid": "res-x"}, "Resource res-x"),
    ],
)
def test_unknown_organization_or_resource_is_not_found(cdn: FakeCDN, overrides: dict[str, str], message: str) -> None:
    # When / Then
    with pytest.raises(NotFoundError, match=message) as raised:
        provider(cdn, **overrides).purge(request(TargetKind.PATH, "/a"), idempotency_token="t")
    assert raised.value.status == 404


def test_a_body_saying_the_job_failed_is_rejected(cdn: FakeCDN) -> None:
    # Given: an HTTP 200 whose body says it failed
    adapter = MedianovaProvider(
        settings("https://cloud.medianova.invalid/api/v1"),
        {"token": Secret(TOKEN)},
        httpx.Client(
            transport=httpx.MockTransport(
                lambda _: httpx.Response(200, json={"status": False, "message": "Resource is suspended"})
            )
        ),
    )
    # When / Then
    with pytest.raises(RejectedError, match="Resource is suspended"):
        adapter.purge(request(TargetKind.PATH, "/a"), idempotency_token="t")


def test_base_url_is_medianovas_unless_overridden(cdn: FakeCDN) -> None:
    # Given / When
    default = MedianovaProvider(settings(), {"token": Secret(TOKEN)})
    # Then
    assert default.base_url == "https://cloud.medianova.com/api/v1"
    assert provider(cdn).base_url == cdn.endpoint("medianova")
