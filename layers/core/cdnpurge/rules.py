"""translate: a decoded `Change` -> purge targets, by the configuration's declarative rules.

S3 changes go through the first rule whose bucket and key pattern match; published changes name their
targets explicitly and only need their hosts checked against the allow-list. Values captured from
keys are percent-encoded (RFC 3986, `/` kept) where they land in a path or URL, and left as they are in
surrogate keys, because that is how a browser asks for `docs/a b.pdf` and how a template tags it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote, urlsplit

from cdnpurge.config import PLACEHOLDER, Config, Rule
from cdnpurge.models import Change, Target, TargetKind
from cdnpurge.providers.base import dot_segment_problem, may_hold_dot_segment


@dataclass(frozen=True, slots=True)
class RoutedTarget:
    """A target owed to some providers because of one change."""

    change_id: str
    target: Target
    providers: frozenset[str] | None  # None: every configured provider
    soft: bool | None


@dataclass(frozen=True)
class TranslateError:
    change_id: str
    source_id: str
    message: str


@dataclass(frozen=True)
class Translation:
    routed: tuple[RoutedTarget, ...]
    errors: tuple[TranslateError, ...]
    unmatched: tuple[str, ...]  # change ids no rule matched: acknowledged, logged


@cache
def compile_match(pattern: str) -> re.Pattern[str]:
    """`articles/{slug}.html` -> a full-match regex with named groups; `{x*}` spans segments."""
    regex, position = [], 0
    for placeholder in PLACEHOLDER.finditer(pattern):
        regex.append(re.escape(pattern[position : placeholder.start()]))
        name, greedy = placeholder.groups()
        regex.append(f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)")
        position = placeholder.end()
    regex.append(re.escape(pattern[position:]))
    return re.compile("".join(regex))


# What `quote(value, safe="/")` leaves as it is: a value made only of these needs no encoding.
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*")


def _encoded(value: str) -> str:
    return value if _URL_SAFE.fullmatch(value) else quote(value, safe="/")


@cache
def _template(template: str) -> tuple[tuple[str, str | None], ...]:
    """`/a/{slug}.html` -> (("/a/", "slug"), (".html", None)): literal text, then the capture after it."""
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for placeholder in PLACEHOLDER.finditer(template):
        pieces.append((template[position : placeholder.start()], placeholder.group(1)))
        position = placeholder.end()
    pieces.append((template[position:], None))
    return tuple(pieces)


def _fill(template: str, values: dict[str, str], *, encode: bool) -> str:
    parts: list[str] = []
    for literal, name in _template(template):
        parts.append(literal)
        if name is not None:
            parts.append(_encoded(values[name]) if encode else values[name])
    return "".join(parts)


def _with_index_directories(path: str) -> list[str]:
    """`/docs/index.html` is also served as `/docs/` and `/docs`; the root index as `/`."""
    if not path.endswith("/index.html"):
        return [path]
    directory = path.removesuffix("index.html")
    variants = [path, directory]
    if directory != "/":
        variants.append(directory.rstrip("/"))
    return variants


def _unsafe_key_reason(key: str) -> str | None:
    if not may_hold_dot_segment(key):
        return None  # no segment can be "." or ".."
    segments = key.split("/")
    if any(segment in {".", ".."} for segment in segments):
        return "contains a '.' or '..' path segment, which a CDN would normalise to another object"
    return None


def _s3_targets(change: Change, rule: Rule, captures: dict[str, str], config: Config) -> list[Target]:
    """The rule's templates filled for one object (plain loops: this runs once per change of a storm)."""
    values = captures  # a fresh dict of this match's captures
    values["key"], values["bucket"] = change.key or "", change.bucket or ""
    directories = config.purge_index_directories
    targets: list[Target] = []
    for template in rule.paths:
        path = _fill(template, values, encode=True)
        if directories and path.endswith("/index.html"):
            targets.extend(Target(TargetKind.PATH, variant) for variant in _with_index_directories(path))
        else:
            targets.append(Target(TargetKind.PATH, path))
    for template in rule.urls:
        parts = urlsplit(_fill(template, values, encode=True))
        paths = _with_index_directories(parts.path) if directories else [parts.path]
        targets.extend(Target(TargetKind.URL, parts._replace(path=p).geturl()) for p in paths)
    for template in rule.prefixes:
        targets.append(Target(TargetKind.PREFIX, _fill(template, values, encode=True)))
    for template in rule.keys:
        targets.append(Target(TargetKind.KEY, _fill(template, values, encode=False)))
    return targets


def _published_targets(change: Change, config: Config) -> tuple[list[Target], str | None]:
    """A publisher's explicit targets, checked; a `#fragment` is dropped, since it never reaches a CDN
    (`/a#top` is cached as `/a`), so every provider purges the same object."""
    targets = [Target(TargetKind.KEY, key) for key in change.keys]
    for path in change.paths:
        if not path.startswith("/"):
            return [], f"paths: {path!r} must start with '/'"
        reason = dot_segment_problem(path)
        if reason:
            return [], f"paths: {path!r} {reason}"
        targets.append(Target(TargetKind.PATH, path.partition("#")[0] or "/"))
    for url in change.urls:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            return [], f"urls: {url!r} is not an absolute http(s) URL"
        if not config.host_allowed(parts.hostname):
            return [], f"urls: host {parts.hostname!r} is not in allowed_hosts"
        reason = dot_segment_problem(parts.path)
        if reason:
            return [], f"urls: {url!r} {reason}"
        targets.append(Target(TargetKind.URL, url.partition("#")[0]))
    for host in change.hosts:
        if not config.host_allowed(host):
            return [], f"hosts: {host!r} is not in allowed_hosts"
        targets.append(Target(TargetKind.HOST, host.lower()))
    return targets, None


def translate(changes: tuple[Change, ...] | list[Change], config: Config) -> Translation:
    routed: list[RoutedTarget] = []
    errors: list[TranslateError] = []
    unmatched: list[str] = []
    rule_providers = {
        id(rule): frozenset(rule.providers) if rule.providers is not None else None for rule in config.rules
    }
    for change in changes:
        providers: frozenset[str] | None = None
        if change.bucket is None:
            targets, problem = _published_targets(change, config)
        else:
            reason = _unsafe_key_reason(change.key or "")
            problem = f"key {change.key!r} {reason}" if reason else None
            targets = []
            if problem is None:
                matched = _first_match(change, config)
                if matched is None:
                    unmatched.append(change.id)
                    continue
                rule, captures = matched
                targets = _s3_targets(change, rule, captures, config)
                providers = rule_providers[id(rule)]
        if problem is not None:
            errors.append(TranslateError(change.id, change.source_id, problem))
            continue
        if len(targets) == 1:  # the common case in a storm: one target per object
            routed.append(RoutedTarget(change.id, targets[0], providers, change.soft))
        else:
            routed.extend(RoutedTarget(change.id, target, providers, change.soft) for target in dict.fromkeys(targets))
    return Translation(tuple(routed), tuple(errors), tuple(unmatched))


def _first_match(change: Change, config: Config) -> tuple[Rule, dict[str, str]] | None:
    for rule in config.rules:
        if rule.bucket is not None and rule.bucket != change.bucket:
            continue
        found = compile_match(rule.match).fullmatch(change.key or "")
        if found:
            return rule, found.groupdict()
    return None
