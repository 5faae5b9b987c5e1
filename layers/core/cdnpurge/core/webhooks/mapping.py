"""A verified payload -> the "content published" message the purge function already decodes.

Pure: the source's JMESPath expressions read the payload; the result is a publish message (`id`, `keys`,
`paths`, `urls`, `hosts`, `soft`) validated by the very decoder the purge function runs, so what is accepted
here cannot fail there. The change id is `webhook:<source>:<id>`: the mapped id, else the sender's delivery
id, else a hash of the body (identical redeliveries share it).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from jmespath.exceptions import JMESPathError

from cdnpurge.core.errors import CdnpurgeError
from cdnpurge.core.events import MAX_BODY_BYTES, decode_event
from cdnpurge.core.webhooks.settings import MAPPED_FIELDS, WebhookSource, compiled

WEBHOOK_ID_PREFIX: Final = "webhook"


class MappingError(CdnpurgeError, ValueError):
    """The verified payload does not give what the source's mapping expects (answered 400)."""


def body_digest(body: bytes) -> str:
    return "sha256-" + hashlib.sha256(body).hexdigest()


def encode_message(message: dict[str, Any]) -> str:
    """The publish message as it is enqueued (and measured against the purge function's body limit)."""
    return json.dumps(message, separators=(",", ":"))


def _search(expression: str, payload: Any, where: str) -> Any:
    """The expression's result on the payload. Whatever evaluating it raises is this payload's problem, answered
    400: a function applied to the wrong type (`join()` over a null), and also what a hostile payload provokes
    beyond JMESPath's own errors (`to_string()` or `==` over a value nested hundreds deep: `RecursionError`)."""
    try:
        return compiled(expression).search(payload)
    except JMESPathError as exc:
        raise MappingError(f"{where}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # the payload is input: its failure is a refusal (400), never a crash
        raise MappingError(f"{where}: the payload cannot be evaluated ({type(exc).__name__})") from None


def _strings(value: Any, where: str) -> list[str]:
    """A string or list of strings; nulls are dropped (a multi-select such as `[_id, _type]` gives null for a
    field this payload lacks), anything else is refused by position."""
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    for index, item in enumerate(values):
        if item is not None and not isinstance(item, str):
            raise MappingError(f"{where}[{index}] is {type(item).__name__}, not a string (wrap numbers in to_string())")
    return [item for item in values if isinstance(item, str) and item]


def is_wanted(source: WebhookSource, payload: Any) -> bool:
    """Whether the payload is one the source purges for (its `when` expression, true when unset)."""
    when = source.map.when
    return when is None or bool(_search(when, payload, f"webhooks.{source.name}.map.when"))


def publish_message(source: WebhookSource, payload: Any, *, delivery_id: str | None, body: bytes) -> dict[str, Any]:
    """The publish message for a verified payload; `MappingError` names what is missing or wrong."""
    where = f"webhooks.{source.name}.map"
    message: dict[str, Any] = {}
    for name in MAPPED_FIELDS:
        expression = getattr(source.map, name)
        if expression is not None and (
            values := _strings(_search(expression, payload, f"{where}.{name}"), f"{where}.{name}")
        ):
            message[name] = values
    if not message:
        raise MappingError(f"the payload names nothing to purge ({where}: {', '.join(MAPPED_FIELDS)} all empty)")
    own_id = None
    if source.map.id is not None:
        found = _search(source.map.id, payload, f"{where}.id")
        if isinstance(found, int | float) and not isinstance(found, bool):
            found = str(found)
        if not isinstance(found, str) or not found:
            raise MappingError(f"{where}.id gives no non-empty string for this payload")
        own_id = found
    message["id"] = f"{WEBHOOK_ID_PREFIX}:{source.name}:{own_id or delivery_id or body_digest(body)}"
    if source.map.soft is not None:
        message["soft"] = source.map.soft
    decoded = decode_event(message)  # the purge function's own decoder: bounds, characters, id length
    if decoded.errors:
        raise MappingError(decoded.errors[0].message)
    # The decoder bounds each list, not their sum: ten thousand long URLs would pass it, then be refused by the
    # purge function (a body over its limit) after this intake answered 202.
    size = len(encode_message(message).encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise MappingError(f"the mapped message is {size} bytes, over the purge queue's {MAX_BODY_BYTES}-byte limit")
    return message
