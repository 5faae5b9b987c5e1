"""The function's own queue messages (`cdnpurge.core.events.own`): one schema, validated and bounded on read.

Properties over generated messages: whatever is written reads back the same; any hostile value in any field
(non-finite, negative or huge numbers, floats and booleans for counts, long texts, many items, deep nesting,
control characters) is refused with a `MalformedError` naming the field, never another exception; a lineage
of rescheduled checks always ends; and numbers read from a CDN's answer are finite and within bounds.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability.tally import hostile

from cdnpurge.core.answers import answer_id, answer_number
from cdnpurge.core.events import decode_event
from cdnpurge.core.events.coalesce import FlushMessage, encode_flush
from cdnpurge.core.events.own import (
    MAX_SENDS,
    ExpiredMessageError,
    OwnMessage,
    ResendRefusedError,
    encode_own,
    read_own,
    refuse_times,
    resend,
)
from cdnpurge.core.events.reading import MalformedError
from cdnpurge.core.events.repurge import RepurgedChange, RepurgeMessage, repurge_messages
from cdnpurge.core.events.verify import CheckedChange, VerifyCheck, decode_check, encode_check, read_check
from cdnpurge.core.models import Action, Change
from cdnpurge.core.nesting import nesting_problem
from cdnpurge_local.event_builders import sqs_event

NOW = 1_764_000_000.0
HOSTILE_VALUES: tuple[Any, ...] = (
    math.nan,
    math.inf,
    -math.inf,
    -1,
    -1e-9,
    1e308,
    10**400,
    2.0,
    True,
    None,
    "1",
    "x" * 20_000,
    [],
    {},
    ["y"] * 5000,
    "\x1b[2J",
)


def _check(**overrides: Any) -> VerifyCheck:
    values: dict[str, Any] = {
        "provider": "fastly",
        "accepted_at": NOW,
        "changes": (
            CheckedChange("s3:b/k@1", Action.CREATED, "bucket-1", "k", NOW - 3, ("https://www.example.com/k",)),
        ),
        "expires_at": NOW + 3600,
    } | overrides
    return VerifyCheck(**values)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every field path of a JSON document (object keys and array indexes), leaves and containers."""
    paths = [prefix] if prefix else []
    if isinstance(doc, dict):
        for name, value in doc.items():
            paths += _paths(value, (*prefix, name))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            paths += _paths(value, (*prefix, index))
    return paths


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
checks = st.builds(
    _check,
    provider=st.from_regex(r"[a-z0-9_.-]{1,20}", fullmatch=True),
    accepted_at=st.floats(NOW - 10_000, NOW),
    jobs=st.lists(st.from_regex(r"[!-~]{1,30}", fullmatch=True), max_size=5).map(tuple),
    attempt=st.integers(0, 50),
    repurges=st.integers(0, 10),
    sends=st.integers(0, MAX_SENDS),
    changes=st.lists(
        st.builds(
            CheckedChange,
            id=texts,
            action=st.sampled_from(Action),
            bucket=st.none() | st.just("bucket-1"),
            key=st.none() | texts,
            changed_at=st.floats(1e9, NOW - 10_000),
            urls=st.lists(texts, max_size=3).map(tuple),
        ),
        min_size=1,
        max_size=4,
    ).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(checks)
def test_every_check_written_reads_back_the_same(check: VerifyCheck) -> None:
    body = encode_check(check)
    assert body.startswith('{"cdnpurge":"verify",')
    assert decode_check(body, now=NOW) == check
    # and the decode stage hands the same check over, once, without a change to purge
    decoded = decode_event(sqs_event(body))
    assert decoded.checks == (("m0", check),) and decoded.changes == () and decoded.errors == ()


@settings(max_examples=300, deadline=None)
@given(checks, st.data())
def test_a_hostile_value_anywhere_in_a_check_is_refused_by_name(check: VerifyCheck, data: st.DataObject) -> None:
    # Given a check written by the function, with one field replaced by a hostile value
    doc = json.loads(encode_check(check))
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p != ("cdnpurge",)]))
    value = data.draw(st.sampled_from(HOSTILE_VALUES))
    _set(doc, path, value)
    body = json.dumps(doc)
    # When it is read, from its body and through the decode stage
    try:
        read = read_check(body)
    except MalformedError as exc:
        # Then it is refused, naming a field and never quoting a long value
        assert "verification message" in exc.message and len(exc.message) < 400
        refused = True
    else:
        refused = False  # the value was one the field allows (an empty list of jobs, a null bucket...)
        assert read.changes and all(math.isfinite(c.changed_at) for c in read.changes)
    decoded = decode_event(sqs_event(body))
    assert bool(decoded.errors) == refused and len(decoded.checks) == (not refused)
    hostile("own_messages")


