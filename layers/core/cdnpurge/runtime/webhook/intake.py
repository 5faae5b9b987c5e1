"""Verify, map, remember, enqueue: one webhook delivery, answered with what the sender should know.

Order matters. The source is looked up and the body measured before anything is hashed; the signature is
checked before the body is parsed; only then is the payload mapped, the delivery recorded (a replay stops
here) and the publish message sent to the purge queue. Nothing unverified is parsed, recorded or enqueued.

Answers: 202 accepted (enqueued), 200 duplicate or ignored (`when` false), 401 with no detail for a bad or
missing signature and for a source that does not exist (probing for names learns nothing), 413 for a body
over the source's cap, 400 for a verified payload the mapping cannot read (the reason is the sender's to
see), 405 for a method other than POST, 503 when secrets, the table or the queue cannot be reached (the
sender retries). The outcome and reason go to metrics per source (a configured name or "unknown": a name
chosen by whoever calls is never a metric dimension).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from enum import StrEnum
from typing import Any, Final

import msgspec

from cdnpurge.core.config import Config
from cdnpurge.core.credentials import CredentialError, SecretReader, resolve
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.webhooks.mapping import MappingError, body_digest, encode_message, is_wanted, publish_message
from cdnpurge.core.webhooks.settings import WebhookSource
from cdnpurge.core.webhooks.signatures import Scheme, SignatureRejected, standard_key, verify
from cdnpurge.runtime.webhook.http import (
    BadRequestError,
    BodyTooLargeError,
    HttpResponse,
    Incoming,
    read_event,
    respond,
)
from cdnpurge.runtime.webhook.stores import DeliveryRecords, PurgeQueue, delivery_key

UNKNOWN_SOURCE: Final = "unknown"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


class IntakeResult(msgspec.Struct, frozen=True):
    """The answer and what to count and log about it (never a header value or the body)."""

    response: HttpResponse
    outcome: Outcome
    source: str
    reason: str | None = None
    change_id: str | None = None
    problem: str | None = None


def accepted_secrets(source: WebhookSource, reader: SecretReader) -> tuple[str, ...]:
    """The secrets a source's signatures may use: its secret's value, or while rotating the JSON
    `{"current": NEW, "previous": OLD}` (both accepted). Checked for the scheme's format here, so a malformed
    secret is a configuration problem reported by name, not a rejected sender."""
    where = f"webhooks.{source.name}.secret"
    value = resolve({"secret": source.secret}, owner=f"webhooks.{source.name}", secret_reader=reader)["secret"]
    text = value.get_secret_value()
    secrets: list[str] = [text]
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
            secrets = [document[name] for name in ("current", "previous") if document.get(name)]
        except (ValueError, TypeError, AttributeError):
            raise CredentialError(f'{where}: a JSON secret must be {{"current": ..., "previous": ...}}') from None
    if not secrets or not all(isinstance(secret, str) and secret for secret in secrets):
        raise CredentialError(f"{where}: no secret value (current and previous must be non-empty strings)")
    if source.scheme is Scheme.STANDARD:
        for secret in secrets:
            try:
                standard_key(secret)
            except ValueError as exc:
                raise CredentialError(f"{where}: {exc}") from None
    return tuple(secrets)


class WebhookIntake(msgspec.Struct, frozen=True):
    """What the webhook function runs per request; every dependency injected (tests and the local stack
    pass DynamoDB Local, moto's SQS and a clock by hand)."""

    config: Callable[[Deadline], Config]
    secrets: Callable[[WebhookSource, Deadline], Sequence[str]]
    records: DeliveryRecords
    queue: PurgeQueue
    wall_clock: Callable[[], float]

    def handle(self, event: Mapping[str, Any], deadline: Deadline) -> IntakeResult:
        try:
            incoming = read_event(event)
        except BadRequestError as exc:
            return IntakeResult(respond(400, {"message": str(exc)}), Outcome.REJECTED, UNKNOWN_SOURCE, "bad_request")
        if incoming.method != "POST":
            return IntakeResult(respond(405, {"message": "POST only"}), Outcome.REJECTED, UNKNOWN_SOURCE, "method")
        name = UNKNOWN_SOURCE
        try:
            source = self.config(deadline).webhook(incoming.source)
            if source is None:
                return _unauthorized(UNKNOWN_SOURCE, "unknown_source")
            name = source.name
            return self._deliver(source, incoming, deadline)
        except (CredentialError, OutOfTimeError) as exc:
            return _unavailable(name, str(exc))
        except Exception as exc:  # the table, the queue or SSM: the sender's retry may succeed
            from cdnpurge.runtime.aws_errors import aws_problem

            problem = aws_problem(exc)
            if problem is None:
                raise
            return _unavailable(name, problem)

    def _deliver(self, source: WebhookSource, incoming: Incoming, deadline: Deadline) -> IntakeResult:
        name = source.name
        try:
            request = incoming.signed_request(source.max_body_bytes)
        except BodyTooLargeError:
            return IntakeResult(respond(413, {"message": "body too large"}), Outcome.REJECTED, name, "too_large")
        except BadRequestError as exc:
            return IntakeResult(respond(400, {"message": str(exc)}), Outcome.REJECTED, name, "bad_request")
        now = self.wall_clock()
        try:
            verified = verify(
                source.scheme,
                request,
                self.secrets(source, deadline),
                now=now,
                tolerance_seconds=source.tolerance_seconds,
                token_header=source.token_header,
            )
        except SignatureRejected as exc:
            return _unauthorized(name, exc.reason.value)
        try:
            payload = json.loads(request.body)
        except (ValueError, RecursionError):
            return IntakeResult(respond(400, {"message": "body is not JSON"}), Outcome.REJECTED, name, "not_json")
        try:
            if not is_wanted(source, payload):
                return IntakeResult(respond(200, {"status": "ignored"}), Outcome.IGNORED, name, "not_wanted")
            message = publish_message(source, payload, delivery_id=verified.delivery_id, body=request.body)
        except MappingError as exc:
            return IntakeResult(respond(400, {"message": str(exc)}), Outcome.REJECTED, name, "unmapped")
        change_id = f"pub:{message['id']}"
        key = delivery_key(name, verified.delivery_id or body_digest(request.body))
        if not self.records.claim(key, now=now, remember_seconds=source.remember_seconds, deadline=deadline):
            return IntakeResult(
                respond(200, {"status": "duplicate", "change_id": change_id}), Outcome.DUPLICATE, name, None, change_id
            )
        try:
            self.queue.send(encode_message(message), deadline=deadline)
        except Exception:
            # Not enqueued: forget the delivery so the sender's retry is not refused as a replay. If even that
            # fails, the retry is refused until remember_seconds pass; the send's error is the one reported.
            with suppress(Exception):
                self.records.release(key, deadline=deadline)
            raise
        return IntakeResult(
            respond(202, {"status": "accepted", "change_id": change_id}), Outcome.ACCEPTED, name, None, change_id
        )


def _unauthorized(source: str, reason: str) -> IntakeResult:
    return IntakeResult(respond(401, {"message": "unauthorized"}), Outcome.REJECTED, source, reason)


def _unavailable(source_name: str, problem: str) -> IntakeResult:
    return IntakeResult(
        respond(503, {"message": "temporarily unavailable"}),
        Outcome.UNAVAILABLE,
        source_name,
        "unavailable",
        problem=problem,
    )
