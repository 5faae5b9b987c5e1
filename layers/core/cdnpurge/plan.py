"""plan: routed targets + each provider's declared capabilities -> the fewest requests within limits.

Pure: no I/O, no clock, no provider-specific branches. Everything provider-specific arrives as
`Capabilities` data and the provider's pure `render()` (for byte accounting). Steps, per provider:
1. convert each target to a kind the provider accepts (path -> url per configured host, url -> path),
   or report a plan error naming the target: nothing is dropped silently;
2. resolve soft/hard (the change's wish, else the provider's default, only where supported);
3. dedupe, sort (deterministic output), and chunk by the per-call target limit and body-byte limit.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from cdnpurge.models import Plan, PlanError, PurgeRequest, Target, TargetKind
from cdnpurge.providers.base import ProviderSpec
from cdnpurge.rules import RoutedTarget


def convert(target: Target, spec: ProviderSpec) -> tuple[list[Target], str | None]:
    """Express `target` in kinds `spec` supports, or explain why it cannot be."""
    caps = spec.capabilities
    if caps.supports(target.kind) and target.kind in caps.host_qualified and target.value.startswith("/"):
        if not spec.hosts:
            return (
                [],
                f"{target}: {spec.name} needs a host for {target.kind.value} and has no `hosts` configured",
            )
        return [Target(target.kind, f"{host}{target.value}") for host in spec.hosts], None
    if caps.supports(target.kind):
        return [target], None
    if target.kind is TargetKind.PATH and caps.supports(TargetKind.URL):
        if not spec.hosts:
            return [], f"{target}: {spec.name} purges URLs only and has no `hosts` configured"
        return [Target(TargetKind.URL, f"https://{host}{target.value}") for host in spec.hosts], None
    if target.kind is TargetKind.URL and caps.supports(TargetKind.PATH):
        parts = urlsplit(target.value)
        if spec.hosts and (parts.hostname or "").lower() not in {h.lower() for h in spec.hosts}:
            return [], f"{target}: host is not one of {spec.name}'s hosts {list(spec.hosts)}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return [Target(TargetKind.PATH, path)], None
    return [], f"{target}: {spec.name} cannot purge by {target.kind.value}"


def _chunks(values: Sequence[str], spec: ProviderSpec, kind: TargetKind) -> Iterable[tuple[str, ...]]:
    """Next-fit chunking by count and by JSON body bytes (each item costs its JSON string + a comma)."""
    caps = spec.capabilities
    limit = caps.max_targets[kind]
    budget = None if caps.max_body_bytes is None else caps.max_body_bytes - caps.body_overhead_bytes
    chunk: list[str] = []
    used = 0
    for value in values:
        size = len(json.dumps(spec.render(Target(kind, value)))) + 1
        if budget is not None and size > budget:
            raise ValueError(f"{kind.value}:{value[:80]} alone exceeds {spec.name}'s body limit")
        if chunk and (len(chunk) == limit or (budget is not None and used + size > budget)):
            yield tuple(chunk)
            chunk, used = [], 0
        chunk.append(value)
        used += size
    if chunk:
        yield tuple(chunk)


def plan(routed: Iterable[RoutedTarget], providers: Mapping[str, ProviderSpec]) -> Plan:
    # (provider, kind, soft) -> target value -> change ids
    wanted: dict[tuple[str, TargetKind, bool], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    errors: list[PlanError] = []
    for item in routed:
        names = sorted(providers) if item.providers is None else sorted(item.providers)
        for name in names:
            spec = providers[name]
            converted, problem = convert(item.target, spec)
            if problem is not None:
                errors.append(PlanError(name, frozenset({item.change_id}), problem))
                continue
            for target in converted:
                soft_wish = spec.default_soft if item.soft is None else item.soft
                soft = soft_wish and spec.capabilities.soft_purge and target.kind not in spec.capabilities.hard_only
                wanted[(name, target.kind, soft)][target.value].add(item.change_id)
    requests: list[PurgeRequest] = []
    for name, kind, soft in sorted(wanted, key=lambda k: (k[0], k[1].value, k[2])):
        by_value = wanted[(name, kind, soft)]
        spec = providers[name]
        try:
            chunks = list(_chunks(sorted(by_value), spec, kind))
        except ValueError as exc:
            ids = frozenset().union(*by_value.values())
            errors.append(PlanError(name, ids, str(exc)))
            continue
        for chunk in chunks:
            ids = frozenset().union(*(by_value[value] for value in chunk))
            requests.append(PurgeRequest(name, kind, chunk, soft, ids))
    return Plan(tuple(requests), tuple(_merge_errors(errors)))


def _merge_errors(errors: list[PlanError]) -> list[PlanError]:
    """One entry per (provider, message), listing every change it affects."""
    merged: dict[tuple[str, str], set[str]] = defaultdict(set)
    for error in errors:
        merged[(error.provider, error.message)].update(error.change_ids)
    return [PlanError(provider, frozenset(ids), message) for (provider, message), ids in merged.items()]