@pytest.mark.parametrize("depth", [5000, 100_000])
def test_deep_nesting_is_refused_before_parsing_without_recursion(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for body in (
        f'{{"cdnpurge":"verify","provider":{nested}}}',
        f'{{"cdnpurge":"repurge","changes":{nested}}}',
    ):
        with pytest.raises(MalformedError):
            read_check(body)
        (failure,) = decode_event(sqs_event(body)).errors
        assert "deeper than 32 levels" in failure.message and "Recursion" not in failure.message
        assert nesting_problem(body) is not None
        hostile("own_messages", 2)


def test_nesting_within_the_parsers_reach_is_refused_by_the_schema() -> None:
    """150 levels parse (the storm fast path does not count brackets); the schema then refuses the field."""
    for body in (
        '{"cdnpurge":"verify","provider":' + "[" * 150 + "]" * 150 + "}",
        '{"cdnpurge":"repurge","changes":' + "[" * 150 + "]" * 150 + "}",
    ):
        (failure,) = decode_event(sqs_event(body)).errors
        assert "message field" in failure.message and "Recursion" not in failure.message
        hostile("own_messages")


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.integers() | texts, lambda inner: st.lists(inner, max_size=3), max_leaves=30))
def test_nesting_within_the_limit_is_never_refused(doc: Any) -> None:
    assert nesting_problem(json.dumps({"cdnpurge": "verify", "x": doc})) is None


def test_times_recorded_in_the_future_and_checks_past_their_end_are_refused() -> None:
    with pytest.raises(MalformedError, match="accepted_at is 86400 s in the future"):
        refuse_times(_check(accepted_at=NOW + 86_400), what="verification message", now=NOW)
    with pytest.raises(ExpiredMessageError, match="expired 1 s ago"):
        refuse_times(_check(expires_at=NOW - 1), what="verification message", now=NOW)
    refuse_times(_check(accepted_at=NOW + 10), what="verification message", now=NOW)  # within the clock skew
    hostile("own_messages", 2)


@settings(max_examples=100, deadline=None)
@given(checks, st.lists(st.integers(1, 900), min_size=1, max_size=20))
def test_a_lineage_of_rescheduled_checks_always_ends(check: VerifyCheck, delays: list[int]) -> None:
    # Given any check, enqueued again and again (each time after one of `delays`), as long as it may be
    now, sends = NOW, 0
    current = check
    while True:
        delay = delays[sends % len(delays)]
        try:
            current = resend(current, now=now, delay_seconds=delay)
        except ResendRefusedError:
            break
        now += delay
        sends += 1
    # Then the lineage ended within the send cap and before its end time
    assert current.sends <= MAX_SENDS
    assert current.expires_at is None or now <= current.expires_at
    hostile("own_messages")


