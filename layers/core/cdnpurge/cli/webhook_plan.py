"""`cdnpurge plan --webhook FILE --source NAME`: what a CMS payload would purge, before any CMS is pointed at
the endpoint. The payload is mapped exactly as the intake maps a verified one (no signature is checked: the
file is the body, without its headers) into the publish message the purge function decodes and plans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cdnpurge.core.config import Config
from cdnpurge.core.errors import CdnpurgeError
from cdnpurge.core.webhooks.mapping import MappingError, is_wanted, publish_message


class WebhookPlanError(CdnpurgeError):
    """The payload file, the source name or the mapping cannot give a publish message (exit 2)."""


def webhook_event(config: Config, path: Path, source_name: str) -> dict[str, Any] | None:
    """The publish message `path`'s payload becomes under source `source_name`; None when the source's `when`
    expression says the payload purges nothing."""
    source = config.webhook(source_name)
    if source is None:
        known = ", ".join(source.name for source in config.webhooks) or "none configured"
        raise WebhookPlanError(f"--source {source_name!r}: no such webhook source (webhooks: {known})")
    try:
        body = path.read_bytes()
        payload = json.loads(body)
    except (OSError, ValueError) as exc:
        raise WebhookPlanError(f"{path}: cannot read the payload as JSON: {exc}") from None
    try:
        if not is_wanted(source, payload):
            return None
        return publish_message(source, payload, delivery_id=None, body=body)
    except MappingError as exc:
        raise WebhookPlanError(f"{path}: {exc}") from None
