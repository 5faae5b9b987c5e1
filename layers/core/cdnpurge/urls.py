"""URL and path helpers shared by translate (rules), the providers and the CLI: one place decides what a
safe path is, so a published path, an S3 key, a CLI `--path` and an adapter's API path are checked alike.

Pure functions on strings: no I/O, nothing imported beyond the standard library, so the planner and the
rules can use them without loading an adapter.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# `\\` too: some servers treat a backslash as a path separator.
_SEGMENT_SEPARATORS = re.compile(r"[/\\]")


def may_hold_dot_segment(text: str) -> bool:
    """Whether a segment of `text`, as it is (not decoded), could start with a dot: the cheap pre-check."""
    return "/." in text or "\\." in text or text.startswith(".")


def dot_segment_problem(path: str) -> str | None:
    """Why `path` cannot go into a request URL: a `.` or `..` segment, literal or percent-encoded; else None.

    httpx resolves literal dot segments before sending (RFC 3986 5.2.4) and servers may decode `%2e` and
    resolve them too, so `/purge/www.example.com/a/../../../service/S/purge_all` would call Fastly's purge-all
    instead of purging one URL. Decoding repeats until nothing changes, so double encoding is caught as well.
    """
    decoded = path
    while "%" in decoded and (step := unquote(decoded)) != decoded:
        decoded = step
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