def test_a_repurge_message_round_trips_and_a_hostile_one_fails_alone() -> None:
    change = Change("s3:bucket-1/k@1", Action.CREATED, "m", "bucket-1", "k", "2025-01-01T00:00:00Z")
    ((body, ids),) = repurge_messages([change])
    assert ids == ("s3:bucket-1/k@1",) and body.startswith('{"cdnpurge":"repurge",')
    (decoded,) = decode_event(sqs_event(body)).changes
    assert (decoded.id, decoded.key, decoded.event_time) == ("s3:bucket-1/k@1#repurge", "k", "2025-01-01T00:00:00Z")
    for field, value in [("key", "k\x00"), ("bucket", "a/b"), ("action", "published"), ("id", "x" * 5000)]:
        doc = json.loads(body)
        doc["changes"][0][field] = value
        good = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}
        result = decode_event(sqs_event(json.dumps(doc), json.dumps(good)))
        assert [e.source_id for e in result.errors if "re-purge message" in e.message] == ["m0"], field
        hostile("own_messages")
    assert RepurgeMessage(changes=(RepurgedChange("i", Action.CREATED, "bucket-1", "k"),)).sends == 0


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=80),
        st.sampled_from(["1e999", "-inf", "NaN", " 12 ", "9" * 400, "0x1F"]),
    ),
    st.floats(0, 100),
    st.floats(100, 1e6),
)
def test_a_number_from_an_answer_is_finite_and_within_bounds(value: Any, low: float, high: float) -> None:
    number = answer_number(value, low=low, high=high)
    assert number is None or (math.isfinite(number) and low <= number <= high)
    hostile("answers")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=300), st.floats()))
def test_an_id_from_an_answer_is_short_printable_ascii(value: Any) -> None:
    job = answer_id(value)
    assert job is None or (0 < len(job) <= 256 and job.isascii() and job.isprintable() and " " not in job)
    hostile("answers")


def test_no_adapter_reads_a_number_from_an_answer_but_through_core_answers() -> None:
    """Structural: `float()` appears nowhere in the adapters or verification, so a new adapter or stage
    reading a number from an answer reaches for `answer_number` (finite, bounded), not a raw conversion."""
    import ast

    import cdnpurge.runtime.providers
    import cdnpurge.runtime.verification

    raw: list[str] = []
    for package in (cdnpurge.runtime.providers, cdnpurge.runtime.verification):
        for path in Path(package.__path__[0]).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float":
                    raw.append(f"{path.name}:{node.lineno}")
    assert raw == []


def _own_kinds() -> set[type[OwnMessage]]:
    import cdnpurge.core.events  # noqa: F401 - every kind's module, so every subclass is defined

    kinds, todo = set(), [OwnMessage]
    while todo:
        for kind in todo.pop().__subclasses__():
            kinds.add(kind)
            todo.append(kind)
    return kinds


def test_no_kind_of_own_message_is_written_unless_its_reader_takes_it_back() -> None:
    """Structural: every kind of own message (one added later included: it must have an example here) is
    validated on write by the schema that reads it, so a value read from a table or an answer (a window's due
    time of 1e125, a generation past 2^53) is refused where it is written, and the caller's fallback runs,
    instead of a message that is dead-lettered on arrival with the purge it carried."""
    examples: dict[type[OwnMessage], OwnMessage] = {
        VerifyCheck: _check(),
        RepurgeMessage: RepurgeMessage(changes=(RepurgedChange("i", Action.CREATED, "bucket-1", "k"),)),
        FlushMessage: FlushMessage(provider="fastly", generation=3, due_at=NOW),
    }
    assert _own_kinds() <= set(examples), "a new kind of own message needs an example in this test"
    tried = 0
    for kind, example in examples.items():
        for name in (field.name for field in msgspec.structs.fields(example) if field.name != "cdnpurge"):
            for value in (*HOSTILE_VALUES, 2**60, 1e125, -1e125):
                hostile_message = msgspec.structs.replace(example, **{name: value})
                try:
                    body = encode_own(hostile_message)
                except Exception:
                    tried += 1
                    continue
                read_own(kind, body, what=f"{kind.__name__} with {name}={value!r:.40}")  # never refused on arrival
                tried += 1
    hostile("own_messages", tried)
