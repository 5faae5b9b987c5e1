"""URL and path helpers shared by translate (rules), the providers and the CLI: one place decides what a
safe path is and what a URL's canonical form is, so a published path, an S3 key, a CLI `--path` and an
adapter's API path are checked alike, and what reaches a CDN is exactly what the allow-list approved.

Pure functions on strings, each linear in its input: no I/O, nothing imported beyond the standard
library, so the planner and the rules can use them without loading an adapter.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final
from urllib.parse import SplitResult, unquote, urlsplit

# `\\` too: some servers treat a backslash as a path separator.
_SEGMENT_SEPARATORS = re.compile(r"[/\\]")
# Percent-decoding passes `dot_segment_problem` makes. Each pass is linear, so the check is too; a path
# still changing after this many is refused: no honest path is encoded four times over, and decoding until
# stable made `%25252e...` cost the square of its length (a 62 KiB path took seconds).
MAX_DECODE_PASSES: Final = 4
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# A DNS name as the allow-list holds them: letters, digits, hyphens, dots (already lowercased).
_HOSTNAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*")
_MAX_HOSTNAME_CHARS: Final = 253
_PORT = re.compile(r"[0-9]{1,5}")
_new_tuple: Final = tuple.__new__
_MAX_PORT: Final = 65535
# A URL already in canonical form, with nothing a check could refuse: lowercase http(s) scheme and host, no
# userinfo, port, fragment, backslash, `*` or `%` in the path. `canonical_url` takes it apart with this one
# match instead of `urlsplit` (a storm's planner checks every URL target: urlsplit was most of its time);
# tests/unit/test_urls.py holds the two ways to the same result.
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9_.-]+)(/[A-Za-z0-9_.~/!$&'()+,;=:@-]*)(?:\?([A-Za-z0-9_.~/!$&'()+,;=:@%?-]*))?"
)


class UrlError(ValueError):
    """A URL or path that cannot be purged as given; the message says why (and never quotes userinfo)."""


def may_hold_dot_segment(text: str) -> bool:
    """Whether a segment of `text`, as it is (not decoded), could start with a dot: the cheap pre-check."""
    return "/." in text or "\\." in text or text.startswith(".")


def dot_segment_problem(path: str) -> str | None:
    """Why `path` cannot go into a request URL: a `.` or `..` segment, literal or percent-encoded; else None.

    httpx resolves literal dot segments before sending (RFC 3986 5.2.4) and servers may decode `%2e` and
    resolve them too, so `/purge/www.example.com/a/../../../service/S/purge_all` would call Fastly's purge-all
    instead of purging one URL. Up to `MAX_DECODE_PASSES` decodings are checked, so double (and triple)
    encoding is caught as well; a path still decoding after that is refused outright.
    """
    decoded = path
    for _ in range(MAX_DECODE_PASSES):
        if "%" not in decoded:
            break
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
    else:
        if "%" in decoded and unquote(decoded) != decoded:
            return f"is percent-encoded more than {MAX_DECODE_PASSES} times over, which no real path is"
    if not may_hold_dot_segment(decoded):
        return None  # the common case, without splitting
    if any(segment in (".", "..") for segment in _SEGMENT_SEPARATORS.split(decoded)):
        return "contains a '.' or '..' path segment (literal or percent-encoded) that would resolve to another path"
    return None


def s3_key_problem(key: str) -> str | None:
    """Why an S3 key cannot become a CDN path: a `.` or `..` segment a CDN would normalise to another object."""
    if not may_hold_dot_segment(key):
        return None  # no segment can be "." or ".."
    if any(segment in {".", ".."} for segment in key.split("/")):
        return "contains a '.' or '..' path segment, which a CDN would normalise to another object"
    return None


def canonical_path(path: str) -> str:
    """A host-relative path (query kept, fragment dropped) as every provider may receive it; `UrlError` else.

    Refused: a path not starting with `/` (`@evil.test/x` would turn `https://www.example.com` + path into a
    URL of another host), a backslash (some servers read it as `/`), a `*` (Medianova, CloudFront, Bunny
    and others read it as a wildcard: a published `/*` would purge everything; an S3 key's `*` is
    percent-encoded by the rules, so only a publisher or an operator can send one, and they are told) and
    dot segments (see `dot_segment_problem`). A `#fragment` never reaches a CDN (`/a#top` is cached as `/a`).
    """
    if not path.startswith("/"):
        raise UrlError("must start with '/'")
    if not ("#" in path or "\\" in path or "*" in path or "%" in path or "/." in path):
        return path  # nothing to drop, refuse or decode (the checks below in one scan each: a storm's every path)
    path = path.partition("#")[0]
    _check_path(path)
    return path


def canonical_url(url: str) -> SplitResult:
    """An absolute http(s) URL in the one form every check and every provider sees; `UrlError` else.

    The scheme and host are lowercased, a default port (`:443` for https) and a fragment dropped, and the
    result has no userinfo, so `https://u:p@www.example.com/x` can never reach a CDN as `u:p@www...` nor
    slip a host past the allow-list. Refused: userinfo, a backslash anywhere (browsers read `\\` as `/`,
    Python's parser does not: the two would disagree on the host), a non-default or invalid port, a host
    that is not a DNS name (IP literals, non-ASCII) and the path problems of `canonical_path`. The caller
    checks the returned `hostname` against its allow-list and sends `geturl()`.
    """
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None and "/." not in plain[3]:  # the path starts with `/` and holds no backslash
        scheme, host, path, query = plain.groups()
        # Built in C (`tuple.__new__`): SplitResult's generated `__new__` was a fifth of this function's time.
        return _new_tuple(SplitResult, (scheme, _canonical_plain_host(host), path, query or "", ""))
    return parsed_canonical_url(url)


def parsed_canonical_url(url: str) -> SplitResult:
    """`canonical_url` the long way, through `urlsplit`: for every URL, plain or not."""
    if "\\" in url:
        raise UrlError("contains a backslash, which browsers read as '/' and URL parsers do not")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UrlError("is not a URL that can be parsed (unbalanced '[' or ']' in the host?)") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.netloc:
        raise UrlError("is not an absolute http(s) URL")
    if "@" in parts.netloc:
        raise UrlError("carries user information ('user:password@' before the host), which is never purged")
    host, colon, port = parts.netloc.rpartition(":") if not parts.netloc.endswith("]") else (parts.netloc, "", "")
    if not colon:
        host, port = parts.netloc, ""
    if port and (not _PORT.fullmatch(port) or int(port) > _MAX_PORT):
        raise UrlError("has an invalid port")
    if port and int(port) != DEFAULT_PORTS[scheme]:
        raise UrlError(f"names port {int(port)}: only the default port of {scheme} is purged")
    host = canonical_host(host)
    path = parts.path or "/"
    _check_path(path)
    if "*" in parts.query:
        raise UrlError("contains '*' in its query, which several CDNs read as a wildcard")
    return SplitResult(scheme, host, path, parts.query, "")


def without_userinfo(url: str) -> str:
    """`url` safe to quote in a message: any `user:password@` before the host shown as `<userinfo>@`."""
    scheme_end = url.find("//")
    if scheme_end < 0:
        return url
    start = scheme_end + 2
    end = min([i for i in (url.find(c, start) for c in "/?#") if i >= 0] or [len(url)])
    at = url.rfind("@", start, end)
    return url if at < 0 else f"{url[:start]}<userinfo>{url[at:]}"


def canonical_host(host: str) -> str:
    """A hostname as the allow-list compares it (lowercase, no trailing dot); `UrlError` unless a DNS name."""
    host = host.lower().removesuffix(".")
    if len(host) > _MAX_HOSTNAME_CHARS or not _HOSTNAME.fullmatch(host):
        raise UrlError("has a host that is not a DNS name (IP literals and non-ASCII hosts are not purged)")
    return host


@lru_cache(maxsize=256)
def _canonical_plain_host(host: str) -> str:
    """`canonical_host`, memoised for `canonical_url`'s plain URLs: a storm's URLs name the same few hosts (a
    host it refuses raises each time: exceptions are not cached)."""
    return canonical_host(host)


def _check_path(path: str) -> None:
    if "\\" in path:
        raise UrlError("contains a backslash, which some servers read as '/'")
    if "*" in path:
        raise UrlError("contains '*', which several CDNs read as a wildcard (a literal '*' is never purged as one)")
    problem = dot_segment_problem(path)
    if problem:
        raise UrlError(problem)
