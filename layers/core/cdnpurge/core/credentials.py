"""Credential references and their resolution.

The configuration never holds a secret, only where to find it: an environment variable (local runs, CI,
the CLI) or a Secrets Manager secret (in AWS, read through Powertools Parameters with caching). Resolved
values are `SecretStr`, whose repr and str are masked, so a stray log line or exception cannot leak them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cdnpurge.core.errors import CdnpurgeError


class CredentialError(CdnpurgeError, ValueError):
    """A credential reference could not be resolved; names the reference, never a value."""


class EnvCredential(BaseModel):
    """Read the value from an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    env: str = Field(min_length=1)


class SecretCredential(BaseModel):
    """Read the value from Secrets Manager, optionally one field of a JSON secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    secret: str = Field(min_length=1)
    field: str | None = None


class InlineCredential(BaseModel):
    """A literal value: only for local experiments, and only with `allow_inline_secrets: true`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: SecretStr


CredentialRef = EnvCredential | SecretCredential | InlineCredential
SecretReader = Callable[[str], Any]


def powertools_secret_reader(name: str) -> Any:
    """Secrets Manager through Powertools Parameters: cached for 5 minutes across warm invocations."""
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(name, max_age=300)


def powertools_fresh_secret_reader(name: str) -> Any:
    """Secrets Manager past the cache (`force_fetch`), after a provider refused the cached value: a rotated
    secret is read at once, and the cache then holds the new value."""
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(name, max_age=300, force_fetch=True)


def resolve(
    refs: Mapping[str, CredentialRef],
    *,
    owner: str,
    environ: Mapping[str, str] | None = None,
    secret_reader: SecretReader = powertools_secret_reader,
) -> dict[str, SecretStr]:
    """Resolve a provider's references; `owner` prefixes error messages (e.g. `providers.fastly`)."""
    environ = os.environ if environ is None else environ
    resolved: dict[str, SecretStr] = {}
    for name, ref in refs.items():
        where = f"{owner}.credentials.{name}"
        if isinstance(ref, InlineCredential):
            resolved[name] = ref.value
        elif isinstance(ref, EnvCredential):
            if ref.env not in environ:
                raise CredentialError(f"{where}: environment variable {ref.env} is not set")
            resolved[name] = SecretStr(environ[ref.env])
        else:
            resolved[name] = SecretStr(_secret_value(ref, where, secret_reader))
        _check_usable(resolved[name].get_secret_value(), where)
    return resolved


def _check_usable(value: str, where: str) -> None:
    """Refuse a value no API accepts, naming the credential and never its value: whitespace around it (a
    secret pasted with its trailing newline) or a control character. Sent as it is, it fails in the HTTP
    library as a malformed header, which looked transient and was retried; it is a configuration error."""
    if value != value.strip():
        raise CredentialError(f"{where}: the value has whitespace around it (a trailing newline?); remove it")
    if not value.isprintable():
        raise CredentialError(f"{where}: the value holds a control or non-printing character; remove it")


def _secret_value(ref: SecretCredential, where: str, secret_reader: SecretReader) -> str:
    try:
        value = secret_reader(ref.secret)
    except Exception as exc:  # the reader's own error type varies (boto3, Powertools)
        # Imported here: it loads botocore, and the credential *references* above are part of every provider's
        # settings, which the planner reads without any AWS SDK.
        from cdnpurge.runtime.aws_errors import aws_problem

        problem = aws_problem(exc) or type(exc).__name__
        raise CredentialError(f"{where}: cannot read secret {ref.secret}: {problem}") from None
    if ref.field is None:
        return str(value)
    try:
        document = json.loads(value) if isinstance(value, str) else value
        return str(document[ref.field])
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"{where}: secret {ref.secret} has no JSON field {ref.field!r}") from None
