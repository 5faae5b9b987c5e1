"""translate: a decoded `Change` -> purge targets, by the configuration's declarative rules.

S3 changes go through the first rule whose bucket and key pattern match; published changes name their
targets explicitly and only need their hosts checked against the allow-list. Values captured from
keys are percent-encoded (RFC 3986, `/` kept) where they land in a path or URL, and left as they are in
surrogate keys, because that is how a browser asks for `docs/a b.pdf` and how a template tags it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote, urlsplit

import msgspec

from cdnpurge.core.boundary import unexpected
from cdnpurge.core.errors import show
from cdnpurge.core.models import Change, RoutedTarget, Target, TargetKind
from cdnpurge.core.placeholders import PLACEHOLDER, compile_match
from cdnpurge.core.urls import (
    UrlError,
    canonical_host,
    canonical_path,
    canonical_url,
    may_hold_dot_segment,
    s3_key_problem,
    without_userinfo,
)

if TYPE_CHECKING:
    from cdnpurge.core.config import Config, Rule


class TranslateFailure(msgspec.Struct, frozen=True):
    """A change that cannot be translated; `unexpected`: by an exception no check anticipated."""

    change_id: str
    source_id: str
    message: str
    unexpected: bool = False


class Translation(msgspec.Struct, frozen=True):
    routed: tuple[RoutedTarget, ...]
    errors: tuple[TranslateFailure, ...]
    unmatched: tuple[str, ...]  # change ids no rule matched: acknowledged, logged
    # change id -> position in `config.rules` of the rule that matched it (S3 changes only): the purge
    # trail records which rule turned an object into its targets.
    rule_of: Mapping[str, int] = msgspec.field(default_factory=dict)


def tag_covered(translation: Translation, config: Config) -> frozenset[str]:
    """The changes whose rule declares that its keys tag the objects its other targets name (`keys_cover`):
    the only changes whose paths a cache tag may stand in for (`cdnpurge.core.cost.budgeted_plan`)."""
    covering = {position for position, rule in enumerate(config.rules) if rule.keys_cover}
    if not covering:
        return frozenset()
    return frozenset(change for change, position in translation.rule_of.items() if position in covering)


# What `quote(value, safe="/")` leaves as it is: a value made only of these needs no encoding.
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*")
# `Target` and `RoutedTarget` built in C: their generated `__new__` (a Python call filling keyword defaults) cost
# 0.29 us a target against 0.19 us, and a storm builds two per object (measured with bench/planner.py's storms).
_new_tuple = tuple.__new__


class _Template(NamedTuple):
    """A target template split at its captures: `/a/{slug}.html` -> "/a/", then ("slug", ".html")."""

    head: str
    rest: tuple[tuple[str, str], ...]  # each capture's name, then the literal text up to the next one


@cache
def _template(template: str) -> _Template:
    parts = PLACEHOLDER.split(template)  # the leading literal, then (name, star, literal) per capture
    return _Template(parts[0], tuple(zip(parts[1::3], parts[3::3], strict=True)))


class _Fill(NamedTuple):
    """One template of a rule as `_s3_targets` fills it: the kind of its target, the template, and whether
    captured values are percent-encoded in it (in paths, URLs and prefixes; not in surrogate keys)."""

    kind: TargetKind
    head: str
    rest: tuple[tuple[str, str], ...]
    encode: bool


class _PreparedRule(msgspec.Struct, frozen=True):
    """A rule as a batch applies it: its regex, providers and templates looked up once per batch, not once
    per change (a storm applies the same rule to every change). `fills`: its path, URL, prefix and key
    templates, in the order their targets are listed; `uses_object`: whether any names `{key}` or `{bucket}`."""

    bucket: str | None
    fullmatch: Callable[[str], re.Match[str] | None]
    providers: frozenset[str] | None
    fills: tuple[_Fill, ...]
    uses_object: bool
    # Its one template, when it has just one, a path, prefix or key filled with one capture of the pattern
    # (kind, head, capture, literal, encode): `translate` fills it inline (see `_s3_targets`).
    single: tuple[TargetKind, str, str, str, bool] | None

    @classmethod
    def of(cls, rule: Rule) -> _PreparedRule:
        """The rule prepared; one that cannot be (its pattern does not compile) judges no key, it fails each
        change that reaches it, inside that change's fault boundary: which keys it would have matched
        first is unknowable, so no later rule may take them."""
        try:
            return cls._prepared(rule)
        except Exception as exc:
            return cls(rule.bucket, _raiser(exc), None, (), False, None)

    @classmethod
    def _prepared(cls, rule: Rule) -> _PreparedRule:
        fills = tuple(
            _Fill(kind, *_template(template), kind is not TargetKind.KEY)
            for kind, templates in (
                (TargetKind.PATH, rule.paths),
                (TargetKind.URL, rule.urls),
                (TargetKind.PREFIX, rule.prefixes),
                (TargetKind.KEY, rule.keys),
            )
            for template in templates
        )
        return cls(
            bucket=rule.bucket,
            fullmatch=compile_match(rule.match).fullmatch,
            providers=frozenset(rule.providers) if rule.providers is not None else None,
            fills=fills,
            uses_object=any(name in ("key", "bucket") for fill in fills for name, _ in fill.rest),
            single=_single(fills),
        )


def _single(fills: tuple[_Fill, ...]) -> tuple[TargetKind, str, str, str, bool] | None:
    if len(fills) != 1 or len(fills[0].rest) != 1 or fills[0].kind is TargetKind.URL:
        return None
    kind, head, ((name, literal),), encode = fills[0]
    return None if name in ("key", "bucket") else (kind, head, name, literal, encode)


def _raiser(error: Exception) -> Callable[[str], re.Match[str] | None]:
    def fullmatch(key: str) -> re.Match[str] | None:
        raise error

    return fullmatch


def _with_index_directories(path: str) -> list[str]:
    """`/docs/index.html` is also served as `/docs/` and `/docs`; the root index as `/`."""
    if not path.endswith("/index.html"):
        return [path]
    directory = path.removesuffix("index.html")
    variants = [path, directory]
    if directory != "/":
        variants.append(directory.rstrip("/"))
    return variants


_PATH, _URL = TargetKind.PATH, TargetKind.URL


def _s3_targets(change: Change, rule: _PreparedRule, values: dict[str, str], directories: bool) -> list[Target]:
    """The rule's templates filled for one object, `values` being the match's captures (a fresh dict).

    One loop with the filling inline: this runs once per change of a storm, where a function call per
    template was a fifth of the stage (bench/planner.py)."""
    if rule.uses_object:
        values["key"], values["bucket"] = change.key or "", change.bucket or ""
    targets: list[Target] = []
    for kind, head, rest, encode in rule.fills:
        text = head
        for name, literal in rest:
            value = values[name]
            if encode and not _URL_SAFE.fullmatch(value):
                value = quote(value, safe="/")
            text += value + literal
        if kind is _PATH:
            if directories and text.endswith("/index.html"):
                targets.extend(_new_tuple(Target, (_PATH, variant)) for variant in _with_index_directories(text))
            else:
                targets.append(_new_tuple(Target, (_PATH, text)))
        elif kind is _URL:
            parts = urlsplit(text)
            paths = _with_index_directories(parts.path) if directories else [parts.path]
            targets.extend(_new_tuple(Target, (_URL, parts._replace(path=p).geturl())) for p in paths)
        else:
            targets.append(_new_tuple(Target, (kind, text)))
    return targets


def _published_targets(change: Change, config: Config) -> tuple[list[Target], str | None]:
    """A publisher's explicit targets, each in its canonical form (`cdnpurge.core.urls`) before the allow-list
    sees its host, so what reaches a CDN is exactly what was checked: `https://u:p@www.example.com/x`,
    a backslash, another port or a `*` is refused; a `#fragment` and a default port are dropped."""
    targets = [Target(TargetKind.KEY, key) for key in change.keys]
    try:
        for path in change.paths:
            targets.append(Target(TargetKind.PATH, canonical_path(path)))
    except UrlError as problem:
        return [], f"paths: {show(path)} {problem}"
    for url in change.urls:
        try:
            parts = canonical_url(url)
        except UrlError as problem:
            return [], f"urls: {show(without_userinfo(url))} {problem}"
        if not config.host_allowed(parts.hostname or ""):
            return [], f"urls: host {parts.hostname!r} is not in allowed_hosts"
        targets.append(Target(TargetKind.URL, parts.geturl()))
    for host in change.hosts:
        try:
            canonical = canonical_host(host)
        except UrlError as problem:
            return [], f"hosts: {show(host)} {problem}"
        if not config.host_allowed(canonical):
            return [], f"hosts: {canonical!r} is not in allowed_hosts"
        targets.append(Target(TargetKind.HOST, canonical))
    return targets, None


def translate(changes: tuple[Change, ...] | list[Change], config: Config) -> Translation:
    """Each change's targets, or its failure: whatever goes wrong with one change, expected or not
    (`cdnpurge.core.boundary`), fails that change alone. One loop, the rule lookup inline: it runs once per
    change of a storm, where a function call and its result taken apart again cost a tenth of the stage."""
    routed: list[RoutedTarget] = []
    errors: list[TranslateFailure] = []
    unmatched: list[str] = []
    rule_of: dict[str, int] = {}
    rules = list(enumerate(_PreparedRule.of(rule) for rule in config.rules))  # with their positions
    directories = config.purge_index_directories
    add = routed.append
    for change in changes:
        change_id, bucket = change.id, change.bucket
        try:
            if bucket is None:  # a published change: its own targets, for every provider
                targets, problem = _published_targets(change, config)
                if problem is not None:
                    errors.append(TranslateFailure(change_id, change.source_id, problem))
                    continue
                providers = None
            else:  # an S3 change: the first rule whose bucket and pattern match
                key = change.key or ""
                if may_hold_dot_segment(key) and (reason := s3_key_problem(key)):
                    errors.append(TranslateFailure(change_id, change.source_id, f"key {change.key!r} {reason}"))
                    continue
                for position, rule in rules:  # noqa: B007 (read after the loop breaks)
                    if (rule.bucket is None or rule.bucket == bucket) and (found := rule.fullmatch(key)):
                        break
                else:
                    unmatched.append(change_id)
                    continue
                single = rule.single
                if single is None:
                    targets = _s3_targets(change, rule, found.groupdict(), directories)
                else:  # one capture into one template: `_s3_targets` written out for it
                    kind, head, name, literal, encode = single
                    value = found[name]
                    if encode and not _URL_SAFE.fullmatch(value):
                        value = quote(value, safe="/")
                    text = head + value + literal
                    if kind is _PATH and directories and text.endswith("/index.html"):
                        targets = [_new_tuple(Target, (_PATH, path)) for path in _with_index_directories(text)]
                    else:
                        targets = [_new_tuple(Target, (kind, text))]
                providers = rule.providers
                rule_of[change_id] = position
        except Exception as exc:
            errors.append(TranslateFailure(change_id, change.source_id, unexpected(exc, "translating"), True))
            continue
        soft = change.soft
        if len(targets) == 1:  # the common case in a storm: one target per object
            add(_new_tuple(RoutedTarget, (change_id, targets[0], providers, soft)))
        else:
            for target in dict.fromkeys(targets):
                add(_new_tuple(RoutedTarget, (change_id, target, providers, soft)))
    return Translation(tuple(routed), tuple(errors), tuple(unmatched), rule_of)
