"""What a purge accepted by a fake CDN covers, read from the behaviour's own record of it.

Every behaviour reports what it purged as short descriptions (`key:article-1 (soft)`,
`url:https://www.example.com/a (invalidate, production)`, `path:/images/*`); this module turns them into
`Scope`s the edge can match cached objects against, one parser per provider, so each provider's
semantics are stated once: Fastly URLs come without a scheme, Akamai's `invalidate` is a soft purge and a
staging purge never touches production, Medianova's `*` matches anything (`/` included), CloudFront's `*`
only ends a path and its `#tag` items are case-insensitive, F5 XC patterns are regular expressions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from cdnpurge_local.fakecdn.medianova import matches as glob_matches


class ScopeKind(StrEnum):
    URL = "url"  # one object: host and path (query included)
    PATH = "path"  # one path on every host the edge serves
    GLOB = "glob"  # paths matching a `*` pattern (`*` spans `/`)
    PREFIX = "prefix"  # paths under a prefix, on one host or (host None) on all
    REGEX = "regex"  # paths a regular expression finds a match in
    KEY = "key"  # objects carrying a surrogate key / cache tag
    HOST = "host"  # everything on one host
    CP_CODE = "cpcode"  # everything under an Akamai CP code
    ALL = "all"


@dataclass(frozen=True)
class Scope:
    """One purged target: `kind`, its value, the host it is limited to, and whether it is soft."""

    kind: ScopeKind
    value: str = ""
    host: str | None = None
    soft: bool = False
    case_insensitive: bool = False  # CloudFront cache tags

    def covers(self, host: str, path: str, tags: Iterable[str], cp_code: str | None = None) -> bool:
        """Whether this target covers the object at `host` + `path` (query included) carrying `tags`."""
        if self.host is not None and self.host != host.lower():
            return False
        match self.kind:
            case ScopeKind.ALL:
                return True
            case ScopeKind.HOST:
                return True  # the host check above is the whole test
            case ScopeKind.URL | ScopeKind.PATH:
                return path == self.value
            case ScopeKind.GLOB:
                return glob_matches(self.value, path)
            case ScopeKind.PREFIX:
                return path.startswith(self.value)
            case ScopeKind.REGEX:
                return re.search(self.value, path) is not None
            case ScopeKind.KEY:
                if self.case_insensitive:
                    return self.value.casefold() in {tag.casefold() for tag in tags}
                return self.value in tags
            case ScopeKind.CP_CODE:
                return cp_code is not None and self.value == cp_code


class UnknownTargetError(ValueError):
    """A fake reported a purged target this module cannot read: the edge must not guess what it covers."""


_DESCRIBED = re.compile(r"(?P<kind>[a-z#]+)(?::(?P<value>.*?))?(?: \((?P<mode>[a-z]+)(?:, (?P<network>[a-z]+))?\))?")


def _split(described: str) -> tuple[str, str, str | None, str | None]:
    match = _DESCRIBED.fullmatch(described)
    if match is None:
        raise UnknownTargetError(f"cannot read purged target {described!r}")
    return match["kind"], match["value"] or "", match["mode"], match["network"]


def url_scope(url: str, *, soft: bool = False) -> Scope:
    """An absolute URL, or Fastly's `host/path` form without a scheme."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    if not parts.hostname:
        raise UnknownTargetError(f"purged URL {url!r} names no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Scope(ScopeKind.URL, path, host=parts.hostname.lower(), soft=soft)


def _fastly(kind: str, value: str, mode: str | None, network: str | None) -> Scope | None:
    soft = mode == "soft"
    if kind == "url":
        return url_scope(value, soft=soft)
    if kind == "key":
        return Scope(ScopeKind.KEY, value, soft=soft)
    return Scope(ScopeKind.ALL) if kind == "all" else None


def _cloudflare(kind: str, value: str, mode: str | None, network: str | None) -> Scope | None:
    if kind == "url":
        return url_scope(value)
    if kind == "prefix":
        host, _, path = value.partition("/")
        return Scope(ScopeKind.PREFIX, f"/{path}", host=host.lower())
    simple = {"tag": ScopeKind.KEY, "all": ScopeKind.ALL}
    if kind == "host":
        return Scope(ScopeKind.HOST, host=value.lower())
    return Scope(simple[kind], value) if kind in simple else None


def _akamai(kind: str, value: str, mode: str | None, network: str | None) -> Scope | None:
    if network == "staging":
        return None  # the edge is production: a staging purge leaves it stale, as on Akamai
    soft = mode == "invalidate"
    if kind == "url":
        return url_scope(value, soft=soft)
    if kind == "tag":
        return Scope(ScopeKind.KEY, value, soft=soft)
    return Scope(ScopeKind.CP_CODE, value, soft=soft) if kind == "cpcode" else None


def _path_or_glob(value: str) -> Scope:
    return Scope(ScopeKind.GLOB if "*" in value else ScopeKind.PATH, value)


def _medianova(kind: str, value: str, mode: str | None, network: str | None) -> Scope | None:
    return _path_or_glob(value) if kind == "path" else None


def _cloudfront(kind: str, value: str, mode: str | None, network: str | None) -> Scope | None:
    if kind != "path":
        return None
    if value.startswith("#"):
        return Scope(ScopeKind.KEY, value[1:], case_insensitive=True)
    if value.endswith("*"):
        return Scope(ScopeKind.PREFIX, value[:-1])
    return Scope(ScopeKind.PATH, value)


def _f5xc(kind: str, value: str, mode: str | None, network: str | None) -> Scope | None:
    soft = mode == "soft"
    if kind == "url":
        scope = url_scope(value) if "://" in value else Scope(ScopeKind.PATH, value)
        return Scope(scope.kind, scope.value, scope.host, soft)
    if kind == "hostname":
        return Scope(ScopeKind.HOST, host=value.lower(), soft=soft)
    if kind == "pattern":
        return Scope(ScopeKind.REGEX, value, soft=soft)
    return Scope(ScopeKind.ALL, soft=soft) if kind == "all" else None


def _gotipath(kind: str, value: str, mode: str | None, network: str | None) -> Scope | None:
    if kind == "url":
        return Scope(ScopeKind.PATH, value)
    return Scope(ScopeKind.ALL) if kind == "all" else None


_Parser = Callable[[str, str, str | None, str | None], Scope | None]
PARSERS: dict[str, _Parser] = {
    "fastly": _fastly,
    "cloudflare": _cloudflare,
    "akamai": _akamai,
    "medianova": _medianova,
    "cloudfront": _cloudfront,
    "f5xc": _f5xc,
    "gotipath": _gotipath,
}


def scopes(provider: str, purged: Iterable[str]) -> list[Scope]:
    """The scopes of what `provider`'s fake reported purged; targets that never reach the edge (an
    Akamai staging purge) are left out; anything unreadable raises `UnknownTargetError`."""
    parser = PARSERS.get(provider)
    if parser is None:
        raise UnknownTargetError(f"no target parser for provider {provider!r}; known: {sorted(PARSERS)}")
    read: list[Scope] = []
    for described in purged:
        kind, value, mode, network = _split(described)
        scope = parser(kind, value, mode, network)
        if scope is None and not (provider == "akamai" and network == "staging"):
            raise UnknownTargetError(f"{provider} purged {described!r}: not a target kind the edge knows")
        if scope is not None:
            read.append(scope)
    return read
