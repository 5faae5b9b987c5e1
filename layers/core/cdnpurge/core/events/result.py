"""What the decode stage produces: the `Decoded` result of one invocation, the `Sink` its decoders fill,
and `guarded`/`within`, which make whatever goes wrong while decoding one unit fail that unit only.

Apart from the field readers (`reading`) because a decoded invocation holds the function's own check
messages (`verify.VerifyCheck`), whose schema reads documents with those readers.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from cdnpurge.core.boundary import unexpected
from cdnpurge.core.events.reading import MalformedError, Origin
from cdnpurge.core.events.verify import VerifyCheck
from cdnpurge.core.models import Change, DecodeFailure


class Decoded(msgspec.Struct, frozen=True):
    """Everything one invocation carried: changes to purge, records that failed, records acknowledged.

    Two are equal when they decoded the same (`fast_path_records` aside: it says how, not what)."""

    changes: tuple[Change, ...]
    errors: tuple[DecodeFailure, ...]
    ignored: tuple[str, ...]  # "<source id>: <reason>" for records acknowledged without a change
    # Verification checks (the function's own messages), validated: (source id, check), run after the batch.
    checks: tuple[tuple[str, VerifyCheck], ...] = ()
    # SQS records the storm fast path decoded: what tells a slow storm from a fast one, not what was decoded.
    fast_path_records: int = 0

    def __eq__(self, other: object) -> bool:
        if type(other) is not Decoded:
            return NotImplemented
        return self._decoded() == other._decoded()

    def __hash__(self) -> int:
        return hash(self._decoded())

    def _decoded(self) -> tuple[object, ...]:
        return (self.changes, self.errors, self.ignored, self.checks)


class Sink(msgspec.Struct):
    changes: list[Change] = msgspec.field(default_factory=list)
    errors: list[DecodeFailure] = msgspec.field(default_factory=list)
    ignored: list[str] = msgspec.field(default_factory=list)
    checks: list[tuple[str, VerifyCheck]] = msgspec.field(default_factory=list)
    fast_path: bool = True
    fast_path_records: int = 0
    # The stack's own account: a change from any other one carries its account in its id (`s3.add_s3_change`).
    home_account: str | None = None

    def error(self, origin: Origin, message: str, *, unexpected: bool = False) -> None:
        self.errors.append(DecodeFailure(origin.error_id, f"{origin.label}: {message}", unexpected))

    def ignore(self, origin: Origin, reason: str) -> None:
        self.ignored.append(f"{origin.error_id}: {reason}")

    def result(self) -> Decoded:
        return Decoded(
            changes=tuple(self.changes),
            errors=tuple(self.errors),
            ignored=tuple(self.ignored),
            checks=tuple(self.checks),
            fast_path_records=self.fast_path_records,
        )


def guarded(sink: Sink, origin: Origin, decode: Callable[[], None]) -> None:
    """Run one unit of decoding so that whatever goes wrong fails that unit only (`cdnpurge.core.boundary`)."""
    try:
        decode()
    except MalformedError as exc:
        sink.error(origin, exc.message)
    except Exception as exc:  # the contract is "never raise": a bug must fail one record, not the batch
        sink.error(origin, unexpected(exc, "decoding"), unexpected=True)


def within(sink: Sink, origin: Origin, decode: Callable[[], None]) -> None:
    """Decode the body of an envelope whose id is now known: a direct invocation's errors are reported
    under that id (guarded); an SQS body is already guarded under its messageId."""
    if origin.message_id is not None:
        decode()
    else:
        guarded(sink, origin, decode)
