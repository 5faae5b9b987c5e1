"""The one typed configuration document: providers, rules and allowed hosts.

Loaded at a cold start from a YAML file (local, CLI) or an SSM parameter (`ssm:/name`, in AWS), and read
again by a warm service every minute to notice changes (`service.ConfigReload`); validated before any event
is touched, so a typo fails the deploy's first invocation loudly with the
field named, instead of silently purging nothing. Credentials are *references* (see `credentials`), never
values, and a plaintext value is refused unless explicitly allowed for local use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cdnpurge.core.errors import CdnpurgeError
from cdnpurge.core.models import TargetKind
from cdnpurge.core.nesting import nesting_problem
from cdnpurge.core.placeholders import PLACEHOLDER, compile_match
from cdnpurge.core.plan.convert import can_express
from cdnpurge.core.registry import REGISTRY
from cdnpurge.core.webhooks.settings import WebhookSource, webhook_problems

# Validation context key: refuse providers lacking the credentials their adapter needs (see `parse_config`).
REQUIRE_CREDENTIALS: Final = "require_credentials"


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
    keys_cover: bool = Field(
        default=False,
        description="The objects this rule's paths, urls and prefixes name are served with each of its keys as "
        "a cache tag: under monthly_path_budget a tag may stand in for them. Off by default, since nothing else "
        "proves that a tag covers a path.",
    )

    @field_validator("paths", "prefixes")
    @classmethod
    def _absolute(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for position, value in enumerate(values):
            if not value.startswith("/"):  # the value is not quoted: a credential pasted here would be
                raise ValueError(f"entry [{position}] must be a template starting with '/' (value not shown)")
        return values

    @model_validator(mode="after")
    def _templates_use_known_names(self) -> Rule:
        """Every problem of the rule at once: a rule that passes here can match and fill every template."""
        problems = []
        names = [name for name, _ in PLACEHOLDER.findall(self.match)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if not names:
            problems.append("match has no capture such as {key*} or {slug}")
        elif repeated:
            problems.append(f"match captures {repeated} more than once; each capture name may appear once")
        else:
            try:
                compile_match(self.match)
            except re.error as exc:
                problems.append(f"match cannot be compiled: {exc.msg}")
        known = set(names) | {"key", "bucket"}
        if not (self.paths or self.urls or self.keys or self.prefixes):
            problems.append("a rule needs at least one of paths, urls, keys, prefixes")
        if self.keys_cover and not self.keys:
            problems.append("keys_cover is set but the rule has no keys to cover its targets with")
        for field_name in ("paths", "urls", "keys", "prefixes"):
            for position, template in enumerate(getattr(self, field_name)):
                unknown = {name for name, _ in PLACEHOLDER.findall(template)} - known
                if unknown:
                    problems.append(f"{field_name}[{position}] uses unknown capture(s) {sorted(unknown)}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class Config(BaseModel):
    """The whole document. See docs/configuration.md for a commented example."""

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
    webhooks: tuple[WebhookSource, ...] = Field(
        default=(),
        description="Signed CMS webhooks the intake function accepts at POST /webhooks/<name> (docs/webhooks.md).",
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _typed_providers(cls, raw: Any, info: ValidationInfo) -> Any:
        """Validate each entry with its adapter's own settings model, chosen by `kind`; every entry's
        problems are reported together. With `REQUIRE_CREDENTIALS` in the validation context (the service,
        `cdnpurge validate`), an entry lacking a credential its adapter needs is refused as well."""
        if not isinstance(raw, list | tuple):
            return raw
        require_credentials = bool(info.context and info.context.get(REQUIRE_CREDENTIALS))
        typed, problems = [], []
        for position, entry in enumerate(raw):
            where = f"providers[{position}]"
            kind = entry.get("kind") if isinstance(entry, dict) else None
            if not isinstance(kind, str) or kind not in REGISTRY:
                # Never quoted: a value pasted into the wrong field may be a credential.
                problems.append(f"{where}.kind: must be one of {sorted(REGISTRY)}")
                continue
            adapter = REGISTRY[kind]
            problems.extend(_endpoint_problems(entry.get("endpoint"), where))
            credentials = entry.get("credentials")
            given = credentials if isinstance(credentials, dict) else {}
            missing = [name for name in adapter.required_credentials if name not in given]
            if require_credentials and missing:
                problems.append(f"{where}.credentials: {kind} needs {missing}")
            try:
                settings = adapter.settings_model.model_validate(entry)
                spec = adapter.spec_for(settings)  # checks limit overrides against the declared limits
            except ValidationError as exc:
                problems.extend(_describe(exc, prefix=where))
                continue
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                continue
            for target_kind in spec.purge_by or ():
                if not can_express(spec, target_kind):
                    problems.append(
                        f"{where}.purge_by: {settings.name} cannot purge by {target_kind.value}"
                        + (" (it needs `hosts`)" if target_kind is not TargetKind.KEY else "")
                    )
            typed.append(settings)
        if problems:
            raise ValueError("\n".join(problems))
        return tuple(typed)

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, raw: Any, handler: ModelWrapValidatorHandler[Config]) -> Config:
        """The fields' problems and the cross-checks' (names, inline secrets, rule providers) in one report,
        even when a field is invalid: fixing a configuration should take one run, not one run per problem."""
        try:
            config: Config | None = handler(raw)
            problems = []
        except ValidationError as exc:
            config, problems = None, _describe(exc)
        problems.extend(_cross_problems(raw))
        if problems:
            raise ValueError("\n".join(problems))
        assert config is not None
        return config

    @model_validator(mode="after")
    def _typed_cross_checks(self) -> Config:
        """What needs the typed document: probes only go to allow-listed hosts (every `verify.hosts` entry is a
        provider host or allowed), and each kind a rule produces reaches one of its providers."""
        problems = []
        for provider in self.providers:
            verify = provider.verify
            for host in verify.hosts if verify is not None else ():
                if not self.host_allowed(host):
                    problems.append(
                        f"providers.{provider.name}.verify.hosts: {host!r} is neither one of the provider's hosts "
                        "nor in allowed_hosts (probes only go to allow-listed hosts)"
                    )
            if verify is not None and not (verify.hosts or provider.hosts):
                problems.append(f"providers.{provider.name}.verify: no host to probe (set hosts or verify.hosts)")
        for position, rule in enumerate(self.rules):
            problems.extend(self._rule_reach_problems(position, rule))
        problems.extend(webhook_problems(self.webhooks, allow_inline_secrets=self.allow_inline_secrets))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _rule_reach_problems(self, position: int, rule: Rule) -> list[str]:
        """Each kind a rule produces must go to at least one of its providers (see `purge_by`): else every
        matching upload would fail at plan time, found only when content changes."""
        named = [p for p in self.providers if rule.providers is None or p.name in rule.providers]
        return [
            f"rules[{position}].{field_name}: none of its providers {[p.name for p in named]} receives "
            f"{kind.value} targets (purge_by)"
            for field_name, kind in RULE_KINDS.items()
            if getattr(rule, field_name) and not any(p.purge_by is None or kind in p.purge_by for p in named)
        ]

    def webhook(self, name: str) -> WebhookSource | None:
        """The webhook source called `name`, if the configuration has one."""
        return next((source for source in self.webhooks if source.name == name), None)

    def host_allowed(self, host: str) -> bool:
        host = host.lower()
        allowed = {h.lower() for h in self.allowed_hosts}
        for provider in self.providers:
            allowed.update(h.lower() for h in provider.hosts)
        return host in allowed


def _cross_problems(raw: Any) -> list[str]:
    """What no single field can tell: duplicate provider names, inline secrets not allowed, rules naming
    providers that do not exist. Read from the raw document, so they are reported beside field problems."""
    if not isinstance(raw, dict):
        return []
    listed = raw.get("providers")
    entries = [entry for entry in listed if isinstance(entry, dict)] if isinstance(listed, list | tuple) else []
    names: list[str] = [name for entry in entries if isinstance(name := entry.get("name"), str)]
    problems = []
    for position, name in enumerate(names):
        if name in names[:position]:  # by position: a name is not quoted (a credential pasted as one would be)
            problems.append(f"providers[{position}].name: the same name as providers[{names.index(name)}]")
    if raw.get("allow_inline_secrets") is not True:
        for entry in entries:
            credentials = entry.get("credentials")
            for credential_name, ref in credentials.items() if isinstance(credentials, dict) else ():
                if isinstance(ref, dict) and "value" in ref:
                    problems.append(
                        f"providers.{entry.get('name')}.credentials.{credential_name}: inline secret values are "
                        "refused; use {env: VAR} or {secret: NAME} (or allow_inline_secrets: true locally)"
                    )
    rules = raw.get("rules")
    for position, rule in enumerate(rules if isinstance(rules, list | tuple) else ()):
        wanted = rule.get("providers") if isinstance(rule, dict) else None
        unknown = [name for name in wanted if name not in names] if isinstance(wanted, list | tuple) else []
        if unknown:
            # Not quoted: a value pasted here by mistake may be a credential.
            problems.append(
                f"rules[{position}].providers: {len(unknown)} name(s) not among the {len(set(names))} "
                "providers' names (values not shown)"
            )
    return problems


def _endpoint_problems(endpoint: object, where: str) -> list[str]:
    """An endpoint override must be an http(s) URL with a host, a valid port and no user:password part.
    The value is never quoted: it may carry a key in its query."""
    if endpoint is None or not isinstance(endpoint, str):
        return []  # absent, or of the wrong type: the settings model says so
    try:
        parts = urlsplit(endpoint)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return [f"{where}.endpoint: must be an http(s) URL with a host and a valid port (1-65535)"]
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        return [f"{where}.endpoint: must be an http(s) URL with a host and a valid port (1-65535)"]
    if parts.username is not None or parts.password is not None:
        return [f"{where}.endpoint: must not carry user:password (credentials go under credentials)"]
    return []


def parse_config(text: str, *, source: str = "config", require_credentials: bool = False) -> Config:
    """Parse and validate YAML text; every problem is reported with its field path.

    `require_credentials`: refuse a provider lacking a credential its adapter needs, which can never purge
    (the service and `cdnpurge validate`; planning needs none)."""
    # YAML's parser recurses per level: a document nested thousands deep is refused by name, before parsing
    # when its flow brackets show it, or when the parser runs out of stack.
    problem = nesting_problem(text)
    if problem:
        raise ConfigError(f"{source}: not a configuration: it {problem}")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not a configuration: it nests deeper than YAML can be read") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw, context={REQUIRE_CREDENTIALS: require_credentials})
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
        for line in error["msg"].removeprefix("Value error, ").splitlines():
            # Our validators' lines may already name their place (`providers[1].endpoint: ...`).
            located = (where and line.startswith((f"{where}[", f"{where}.", f"{where}:"))) or (
                not where and ": " in line
            )
            problems.append(line if located else f"{where or '(top level)'}: {line}")
    return problems


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
