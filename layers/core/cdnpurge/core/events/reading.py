"""Reading untrusted JSON documents for the decode stage: where a document came from (`Origin`), and field
readers whose errors name the path that is missing or wrong, so a malformed record fails alone with a
message a person can act on. (What decoding produces, `Decoded` and its `Sink`: `cdnpurge.core.events.result`.)

Powertools data classes are the typed views of each envelope; required fields are checked first by the
small `at`/`required_text` helpers so a missing field yields a message naming its path rather than a `KeyError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final, TypeGuard
from urllib.parse import unquote_plus

import msgspec

from cdnpurge.core.errors import CdnpurgeError, show
from cdnpurge.core.nesting import nesting_problem

MAX_BODY_BYTES: Final = 256 * 1024  # SQS's (and SNS's) maximum message size
MAX_TARGETS: Final = 10_000  # per target list of a publish message
MAX_KEY_BYTES: Final = 1024  # S3's maximum key length (UTF-8)
MAX_ID_CHARS: Final = 512  # publisher-chosen ids end up in idempotency keys and logs
MAX_ENVELOPE_ID_CHARS: Final = 128  # an SNS MessageId or EventBridge id (AWS sends 36-character UUIDs)
MAX_IDENTITY_CHARS: Final = 1024  # an S3 sequencer, version id, ETag or event time, part of a change id
# Envelope ids and S3 identities: printable ASCII without spaces, so an id reads the same in every log line.
ENVELOPE_ID: Final = re.compile(r"[!-~]+")
# S3 bucket names: today's rules (3-63 lowercase letters, digits, `.` and `-`, starting and ending with a
# letter or digit) widened to legacy us-east-1 names (up to 255 characters, uppercase and `_` allowed), so
# no real bucket is refused and nothing else (`/`, `@`, spaces, Unicode) gets into a change id.
AWS_ACCOUNT: Final = re.compile(r"[0-9]{12}")
S3_BUCKET: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
DIRECT: Final = "event"  # source id of errors that belong to the invocation as a whole

CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")  # refused in keys, targets and ids
_SHOWN_KEYS: Final = 20


class MalformedError(CdnpurgeError):
    """A record is malformed; `message` says precisely what is wrong with it. Caught per record by
    `guarded` and turned into a `DecodeFailure`: it never leaves the decode stage."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Origin(msgspec.Struct):
    """Where a document came from, so its changes and errors map back to what the handler acknowledges."""

    label: str  # message prefix: "record <messageId>" or "event"
    error_id: str  # source id of this document's errors and ignored entries
    message_id: str | None = None  # SQS messageId when the document is an SQS body
    sent_millis: str | None = None  # SQS SentTimestamp: only a bare publish message needs it, as a time

    @property
    def sent_time(self) -> str | None:
        return millis_to_iso(self.sent_millis)

    def source_for(self, change_id: str) -> str:
        return self.message_id if self.message_id is not None else change_id

    def direct_as(self, event_id: str) -> Origin:
        """A direct invocation reports its errors under its own event id once that is known."""
        if self.message_id is not None:
            return self
        return Origin(label=f"event {show(event_id)}", error_id=event_id)


DIRECT_ORIGIN: Final = Origin(label="event", error_id=DIRECT)


def is_object(value: object) -> TypeGuard[Mapping[str, Any]]:
    """`isinstance(value, Mapping)`, with the plain dict that `json.loads` returns checked first (cheaply)."""
    return type(value) is dict or isinstance(value, Mapping)


