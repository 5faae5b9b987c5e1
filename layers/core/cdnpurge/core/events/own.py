"""The function's own queue messages: one schema, read as untrusted input like any published event.

The function writes messages to its own purge queue (verification checks, re-purges, and whatever kind comes
next). Anyone who can send to that queue can write one too, and a message the function rewrites each time it
reschedules is a new message to SQS, so its redrive policy never ends a loop. Hence every kind:

- is a frozen dataclass deriving from `OwnMessage`, whose field types carry their bounds: finite numbers only
  (`Epoch`, `Seconds`: NaN, Infinity, negative and 1e308 refused), strict integers (no floats, no
  booleans) in ranges, texts of bounded length without control characters (`NO_CONTROL`), bounded tuples;
- carries `sends` (how many times the function has enqueued it again; at most `MAX_SENDS`) and
  `expires_at` (an absolute end, epoch seconds), so rescheduling always ends: `resend` refuses to write a
  message past either, and `read_own` refuses one that arrives past its end;
- is read by `read_own`, from a document the decode stage parsed (whose parser refuses a body nested too
  deep before parsing it: `reading.nesting_problem`) or from an SQS body with pydantic's JSON parser, which
  stops at nesting depth 200 (a 5,000-deep body fails in microseconds, no `RecursionError`); what fails is
  a `MalformedError` (the record is dead-lettered as permanent) naming the field, never quoting the value;
- is checked against the clock that runs it (`refuse_times`): no time it records in the future, and past
  `expires_at` an `ExpiredMessageError` (dead-lettered as expired).

Adding a kind: a dataclass deriving from `OwnMessage` with `cdnpurge: Literal["<kind>"]` (see
`cdnpurge.core.events.verify.VerifyCheck`), read with `read_own(Kind, ...)`, written with `encode_own` (and
enqueued again only through `resend`), and a line in `cdnpurge.core.events.envelopes.decode_document`'s
dispatch on `own_kind`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Final, TypeVar

from pydantic import AfterValidator, AllowInfNan, Field, Strict, TypeAdapter, ValidationError

from cdnpurge.core.answers import MAX_ANSWER_SECONDS
from cdnpurge.core.errors import show
from cdnpurge.core.events.reading import CONTROL, MAX_BODY_BYTES, MalformedError, json_kind

MAX_SENDS: Final = 5000  # a lineage of checks: 3600 s deadline at a 1 s interval, with room for the waits
MIN_EPOCH: Final = 1_000_000_000.0  # 2001-09-09: no message of this function is older
MAX_EPOCH: Final = 4_102_444_800.0  # 2100-01-01: a time past this is hostile, not scheduled
CLOCK_SKEW_SECONDS: Final = 300.0  # how far in the future a time written by another invocation may be
MAX_SECONDS: Final = MAX_ANSWER_SECONDS  # a duration carried in a message (an edge's ETA): at most a day


def _no_control(value: str) -> str:
    """Refuse what the decode stage refuses in keys and targets (`reading.check_text`): control characters
    and lone surrogates. (Escaping for a terminal is the output's job: `cdnpurge.core.terminal`.)"""
    control = CONTROL.search(value)
    if control is not None:
        raise ValueError(f"holds control character U+{ord(control.group()):04X}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (lone surrogate)") from None
    return value


# Epoch seconds between 2001 and 2100, finite: what a message's times may be.
Epoch = Annotated[float, Strict(), AllowInfNan(False), Field(ge=MIN_EPOCH, le=MAX_EPOCH)]
# A duration in seconds, finite, between 0 and a day.
Seconds = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0, le=MAX_SECONDS)]
# Strict integers (a float, even 2.0, or a boolean is refused): how many times a message was sent again.
Sends = Annotated[int, Strict(), Field(ge=0, le=MAX_SENDS)]
# Every text of a message: a strict string (what bounds its length is the field's own `Field(max_length=)`).
NO_CONTROL: Final = AfterValidator(_no_control)


class ExpiredMessageError(MalformedError):
    """A message the function wrote arrived past its end time: never run (dead-lettered as expired)."""


@dataclass(frozen=True, kw_only=True)
class OwnMessage:
    """What every message the function writes to its own queue carries, besides its kind's own fields."""

    cdnpurge: str  # the kind; each kind narrows it to its Literal marker (and it is written first)
    sends: Sends = 0  # how many times the function enqueued this message again
    expires_at: Epoch | None = None  # after this (epoch seconds) the message is not run; written always

    def future_times(self) -> tuple[tuple[str, float], ...]:
        """(field, epoch seconds) of the times that record something past, so cannot be in the future."""
        return ()


