"""Routing by target kind: each provider's `purge_by` decides which kinds it receives (`cdnpurge.core.plan.router`).

The property: routing never drops a target that some provider it is for can express (and is configured to
receive), never sends a kind to a provider whose configuration excludes it, and a target that no provider
receives becomes a plan error for its change, never a silent drop.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN, MemoryLedger
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace
from unit.test_plan_properties import KINDS, PROPERTY_SETTINGS, provider_specs, routed_targets

from cdnpurge.cli.main import main
from cdnpurge.core.config import ConfigError, parse_config
from cdnpurge.core.credentials import Secret
from cdnpurge.core.deadline import Deadline
from cdnpurge.core.models import RoutedTarget, Target, TargetKind
from cdnpurge.core.plan import UNROUTED, can_express, plan, router
from cdnpurge.core.registry import build_providers, specs
from cdnpurge.core.spec import ProviderSpec
from cdnpurge.runtime.execute import Executor
from cdnpurge.runtime.pipeline import preview, run_batch
from cdnpurge_local.event_builders import s3_notification, s3_record, sqs_event
from cdnpurge_local.fakecdn.server import FakeCDN

BUCKET = "example-site-content"


@st.composite
def configured(draw: st.DrawFn) -> tuple[list[RoutedTarget], dict[str, ProviderSpec]]:
    """Providers with a random `purge_by` each, and targets each for a random subset of them (or all)."""
    drawn = draw(provider_specs())
    chosen = {
        name: replace(spec, purge_by=draw(st.one_of(st.none(), st.frozensets(st.sampled_from(KINDS), min_size=1))))
        for name, spec in drawn.items()
    }
    names = st.one_of(st.none(), st.frozensets(st.sampled_from(sorted(chosen)), min_size=1))
    items = [item._replace(providers=draw(names)) for item in draw(routed_targets())]
    return items, chosen


@PROPERTY_SETTINGS
@given(configured())
def test_routing_never_drops_an_expressible_target_nor_sends_an_excluded_kind(
    case: tuple[list[RoutedTarget], dict[str, ProviderSpec]],
) -> None:
    items, chosen = case
    destinations = router(chosen)
    the_plan = plan(items, chosen)
    unrouted = {change for error in the_plan.errors if error.provider == UNROUTED for change in error.change_ids}
    for item in items:
        kind = item.target.kind
        named = set(chosen) if item.providers is None else set(item.providers)
        found = set(destinations(item.providers, kind))
        receiving = {name for name in named if chosen[name].receives(kind)}
        able = {name for name in receiving if can_express(chosen[name], kind)}
        # never where the configuration excluded the kind, nor outside the providers it is for
        assert found <= receiving
        # never drops a target a provider it is for receives and can express
        assert able <= found
        # a kind none of them receives is a plan error for its change
        if not receiving:
            assert not found
            assert item.change_id in unrouted
        else:
            assert found


@PROPERTY_SETTINGS
@given(configured())
def test_excluded_kinds_change_nothing_at_the_provider_excluding_them(
    case: tuple[list[RoutedTarget], dict[str, ProviderSpec]],
) -> None:
    # The requests of a provider with purge_by are those it gets from only the kinds it receives.
    items, chosen = case
    full = plan(items, chosen)
    for name, spec in chosen.items():
        if spec.purge_by is None:
            continue
        kept = [item for item in items if item.target.kind in spec.purge_by]
        alone = plan(kept, chosen)
        assert [r for r in full.requests if r.provider == name] == [r for r in alone.requests if r.provider == name]


MULTI_CDN = """
providers:
  - {name: fastly, kind: fastly, service_id: SVC, hosts: [www.example.com], purge_by: [key],
     credentials: {token: {env: FASTLY_TOKEN}}}
  - {name: medianova, kind: medianova, organization_uuid: 00000000-0000-4000-8000-000000000001,
     resource_uuid: 00000000-0000-4000-8000-000000000002, purge_by: [path],
     credentials: {token: {env: MEDIANOVA_TOKEN}}}
rules:
  - {match: "assets/{name*}", keys: ["asset-{name}"], paths: ["/assets/{name}"]}
