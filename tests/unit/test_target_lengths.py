"""Target lengths: every provider declares how long a target of each kind may be, and an over-long
target fails its own change at planning, never a request shared with others (nor an HTTP client's URL
limit, as a 70,000-character Fastly key once did, raising for the whole batch)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability import tally

from cdnpurge.core.config import parse_config
from cdnpurge.core.credentials import Secret
from cdnpurge.core.models import PurgeRequest, RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.provider_errors import RejectedError
from cdnpurge.core.registry import KINDS, specs
from cdnpurge.runtime.providers.fastly import MAX_KEY_BYTES, FastlyProvider, FastlySettings

EXAMPLES = Path(__file__).parents[2] / "examples"


def long_value(kind: TargetKind, size: int) -> str:
    """A target of `kind` of exactly `size` bytes (ASCII), shaped as the kind requires."""
    if kind is TargetKind.URL:
        head = "https://www.example.com/"
    elif kind in (TargetKind.PATH, TargetKind.PREFIX):
        head = "/"
    elif kind is TargetKind.HOST:
        host = ".".join(["a" * 63] * (size // 64 + 1))[:size]
        return host[:-1] + "b" if host.endswith(".") else host
    else:
        head = "k"
    return head + "x" * (size - len(head))


def bounded_kinds() -> list[tuple[str, TargetKind, int]]:
    cases: list[tuple[str, TargetKind, int]] = []
    for kind in KINDS:
        config = parse_config((EXAMPLES / f"{kind}.yaml").read_text())
        (spec,) = specs(config.providers).values()
        cases.extend((kind, target_kind, limit) for target_kind, limit in spec.capabilities.max_target_bytes.items())
    return cases


def test_every_provider_declares_a_length_for_what_it_purges() -> None:
    declared = {kind for kind, _, _ in bounded_kinds()}
    assert declared == set(KINDS) - {"cloudfront"}  # CloudFront's render bounds its paths (4,000 characters)


@pytest.mark.parametrize(("kind", "target_kind", "limit"), bounded_kinds(), ids=str)
def test_an_over_long_target_fails_only_its_own_change(kind: str, target_kind: TargetKind, limit: int) -> None:
    # Given: one target a byte over the provider's limit for its kind, one well within it
    config = parse_config((EXAMPLES / f"{kind}.yaml").read_text())
    routed = [
        RoutedTarget("long", Target(target_kind, long_value(target_kind, limit + 1)), None, None),
        RoutedTarget("short", Target(target_kind, long_value(target_kind, min(limit // 2, 60))), None, None),
    ]
    # When
    the_plan = plan(routed, specs(config.providers))
    # Then: the long one is a plan error naming the limit; the short one is planned
    assert [sorted(error.change_ids) for error in the_plan.errors] == [["long"]]
    assert f"at most {limit} " in the_plan.errors[0].message
    assert {change for request in the_plan.requests for change in request.change_ids} == {"short"}


FASTLY = "providers: [{name: fastly, kind: fastly, service_id: S1, hosts: [www.example.com]}]"


@given(size=st.integers(MAX_KEY_BYTES - 8, MAX_KEY_BYTES + 8), wide=st.booleans())
def test_fastly_keys_are_planned_exactly_up_to_1024_bytes(size: int, wide: bool) -> None:
    tally.hostile("bounds")
    # Given: a key of `size` bytes, in one-byte or two-byte characters
    key = "é" * (size // 2) + "k" * (size % 2) if wide else "k" * size
    routed = [RoutedTarget("c", Target(TargetKind.KEY, key), None, None)]
    # When
    the_plan = plan(routed, specs(parse_config(FASTLY).providers))
    # Then
    assert bool(the_plan.requests) is (len(key.encode()) <= MAX_KEY_BYTES)
    assert bool(the_plan.errors) is (len(key.encode()) > MAX_KEY_BYTES)


def test_the_adapter_refuses_an_over_long_key_before_calling() -> None:
    # Given: a request built by hand, past the planner (a 70,000-character key made an URL httpx refused)
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"status": "ok", "id": "1"})

    client = httpx.Client(transport=httpx.MockTransport(answer))
    adapter = FastlyProvider(FastlySettings(name="fastly", service_id="S1"), {"token": Secret("t" * 20)}, client)
    request = PurgeRequest("fastly", TargetKind.KEY, ("k" * 70_000,), False)
    # When / Then: a permanent refusal for that request, no call
    with pytest.raises(RejectedError, match="at most 1024 bytes"):
        adapter.purge(request, idempotency_token="t")
    assert calls == []


def url_kinds() -> list[str]:
    kinds = []
    for kind in KINDS:
        (spec,) = specs(parse_config((EXAMPLES / f"{kind}.yaml").read_text()).providers).values()
        if spec.capabilities.supports(TargetKind.URL):
            kinds.append(kind)
    return kinds


@pytest.mark.parametrize("kind", url_kinds())
@pytest.mark.parametrize(
    "url", ["https://u:p@www.example.com/x", "https://www.example.com\\@evil.test/", "https://www.example.com:8443/x"]
)
def test_every_provider_refuses_a_url_that_is_not_canonical_whoever_built_it(kind: str, url: str) -> None:
    # Given: a URL target that reached the planner without going through translate or the CLI
    config = parse_config((EXAMPLES / f"{kind}.yaml").read_text())
    routed = [RoutedTarget("c", Target(TargetKind.URL, url), None, None)]
    # When
    the_plan = plan(routed, specs(config.providers))
    # Then: a plan error for that change (never quoting the userinfo), no request
    assert the_plan.requests == ()
    assert [sorted(error.change_ids) for error in the_plan.errors] == [["c"]]
    assert "u:p" not in the_plan.errors[0].message
