"""The one typed configuration document: providers, rules and allowed hosts.

Loaded once per cold start from a YAML file (local, CLI) or an SSM parameter (`ssm:/name`, in AWS) and
validated before any event is touched, so a typo fails the deploy's first invocation loudly with the
field named, instead of silently purging nothing. Credentials are *references* (see `credentials`), never
values, and a plaintext value is refused unless explicitly allowed for local use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdnpurge.credentials import InlineCredential
from cdnpurge.errors import CdnpurgeError
from cdnpurge.models import TargetKind
from cdnpurge.placeholders import PLACEHOLDER
from cdnpurge.plan.convert import can_express
from cdnpurge.providers.registry import REGISTRY


class ConfigError(CdnpurgeError, ValueError):
    """The configuration is invalid; the message names each offending field."""


# The target kind each template field of a rule produces.
RULE_KINDS = {"paths": TargetKind.PATH, "urls": TargetKind.URL, "keys": TargetKind.KEY, "prefixes": TargetKind.PREFIX}


class Rule(BaseModel):
    """Map objects of a bucket whose key matches `match` to purge targets.

    `match` is a key pattern with named captures: `{name}` matches one path segment, `{name*}` any
    number of segments. Captures, plus the built-ins `{key}` (the whole key) and `{bucket}`, fill the
    `paths`, `urls`, `keys` and `prefixes` templates. The first matching rule wins.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str | None = Field(default=None, description="Only objects of this bucket; any bucket if unset.")
    match: str = Field(default="{key*}")
    paths: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    providers: tuple[str, ...] | None = Field(
        default=None, description="Send these targets only to the named providers (default: all)."
    )

    @field_validator("paths", "prefixes")
    @classmethod
    def _absolute(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not value.startswith("/"):
                raise ValueError(f"{value!r} must start with '/'")
        return values

    @model_validator(mode="after")
    def _templates_use_known_names(self) -> Rule:
        captured = {name for name, _ in PLACEHOLDER.findall(self.match)}
        if not captured:
            raise ValueError(f"match {self.match!r} has no capture such as {{key*}} or {{slug}}")
        known = captured | {"key", "bucket"}
        if not (self.paths or self.urls or self.keys or self.prefixes):
            raise ValueError("a rule needs at least one of paths, urls, keys, prefixes")
        for field_name in ("paths", "urls", "keys", "prefixes"):
            for template in getattr(self, field_name):
                unknown = {name for name, _ in PLACEHOLDER.findall(template)} - known
                if unknown:
                    raise ValueError(f"{field_name}: {template!r} uses unknown capture(s) {sorted(unknown)}")
        return self


class Config(BaseModel):
    """The whole document. See README "Configuration" for a commented example."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    providers: tuple[Annotated[Any, Field()], ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = (Rule(match="{key*}", paths=("/{key}",)),)
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Hosts a published event may name in urls/hosts (plus every provider's hosts).",
    )
    allow_inline_secrets: bool = Field(default=False, description="Permit `value:` credentials (local only).")
    purge_index_directories: bool = Field(default=True, description="index.html also purges '/dir/' and '/dir'.")
    monthly_path_budget: int | None = Field(
        default=None,
        ge=0,
        description="CloudFront invalidation paths (wildcards and tags count one each) the account may bill a "
        "month: a plan that would cross it purges by tag or wildcard where they cover the same objects, else "
        "purges anyway and warns (PathBudgetExceeded). Off when unset.",
    )
    repurge_delay_seconds: int = Field(
        default=0,
        ge=0,
        le=900,
        description="Purge S3 changes a second time this many seconds later (SQS delay, at most 900) to cover "
        "origin replication lag; 0 (the default) turns it off.",
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _typed_providers(cls, raw: Any) -> Any:
        """Validate each entry with its adapter's own settings model, chosen by `kind`."""
        if not isinstance(raw, list | tuple):
            return raw
        typed = []
        for position, entry in enumerate(raw):
            kind = str(entry.get("kind")) if isinstance(entry, dict) else None
            if kind is None or kind not in REGISTRY:
                raise ValueError(f"providers[{position}].kind: {kind!r} is not one of {sorted(REGISTRY)}")
            try:
                settings = REGISTRY[kind].settings_model.model_validate(entry)
            except ValidationError as exc:
                raise ValueError("; ".join(_describe(exc, prefix=f"providers[{position}]"))) from None
            spec = REGISTRY[kind].spec_for(settings)  # checks limit overrides against the declared limits
            for target_kind in spec.purge_by or ():
                if not can_express(spec, target_kind):
                    raise ValueError(
                        f"providers[{position}].purge_by: {settings.name} cannot purge by {target_kind.value}"
                        + (" (it needs `hosts`)" if target_kind is not TargetKind.KEY else "")
                    )
            typed.append(settings)
        return tuple(typed)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        names = [provider.name for provider in self.providers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"providers: duplicate name(s) {duplicates}")
        for provider in self.providers:
            for credential_name, ref in provider.credentials.items():
                if isinstance(ref, InlineCredential) and not self.allow_inline_secrets:
                    raise ValueError(
                        f"providers.{provider.name}.credentials.{credential_name}: inline secret values are "
                        "refused; use {env: VAR} or {secret: NAME} (or allow_inline_secrets: true locally)"
                    )
        for position, rule in enumerate(self.rules):
            for provider_name in rule.providers or ():
                if provider_name not in names:
                    raise ValueError(f"rules[{position}].providers: unknown provider {provider_name!r}")
            self._check_rule_reaches_a_provider(position, rule)
        return self

    def _check_rule_reaches_a_provider(self, position: int, rule: Rule) -> None:
        """Each kind a rule produces must go to at least one of its providers (see `purge_by`): else every
        matching upload would fail at plan time, found only when content changes."""
        named = [p for p in self.providers if rule.providers is None or p.name in rule.providers]
        for field_name, kind in RULE_KINDS.items():
            if getattr(rule, field_name) and not any(p.purge_by is None or kind in p.purge_by for p in named):
                raise ValueError(
                    f"rules[{position}].{field_name}: none of its providers {[p.name for p in named]} receives "
                    f"{kind.value} targets (purge_by)"
                )

    def host_allowed(self, host: str) -> bool:
        host = host.lower()
        allowed = {h.lower() for h in self.allowed_hosts}
        for provider in self.providers:
            allowed.update(h.lower() for h in provider.hosts)
        return host in allowed


def parse_config(text: str, *, source: str = "config") -> Config:
    """Parse and validate YAML text; every problem is reported with its field path."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  {problem}" for problem in _describe(exc))
        raise ConfigError(f"{source}: invalid configuration:\n{problems}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where (line, column), without PyYAML's quote of the offending line: that line may
    hold an inline credential."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{context + ', ' if context else ''}{problem}{where}"


def _describe(exc: ValidationError, *, prefix: str = "") -> list[str]:
    """`field.path: message` for each problem pydantic found."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join([prefix, *(str(part) for part in error["loc"])] if prefix else map(str, error["loc"]))
        problems.append(f"{where or '(top level)'}: {error['msg'].removeprefix('Value error, ')}")
    return problems


def load_config(location: str, *, ssm_reader: Callable[[str], str] | None = None) -> Config:
    """Load from `ssm:/parameter/name` (via Powertools Parameters, cached) or a file path."""
    return parse_config(read_config_text(location, ssm_reader=ssm_reader), source=location)


def read_config_text(location: str, *, ssm_reader: Callable[[str], str] | None = None) -> str:
    """The configuration document at `ssm:/parameter/name` or a file path, unparsed (`cdnpurge validate` also
    measures it against what an SSM parameter holds)."""
    if location.startswith("ssm:"):
        name = location.removeprefix("ssm:")
        if ssm_reader is None:
            from aws_lambda_powertools.utilities import parameters

            def ssm_reader(parameter: str) -> str:
                return str(parameters.get_parameter(parameter, max_age=300))

        return ssm_reader(name)
    path = Path(location)
    if not path.is_file():
        raise ConfigError(f"{location}: configuration file not found")
    return path.read_text(encoding="utf-8")
