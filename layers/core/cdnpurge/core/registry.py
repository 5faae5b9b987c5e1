"""The provider registry: configuration `kind` -> adapter class.

Adding a CDN means adding its module `cdnpurge.runtime.providers.<kind>` (which names its adapter class `ADAPTER`)
and one line in `KINDS` (plus its fake-server behaviour and its contract test file); the planner, executor,
configuration, CLI help and the docs' provider table pick it up from `REGISTRY`.

Adapter modules load on first use of their kind: a function configured for Fastly never imports the
other seven (nor their SDKs: boto3's CloudFront client, Akamai's EdgeGrid signer), which a cold start
would otherwise pay for. Knowing the kinds (`kind in REGISTRY`, iterating it) imports nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import Any, Protocol, cast

from cdnpurge.core.credentials import Secret
from cdnpurge.core.protocol import Provider
from cdnpurge.core.spec import DeclaredProvider, ProviderDocs, ProviderSettings, ProviderSpec


class ProviderFactory(Protocol):
    """What the registry needs of an adapter class."""

    @property
    def kind(self) -> str: ...

    @property
    def settings_model(self) -> type[ProviderSettings]: ...

    @property
    def docs(self) -> ProviderDocs: ...

    @property
    def required_credentials(self) -> tuple[str, ...]: ...

    def spec_for(self, settings: ProviderSettings) -> ProviderSpec: ...

    def __call__(
        self,
        settings: ProviderSettings,
        credentials: Mapping[str, Secret],
        client: Any = None,  # an httpx.Client, or a boto3 client for CloudFront,
    ) -> Provider: ...


# One line per provider, in the order the CLI help and the docs list them.
KINDS = (
    "fastly",
    "f5xc",
    "medianova",
    "gotipath",
    "cloudfront",
    "cloudflare",
    "akamai",
    "bunny",
)


@cache
def adapter_of(kind: str) -> ProviderFactory:
    """The adapter class `ADAPTER` of the module `cdnpurge.runtime.providers.<kind>`, checked to be one of that kind.

    Imported once per kind (later calls return the same class)."""
    module = importlib.import_module(f"cdnpurge.runtime.providers.{kind}")
    adapter = getattr(module, "ADAPTER", None)
    if not (isinstance(adapter, type) and issubclass(adapter, DeclaredProvider) and adapter.kind == kind):
        raise TypeError(f"cdnpurge.runtime.providers.{kind}.ADAPTER must be the adapter class of kind {kind!r}")
    return cast(ProviderFactory, adapter)


class _Registry(Mapping[str, ProviderFactory]):
    """`KINDS` as a mapping to their adapters, each imported when its kind is first looked up."""

    def __getitem__(self, kind: str) -> ProviderFactory:
        if kind not in KINDS:
            raise KeyError(kind)
        return adapter_of(kind)

    def __contains__(self, kind: object) -> bool:  # Mapping's would look the adapter up, importing it
        return kind in KINDS

    def __iter__(self) -> Iterator[str]:
        return iter(KINDS)

    def __len__(self) -> int:
        return len(KINDS)


REGISTRY: Mapping[str, ProviderFactory] = _Registry()


def specs(providers: Iterable[ProviderSettings]) -> dict[str, ProviderSpec]:
    """The planner's view of every configured provider: no credentials or network needed."""
    return {settings.name: REGISTRY[settings.kind].spec_for(settings) for settings in providers}


def build_providers(
    providers: Iterable[ProviderSettings], credentials_for: CredentialSource, clients: Mapping[str, Any] | None = None
) -> dict[str, Provider]:
    """Instantiate every configured provider, resolving its credentials through `credentials_for`."""
    clients = clients or {}
    built: dict[str, Provider] = {}
    for settings in providers:
        factory = REGISTRY[settings.kind]
        built[settings.name] = factory(settings, credentials_for(settings), clients.get(settings.name))
    return built


class CredentialSource(Protocol):
    def __call__(self, settings: ProviderSettings) -> Mapping[str, Secret]: ...
