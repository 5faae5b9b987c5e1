"""The shared rate meter on DynamoDB: one item per scope, every reservation one conditional `UpdateItem`.

Item `{"id": "cdnpurge#meter#<scope>"}` in the idempotency table (`KEY_PREFIX`: the function's role may
update only items under it); per bucket `b` of the scope: `b_tat` (GCRA's theoretical
arrival time, epoch seconds), `b_rate`/`b_rate_at`/`b_base`/`b_cut_at` (a cut or learned rate and when),
`b_calls`/`b_since` (unpaced buckets: calls counted since); `paused_until` (the latest Retry-After of the
scope) and `expiration` (TTL: a meter idle for a day is deleted; the next call starts it afresh).

A reservation is written without reading first, from the state the last write returned (`ALL_NEW`):

- a bucket the cache says is busy (`tat >= now`) is *added to*: `SET b_tat = b_tat + :increment` under
  `b_tat >= :now AND b_tat <= :latest`. Additions commute, so any number of callers reserving at once
  never conflict while the scope is busy, which is exactly when they all call at once;
- a bucket the cache says is idle is *set*: `SET b_tat = :now + :increment` under `b_tat < :now`; two
  callers racing there conflict once, the loser retries with the item's state that came back with the
  failure (`ReturnValuesOnConditionCheckFailure`), without another read. When the last write found others
  ahead in the queue, an idle-looking cache is taken for stale and the bucket is added to instead (a wrong
  guess fails the same way, once).

So a provider call costs one write unit (the item stays under 1 KB), plus one for each lost race at an
idle scope; `:latest` makes the write fail, instead of reserving, when the slot is beyond the time left.
Slots are reserved as of when the write will have landed (`DynamoDBMeter.lead`), not when it starts: a call
cannot leave before its reservation is written.

Items in progress (CloudFront) live in an item of their own per distribution: a hold is `ipx_<key>` (when it
expires) and `ip_<key>_<limit>` (its items), under a version number (`DynamoDBMeter.hold`).

A table that failed (throttled, slow, unreachable) is not asked again for `RETRY_AFTER_FAILURE_SECONDS`.
Where a call draws on two buckets (Akamai: requests and URLs) the slot is the later of the two, and the
bucket that did not bind is advanced from its own state, not from that slot: it may under-count by the
difference, a rare case (both buckets near their limit at once) the provider's 429 still covers.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from cdnpurge.core.answers import stored_number
from cdnpurge.core.deadline import Deadline, OutOfTimeError
from cdnpurge.core.errors import describe_error
from cdnpurge.core.gcra import (
    COUNT_WINDOW_SECONDS,
    CUT_WINDOW_SECONDS,
    FLOOR,
    JITTER_MARGIN_SECONDS,
    MIN_LEARNED_RATE,
    BucketState,
    Draw,
    Hold,
    Limit,
    Step,
    release_wait,
    slots_of,
    wait_for,
)
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge.runtime.meter import MeterUnavailableError, Reservation, checked_key, fit, throttle_state

# The most one meter call may take (within the caller's deadline; `cdnpurge.runtime.bounded`).
METER_CALL_SECONDS: Final = 2.0
# Lost races before the meter is called unavailable for this call (each loss is one idle-to-busy race).
MAX_CONFLICTS: Final = 8
# After the table failed (throttled, slow, unreachable), it is not asked again for this long: the calls meanwhile
# go at the static share at once, so a failing table costs one bounded call per interval, not one per provider
# call (each up to `METER_CALL_SECONDS`, which would eat the stage's time).
RETRY_AFTER_FAILURE_SECONDS: Final = 5.0
# A reservation is made as of when its write will have landed: the longest of the last `TIMED_WRITES` writes,
# `FIRST_LEAD_SECONDS` before any was timed (DynamoDB answers in a few ms in-region; a new connection takes
# longer), never more than `MAX_LEAD_SECONDS`.
TIMED_WRITES: Final = 8
FIRST_LEAD_SECONDS: Final = 0.05
MAX_LEAD_SECONDS: Final = 0.5
# An idle meter item is deleted this long after its last write (DynamoDB TTL).
ITEM_KEPT_SECONDS: Final = 86_400
KEY_PREFIX: Final = "cdnpurge#meter#"
# Numbers read back are bounded (the table is input): no time cdnpurge writes lies further ahead than this (a
# stage reserves within its deadline, 15 minutes at most for a Lambda invocation; a pause is at most
# `MAX_PROVIDER_WAIT_SECONDS`; a CloudFront hold 15 minutes), so a far-future `tat` or `paused_until` stalls an
# account for at most this long, not until the item expires; rates and counts have a ceiling too.
STORED_AHEAD_SECONDS: Final = 3600.0
MAX_STORED_RATE: Final = 1e6
MAX_STORED_CALLS: Final = 1e12
_CONFLICT: Final = "ConditionalCheckFailedException"


class _Scope(msgspec.Struct):
    """What the last write (or failed condition) said of one scope's item."""

    states: dict[str, BucketState] = msgspec.field(default_factory=dict)
    paused_until: float = 0.0
    # Others were reserving too at the last write (ours queued behind theirs): an idle-looking cache is then
    # probably stale, so the next reservation adds instead of setting (see `DynamoDBMeter.reserve`).
    busy: bool = False


