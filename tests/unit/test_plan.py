from __future__ import annotations

import json
from functools import partial

from helpers import config_from

from cdnpurge.core.models import RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import plan
from cdnpurge.core.registry import specs
from cdnpurge.core.spec import Capabilities, ProviderSpec
from cdnpurge.runtime.providers.http import HttpProvider

# Fastly (keys and URLs) next to Medianova (paths only)
FASTLY_AND_MEDIANOVA = """
        providers:
          - {name: fastly, kind: fastly, service_id: S1, hosts: [www.example.com]}
          - {name: medianova, kind: medianova, organization_uuid: 550e8400-e29b-41d4-a716-446655440000,
             resource_uuid: 660f9511-f30c-52e5-b827-557766551111}
"""


def fastly_spec(hosts: tuple[str, ...] = ("www.example.com",), soft: bool = False) -> dict[str, ProviderSpec]:
    host_list = json.dumps(list(hosts))
    config = config_from(
        f"providers: [{{name: fastly, kind: fastly, service_id: S1, hosts: {host_list}, soft: {str(soft).lower()}}}]"
    )
    return specs(config.providers)


def routed(kind: TargetKind, values: list[str], change: str = "c1", soft: bool | None = None) -> list[RoutedTarget]:
    return [RoutedTarget(change, Target(kind, value), None, soft) for value in values]


def test_keys_are_deduped_sorted_and_chunked_at_256() -> None:
    # Given: 600 distinct keys, each routed twice by two changes
    keys = [f"k{i:04d}" for i in range(600)]
    items = routed(TargetKind.KEY, keys, "c1") + routed(TargetKind.KEY, list(reversed(keys)), "c2")
    # When
    result = plan(items, fastly_spec())
    # Then
    assert [len(r.targets) for r in result.requests] == [256, 256, 88]
    assert [t for r in result.requests for t in r.targets] == keys
    assert all(r.change_ids == {"c1", "c2"} for r in result.requests)


def test_paths_become_one_url_per_host_for_url_only_providers() -> None:
    result = plan(routed(TargetKind.PATH, ["/a"]), fastly_spec(hosts=("www.example.com", "example.com")))
    assert [r.targets for r in result.requests] == [
        ("https://example.com/a",),
        ("https://www.example.com/a",),
    ]
    assert all(r.kind is TargetKind.URL for r in result.requests)


def test_untranslatable_targets_are_plan_errors_not_drops() -> None:
    # Given: Fastly cannot purge by host or prefix, nor paths without hosts
    items = routed(TargetKind.HOST, ["www.example.com"]) + routed(TargetKind.PATH, ["/x"], "c2")
    # When
    result = plan(items, fastly_spec(hosts=()))
    # Then
    assert not result.requests
    messages = sorted(e.message for e in result.errors)
    assert messages == [
        "host:www.example.com: fastly cannot purge by host",
        "path:/x: fastly purges URLs only and has no `hosts` configured",
    ]


def test_soft_follows_the_change_then_the_provider_and_purge_all_is_never_soft() -> None:
    spec = fastly_spec(soft=True)
    soft_default = plan(routed(TargetKind.KEY, ["a"]), spec).requests
    hard_wish = plan(routed(TargetKind.KEY, ["a"], soft=False), spec).requests
    purge_all = plan(routed(TargetKind.ALL, ["*"]), spec).requests
    assert [r.soft for r in soft_default + hard_wish + purge_all] == [True, False, False]


def test_body_byte_limit_splits_requests_and_none_exceeds_it() -> None:
    # Given: a provider allowing 1000 URLs a call but only 1,000 bytes of body
    spec = ProviderSpec(
        name="bytes",
        capabilities=Capabilities(
            max_targets={TargetKind.URL: 1000}, max_body_bytes=1000, body_overhead_bytes=len('{"objects":[]}')
        ),
        hosts=(),
        default_soft=False,
        render=partial(HttpProvider.render, None),  # type: ignore[arg-type]
    )
    urls = [f"https://www.example.com/{i:05d}/{'x' * 40}" for i in range(100)]
    # When
    result = plan(routed(TargetKind.URL, urls), {"bytes": spec})
    # Then
    bodies = [json.dumps({"objects": list(r.targets)}, separators=(",", ":")) for r in result.requests]
    assert all(len(body) <= 1000 for body in bodies)
    assert sum(len(r.targets) for r in result.requests) == 100
    # Each URL costs 73 bytes (70 + quotes + comma): 13 fit in the 986 bytes left, so ceil(100 / 13) calls.
    assert len(result.requests) == 8


def test_plan_is_deterministic_whatever_the_input_order() -> None:
    items = routed(TargetKind.KEY, ["b", "a", "c"]) + routed(TargetKind.URL, ["https://www.example.com/z"])
    spec = fastly_spec()
    assert plan(items, spec) == plan(list(reversed(items)), spec)
    assert plan([i._replace() for i in items], spec).requests[0].kind is TargetKind.KEY


