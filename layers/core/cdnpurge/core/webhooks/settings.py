"""A webhook source's settings (the configuration's `webhooks:` list): how it signs, where its secret is,
how long a delivery is remembered, and where its payload names what to purge (JMESPath expressions).

Every expression is compiled when the configuration is validated, so a typo fails `cdnpurge validate` (and
the first invocation after a deploy) with the source and field named, not the first publish.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Final

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from cdnpurge.core.credentials import CredentialRef, InlineCredential
from cdnpurge.core.webhooks.signatures import DEFAULT_TOKEN_HEADER, Scheme

MAPPED_FIELDS: Final = ("keys", "paths", "urls", "hosts")
SOURCE_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,62}$"
# Larger than any CMS notification; the enqueued message is the mapped targets, not the body.
DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024
HARD_MAX_BODY_BYTES: Final = 1024 * 1024


@cache
def compiled(expression: str) -> ParsedResult:
    """A JMESPath expression parsed once per process (jmespath's own cache is bounded and shared)."""
    return jmespath.compile(expression)


class WebhookMapping(BaseModel):
    """Where the payload names what to purge. Each field is a JMESPath expression giving a string, a list of
    strings or null; `when` (optional) must be truthy for the payload to purge anything (an unpublish, a draft
    or a test ping answered 200 and ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: str | None = None
    paths: str | None = None
    urls: str | None = None
    hosts: str | None = None
    id: str | None = Field(
        default=None,
        description="The change's id; must differ for every change (default: the sender's delivery id, else a "
        "hash of the body).",
    )
    when: str | None = None
    soft: bool | None = None

    @field_validator("keys", "paths", "urls", "hosts", "id", "when")
    @classmethod
    def _compiles(cls, expression: str | None) -> str | None:
        if expression is not None:
            try:
                compiled(expression)
            except JMESPathError as exc:
                raise ValueError(f"not a JMESPath expression: {str(exc).splitlines()[0]}") from None
        return expression

    @model_validator(mode="after")
    def _names_targets(self) -> WebhookMapping:
        if not any(getattr(self, name) for name in MAPPED_FIELDS):
            raise ValueError(f"the mapping needs at least one of {', '.join(MAPPED_FIELDS)}")
        return self


class WebhookSource(BaseModel):
    """One sender, reached at `POST /webhooks/<name>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(pattern=SOURCE_NAME_PATTERN)]
    scheme: Scheme
    secret: CredentialRef = Field(
        description="The secret (a Secrets Manager secret under SecretsPrefix in AWS). Its value is the secret, or "
        'JSON {"current": NEW, "previous": OLD} while rotating: both are accepted.'
    )
    token_header: str = Field(default=DEFAULT_TOKEN_HEADER, pattern=r"^[a-z0-9-]{1,64}$")
    tolerance_seconds: int = Field(default=300, ge=1, le=3600, description="Signed timestamps older or newer refused.")
    remember_seconds: int = Field(
        default=86_400, ge=60, le=30 * 86_400, description="How long a delivery is remembered (replays refused)."
    )
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=HARD_MAX_BODY_BYTES)
    map: WebhookMapping

    @model_validator(mode="after")
    def _replays_outlive_the_window(self) -> WebhookSource:
        if self.remember_seconds < 2 * self.tolerance_seconds:
            raise ValueError("remember_seconds must be at least twice tolerance_seconds, or a replay could pass")
        return self

    @property
    def inline_secret(self) -> bool:
        return isinstance(self.secret, InlineCredential)


def webhook_problems(sources: tuple[WebhookSource, ...], *, allow_inline_secrets: bool) -> list[str]:
    """What the list as a whole must hold: unique names, no inline secret unless allowed."""
    problems = []
    names = [source.name for source in sources]
    for position, name in enumerate(names):
        if name in names[:position]:
            problems.append(f"webhooks[{position}].name: {name!r} is already the name of webhooks[{names.index(name)}]")
    for source in sources:
        if source.inline_secret and not allow_inline_secrets:
            problems.append(
                f"webhooks.{source.name}.secret: inline secret values are refused; use {{env: VAR}} or "
                "{secret: NAME} (or allow_inline_secrets: true locally)"
            )
    return problems
