"""The one typed configuration document: providers, rules and allowed hosts.

Loaded at a cold start from a YAML file (local, CLI) or an SSM parameter (`ssm:/name`, in AWS), and read
again by a warm service every minute to notice changes (`service.ConfigReload`); validated before any event
is touched, so a typo fails the deploy's first invocation loudly with the
field named, instead of silently purging nothing. Credentials are *references* (see `credentials`), never
values, and a plaintext value is refused unless explicitly allowed for local use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

from cdnpurge.core.credentials import decode_secret
from cdnpurge.core.errors import CdnpurgeError
from cdnpurge.core.models import TargetKind
from cdnpurge.core.nesting import nesting_problem
from cdnpurge.core.placeholders import PLACEHOLDER, compile_match
from cdnpurge.core.plan.convert import can_express
from cdnpurge.core.registry import REGISTRY
from cdnpurge.core.schema import DocumentError, Located, convert_every, every_problem, join_path
from cdnpurge.core.spec import ProviderSettings, parse_settings
from cdnpurge.core.webhooks.settings import WebhookSource, webhook_problems


class ConfigError(CdnpurgeError, ValueError):
    """The configuration is invalid; the message names each offending field."""


# The target kind each template field of a rule produces.
RULE_KINDS = {"paths": TargetKind.PATH, "urls": TargetKind.URL, "keys": TargetKind.KEY, "prefixes": TargetKind.PREFIX}


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Map objects of a bucket whose key matches `match` to purge targets.

    `match` is a key pattern with named captures: `{name}` matches one path segment, `{name*}` any
    number of segments. Captures, plus the built-ins `{key}` (the whole key) and `{bucket}`, fill the
    `paths`, `urls`, `keys` and `prefixes` templates. The first matching rule wins.
    """

    bucket: str | None = None  # only objects of this bucket; any bucket if unset
    match: str = "{key*}"
    paths: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    providers: tuple[str, ...] | None = None  # send these targets only to the named providers (default: all)
    # The objects this rule's paths, urls and prefixes name are served with each of its keys as a cache tag:
    # under monthly_path_budget a tag may stand in for them. Off by default, since nothing else proves that a
    # tag covers a path.
    keys_cover: bool = False

    def __post_init__(self) -> None:
        """Every problem of the rule at once: a rule that passes here can match and fill every template."""
        problems = []
        for field_name in ("paths", "prefixes"):
            for position, value in enumerate(getattr(self, field_name)):
                if not value.startswith("/"):  # the value is not quoted: a credential pasted here would be
                    problems.append(f"{field_name}[{position}] must be a template starting with '/' (value not shown)")
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
        for field_name in RULE_KINDS:
            for position, template in enumerate(getattr(self, field_name)):
                unknown = {name for name, _ in PLACEHOLDER.findall(template)} - known
                if unknown:
                    problems.append(f"{field_name}[{position}] uses unknown capture(s) {sorted(unknown)}")
        if problems:
            raise ValueError("\n".join(problems))


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole document. See docs/configuration.md for a commented example.

    Read with `parse_config` (or `Config.from_document`): `providers` is typed entry by entry, each by its
    adapter's settings model chosen by `kind`, so it is never decoded as a field of this Struct."""

    version: Literal[1] = 1
    providers: tuple[ProviderSettings, ...] = ()  # one or more (`from_document` refuses none)
    rules: tuple[Rule, ...] = (Rule(match="{key*}", paths=("/{key}",)),)
    # Hosts a published event may name in urls/hosts (plus every provider's hosts).
    allowed_hosts: tuple[str, ...] = ()
    allow_inline_secrets: bool = False  # permit `value:` credentials (local only)
    purge_index_directories: bool = True  # index.html also purges '/dir/' and '/dir'
    # CloudFront invalidation paths (wildcards and tags count one each) the account may bill a month: a plan
    # that would cross it purges by tag or wildcard where they cover the same objects, else purges anyway and
    # warns (PathBudgetExceeded). Off when unset.
    monthly_path_budget: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # Purge S3 changes a second time this many seconds later (SQS delay, at most 900) to cover origin
    # replication lag; 0 (the default) turns it off.
    repurge_delay_seconds: Annotated[int, msgspec.Meta(ge=0, le=900)] = 0
    # Signed CMS webhooks the intake function accepts at POST /webhooks/<name> (docs/webhooks.md).
    webhooks: tuple[WebhookSource, ...] = ()

    @classmethod
    def from_document(cls, raw: dict[str, Any], *, require_credentials: bool = False) -> Config:
        """The configuration `raw` (a parsed YAML mapping) holds, or a `DocumentError` with every problem of
        it: each provider entry's (validated with its adapter's own settings model, chosen by `kind`), the
        other fields', and the cross-checks' (names, inline secrets, rule providers), in one report even
        when a field is invalid: fixing a configuration should take one run, not one run per problem.

        `require_credentials`: an entry lacking a credential its adapter needs is refused as well (the
        service, `cdnpurge validate`; planning needs none)."""
        providers, problems = _typed_providers(raw.get("providers"), require_credentials)
        config = None
        try:
            fields = {name: value for name, value in raw.items() if name != "providers"}
            config = convert_every(fields, cls, dec_hook=decode_secret, strict=False)
        except DocumentError as exc:
            problems.extend(exc.problems)
        problems.extend(_cross_problems(raw))
        if config is None or problems:
            raise DocumentError(problems)
        config = msgspec.structs.replace(config, providers=providers)
        typed = list(config._typed_problems())
        if typed:
            raise DocumentError(typed)
        return config

    def _typed_problems(self) -> Iterator[Located]:
        """What needs the typed document: probes only go to allow-listed hosts (every `verify.hosts` entry is a
        provider host or allowed), and each kind a rule produces reaches one of its providers."""
        for provider in self.providers:
            verify = provider.verify
            for host in verify.hosts if verify is not None else ():
                if not self.host_allowed(host):
                    yield Located(
                        f"providers.{provider.name}.verify.hosts",
                        f"{host!r} is neither one of the provider's hosts nor in allowed_hosts (probes only go to "
                        "allow-listed hosts)",
                    )
            if verify is not None and not (verify.hosts or provider.hosts):
                yield Located(f"providers.{provider.name}.verify", "no host to probe (set hosts or verify.hosts)")
        for position, rule in enumerate(self.rules):
            yield from self._rule_reach_problems(position, rule)
        yield from webhook_problems(self.webhooks, allow_inline_secrets=self.allow_inline_secrets)

    def _rule_reach_problems(self, position: int, rule: Rule) -> list[Located]:
        """Each kind a rule produces must go to at least one of its providers (see `purge_by`): else every
        matching upload would fail at plan time, found only when content changes."""
        named = [p for p in self.providers if rule.providers is None or p.name in rule.providers]
        return [
            Located(
                f"rules[{position}].{field_name}",
                f"none of its providers {[p.name for p in named]} receives {kind.value} targets (purge_by)",
            )
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


def _typed_providers(raw: object, require_credentials: bool) -> tuple[tuple[ProviderSettings, ...], list[Located]]:
    """Each entry of `providers:` validated with its adapter's own settings model, chosen by `kind`, and
    every entry's problems together."""
    if raw is None:
        return (), [Located("providers", "field required")]
    if not isinstance(raw, list):
        return (), [Located("providers", problem.what) for problem in every_problem(raw, list[Any])]
    problems = [] if raw else [Located("providers", "at least one provider is needed")]
    typed = []
    for position, entry in enumerate(raw):
        where = f"providers[{position}]"
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if not isinstance(kind, str) or kind not in REGISTRY:
            # Never quoted: a value pasted into the wrong field may be a credential.
            problems.append(Located(f"{where}.kind", f"must be one of {sorted(REGISTRY)}"))
            continue
        adapter = REGISTRY[kind]
        problems.extend(_endpoint_problems(entry.get("endpoint"), where))
        credentials = entry.get("credentials")
        given = credentials if isinstance(credentials, dict) else {}
        missing = [name for name in adapter.required_credentials if name not in given]
        if require_credentials and missing:
            problems.append(Located(f"{where}.credentials", f"{kind} needs {missing}"))
        try:
            settings = parse_settings(adapter.settings_model, entry)
            spec = adapter.spec_for(settings)  # checks limit overrides against the declared limits
        except DocumentError as exc:
            problems.extend(Located(join_path(where, problem.where), problem.what) for problem in exc.problems)
            continue
        except ValueError as exc:
            problems.append(Located(where, str(exc)))
            continue
        for target_kind in spec.purge_by or ():
            if not can_express(spec, target_kind):
                problems.append(
                    Located(
                        f"{where}.purge_by",
                        f"{settings.name} cannot purge by {target_kind.value}"
                        + (" (it needs `hosts`)" if target_kind is not TargetKind.KEY else ""),
                    )
                )
        typed.append(settings)
    return tuple(typed), problems


def _cross_problems(raw: dict[str, Any]) -> list[Located]:
    """What no single field can tell: duplicate provider names, inline secrets not allowed, rules naming
    providers that do not exist. Read from the raw document, so they are reported beside field problems."""
    listed = raw.get("providers")
    entries = [entry for entry in listed if isinstance(entry, dict)] if isinstance(listed, list | tuple) else []
    names: list[str] = [name for entry in entries if isinstance(name := entry.get("name"), str)]
    problems = []
    for position, name in enumerate(names):
        if name in names[:position]:  # by position: a name is not quoted (a credential pasted as one would be)
            problems.append(Located(f"providers[{position}].name", f"the same name as providers[{names.index(name)}]"))
    if raw.get("allow_inline_secrets") is not True:
        for entry in entries:
            credentials = entry.get("credentials")
            for credential_name, ref in credentials.items() if isinstance(credentials, dict) else ():
                if isinstance(ref, dict) and "value" in ref:
                    problems.append(
                        Located(
                            f"providers.{entry.get('name')}.credentials.{credential_name}",
                            "inline secret values are refused; use {env: VAR} or {secret: NAME} (or "
                            "allow_inline_secrets: true locally)",
                        )
                    )
    rules = raw.get("rules")
    for position, rule in enumerate(rules if isinstance(rules, list | tuple) else ()):
        wanted = rule.get("providers") if isinstance(rule, dict) else None
        unknown = [name for name in wanted if name not in names] if isinstance(wanted, list | tuple) else []
        if unknown:
            # Not quoted: a value pasted here by mistake may be a credential.
            problems.append(
                Located(
                    f"rules[{position}].providers",
                    f"{len(unknown)} name(s) not among the {len(set(names))} providers' names (values not shown)",
                )
            )
    return problems


def _endpoint_problems(endpoint: object, where: str) -> list[Located]:
    """An endpoint override must be an http(s) URL with a host, a valid port and no user:password part.
    The value is never quoted: it may carry a key in its query."""
    if endpoint is None or not isinstance(endpoint, str):
        return []  # absent, or of the wrong type: the settings model says so
    not_a_url = [Located(f"{where}.endpoint", "must be an http(s) URL with a host and a valid port (1-65535)")]
    try:
        parts = urlsplit(endpoint)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return not_a_url
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        return not_a_url
    if parts.username is not None or parts.password is not None:
        return [Located(f"{where}.endpoint", "must not carry user:password (credentials go under credentials)")]
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
        return Config.from_document(raw, require_credentials=require_credentials)
    except DocumentError as exc:
        problems = "\n".join(f"  {line}" for line in exc.lines())
        raise ConfigError(f"{source}: invalid configuration:\n{problems}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where (line, column), without PyYAML's quote of the offending line: that line may
    hold an inline credential."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{context + ', ' if context else ''}{problem}{where}"


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