def _parse(item: Mapping[str, Any] | None, limits: Sequence[Limit], now: float) -> _Scope:
    """What the item says of a scope's buckets, every number bounded: times to come at most
    `STORED_AHEAD_SECONDS` ahead, times gone by never after `now`, rates no slower than cdnpurge ever sets."""
    scope = _Scope()
    if not item:
        return scope
    ahead = now + STORED_AHEAD_SECONDS
    scope.paused_until = stored_number(item, "paused_until", low=0.0, high=ahead) or 0.0
    for limit in limits:

        def read(name: str, high: float, low: float = 0.0, *, limit: Limit = limit) -> float | None:
            return stored_number(item, f"{limit.name}_{name}", low=low, high=high)

        # No cut takes a declared rate below FLOOR of it, and no rate is learned below MIN_LEARNED_RATE.
        slowest = FLOOR * limit.rate if limit.rate is not None else MIN_LEARNED_RATE
        scope.states[limit.name] = BucketState(
            tat=read("tat", ahead) or 0.0,
            rate=read("rate", MAX_STORED_RATE, slowest),
            rate_at=read("rate_at", now) or 0.0,
            base=read("base", MAX_STORED_RATE, MIN_LEARNED_RATE),
            cut_at=read("cut_at", now) or 0.0,
            calls=read("calls", MAX_STORED_CALLS) or 0.0,
            since=read("since", now) or 0.0,
        )
    return scope


def _parse_holds(item: Mapping[str, Any] | None, names: Sequence[str], now: float) -> tuple[int, dict[str, Hold]]:
    """(version, holds by key) from an in-progress item: `ipx_<key>` (when the hold expires, at most
    `STORED_AHEAD_SECONDS` ahead) and `ip_<key>_<name>` (its items per limit name), every number bounded."""
    if not item:
        return 0, {}
    ahead = now + STORED_AHEAD_SECONDS
    expiries = {
        attribute[4:]: until
        for attribute in item
        if attribute.startswith("ipx_") and (until := stored_number(item, attribute, low=0.0, high=ahead)) is not None
    }
    amounts: dict[str, dict[str, float]] = {key: {} for key in expiries}
    for attribute in item:
        if attribute.startswith("ip_"):
            key, _, name = attribute[3:].rpartition("_")
            if key in amounts and name in names:
                amounts[key][name] = stored_number(item, attribute, low=0.0, high=MAX_STORED_CALLS) or 0.0
    version = int(stored_number(item, "ipv", low=0.0, high=MAX_STORED_CALLS) or 0)
    return version, {key: (until, amounts[key]) for key, until in expiries.items()}


def _hold_attributes(key: str, names: Sequence[str]) -> list[str]:
    """Every attribute a hold of `key` may have in a scope whose limits are `names`."""
    return [f"ipx_{key}", *(f"ip_{key}_{name}" for name in names)]


def _set_hold(update: _Update, key: str, amounts: Mapping[str, float], until: float) -> None:
    """SET the attributes of a hold of `key`: its items per limit name and when it expires (what
    `_parse_holds` reads back)."""
    for name, amount in amounts.items():
        update.sets.append(f"{update.name(f'ip_{key}_{name}')} = {update.value(amount)}")
    update.sets.append(f"{update.name(f'ipx_{key}')} = {update.value(until)}")


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


