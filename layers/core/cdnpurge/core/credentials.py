"""Credential references and their resolution.

The configuration never holds a secret, only where to find it: an environment variable (local runs, CI,
the CLI) or a Secrets Manager secret. Resolved values are `Secret`, whose repr and str are masked, so a
stray log line or exception cannot leak them. Reading a secret is I/O, so the reader is passed in: the
runtime's (`cdnpurge.runtime.secrets`, Secrets Manager through Powertools Parameters with caching), or a
test's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

import msgspec

from cdnpurge.core.deadline import OutOfTimeError
from cdnpurge.core.errors import CdnpurgeError

MASK: Final = "**********"


class CredentialError(CdnpurgeError, ValueError):
    """A credential reference could not be resolved; names the reference, never a value."""


class SecretReadError(CdnpurgeError):
    """A secret reader could not read a secret; the message is the reader's one line naming the problem
    (it knows its SDK's errors), never a value."""


class Secret:
    """A credential's value: `get_secret_value()` gives it; repr and str show `**********`, so a log line, an
    exception or a configuration's repr that holds one never shows it. Compared and hashed by value (a
    reloaded configuration whose inline secret did not change is the same configuration)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def decode_secret(type_: type, value: Any) -> Any:
    """msgspec's `dec_hook` for documents holding a `Secret` (an inline credential): a string becomes one;
    anything else is refused by its type alone, never quoted."""
    if type_ is Secret:
        if isinstance(value, str):
            return Secret(value)
        try:
            msgspec.convert(value, str)  # msgspec's own words for what was given instead
        except msgspec.ValidationError as exc:
            raise TypeError(str(exc)) from None  # a TypeError: msgspec adds the field's path to it
    raise NotImplementedError(f"no decoding for {type_!r}")


class CredentialRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Where a credential's value is, exactly one of: `env` (an environment variable), `secret` (a Secrets
    Manager secret, optionally its JSON `field`), or `value` (a literal: local experiments only, and only with
    `allow_inline_secrets: true`)."""

    env: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    secret: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    field: str | None = None
    value: Secret | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("env", "secret", "value") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a credential is one of {env: VAR}, {secret: NAME} or {value: ...}")
        if self.field is not None and self.secret is None:
            raise ValueError("field names a JSON field of a secret: it goes with secret")

    @property
    def inline(self) -> bool:
        return self.value is not None


SecretReader = Callable[[str], Any]


def resolve(
    refs: Mapping[str, CredentialRef],
    *,
    owner: str,
    secret_reader: SecretReader,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Secret]:
    """Resolve a provider's references with `secret_reader` for Secrets Manager ones; `owner` prefixes error
    messages (e.g. `providers.fastly`)."""
    environ = os.environ if environ is None else environ
    resolved: dict[str, Secret] = {}
    for name, ref in refs.items():
        where = f"{owner}.credentials.{name}"
        if ref.value is not None:
            resolved[name] = ref.value
        elif ref.env is not None:
            if ref.env not in environ:
                raise CredentialError(f"{where}: environment variable {ref.env} is not set")
            resolved[name] = Secret(environ[ref.env])
        else:
            resolved[name] = Secret(_secret_value(ref, where, secret_reader))
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


def _secret_value(ref: CredentialRef, where: str, secret_reader: SecretReader) -> str:
    secret = ref.secret
    assert secret is not None  # a reference is one of env, secret, value (`CredentialRef.__post_init__`)
    try:
        value = secret_reader(secret)
    except OutOfTimeError:  # not read for lack of time: the caller defers, the secret is not "unreadable"
        raise
    except Exception as exc:  # any reader's failure: the secret is not readable, and the run must say which
        problem = str(exc) if isinstance(exc, SecretReadError) else type(exc).__name__
        raise CredentialError(f"{where}: cannot read secret {secret}: {problem}") from None
    if ref.field is None:
        return str(value)
    try:
        document = json.loads(value) if isinstance(value, str) else value
        return str(document[ref.field])
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"{where}: secret {secret} has no JSON field {ref.field!r}") from None
