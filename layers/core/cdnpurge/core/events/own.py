"""The function's own queue messages: one schema, read as untrusted input like any published event.

The function writes messages to its own purge queue (verification checks, re-purges, coalescing flushes, and
whatever kind comes next). Anyone who can send to that queue can write one too, and a message the function
rewrites each time it reschedules is a new message to SQS, so its redrive policy never ends a loop. Hence
every kind:

- is a frozen msgspec `Struct` deriving from `OwnMessage` (its parts from `MessagePart`), unknown fields
  refused, whose field types carry their bounds as `msgspec.Meta`: finite numbers only (`Epoch`, `Seconds`:
  every float has a lower and an upper bound, so NaN, Infinity, negative numbers and 1e308 are refused),
  strict integers (no floats, not even 2.0, no booleans, no strings) in ranges, texts of bounded length
  without control characters or lone surrogates (`NO_CONTROL`), bounded tuples;
- carries `sends` (how many times the function has enqueued it again; at most `MAX_SENDS`) and
  `expires_at` (an absolute end, epoch seconds), so rescheduling always ends: `resend` refuses to write a
  message past either, and `read_own` refuses one that arrives past its end;
- is read by `read_own`, from a document the decode stage parsed (whose parser refuses a body nested too
  deep before parsing it: `reading.nesting_problem`) or from an SQS body with msgspec's JSON decoder, which
  descends only as deep as the schema does: a 5,000-deep value is refused at its first bracket ("Expected
  `str`, got `array`"), in microseconds, without recursion; what fails is a `MalformedError` (the record is
  dead-lettered as permanent) naming the field and the rule (a pattern by the rule it stands for: `worded`),
  never quoting the value;
- is checked against the clock that runs it (`refuse_times`): no time it records in the future, and past
  `expires_at` an `ExpiredMessageError` (dead-lettered as expired).

msgspec, not pydantic: defining a Struct costs microseconds, and a cold start that loads no pydantic saves
its import (bench/README.md: cold start). The bodies are the same JSON as pydantic wrote (same field names,
order and value shapes), so messages already in flight when the function is updated are read as before.

Adding a kind: a Struct deriving from `OwnMessage` (with `frozen=True, forbid_unknown_fields=True,
kw_only=True`) with `cdnpurge: Literal["<kind>"]` (see `cdnpurge.core.events.verify.VerifyCheck`), read
with `read_own(Kind, ...)`, written with `encode_own` (and enqueued again only through `resend`), and a
line in `cdnpurge.core.events.envelopes.decode_document`'s dispatch on `own_kind`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeVar

import msgspec

from cdnpurge.core.answers import MAX_ANSWER_SECONDS
from cdnpurge.core.errors import show
from cdnpurge.core.events.reading import MAX_BODY_BYTES, MalformedError, json_kind
from cdnpurge.core.schema import located, worded

MAX_SENDS: Final = 5000  # a lineage of checks: 3600 s deadline at a 1 s interval, with room for the waits
MIN_EPOCH: Final = 1_000_000_000.0  # 2001-09-09: no message of this function is older
MAX_EPOCH: Final = 4_102_444_800.0  # 2100-01-01: a time past this is hostile, not scheduled
CLOCK_SKEW_SECONDS: Final = 300.0  # how far in the future a time written by another invocation may be
MAX_SECONDS: Final = MAX_ANSWER_SECONDS  # a duration carried in a message (an edge's ETA): at most a day

# What the decode stage refuses in keys and targets (`reading.check_text`): control characters and lone
# surrogates. (Escaping for a terminal is the output's job: `cdnpurge.core.terminal`.)
NO_CONTROL: Final = worded(r"\A[^\x00-\x1f\x7f\ud800-\udfff]*\Z", "holds a control character or a lone surrogate")
# Epoch seconds between 2001 and 2100, finite: what a message's times may be.
Epoch = Annotated[float, msgspec.Meta(ge=MIN_EPOCH, le=MAX_EPOCH)]
# A duration in seconds, finite, between 0 and a day.
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_SECONDS)]
# How many times a message was sent again (an integer: 2.0 and true are refused).
Sends = Annotated[int, msgspec.Meta(ge=0, le=MAX_SENDS)]
# A provider's name as the configuration allows it (`ProviderSettings.name`).
ProviderName = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=128, pattern=worded(r"\A[A-Za-z0-9_.-]+\Z", "must be letters, digits, '_', '.' or '-'")
    ),
]


class ExpiredMessageError(MalformedError):
    """A message the function wrote arrived past its end time: never run (dead-lettered as expired)."""


class MessagePart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A part of an own message (a change it carries): immutable, and only the fields it names are read."""


