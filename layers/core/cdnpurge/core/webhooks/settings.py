"""A webhook source's settings (the configuration's `webhooks:` list): how it signs, where its secret is,
how long a delivery is remembered, and where its payload names what to purge (JMESPath expressions).

Every expression is compiled when the configuration is validated, so a typo fails `cdnpurge validate` (and
the first invocation after a deploy) with the source and field named, not the first publish.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Final

import jmespath
import msgspec
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from cdnpurge.core.credentials import CredentialRef
from cdnpurge.core.schema import Located, worded
from cdnpurge.core.webhooks.signatures import DEFAULT_TOKEN_HEADER, Scheme

MAPPED_FIELDS: Final = ("keys", "paths", "urls", "hosts")
EXPRESSION_FIELDS: Final = (*MAPPED_FIELDS, "id", "when")
SOURCE_NAME_PATTERN: Final = worded(
    r"\A[a-z0-9][a-z0-9-]{0,62}\Z", "must be 1-63 lower-case letters, digits or '-', starting with a letter or digit"
)
# Larger than any CMS notification; the enqueued message is the mapped targets, not the body.
DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024
HARD_MAX_BODY_BYTES: Final = 1024 * 1024


@cache
def compiled(expression: str) -> ParsedResult:
    """A JMESPath expression parsed once per process (jmespath's own cache is bounded and shared)."""
    return jmespath.compile(expression)


class WebhookMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the payload names what to purge. Each field is a JMESPath expression giving a string, a list of
    strings or null; `when` (optional) must be truthy for the payload to purge anything (an unpublish, a draft
    or a test ping answered 200 and ignored)."""

    keys: str | None = None
    paths: str | None = None
    urls: str | None = None
    hosts: str | None = None
    # The change's id; must differ for every change (default: the sender's delivery id, else a hash of the body).
    id: str | None = None
    when: str | None = None
    soft: bool | None = None

    def __post_init__(self) -> None:
        """Every expression compiles, and at least one names targets: every problem of the mapping at once."""
        problems = []
        for name in EXPRESSION_FIELDS:
            expression = getattr(self, name)
            if expression is not None:
                try:
                    compiled(expression)
                except JMESPathError as exc:
                    problems.append(f"{name} is not a JMESPath expression: {str(exc).splitlines()[0]}")
        if not any(getattr(self, name) for name in MAPPED_FIELDS):
            problems.append(f"the mapping needs at least one of {', '.join(MAPPED_FIELDS)}")
        if problems:
            raise ValueError("\n".join(problems))


class WebhookSource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One sender, reached at `POST /webhooks/<name>`."""

    name: Annotated[str, msgspec.Meta(pattern=SOURCE_NAME_PATTERN)]
    scheme: Scheme
    # The secret (a Secrets Manager secret under SecretsPrefix in AWS). Its value is the secret, or JSON
    # {"current": NEW, "previous": OLD} while rotating: both are accepted.
    secret: CredentialRef
    token_header: Annotated[
        str, msgspec.Meta(pattern=worded(r"\A[a-z0-9-]{1,64}\Z", "must be 1-64 lower-case letters, digits or '-'"))
    ] = DEFAULT_TOKEN_HEADER
    # Signed timestamps older or newer are refused.
    tolerance_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 300
    # How long a delivery is remembered (replays refused).
    remember_seconds: Annotated[int, msgspec.Meta(ge=60, le=30 * 86_400)] = 86_400
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=HARD_MAX_BODY_BYTES)] = DEFAULT_MAX_BODY_BYTES
    map: WebhookMapping

    def __post_init__(self) -> None:
        if self.remember_seconds < 2 * self.tolerance_seconds:
            raise ValueError("remember_seconds must be at least twice tolerance_seconds, or a replay could pass")

    @property
    def inline_secret(self) -> bool:
        return self.secret.inline


def webhook_problems(sources: tuple[WebhookSource, ...], *, allow_inline_secrets: bool) -> list[Located]:
    """What the list as a whole must hold: unique names, no inline secret unless allowed."""
    problems = []
    names = [source.name for source in sources]
    for position, name in enumerate(names):
        if name in names[:position]:
            problems.append(
                Located(f"webhooks[{position}].name", f"{name!r} is already the name of webhooks[{names.index(name)}]")
            )
    for source in sources:
        if source.inline_secret and not allow_inline_secrets:
            problems.append(
                Located(
                    f"webhooks.{source.name}.secret",
                    "inline secret values are refused; use {env: VAR} or {secret: NAME} (or allow_inline_secrets: "
                    "true locally)",
                )
            )
    return problems
