"""The provider registry: configuration `kind` -> adapter class.

Adding a CDN means adding one module and one line here (plus its fake-server behaviour and its contract test
file); the planner, executor, configuration, CLI help and README table pick it up from this table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pydantic import SecretStr

from cdnpurge.providers.akamai import AkamaiProvider
from cdnpurge.providers.base import Provider
from cdnpurge.providers.cloudflare import CloudflareProvider
from cdnpurge.providers.cloudfront import CloudFrontProvider
from cdnpurge.providers.f5xc import F5xcProvider
from cdnpurge.providers.fastly import FastlyProvider
from cdnpurge.providers.gotipath import GotipathProvider
from cdnpurge.providers.medianova import MedianovaProvider
from cdnpurge.providers.spec import ProviderDocs, ProviderSettings, ProviderSpec


class ProviderFactory(Protocol):
    """What the registry needs of an adapter class."""

    @property
    def kind(self) -> str: ...

    @property
    def settings_model(self) -> type[ProviderSettings]: ...

    @property
    def docs(self) -> ProviderDocs: ...

    def spec_for(self, settings: ProviderSettings) -> ProviderSpec: ...

    def __call__(
        self,
        settings: ProviderSettings,
        credentials: Mapping[str, SecretStr],
        client: Any = None,  # an httpx.Client, or a boto3 client for CloudFront,
    ) -> Provider: ...


REGISTRY: Mapping[str, ProviderFactory] = {
    factory.kind: factory
    for factory in (
        FastlyProvider,
        F5xcProvider,
        MedianovaProvider,
        GotipathProvider,
        CloudFrontProvider,
        CloudflareProvider,
        AkamaiProvider,
    )
}


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
    def __call__(self, settings: ProviderSettings) -> Mapping[str, SecretStr]: ...