class _Update:
    """One UpdateItem's expression, built clause by clause."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, str]] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#a{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, number: float) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = _n(number)
        return placeholder

    def request(self, table: str, scope: str) -> dict[str, Any]:
        expression = " ".join(
            part
            for part in (
                f"SET {', '.join(self.sets)}" if self.sets else "",
                f"ADD {', '.join(self.adds)}" if self.adds else "",
                f"REMOVE {', '.join(self.removes)}" if self.removes else "",
            )
            if part
        )
        request: dict[str, Any] = {
            "TableName": table,
            "Key": {"id": {"S": KEY_PREFIX + scope}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if self.conditions:
            request["ConditionExpression"] = " AND ".join(f"({c})" for c in self.conditions)
        return request


class DynamoDBMeter:
    """The meter the function and the CLI share, on `table_name` (the idempotency table: key attribute `id`,
    TTL `expiration`).

    `client`: a boto3 DynamoDB client (the runtime's `aws_client("dynamodb")`: every call bounded by the
    caller's deadline); `clock`: epoch
    seconds (every caller of one scope, on any machine, must read the same time); `first_lead`: how long the
    first write is taken to last before one was timed (see `lead`). `writes` counts the write requests sent
    (conditional failures included: they consume a write unit too)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
        first_lead: float = FIRST_LEAD_SECONDS,
    ) -> None:
        self._client = client
        self._table = table_name
        self.clock = clock
        self._cache: dict[str, _Scope] = {}
        self.writes = 0
        self.conflicts = 0  # of which lost races (their condition failed)
        self._holds: dict[str, tuple[int, dict[str, Hold]]] = {}  # per scope: (version, holds by key) as last seen
        self._write_seconds: deque[float] = deque(maxlen=TIMED_WRITES)  # how long the last writes took
        self._first_lead = first_lead
        self._failed_until = -math.inf  # no call to the table before this (it failed: `RETRY_AFTER_FAILURE_SECONDS`)

    def reserve(
        self,
        scope: str,
        draws: Sequence[Draw],
        deadline: Deadline,
        count: int = 1,
        *,
        margin: float = JITTER_MARGIN_SECONDS,
    ) -> Reservation:
        limits = [draw.limit for draw in draws]
        for _ in range(MAX_CONFLICTS):
            # Slots are reserved as of when the write will have landed (`lead`): a call cannot leave before its
            # reservation lands, so a slot given as of the write's start would leave the call late by the
            # write's own time, and the next caller's slot too close behind it.
            lead = self.lead()
            now = self.clock() + lead
            cached = self._cache.get(scope) or _Scope()
            states = [cached.states.get(d.limit.name, BucketState()) for d in draws]
            within = deadline.remaining() - lead
            # The cache is never ahead of the item: a refusal from it stands.
            steps = fit(draws, states, now, count=count, within=within, paused=cached.paused_until, margin=margin)
            if isinstance(steps, float):
                return Reservation((), steps + lead)
            if cached.busy:  # a stale cache of a busy scope looks idle: add, and learn otherwise if wrong
                steps = [msgspec.structs.replace(s, absolute=False) if s.rate is not None else s for s in steps]
            item = self._write(self._reservation(steps, now, within), scope, deadline, limits)
            if item is None:
                continue
            fresh = self._cache[scope] = _parse(item, limits, self.clock())
            bases = [self._base(s, fresh) for s in steps]
            fresh.busy = any(base is not None and base > now for base in bases)
            landed = self.clock()  # waits from when the write landed: its own time is not waited twice
            return Reservation(
                tuple(wait_for(max(slot, fresh.paused_until), landed) for slot in slots_of(steps, bases))
            )
        raise MeterUnavailableError(f"rate meter {scope!r}: {MAX_CONFLICTS} conflicting writes in a row")

    def lead(self) -> float:
        """How long a write is expected to take: the longest of the last few, at most `MAX_LEAD_SECONDS`
        (`first_lead` before any was timed)."""
        return min(MAX_LEAD_SECONDS, max(self._write_seconds, default=self._first_lead))

    @staticmethod
    def _base(step_: Step, fresh: _Scope) -> float | None:
        """The `tat` an addition really started from (the item it wrote, less what it added); None for a set."""
        if step_.rate is None or step_.absolute:
            return None
        return fresh.states[step_.limit.name].tat - step_.increment

    @staticmethod
    def _reservation(steps: Sequence[Step], now: float, within: float) -> _Update:
        update = _Update()
        at = update.value(now)
        for step_ in steps:
            name = step_.limit.name
            if step_.rate is None:  # unpaced: count the call (the pace a first 429 learns a rate from)
                calls, since = update.name(f"{name}_calls"), update.name(f"{name}_since")
                stale = update.value(now - COUNT_WINDOW_SECONDS)
                if step_.absolute:
                    update.sets += [f"{calls} = {update.value(step_.cost * step_.count)}", f"{since} = {at}"]
                    update.conditions.append(f"attribute_not_exists({since}) OR {since} < {stale}")
                else:
                    update.adds.append(f"{calls} {update.value(step_.cost * step_.count)}")
                    update.conditions.append(f"{since} >= {stale}")
                continue
            tat = update.name(f"{name}_tat")
            if step_.absolute:
                update.sets.append(f"{tat} = {update.value(now + step_.increment)}")
                update.conditions.append(f"attribute_not_exists({tat}) OR {tat} < {at}")
            else:
                latest = update.value(now + within + step_.tolerance - (step_.count - 1) * step_.spacing)
                update.sets.append(f"{tat} = {tat} + {update.value(step_.increment)}")
                update.conditions.append(f"{tat} >= {at} AND {tat} <= {latest}")
        update.sets.append(f"{update.name('expiration')} = {update.value(int(now) + ITEM_KEPT_SECONDS)}")
        return update

    def throttled(self, scope: str, limits: Sequence[Limit], pause: float, deadline: Deadline, *, cut: bool) -> None:
        """Two writes at most: the rate cut (one per `CUT_WINDOW_SECONDS`, whoever saw the 429), then the push
        of every bucket's slot past the pause. Best effort: out of time, nothing is written."""
        try:
            if cut:
                self._cut(scope, limits, deadline)
            self._push(scope, limits, pause, deadline)
        except OutOfTimeError:
            return

    def _cut(self, scope: str, limits: Sequence[Limit], deadline: Deadline) -> None:
        now = self.clock()
        cached = self._cache.get(scope) or _Scope()
        update = _Update()
        for limit in limits:
            state = cached.states.get(limit.name, BucketState())
            new = throttle_state(limit, state, now, now, cut_rate=True)
            if new.cut_at != now:
                continue  # no cut due (cut within the window, or too few calls to learn from)
            cut_at = update.name(f"{limit.name}_cut_at")
            for attribute in ("rate", "rate_at", "base", "cut_at", "calls", "since"):
                value = getattr(new, attribute)
                if value is not None:
                    update.sets.append(f"{update.name(f'{limit.name}_{attribute}')} = {update.value(value)}")
            update.conditions.append(
                f"attribute_not_exists({cut_at}) OR {cut_at} < {update.value(now - CUT_WINDOW_SECONDS)}"
            )
        if update.sets:
            item = self._write(update, scope, deadline, limits)
            if item is not None:
                self._cache[scope] = _parse(item, limits, self.clock())

    def _push(self, scope: str, limits: Sequence[Limit], pause: float, deadline: Deadline) -> None:
        for _ in range(MAX_CONFLICTS):
            now = self.clock()
            until = now + pause
            cached = self._cache.get(scope) or _Scope()
            update = _Update()
            for limit in limits:
                state = cached.states.get(limit.name, BucketState())
                tat = throttle_state(limit, state, until, now, cut_rate=False).tat
                if tat > state.tat:
                    attribute = update.name(f"{limit.name}_tat")
                    target = update.value(tat)
                    update.sets.append(f"{attribute} = {target}")
                    update.conditions.append(f"attribute_not_exists({attribute}) OR {attribute} < {target}")
            if until > cached.paused_until:
                paused, target = update.name("paused_until"), update.value(until)
                update.sets.append(f"{paused} = {target}")
                update.conditions.append(f"attribute_not_exists({paused}) OR {paused} < {target}")
            if not update.sets:
                return
            item = self._write(update, scope, deadline, limits)
            if item is not None:
                self._cache[scope] = _parse(item, limits, self.clock())
                return

    def hold(
        self,
        scope: str,
        key: str,
        amounts: Mapping[str, float],
        limits: Mapping[str, int],
        *,
        seconds: float,
        deadline: Deadline,
    ) -> float:
        """A hold is the attributes `ipx_<key>` (the second it expires) and `ip_<key>_<limit name>`, written
        under a version number (`ipv`): holds are rare (CloudFront calls), so a plain optimistic write;
        expired holds are removed by the write that finds them. Releases do not move the version (a hold
        computed without seeing one over-counts, never under-counts), so a refusal read from the cache is
        checked against the item first (one write that changes nothing)."""
        names = list(limits)
        checked_key(key)
        refreshed = False
        for _ in range(MAX_CONFLICTS):
            now = self.clock()
            version, holds = self._holds.get(scope, (0, {}))
            others = [hold for other, hold in holds.items() if other != key]
            wait = release_wait(others, amounts, limits, now)
            if wait is not None:
                if refreshed:
                    return wait
                self._refresh(scope, deadline, names)
                refreshed = True
                continue
            update = _Update()
            _set_hold(update, key, amounts, math.ceil(now + seconds))
            expired = [other for other, (until, _held) in holds.items() if until <= now and other != key]
            update.removes += [update.name(a) for other in expired for a in _hold_attributes(other, names)]
            counter = update.name("ipv")
            update.sets.append(f"{counter} = {update.value(version + 1)}")
            update.sets.append(f"{update.name('expiration')} = {update.value(int(now) + ITEM_KEPT_SECONDS)}")
            update.conditions.append(f"attribute_not_exists({counter}) OR {counter} = {update.value(version)}")
            item = self._write(update, scope, deadline, [], holds_of=names)
            if item is not None:
                self._holds[scope] = _parse_holds(item, names, self.clock())
                return 0.0
        raise MeterUnavailableError(f"rate meter {scope!r}: {MAX_CONFLICTS} conflicting writes in a row")

    def release(
        self, scope: str, key: str, names: Sequence[str], deadline: Deadline, *, renamed: str | None = None
    ) -> None:
        """One write: the hold's attributes removed (with `renamed`, set again under the new key, if the hold
        was still there). Whoever learns of the job's end releases it, whether or not it made the hold."""
        update = _Update()
        update.removes += [update.name(attribute) for attribute in _hold_attributes(checked_key(key), names)]
        update.sets.append(f"{update.name('expiration')} = {update.value(int(self.clock()) + ITEM_KEPT_SECONDS)}")
        if renamed is not None:
            held = self._holds.get(scope, (0, {}))[1].get(key)
            if held is None:
                return  # not held (the meter failed at the call, or the hold already expired): nothing to rename
            until, amounts = held
            _set_hold(update, checked_key(renamed), amounts, until)
            update.conditions.append(f"attribute_exists({update.name(f'ipx_{key}')})")
        item = self._write(update, scope, deadline, [], holds_of=names)
        if item is not None:
            self._holds[scope] = _parse_holds(item, names, self.clock())

    def holders(self, scope: str) -> tuple[str, ...]:
        now = self.clock()
        holds = self._holds.get(scope, (0, {}))[1]
        return tuple(key for _until, key in sorted((until, key) for key, (until, _) in holds.items() if until > now))

    def _refresh(self, scope: str, deadline: Deadline, names: Sequence[str]) -> None:
        """Read the in-progress item through a write that changes nothing (the role may only update meter
        items)."""
        update = _Update()
        counter = update.name("ipv")
        update.sets.append(f"{counter} = if_not_exists({counter}, {update.value(0)})")
        item = self._write(update, scope, deadline, [], holds_of=names)
        if item is not None:
            self._holds[scope] = _parse_holds(item, names, self.clock())

    def _write(
        self,
        update: _Update,
        scope: str,
        deadline: Deadline,
        limits: Sequence[Limit],
        *,
        holds_of: Sequence[str] = (),
    ) -> Mapping[str, Any] | None:
        """The item after the write, or None when its condition failed (the cache then holds the item as it
        was, returned with the failure)."""
        if self.clock() < self._failed_until:
            raise MeterUnavailableError(
                f"rate meter {scope!r}: the table failed less than {RETRY_AFTER_FAILURE_SECONDS:g} s ago"
            )
        try:
            with bounded_call(deadline, METER_CALL_SECONDS, what="rate meter"):
                self.writes += 1
                started = self.clock()
                try:
                    answer = self._client.update_item(**update.request(self._table, scope))
                finally:
                    self._write_seconds.append(self.clock() - started)
        except OutOfTimeError:
            if deadline.expired():
                raise
            # The meter's own cap ran out, not the caller's time: the call goes on at the static share.
            self._failed_until = self.clock() + RETRY_AFTER_FAILURE_SECONDS
            raise MeterUnavailableError(f"rate meter {scope!r}: no answer within {METER_CALL_SECONDS:g} s") from None
        except Exception as exc:
            response = getattr(exc, "response", None) or {}
            if response.get("Error", {}).get("Code") == _CONFLICT:
                self.conflicts += 1
                if holds_of:
                    self._holds[scope] = _parse_holds(response.get("Item"), holds_of, self.clock())
                else:
                    self._cache[scope] = _parse(response.get("Item"), limits, self.clock())
                return None
            self._failed_until = self.clock() + RETRY_AFTER_FAILURE_SECONDS
            raise MeterUnavailableError(f"rate meter {scope!r}: {describe_error(exc)}") from exc
        item: Mapping[str, Any] = answer.get("Attributes", {})
        return item