class OwnMessage(MessagePart, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What every message the function writes to its own queue carries, besides its kind's own fields."""

    cdnpurge: str  # the kind; each kind narrows it to its Literal marker (and it is written first)
    sends: Sends = 0  # how many times the function enqueued this message again
    expires_at: Epoch | None = None  # after this (epoch seconds) the message is not run; written always

    def future_times(self) -> tuple[tuple[str, float], ...]:
        """(field, epoch seconds) of the times that record something past, so cannot be in the future."""
        return ()


Message = TypeVar("Message", bound=OwnMessage)


_DECODERS: Final[dict[type[OwnMessage], msgspec.json.Decoder[Any]]] = {}


def _decoder(kind: type[OwnMessage]) -> msgspec.json.Decoder[Any]:
    """The kind's JSON decoder, built on first use (not at import: a cold start reads none)."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(type=kind)
    return decoder


def own_kind(doc: Mapping[str, Any]) -> str:
    """The kind of an own message (its `cdnpurge` field), checked to be a short string."""
    kind = doc.get("cdnpurge")
    if not isinstance(kind, str) or not 0 < len(kind) <= 32:
        raise MalformedError(f"unknown envelope: cdnpurge message type must be a short string, got {json_kind(kind)}")
    return kind


def read_own(kind: type[Message], data: str | Mapping[str, Any], *, what: str) -> Message:
    """One message of `kind` from an SQS body (parsed here) or an already parsed document, validated against
    its schema (strictly: a number in a string or an integer as a boolean is refused either way).
    `MalformedError` names the first field that fails and the rule it breaks, never its value."""
    try:
        if isinstance(data, str):
            if len(data) * 4 > MAX_BODY_BYTES and len(data.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
                raise MalformedError(f"{what} is over the {MAX_BODY_BYTES}-byte SQS message limit")
            message: Message = _decoder(kind).decode(data)
        else:
            message = msgspec.convert(data if type(data) is dict else dict(data), kind, strict=True)
    except msgspec.ValidationError as exc:
        raise MalformedError(f"{what} {_problem(exc)}") from None
    except msgspec.DecodeError as exc:  # its message names the byte, never quotes the text
        raise MalformedError(f"{what} is not JSON: {exc}") from None
    except UnicodeEncodeError:  # a body holding a lone surrogate, which no JSON text encodes
        raise MalformedError(f"{what} is not valid Unicode (lone surrogate)") from None
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


# A field path as this schema names its fields; anything else (an unknown field's name is input) is quoted.
_PLAIN_PATH: Final = re.compile(r"[A-Za-z0-9_.\[\]]{0,200}")


def _problem(exc: msgspec.ValidationError) -> str:
    """`field <path>: <rule>` of a validation error, never quoting the value (it is untrusted and may be
    huge), the path quoted and bounded when it holds an unknown field's name."""
    where, what = located(exc)
    place = where if _PLAIN_PATH.fullmatch(where) else show(where)
    return f"field {place}: {what}" if where else f"is refused: {what}"


def encode_own(message: OwnMessage) -> str:
    """The SQS body of `message`: compact JSON whose first field is its kind (`{"cdnpurge":"<kind>",`).

    Validated on the way out by the reader that will take it back (`read_own`): a Struct is built without
    checking its field types, so a value read from a table (a window's `due_at` of `1e125`, a generation past
    2^53) or an answer would otherwise be enqueued, then refused on arrival and dead-lettered with the purge it
    carried. Refused here (`MalformedError` naming the field), the caller's fallback runs instead (a window's
    targets are purged now). What is read back must also be what was meant: JSON writes a number that is not
    finite as null, which an optional field (an end time) would otherwise take as "none"."""
    what = f"{message.cdnpurge} message to enqueue"
    body = _SQS_REFUSED.sub(_json_escape, msgspec.json.encode(message).decode())
    if read_own(type(message), body, what=what) != message:
        raise MalformedError(f"{what} does not read back as written (a number that is not finite?)")
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
    return msgspec.structs.replace(message, sends=message.sends + 1)