def json_kind(value: object) -> str:
    """JSON's name for a value's type, for error messages written for people who read JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string" if value else "empty string"
    if is_object(value):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def keys_of(doc: Mapping[Any, Any]) -> str:
    names = sorted(str(name) for name in doc)
    shown = repr(names[:_SHOWN_KEYS])
    return shown if len(names) <= _SHOWN_KEYS else f"{shown[:-1]}, ...] ({len(names)} keys)"


@cache
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def at(doc: Mapping[str, Any], path: str, what: str) -> Any:
    """The value at a dotted path, or `MalformedError` naming the path that is missing or not an object.

    Walks the raw dicts under a Powertools data class (its item access adds a layer per step), and only
    works out the precise problem once a step failed: this runs several times per record of a batch.
    """
    current: Any = doc if type(doc) is dict else _unwrapped(doc)
    for part in _parts(path):
        try:
            current = current[part]
        except (KeyError, TypeError, IndexError):
            raise MalformedError(_missing(doc, path, what)) from None
    return current


def _unwrapped(doc: Mapping[str, Any]) -> Any:
    """The dict under a Powertools data class (duck-typed: an ABC isinstance check costs more here)."""
    return getattr(doc, "raw_event", doc)


def _missing(doc: Mapping[str, Any], path: str, what: str) -> str:
    """Why `path` cannot be read from `doc`: a missing field, or a step that is not an object."""
    current: Any = _unwrapped(doc)
    parts = _parts(path)
    for depth, part in enumerate(parts):
        if not is_object(current):
            return f"{what} field {'.'.join(parts[:depth])} must be an object, got {json_kind(current)}"
        if part not in current:
            break
        current = current[part]
    return f"{what} missing {path}"


def required_text(doc: Mapping[str, Any], path: str, what: str) -> str:
    value = at(doc, path, what)
    if not isinstance(value, str) or not value:
        raise MalformedError(f"{what} field {path} must be a non-empty string, got {json_kind(value)}")
    return value


def optional_text(doc: Mapping[str, Any], path: str) -> str | None:
    try:
        value = at(doc, path, "")
    except MalformedError:
        return None
    return value if isinstance(value, str) and value else None


def first_text(doc: Mapping[str, Any], *candidates: tuple[str, str]) -> str | None:
    """The first present `(path, prefix)` candidate, prefixed: the fallback chain of an S3 identity."""
    for path, prefix in candidates:
        value = optional_text(doc, path)
        if value is not None:
            return f"{prefix}{value}"
    return None


def parse_json(text: object, what: str) -> Any:
    if not isinstance(text, str):
        raise MalformedError(f"{what} must be a string, got {json_kind(text)}")
    # A character is at most 4 UTF-8 bytes: only a long text needs encoding to be measured.
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_BODY_BYTES else 0
    if size > MAX_BODY_BYTES:
        raise MalformedError(f"{what} is {size} bytes, over the {MAX_BODY_BYTES}-byte (256 KiB) SQS message limit")
    problem = nesting_problem(text)
    if problem:
        raise MalformedError(f"{what} {problem}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedError(f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedError(f"{what} is not usable JSON: {type(exc).__name__}: {show(str(exc))}") from None


def check_text(value: str, what: str) -> None:
    """Reject control characters: they have no business in keys or targets and break logs and URLs."""
    control = CONTROL.search(value)
    if control is not None:
        raise MalformedError(f"{what} {show(value)} contains control character U+{ord(control.group()):04X}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedError(f"{what} {show(value)} is not valid Unicode (lone surrogate)") from None


def check_identifier(value: str, what: str, limit: int) -> None:
    """An id that becomes part of a change id and log fields: printable ASCII, no spaces, at most `limit`."""
    if len(value) > limit:
        raise MalformedError(f"{what} has {len(value)} characters, over the limit of {limit}")
    if not ENVELOPE_ID.fullmatch(value):
        raise MalformedError(f"{what} {show(value)} must be printable ASCII without spaces")


def check_bucket(bucket: str, what: str) -> None:
    """An S3 bucket name by S3's naming rules (legacy us-east-1 names included): see `S3_BUCKET`."""
    if not S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        raise MalformedError(
            f"{what} bucket {show(bucket)} is not an S3 bucket name (3-255 letters, digits, '.', '-', '_', "
            "starting and ending with a letter or digit)"
        )


def decode_key(raw: str, what: str) -> str:
    """URL-decode an S3 key exactly once (`+` is a space, `%2B` a plus) and validate the result."""
    try:
        key = unquote_plus(raw, errors="strict")
    except UnicodeDecodeError:
        raise MalformedError(f"{what} key {show(raw)} does not percent-decode to UTF-8") from None
    if not key:
        raise MalformedError(f"{what} key {show(raw)} is empty after URL-decoding")
    check_text(key, f"{what} key")
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise MalformedError(f"{what} key is {size} bytes after URL-decoding, over S3's {MAX_KEY_BYTES}-byte limit")
    return key


def millis_to_iso(millis: str | None) -> str | None:
    if millis is None:
        return None
    try:
        moment = datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
