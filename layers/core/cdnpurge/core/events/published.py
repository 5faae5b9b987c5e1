"""The "content published" message: a publisher names its targets (keys, paths, URLs, hosts) directly.

They arrive in an SNS message, as an EventBridge `detail` (detail-type `Content Published`), or as a bare
SQS body from a raw-delivery SNS subscription. Every field is validated on its own, so the message that
fails says which field and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from cdnpurge.core.errors import show
from cdnpurge.core.events.reading import (
    MAX_ID_CHARS,
    MAX_TARGETS,
    MalformedError,
    Origin,
    check_text,
    json_kind,
    keys_of,
)
from cdnpurge.core.events.result import Sink
from cdnpurge.core.models import Action, Change

PUBLISH_FIELDS: Final = ("keys", "paths", "urls", "hosts")


def _publish_targets(doc: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    value = doc.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedError(f"{what} field {name} must be an array of strings, got {json_kind(value)}")
    if len(value) > MAX_TARGETS:
        raise MalformedError(f"{what} field {name} has {len(value)} entries, over the limit of {MAX_TARGETS}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise MalformedError(f"{what} field {name}[{index}] must be a non-empty string, got {json_kind(item)}")
        check_text(item, f"{what} field {name}[{index}]")
    return tuple(value)


def decode_publish(
    doc: Mapping[str, Any],
    *,
    default_id: str,
    what: str,
    event_time: str | None,
    origin: Origin,
    sink: Sink,
) -> None:
    """A "content published" message: explicit targets, validated field by field."""
    keys, paths, urls, hosts = (_publish_targets(doc, name, what) for name in PUBLISH_FIELDS)
    if not (keys or paths or urls or hosts):
        raise MalformedError(
            f"{what} names no targets: one of keys, paths, urls, hosts must be a non-empty array "
            f"of strings (got keys {keys_of(doc)})"
        )
    soft = doc.get("soft")
    if soft is not None and not isinstance(soft, bool):
        raise MalformedError(f"{what} field soft must be true or false, got {json_kind(soft)}")
    change_id = default_id
    if "id" in doc:
        own_id = doc["id"]
        if not isinstance(own_id, str) or not own_id:
            raise MalformedError(f"{what} field id must be a non-empty string, got {json_kind(own_id)}")
        if len(own_id) > MAX_ID_CHARS:
            raise MalformedError(f"{what} field id has {len(own_id)} characters, over the limit of {MAX_ID_CHARS}")
        check_text(own_id, f"{what} field id")
        if not own_id.isprintable():  # format characters (bidi overrides, ...) would disguise it in logs
            raise MalformedError(f"{what} field id {show(own_id)} holds characters that do not print")
        change_id = f"pub:{own_id}"
    sink.changes.append(
        Change(
            id=change_id,
            action=Action.PUBLISHED,
            source_id=origin.source_for(change_id),
            event_time=event_time,
            keys=keys,
            paths=paths,
            urls=urls,
            hosts=hosts,
            soft=soft,
        )
    )
