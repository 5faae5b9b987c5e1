"""What the planner knows of a provider, as data: capabilities, limits, hosts, escalation and a renderer.

Built from configuration alone (no credentials, no client, no httpx or boto3), so `cdnpurge plan` works
offline and importing the planner loads no adapter. `DeclaredProvider` is what every adapter shares, HTTP
or not: its declared `Capabilities` narrowed by the settings into a `ProviderSpec`, and its `ProviderDocs`,
from which the CLI's examples and the documentation's provider table are generated (`providers.docs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any, ClassVar, Final, TypeVar

import msgspec

from cdnpurge.core.credentials import CredentialRef, Secret, decode_secret
from cdnpurge.core.errors import show
from cdnpurge.core.gcra import Limit
from cdnpurge.core.models import Target, TargetKind
from cdnpurge.core.schema import convert_every, worded
from cdnpurge.core.urls import UrlError, canonical_path, canonical_url, without_userinfo
from cdnpurge.core.verify_settings import VerifySettings

# Target lengths for kinds a vendor documents no limit for: conservative (a URL or pattern this long is
# already beyond what many servers accept), declared by the adapter and listed in its `unverified` docs.
UNDOCUMENTED_TARGET_BYTES: Final = 4096
DNS_NAME_BYTES: Final = 253  # RFC 1035: the longest hostname, for `host` targets


class InProgressLimit(msgspec.Struct, frozen=True):
    """At most `limit` target items of `kinds` in progress at once (per `ProviderSpec.billing_key`, else per
    rate scope), each held `Capabilities.in_progress_seconds` after its call: CloudFront's 3,000 paths (cache
    tags included) and 15 wildcards per distribution."""

    name: str
    limit: int
    kinds: frozenset[TargetKind]


class Capabilities(msgspec.Struct, frozen=True):
    """A provider's purge surface and limits, declared as data so the planner has no provider branches.

    - `max_targets`: the target kinds the provider accepts natively, each with its per-call maximum.
    - `max_body_bytes`: a hard cap on the JSON request body (Akamai: 50,000) or None.
    - `body_overhead_bytes`: bytes of the body around the target list, for byte-accurate chunking.
    - `soft_purge`: whether the provider can mark content stale instead of evicting it.
    - `hard_only`: kinds that are always hard even when soft is asked for (Fastly purge_all).
    - `asynchronous`: an accepted purge is a job that completes later. Where the provider also reports a
      job's progress, its adapter implements `cdnpurge.core.protocol.JobStatus`, and verification asks it
      before probing the edge; a provider that is not asynchronous is never asked (no effect on planning).
    - `rate_per_second` / `burst`: the documented or configured sustained request rate, for pacing.
    - `host_qualified`: kinds whose wire form names the host (Cloudflare prefixes: `host/path`); the
      planner expands a host-relative target into one per configured host.
    - `max_target_bytes`: per kind, the longest wire form (UTF-8 bytes of what `render` gives) the provider
      takes (Fastly keys: 1,024). Checked per target by the spec's render, so an over-long target fails
      its own changes at planning, never a request (or an HTTP client's URL limit) shared with others
      (`checked_render`, which also refuses a URL or path not in `cdnpurge.core.urls`' canonical form).
      Where the vendor documents no limit, the adapter declares a conservative one and lists it as
      unverified in its docs.
    - `item_limits`: per target kind, the account bucket each target of a call draws one token from, beside
      the request bucket (`rate_per_second`/`burst`): Akamai's URL, CP code and tag buckets. The shared
      meter (`cdnpurge.runtime.meter`) reserves a call's request and item tokens together.
    - `in_progress` / `in_progress_seconds`: limits on target items in progress at once (CloudFront), counted
      by the shared meter for every caller and held that long after each call (`InProgressLimit`).
    - `case_insensitive`: kinds the provider matches regardless of case (CloudFront cache tags): the planner
      dedupes their values case-insensitively and sends them lower-cased.
    """

    max_targets: Mapping[TargetKind, int]
    max_body_bytes: int | None = None
    body_overhead_bytes: int = 0
    soft_purge: bool = False
    hard_only: frozenset[TargetKind] = frozenset()
    asynchronous: bool = False
    rate_per_second: float | None = None
    burst: int = 1
    host_qualified: frozenset[TargetKind] = frozenset()
    case_insensitive: frozenset[TargetKind] = frozenset()
    max_target_bytes: Mapping[TargetKind, int] = msgspec.field(default_factory=dict)
    item_limits: Mapping[TargetKind, Limit] = msgspec.field(default_factory=dict)
    in_progress: tuple[InProgressLimit, ...] = ()
    in_progress_seconds: float = 0.0

    def supports(self, kind: TargetKind) -> bool:
        return kind in self.max_targets


class EscalationPolicy(msgspec.Struct, frozen=True):
    """When the planner may purge more than asked to save requests (configured per provider, off by default).

    - `prefix_at`: at least this many paths/URLs sharing a directory become one prefix (wildcard, pattern)
      target, where the provider supports prefixes and the plan needs no more requests that way.
    - `purge_all_over`: a plan needing more than this many requests for the provider becomes one purge-all,
      where the provider supports it.
    """

    prefix_at: int | None = None
    purge_all_over: int | None = None


class ProviderSpec(msgspec.Struct, frozen=True):
    """What the planner knows of a provider: its name, limits, hosts, default mode and a pure renderer.

    Built from configuration alone (no credentials, no client), so `cdnpurge plan` works offline.
    `render` gives a target's wire form, which the planner measures for body-byte limits. `purge_by` is the
    configured choice of target kinds this provider receives (None: every kind it can express; see
    `cdnpurge.core.plan.router`). `billing_key` is set for providers billing every target item sent (CloudFront
    invalidation paths) and names the counter those items count against (the distribution id), for
    `cdnpurge.core.cost`. `rate_scope` names the account whose limits this provider's calls draw on (the
    shared meter's item): `<kind>/<rate_scope setting, else the provider's name>`.
    """

    name: str
    capabilities: Capabilities
    hosts: tuple[str, ...]
    default_soft: bool
    render: Callable[[Target], str]
    escalation: EscalationPolicy = EscalationPolicy()
    purge_by: frozenset[TargetKind] | None = None
    billing_key: str | None = None
    rate_scope: str = ""
    coalesce_seconds: int | None = None  # the coalescing window for shared targets (`cdnpurge.core.coalesce`)

    def receives(self, kind: TargetKind) -> bool:
        """Whether the configuration lets targets of `kind` go to this provider at all."""
        return self.purge_by is None or kind in self.purge_by


MAX_RATE_PER_SECOND: Final = 10_000.0  # no CDN API takes more purge calls a second
MIN_RATE_PER_SECOND: Final = 0.001  # one call in about 17 minutes: slower, the provider is never called
MAX_COALESCE_SECONDS: Final = 900  # the flush message's SQS DelaySeconds, whose maximum this is
MAX_TARGETS_SETTING: Final = 100_000  # escalation thresholds: far beyond any batch (10 records x 10,000 targets)


class ProviderSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Fields every provider entry in the configuration has; each adapter subclasses it (`frozen=True,
    kw_only=True`, its `kind` a Literal). Read from a document with `parse_settings`: every problem named."""

    name: Annotated[
        str,
        msgspec.Meta(min_length=1, pattern=worded(r"\A[A-Za-z0-9_.-]+\Z", "must be letters, digits, '_', '.' or '-'")),
    ]
    kind: str
    # Base-URL override (fake servers, tests, regional API endpoints).
    endpoint: str | None = None
    # Hostnames this provider serves; used to turn paths into URLs.
    hosts: tuple[str, ...] = ()
    # Soft purge (mark stale) where the provider supports it.
    soft: bool = False
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 10.0
    # Lower a declared per-call limit (never raise it).
    max_targets: dict[TargetKind, int] = {}
    # Override the pacing rate. Bounds on what could ever make sense: an absurd value is a typo (a rate of
    # 1e9 would never pace).
    rate_per_second: Annotated[float, msgspec.Meta(ge=MIN_RATE_PER_SECOND, le=MAX_RATE_PER_SECOND)] | None = None
    # The account whose rate limits this provider shares (docs: rate sharing): providers, stacks and the CLI
    # naming the same scope (on one meter table) draw on one rate. Default: the provider's name.
    rate_scope: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=200,
                pattern=worded(r"\A[A-Za-z0-9_.:-]+\Z", "must be letters, digits, '_', '.', ':' or '-'"),
            ),
        ]
        | None
    ) = None
    # The target kinds this provider receives (url, path, prefix, key, host, all), as rules and events name
    # them; the others go only to the providers that list them. Default: every kind it can express.
    purge_by: Annotated[tuple[TargetKind, ...], msgspec.Meta(min_length=1)] | None = None
    # Purge at least this many paths/URLs sharing a directory as one prefix (wildcard), where the provider
    # supports prefixes and it needs no more requests. Off when unset.
    prefix_escalation_at: Annotated[int, msgspec.Meta(ge=2, le=MAX_TARGETS_SETTING)] | None = None
    # When a batch would need more than this many requests at this provider, send one purge-all instead
    # (providers supporting `all` only). Off when unset.
    purge_all_over: Annotated[int, msgspec.Meta(ge=1, le=MAX_TARGETS_SETTING)] | None = None
    # Purge shared targets (keys, tags, prefixes, hosts, purge-all) once per window of this many seconds across
    # batches instead of once per batch: the first change opens the window, later ones join it, one purge
    # after it serves them all (docs/coalescing.md). URLs and paths are never delayed. At most 900 (SQS's
    # longest delay). Off when unset.
    coalesce_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_COALESCE_SECONDS)] | None = None
    # Credential name -> reference ({env: VAR} or {secret: NAME}).
    credentials: dict[str, CredentialRef] = {}
    # Check the edge after each purge (docs/verification.md); off when unset.
    verify: VerifySettings | None = None


SettingsT = TypeVar("SettingsT", bound=ProviderSettings)


def parse_settings(model: type[SettingsT], entry: Any) -> SettingsT:
    """One entry of the configuration's `providers:` list as its adapter's settings `model`, or a
    `cdnpurge.core.schema.DocumentError` naming every problem of the entry. Numbers written as strings are
    read as numbers (YAML reads `1e9` as a string)."""
    return convert_every(entry, model, dec_hook=decode_secret, strict=False)


Credentials = Mapping[str, Secret]


class ProviderDocs(msgspec.Struct, frozen=True):
    """What an adapter tells its users, declared next to the code it describes so the two change together.

    `providers.docs` builds the `cdnpurge purge --help` examples and the provider table of docs/providers.md from these
    (a test fails when the page is out of step), so adding a provider documents it in one place.

    - `settings`: its configuration fields and credential names, as the provider table shows them.
    - `purges`: the kinds it purges and how they go on the wire.
    - `per_call`, `soft`, `pacing`: its per-call limits, soft-purge mechanism and declared pacing.
    - `example`: the arguments of one `cdnpurge purge` call after `-p NAME` (one line in the CLI help).
    - `unverified`: what the vendor's documentation leaves open and the adapter assumes (one line each).
    - `credential_check`: the harmless documented call `cdnpurge doctor` asks whether the credentials are
      accepted with, or why there is none.
    """

    settings: str
    purges: str
    per_call: str
    soft: str
    pacing: str
    example: str
    unverified: tuple[str, ...] = ()
    credential_check: str = "not checked: its API documents no harmless call needing the credentials"


class DeclaredProvider:
    """What every adapter shares, HTTP or not: its declared capabilities turned into a `ProviderSpec`."""

    kind: ClassVar[str]
    label: ClassVar[str]  # the CDN's name in messages ("Cloudflare")
    settings_model: ClassVar[type[ProviderSettings]]
    declared: ClassVar[Capabilities]
    docs: ClassVar[ProviderDocs]
    # Credential names the adapter cannot call without: configuration lacking one is refused before any
    # event (`cdnpurge.core.config`), not at every call. Empty: none (CloudFront uses the function's role).
    required_credentials: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def capabilities_for(cls, settings: ProviderSettings) -> Capabilities:
        """The declared capabilities; adapters whose limits depend on settings (a plan tier) override."""
        return cls.declared

    @classmethod
    def spec_for(cls, settings: ProviderSettings) -> ProviderSpec:
        declared = cls.capabilities_for(settings)
        return ProviderSpec(
            name=settings.name,
            capabilities=narrow_capabilities(declared, settings),
            hosts=settings.hosts,
            default_soft=settings.soft,
            render=partial(checked_render, partial(cls.render, settings), declared.max_target_bytes, cls.label),
            escalation=escalation_policy(declared, settings),
            purge_by=frozenset(settings.purge_by) if settings.purge_by is not None else None,
            billing_key=cls.billing_key(settings),
            rate_scope=f"{cls.kind}/{settings.rate_scope or settings.name}",
            coalesce_seconds=settings.coalesce_seconds,
        )

    @classmethod
    def billing_key(cls, settings: ProviderSettings) -> str | None:
        """The counter this provider's target items count against when each is billed (CloudFront); None for
        providers that bill by plan or not at all."""
        return None

    @classmethod
    def render(cls, settings: ProviderSettings, target: Target) -> str:
        """A target's wire form; adapters override (e.g. prefix -> `/dir/*` or a PCRE pattern).

        Raises ValueError for a target the provider cannot express or would refuse: the planner makes that a
        plan error for the target's changes alone instead of a request the API refuses as a whole."""
        return target.value


def checked_render(
    render: Callable[[Target], str], limits: Mapping[TargetKind, int], label: str, target: Target
) -> str:
    """`render(target)`, refused (ValueError, so the planner fails that target's changes alone) when the
    target is not a URL or path in the canonical form of `cdnpurge.core.urls` (userinfo, a backslash, another
    port, a `*`: whatever produced it, it never reaches a CDN), or when its wire form is longer than the
    provider's declared limit for the kind. Linear in the target's length."""
    try:
        if target.kind is TargetKind.URL:
            canonical_url(target.value)
        elif target.kind is TargetKind.PATH:
            canonical_path(target.value)
    except UrlError as problem:
        raise ValueError(f"{target.kind.value} {show(without_userinfo(target.value))} {problem}") from None
    wire = render(target)
    limit = limits.get(target.kind)
    # At most 4 UTF-8 bytes a character: only a wire form that might be too long is encoded to be measured.
    if limit is not None and len(wire) * 4 > limit and (size := len(wire.encode("utf-8", "surrogatepass"))) > limit:
        raise ValueError(
            f"{target.kind.value} {show(target.value)}: {label} takes {target.kind.value} targets of at most "
            f"{limit} bytes; this one is {size}"
        )
    return wire


def narrow_capabilities(declared: Capabilities, settings: ProviderSettings) -> Capabilities:
    """Apply configured overrides: limits may only go down, the pacing rate may be set."""
    limits = dict(declared.max_targets)
    for kind, limit in settings.max_targets.items():
        if kind not in limits:
            raise ValueError(f"provider {settings.name!r}: max_targets.{kind.value}: kind not supported")
        if not 1 <= limit <= limits[kind]:
            raise ValueError(
                f"provider {settings.name!r}: max_targets.{kind.value}={limit}: "
                f"must be between 1 and the provider's limit {limits[kind]}"
            )
        limits[kind] = limit
    return msgspec.structs.replace(
        declared, max_targets=limits, rate_per_second=settings.rate_per_second or declared.rate_per_second
    )


def escalation_policy(declared: Capabilities, settings: ProviderSettings) -> EscalationPolicy:
    """The configured escalations, refused where the provider cannot express them."""
    prefix_at = getattr(settings, "prefix_escalation_at", None)
    purge_all_over = getattr(settings, "purge_all_over", None)
    if prefix_at is not None and not declared.supports(TargetKind.PREFIX):
        raise ValueError(f"provider {settings.name!r}: prefix_escalation_at: this provider cannot purge by prefix")
    if purge_all_over is not None and not declared.supports(TargetKind.ALL):
        raise ValueError(f"provider {settings.name!r}: purge_all_over: this provider cannot purge everything")
    return EscalationPolicy(prefix_at=prefix_at, purge_all_over=purge_all_over)