"""


def test_a_deploy_sends_keys_only_to_fastly_and_paths_only_to_medianova() -> None:
    # Given a deploy storm: 1,000 uploads, a rule with keys and paths, Fastly and Medianova
    config = parse_config(MULTI_CDN)
    event = sqs_event(
        *(s3_notification(s3_record(BUCKET, f"assets/{i}.jpg", sequencer=f"{i:04X}")) for i in range(1000))
    )
    # When
    _, translation, the_plan, _ = preview(event, config, specs(config.providers))
    # Then Fastly gets 4 key calls and no URL purges; Medianova 10 path calls of 100 and no key error
    kinds = {(r.provider, r.kind) for r in the_plan.requests}
    assert kinds == {("fastly", TargetKind.KEY), ("medianova", TargetKind.PATH)}
    assert sum(r.provider == "fastly" for r in the_plan.requests) == 4
    assert sum(r.provider == "medianova" for r in the_plan.requests) == 10
    assert not the_plan.errors and not translation.errors


def test_without_purge_by_every_provider_gets_every_kind_it_can_express() -> None:
    config = parse_config(MULTI_CDN.replace(", purge_by: [key]", "").replace(", purge_by: [path]", ""))
    event = sqs_event(s3_notification(s3_record(BUCKET, "assets/a.jpg", sequencer="01")))
    _, _, the_plan, _ = preview(event, config, specs(config.providers))
    assert {(r.provider, r.kind) for r in the_plan.requests} == {
        ("fastly", TargetKind.KEY),
        ("fastly", TargetKind.URL),
        ("medianova", TargetKind.PATH),
    }


def test_a_kind_no_provider_receives_fails_its_change_alone() -> None:
    # Given a host purge (a published event's `hosts`) that neither provider is configured to receive
    config = parse_config(MULTI_CDN)
    items = [
        RoutedTarget("c-key", Target(TargetKind.KEY, "asset-a"), None, None),
        RoutedTarget("c-host", Target(TargetKind.HOST, "www.example.com"), None, None),
    ]
    # When
    the_plan = plan(items, specs(config.providers))
    # Then its change alone fails, named; the key still goes to Fastly
    (error,) = the_plan.errors
    assert (error.provider, error.change_ids) == (UNROUTED, frozenset({"c-host"}))
    assert "receives host targets" in error.message
    assert [(r.provider, r.targets) for r in the_plan.requests] == [("fastly", ("asset-a",))]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("purge_by: [key]", "purge_by: [key, prefix]"), "fastly cannot purge by prefix"),
        (("purge_by: [path]", "purge_by: []"), "purge_by"),
        (("purge_by: [key]", "purge_by: [keys]"), "purge_by"),
        (('{match: "assets/{name*}",', '{match: "assets/{name*}", providers: [fastly],'), "rules[0].paths: none"),
    ],
    ids=["inexpressible-kind", "empty", "unknown-kind", "rule-kind-reaches-no-provider"],
)
def test_configuration_mistakes_are_named(change: tuple[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse_config(MULTI_CDN.replace(*change))


def test_the_pipeline_claims_exactly_what_purge_by_routes(fake_cdn: FakeCDN) -> None:
    # Given two Fastly providers on one fake service, one receiving keys, the other paths (as URLs)
    endpoint = fake_cdn.endpoint("fastly")
    config = parse_config(f"""
providers:
  - {{name: by-key, kind: fastly, service_id: {FASTLY_SERVICE}, endpoint: {endpoint}, hosts: [www.example.com],
     purge_by: [key], credentials: {{token: {{env: T}}}}}}
  - {{name: by-url, kind: fastly, service_id: {FASTLY_SERVICE}, endpoint: {endpoint}, hosts: [www.example.com],
     purge_by: [path], credentials: {{token: {{env: T}}}}}}
rules:
  - {{match: "assets/{{name*}}", keys: ["asset-{{name}}"], paths: ["/assets/{{name}}"]}}
allowed_hosts: [www.example.com]
""")
    providers = build_providers(config.providers, lambda settings: {"token": Secret(FASTLY_TOKEN)})
    executor = Executor(providers, base_backoff=0.01)
    upload = s3_notification(s3_record(BUCKET, "assets/a.jpg", sequencer="01"))
    host_purge = {"hosts": ["www.example.com"], "id": "publish-1"}
    # When an upload and a published host purge (a kind neither provider receives) arrive together
    run = run_batch(
        sqs_event(upload, host_purge, ids=["m-upload", "m-host"]),
        config=config,
        specs={name: p.spec for name, p in providers.items()},
        ledger=MemoryLedger(),
        executor=executor,
        deadline=Deadline.after(60),
    )
    # Then the upload is claimed, planned and purged at each provider with its own kind only
    (upload_change,) = [c.id for c in run.decoded.changes if c.bucket]
    assert run.owed == (("by-key", upload_change), ("by-url", upload_change))
    assert sorted((r.provider, r.kind, r.targets) for r in run.plan.requests) == [
        ("by-key", TargetKind.KEY, ("asset-a.jpg",)),
        ("by-url", TargetKind.URL, ("https://www.example.com/assets/a.jpg",)),
    ]
    assert run.completed == run.owed
    # and the host purge is claimed nowhere and fails its own record, permanently, with the reason
    assert run.failures.sources == ("m-host",)
    assert "m-host" in run.failures.permanent
    assert "receives host targets" in run.failures.reasons["m-host"][0]


def test_a_manual_purge_is_not_routed_by_purge_by(tmp_path: Path) -> None:
    # `cdnpurge purge -p fastly --path ...` names its provider and kind: purge_by (event routing) does not apply
    config = tmp_path / "purge.yaml"
    config.write_text(MULTI_CDN, encoding="utf-8")
    out = io.StringIO()
    code = main(["purge", "-c", str(config), "-p", "fastly", "--path", "/a.html", "--dry-run"], out=out)
    assert code == 0
    assert "fastly url x1" in out.getvalue()


def test_validate_lists_what_each_provider_receives(tmp_path: Path) -> None:
    config = tmp_path / "purge.yaml"
    config.write_text(MULTI_CDN, encoding="utf-8")
    out = io.StringIO()
    assert main(["validate", "-c", str(config)], out=out) == 0
    assert "fastly: url<=1, key<=256, all<=1; soft=yes; purge_by=key" in out.getvalue()
    assert "medianova: path<=100, prefix<=100; soft=no; purge_by=path" in out.getvalue()