def test_a_target_the_provider_cannot_render_fails_only_its_own_change() -> None:
    # Given: a provider whose renderer refuses '*' in paths, and two changes sharing one request's worth
    def render(target: Target) -> str:
        if "*" in target.value:
            raise ValueError(f"{target.value!r}: a literal '*' would be read as a wildcard")
        return target.value

    spec = ProviderSpec("strict", Capabilities(max_targets={TargetKind.PATH: 100}), (), False, render)
    items = routed(TargetKind.PATH, ["/a", "/b"], "good") + routed(TargetKind.PATH, ["/c*"], "bad")
    # When
    result = plan(items, {"strict": spec})
    # Then: the good change's paths still go out; the error names only the bad change
    assert [(r.targets, r.change_ids) for r in result.requests] == [(("/a", "/b"), frozenset({"good"}))]
    assert [(e.change_ids, e.message) for e in result.errors] == [
        (frozenset({"bad"}), "'/c*': a literal '*' would be read as a wildcard")
    ]


def test_byte_limited_chunks_are_packed_first_fit_decreasing_to_the_lower_bound() -> None:
    # Given: keys costing 40, 60, 50 and 30 bytes (value + quotes + comma) against a 91-byte budget
    # (100 - 10 overhead + 1 for the comma the last item does not need)
    spec = ProviderSpec(
        name="bytes",
        capabilities=Capabilities(max_targets={TargetKind.KEY: 10}, max_body_bytes=100, body_overhead_bytes=10),
        hosts=(),
        default_soft=False,
        render=partial(HttpProvider.render, None),  # type: ignore[arg-type]
    )
    keys = ["a" + "x" * 36, "b" + "x" * 56, "c" + "x" * 46, "d" + "x" * 26]
    # When
    result = plan(routed(TargetKind.KEY, keys), {"bytes": spec})
    # Then: next-fit in sorted order would need 3 requests (40 | 60 | 50+30); 60+30 and 50+40 make 2
    assert sorted(sorted(len(k) + 3 for k in r.targets) for r in result.requests) == [[30, 60], [40, 50]]
    assert all(10 + len(",".join(json.dumps(k) for k in r.targets)) <= 100 for r in result.requests)


def test_targets_without_named_providers_go_to_the_providers_that_can_express_them() -> None:
    # Given: Fastly (keys, URLs) next to Medianova (paths only), and a rule/event naming no provider
    config = config_from(FASTLY_AND_MEDIANOVA)
    items = routed(TargetKind.KEY, ["home"]) + routed(TargetKind.PATH, ["/a"]) + routed(TargetKind.HOST, ["x.com"])
    # When
    result = plan(items, specs(config.providers))
    # Then: the key only to Fastly, the path to both; a host nobody can purge is an error at each
    assert sorted((r.provider, r.kind.value, r.targets) for r in result.requests) == [
        ("fastly", "key", ("home",)),
        ("fastly", "url", ("https://www.example.com/a",)),
        ("medianova", "path", ("/a",)),
    ]
    assert sorted(e.provider for e in result.errors) == ["fastly", "medianova"]


def test_a_provider_named_explicitly_that_cannot_express_a_target_is_a_plan_error() -> None:
    config = config_from(
        """
        providers:
          - {name: medianova, kind: medianova, organization_uuid: 550e8400-e29b-41d4-a716-446655440000,
             resource_uuid: 660f9511-f30c-52e5-b827-557766551111}
        """
    )
    items = [RoutedTarget("c1", Target(TargetKind.KEY, "home"), frozenset({"medianova"}), None)]
    (error,) = plan(items, specs(config.providers)).errors
    assert error.message == "key:home: medianova cannot purge by key"


def test_a_rule_naming_providers_sends_each_target_to_those_of_them_that_can_express_it() -> None:
    # Given: a rule naming Fastly and Medianova for an article's surrogate key and path
    config = config_from(
        FASTLY_AND_MEDIANOVA
        + """
          - {name: other, kind: medianova, organization_uuid: 550e8400-e29b-41d4-a716-446655440000,
             resource_uuid: 660f9511-f30c-52e5-b827-557766551111}
        """
    )
    named = frozenset({"fastly", "medianova"})
    items = [
        RoutedTarget("c1", Target(TargetKind.KEY, "article-a"), named, None),
        RoutedTarget("c1", Target(TargetKind.PATH, "/articles/a"), named, None),
    ]
    # When
    result = plan(items, specs(config.providers))
    # Then: the key to Fastly only, the path to both named providers, nothing to the unnamed one
    assert not result.errors
    assert sorted((r.provider, r.kind.value, r.targets) for r in result.requests) == [
        ("fastly", "key", ("article-a",)),
        ("fastly", "url", ("https://www.example.com/articles/a",)),
        ("medianova", "path", ("/articles/a",)),
    ]
