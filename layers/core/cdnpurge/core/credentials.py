"""Credential references and their resolution.

The configuration never holds a secret, only where to find it: an environment variable (local runs, CI,
the CLI) or a Secrets Manager secret. Resolved values are `SecretStr`, whose repr and str are masked, so a
stray log line or exception cannot leak them. Reading a secret is I/O, so the reader is passed in: the
runtime's (`cdnpurge.runtime.secrets`, Secrets Manager through Powertools Parameters with caching), or a
test's.
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


class SecretReadError(CdnpurgeError):
    """A secret reader could not read a secret; the message is the reader's one line naming the problem
    (it knows its SDK's errors), never a value."""


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


def resolve(
    refs: Mapping[str, CredentialRef],
    *,
    owner: str,
    secret_reader: SecretReader,
    environ: Mapping[str, str] | None = None,
) -> dict[str, SecretStr]:
    """Resolve a provider's references with `secret_reader` for Secrets Manager ones; `owner` prefixes error
    messages (e.g. `providers.fastly`)."""
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
    except Exception as exc:  # any reader's failure: the secret is not readable, and the run must say which
        problem = str(exc) if isinstance(exc, SecretReadError) else type(exc).__name__
        raise CredentialError(f"{where}: cannot read secret {ref.secret}: {problem}") from None
    if ref.field is None:
        return str(value)
    try:
        document = json.loads(value) if isinstance(value, str) else value
        return str(document[ref.field])
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"{where}: secret {ref.secret} has no JSON field {ref.field!r}") from None
