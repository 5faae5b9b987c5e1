"""Target conversion: express a target in a kind the provider accepts (path -> URL per configured host,
URL -> path when its host is the provider's, a case-insensitive kind lower-cased so its values dedupe), or
say why it cannot be: nothing is dropped silently.

`can_express` is the same judgement without a value, for routing a target to the providers able to
purge it (`cdnpurge.core.plan.router`).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from cdnpurge.core.models import Target, TargetKind
from cdnpurge.core.spec import ProviderSpec

Converted = tuple[tuple[TargetKind, str], ...]


def convert(target: Target, spec: ProviderSpec) -> tuple[list[Target], str | None]:
    """Express `target` in kinds `spec` supports, or explain why it cannot be."""
    converted = converter_for(spec, target.kind)(target.value)
    if isinstance(converted, str):
        return [], converted
    return [Target(kind, value) for kind, value in converted], None


def converter_for(spec: ProviderSpec, kind: TargetKind) -> Callable[[str], Converted | str]:
    """A fast function value -> converted (kind, value) pairs, or an error message, for one input kind."""
    caps, hosts, name = spec.capabilities, spec.hosts, spec.name

    def refuse(message: str) -> Callable[[str], Converted | str]:
        return lambda value: f"{kind.value}:{value}: {message}"

    if caps.supports(kind) and kind in caps.host_qualified:
        if not hosts:
            no_hosts = refuse(f"{name} needs a host for {kind.value} and has no `hosts` configured")
            return lambda value: no_hosts(value) if value.startswith("/") else ((kind, value),)
        return lambda value: (
            tuple((kind, f"{host}{value}") for host in hosts) if value.startswith("/") else ((kind, value),)
        )
    if caps.supports(kind) and kind in caps.case_insensitive:  # `A` and `a` are one target: send it once
        return lambda value: ((kind, value.lower()),)
    if caps.supports(kind):
        return lambda value: ((kind, value),)
    if kind is TargetKind.PATH and caps.supports(TargetKind.URL):
        if not hosts:
            return refuse(f"{name} purges URLs only and has no `hosts` configured")
        return lambda value: tuple((TargetKind.URL, f"https://{host}{value}") for host in hosts)
    if kind is TargetKind.URL and caps.supports(TargetKind.PATH):
        served = {host.lower() for host in hosts}

        def url_to_path(value: str) -> Converted | str:
            parts = urlsplit(value)
            if served and (parts.hostname or "").lower() not in served:
                return f"{kind.value}:{value}: host is not one of {name}'s hosts {list(hosts)}"
            return ((TargetKind.PATH, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")),)

        return url_to_path
    return refuse(f"{name} cannot purge by {kind.value}")


def can_express(spec: ProviderSpec, kind: TargetKind) -> bool:
    """Whether `spec` accepts `kind` natively or by a conversion that keeps its meaning."""
    caps = spec.capabilities
    if caps.supports(kind):
        return kind not in caps.host_qualified or bool(spec.hosts)
    if kind is TargetKind.PATH:
        return caps.supports(TargetKind.URL) and bool(spec.hosts)
    return kind is TargetKind.URL and caps.supports(TargetKind.PATH)