Message = TypeVar("Message", bound=OwnMessage)


_ADAPTERS: Final[dict[type[OwnMessage], TypeAdapter[Any]]] = {}


def _adapter(kind: type[OwnMessage]) -> TypeAdapter[Any]:
    """The kind's validator and serializer, built on first use (not at import: a cold start reads none)."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter


def own_kind(doc: Mapping[str, Any]) -> str:
    """The kind of an own message (its `cdnpurge` field), checked to be a short string."""
    kind = doc.get("cdnpurge")
    if not isinstance(kind, str) or not 0 < len(kind) <= 32:
        raise MalformedError(f"unknown envelope: cdnpurge message type must be a short string, got {json_kind(kind)}")
    return kind


def read_own(kind: type[Message], data: str | Mapping[str, Any], *, what: str) -> Message:
    """One message of `kind` from an SQS body (parsed here, depth-bounded) or an already parsed document,
    validated against its schema. `MalformedError` names the first field that fails, never its value."""
    adapter = _adapter(kind)
    try:
        if isinstance(data, str):
            if len(data) * 4 > MAX_BODY_BYTES and len(data.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
                raise MalformedError(f"{what} is over the {MAX_BODY_BYTES}-byte SQS message limit")
            message: Message = adapter.validate_json(data)
        else:
            message = adapter.validate_python(dict(data))
    except ValidationError as exc:
        raise MalformedError(f"{what} {_problem(exc)}") from None
    return message


def refuse_times(message: OwnMessage, *, what: str, now: float) -> None:
    """Refuse a message that records a time in the future (beyond `CLOCK_SKEW_SECONDS`) with `MalformedError`,
    or arrived past its `expires_at` with `ExpiredMessageError`: checked where the message is run, on the
    clock that runs it."""
    for name, moment in message.future_times():
        if moment > now + CLOCK_SKEW_SECONDS:
            raise MalformedError(f"{what} field {name} is {moment - now:.0f} s in the future")
    if message.expires_at is not None and now > message.expires_at:
        late = now - message.expires_at
        raise ExpiredMessageError(f"{what} expired {late:.0f} s ago (after {message.sends} sends)")


def _problem(exc: ValidationError) -> str:
    """The first problem of a validation error, by field path and rule, never quoting the value (it is
    untrusted and may be huge); how many more there are."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) if first["loc"] else ""
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    message = show(first["msg"])[1:-1]  # pydantic's message may quote a tag from the input: bounded
    return f"field {where}: {message}{more}" if where else f"{message}{more}"


def encode_own(message: OwnMessage) -> str:
    """The SQS body of `message`: compact JSON whose first field is its kind (`{"cdnpurge":"<kind>",`).

    Validated on the way out by the reader that will take it back (`read_own`): a dataclass is built without
    checking its field types, so a value read from a table (a window's `due_at` of `1e125`, a generation past
    2^53) or an answer would otherwise be enqueued, then refused on arrival and dead-lettered with the purge it
    carried. Refused here (`MalformedError` naming the field), the caller's fallback runs instead (a window's
    targets are purged now)."""
    body = _SQS_REFUSED.sub(_json_escape, _adapter(type(message)).dump_json(message).decode())
    read_own(type(message), body, what=f"{message.cdnpurge} message to enqueue")
    return body


# What SQS refuses in a message body (`InvalidMessageContents`), that JSON writes raw: U+FFFE and U+FFFF (an S3
# key may hold them). Only inside strings, so escaped as JSON escapes them, the message reads back the same.
_SQS_REFUSED: Final = re.compile("[\ufffe\uffff]")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class ResendRefusedError(MalformedError):
    """Enqueuing a message again would pass its send cap or its end time: the lineage ends here."""


def resend(message: Message, *, now: float, delay_seconds: float) -> Message:
    """`message` as enqueued once more, `delay_seconds` from `now`: one more send counted; refused with
    `ResendRefusedError` past `MAX_SENDS` or when it would arrive after `expires_at`."""
    if message.sends >= MAX_SENDS:
        raise ResendRefusedError(f"{message.cdnpurge} message sent {message.sends} times: the cap is {MAX_SENDS}")
    if message.expires_at is not None and now + delay_seconds > message.expires_at:
        raise ResendRefusedError(f"{message.cdnpurge} message would arrive after its end time")
    return replace(message, sends=message.sends + 1)
