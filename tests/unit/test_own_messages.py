"""The function's own queue messages (`cdnpurge.core.events.own`): one schema, validated and bounded on read.

Properties over generated messages: whatever is written reads back the same; any hostile value in any field
(non-finite, negative or huge numbers, floats and booleans for counts, long texts, many items, deep nesting,
control characters) is refused with a `MalformedError` naming the field and the rule, never another exception
and never quoting the value; a lineage of rescheduled checks always ends; bodies written before the schema
moved from pydantic to msgspec read (and are written) the same; and numbers read from a CDN's answer are
finite and within bounds.
"""

from __future__ import annotations

import ast
import json
import math
import re
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
    control = "holds a control character or a lone surrogate"
    not_bucket = "is not an S3 bucket name"
    hostile_fields = [
        ("key", "k\x00", f"changes[0].key: {control}"),
        ("key", "é" * 600, "changes[0]: key is over S3's 1024-byte key limit"),
        ("bucket", "a/b", f"changes[0].bucket: {not_bucket}"),
        ("bucket", "a..b", f"changes[0].bucket: {not_bucket}"),
        ("action", "published", "changes[0]: action must be created or removed"),
        ("id", "x" * 5000, "changes[0].id: Expected `str` of length <= 4096"),
        # a final newline too (a `$`-anchored pattern would let it through)
        ("key", "k\n", f"changes[0].key: {control}"),
        ("bucket", "bucket-1\n", f"changes[0].bucket: {not_bucket}"),
        ("account", "123456789012\n", "changes[0].account: must be a 12-digit AWS account id"),
        ("id", "i\n", f"changes[0].id: {control}"),
    ]
    for field, value, problem in hostile_fields:
        doc = json.loads(body)
        doc["changes"][0][field] = value
        good = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}
        result = decode_event(sqs_event(json.dumps(doc), json.dumps(good)))
        (refused,) = [e for e in result.errors if "re-purge message" in e.message]
        assert refused.source_id == "m0" and f"re-purge message field {problem}" in refused.message, field
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


# Bodies as the function wrote them before its messages moved from pydantic to msgspec (pydantic's dump,
# U+FFFE escaped): messages in flight when the function is updated must read the same.
WRITTEN_BEFORE: tuple[tuple[type[OwnMessage], str], ...] = (
    (
        VerifyCheck,
        r'{"cdnpurge":"verify","sends":7,"expires_at":1764003600.0,"provider":"fastly","accepted_at":1764000000.0,'
        r'"changes":[{"id":"s3:bucket-1/café \ufffe.html@0A1","action":"created","bucket":"bucket-1",'
        r'"key":"café \ufffe.html","changed_at":1763999996.75,"urls":["https://www.example.com/caf%C3%A9"],'
        r'"fresh":["https://cdn.example.com/x"]},{"id":"pub:x","action":"published","bucket":null,"key":null,'
        r'"changed_at":1764000000.0,"urls":[],"fresh":[]}],"jobs":["I2J0K1"],"ready_at":1764000005.0,"attempt":2,'
        r'"repurges":1}',
    ),
    (
        FlushMessage,
        '{"cdnpurge":"coalesce","sends":0,"expires_at":null,"provider":"fastly","generation":7,"due_at":1800000000.5}',
    ),
    (
        RepurgeMessage,
        '{"cdnpurge":"repurge","sends":0,"expires_at":null,"changes":[{"id":"s3:bucket-1/k@1","action":"removed",'
        '"bucket":"bucket-1","key":"k","event_time":"2025-01-01T00:00:00Z","account":"123456789012"}]}',
    ),
)


@pytest.mark.parametrize(("kind", "body"), WRITTEN_BEFORE, ids=lambda value: getattr(value, "__name__", ""))
def test_a_message_written_before_the_move_to_msgspec_reads_the_same_and_is_written_the_same(
    kind: type[OwnMessage], body: str
) -> None:
    # When a body the earlier schema wrote is read, from its text and as a parsed document
    message = read_own(kind, body, what="message")
    assert read_own(kind, json.loads(body), what="message") == message
    # Then it is written again byte for byte as before (same fields, order and value shapes)
    assert encode_own(message) == body
    # and the decode stage takes it as before
    decoded = decode_event(sqs_event(body))
    assert decoded.errors == ()
    if isinstance(message, VerifyCheck):
        assert decoded.checks == (("m0", message),)
        assert message.changes[0].key == "café \ufffe.html" and message.changes[1].action is Action.PUBLISHED
        assert (message.sends, message.jobs, message.ready_at, message.attempt) == (7, ("I2J0K1",), 1764000005.0, 2)
    elif isinstance(message, FlushMessage):
        assert [change.id for change in decoded.changes] == ["coalesce:fastly#7"]
    else:
        (change,) = decoded.changes
        assert (change.id, change.action, change.account) == ("s3:bucket-1/k@1#repurge", Action.REMOVED, "123456789012")


def _examples() -> dict[type[OwnMessage], OwnMessage]:
    return {
        VerifyCheck: _check(),
        RepurgeMessage: RepurgeMessage(changes=(RepurgedChange("i", Action.CREATED, "bucket-1", "k"),)),
        FlushMessage: FlushMessage(provider="fastly", generation=3, due_at=NOW),
    }


# (kind, path to a number, what a number there is): every number field of every kind.
NUMBERS: tuple[tuple[type[OwnMessage], tuple[Any, ...], str], ...] = (
    (VerifyCheck, ("sends",), "int"),
    (VerifyCheck, ("expires_at",), "float"),
    (VerifyCheck, ("accepted_at",), "float"),
    (VerifyCheck, ("ready_at",), "float"),
    (VerifyCheck, ("attempt",), "int"),
    (VerifyCheck, ("repurges",), "int"),
    (VerifyCheck, ("changes", 0, "changed_at"), "float"),
    (FlushMessage, ("generation",), "int"),
    (FlushMessage, ("due_at",), "float"),
    (RepurgeMessage, ("sends",), "int"),
    (RepurgeMessage, ("expires_at",), "float"),
)


@pytest.mark.parametrize(("kind", "path", "number"), NUMBERS)
@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 1e308, -1e308, 10**400, -1, "1", True, False, 2.0, 0.5, None]
)
def test_a_number_field_refuses_what_is_not_a_finite_number_in_its_range(
    kind: type[OwnMessage], path: tuple[Any, ...], number: str, value: Any
) -> None:
    doc = json.loads(encode_own(_examples()[kind]))
    _set(doc, path, value)
    where = ".".join(str(step) for step in path).replace(".0.", "[0].")
    optional = path[-1] in ("expires_at", "ready_at")
    # Akamai's ready time is bounded by the check's acceptance (`read_check`), not by its type
    allowed = (value is None and optional) or (path == ("ready_at",) and type(value) is float and value in (0.5, 2.0))
    for data in (doc, json.dumps(doc)):  # parsed by the decode stage, or read from a body
        if allowed:
            read_own(kind, data, what="message")
            continue
        with pytest.raises(MalformedError) as refused:
            read_own(kind, data, what="message")
        message = refused.value.message
        if isinstance(data, dict) or not (isinstance(value, float) and not math.isfinite(value)):
            # named by field and rule (in a body, NaN and Infinity are not JSON: refused before any field)
            rule = rf"(Expected `{number}( \| null)?`|Number out of range)"
            assert re.match(rf"message field {re.escape(where)}: {rule}", message), message
        else:
            assert message.startswith("message is not JSON: "), message
        assert len(message) < 200
        hostile("own_messages")


def test_texts_refuse_control_characters_and_lone_surrogates_by_field_and_rule() -> None:
    doc = json.loads(encode_own(_check()))
    for value in ("a\x00b", "a\x1b[2J", "\x7f", "a\ud800b", "\udfff", "k\n"):
        for path in (("changes", 0, "id"), ("changes", 0, "key"), ("changes", 0, "urls", 0), ("jobs",)):
            hostile_doc = json.loads(json.dumps(doc))
            _set(hostile_doc, path, [value] if path == ("jobs",) else value)
            with pytest.raises(MalformedError, match=r"field changes\[0\]\.|field jobs\[0\]") as refused:
                read_check(hostile_doc)
            assert refused.value.message.endswith(": holds a control character or a lone surrogate")
            hostile("own_messages")
    for provider in ("fastly\n", "fast ly", "x" * 129):
        with pytest.raises(MalformedError, match=r"field provider: (must be letters|Expected `str` of length <= 128)"):
            read_check(doc | {"provider": provider})
        with pytest.raises(MalformedError, match=r"field provider: (must be letters|Expected `str` of length <= 128)"):
            read_own(FlushMessage, {"provider": provider, "generation": 1, "due_at": NOW}, what="flush")
        hostile("own_messages", 2)
    # In a body: a lone surrogate written raw or escaped is no JSON text of a message
    body = encode_own(_check())
    for text in (body.replace('"k"', '"k\ud800"'), body.replace('"k"', '"k\\ud800"'), body.replace('"k"', '"\\udc00"')):
        with pytest.raises(MalformedError, match=r"lone surrogate|is not JSON"):
            read_check(text)
        hostile("own_messages")


def test_a_refusal_never_quotes_the_value_and_stays_bounded() -> None:
    secret = "sk_live/51HcredentialLooking"
    doc = json.loads(encode_own(_check()))
    for path in (("changes", 0, "action"), ("cdnpurge",), ("provider",), ("attempt",), ("changes", 0, "bucket")):
        hostile_doc = json.loads(json.dumps(doc))
        _set(hostile_doc, path, secret + "\x1b" * (path == ("changes", 0, "bucket")))
        for data in (hostile_doc, json.dumps(hostile_doc)):
            with pytest.raises(MalformedError) as refused:
                read_check(data)
            assert secret not in refused.value.message and "field " in refused.value.message
            hostile("own_messages")
    for not_an_object in ("[]", '"verify"', "1"):
        with pytest.raises(MalformedError, match=r"^verification message is refused: Expected `object`, got"):
            read_check(not_an_object)
    # An unknown field's name is input: shown escaped and cut, never raw
    doc["changes"][0]["\x1b]0;" + "x" * 5000] = 1
    with pytest.raises(MalformedError, match="unknown field") as refused:
        read_check(doc)
    assert "\x1b" not in refused.value.message and len(refused.value.message) < 400
    hostile("own_messages")


@pytest.mark.parametrize("depth", [5000, 100_000])
def test_a_body_nested_thousands_deep_is_refused_at_the_field_it_fills_without_recursion(depth: int) -> None:
    """msgspec's decoder goes only as deep as the schema: the first bracket where a field wants a string,
    a number or a change is refused, however deep the rest."""
    nested = "[" * depth + "]" * depth
    bodies: dict[type[OwnMessage], list[tuple[str, str]]] = {
        VerifyCheck: [("provider", "provider"), ("changes", "changes[0]"), ("jobs", "jobs[0]"), ("sends", "sends")],
        RepurgeMessage: [("changes", "changes[0]"), ("expires_at", "expires_at")],
        FlushMessage: [("generation", "generation"), ("due_at", "due_at")],
    }
    for kind, fields in bodies.items():
        marker = encode_own(_examples()[kind]).split(",", 1)[0]
        for name, where in fields:
            with pytest.raises(MalformedError, match=rf"^message field {re.escape(where)}: Expected"):
                read_own(kind, f'{marker},"{name}":{nested}}}', what="message")
            hostile("own_messages")


def test_a_value_json_cannot_write_is_refused_where_it_is_written() -> None:
    """JSON writes a number that is not finite as null, which an optional time would read as "none": an end
    time of NaN would be a check without an end."""
    for name in ("expires_at", "ready_at"):
        for value in (math.nan, math.inf):
            with pytest.raises(MalformedError, match="does not read back as written"):
                encode_own(_check(**{name: value}))
            hostile("own_messages")
    body = encode_flush("fastly", 1, NOW)
    assert body.startswith('{"cdnpurge":"coalesce",') and body == encode_own(
        FlushMessage(provider="fastly", generation=1, due_at=NOW)
    )
    key = "a\ufffeb\uffff"
    escaped = encode_own(_check(changes=(CheckedChange("i", Action.CREATED, "b", key, NOW, ("https://x/",)),)))
    assert "\\ufffe" in escaped and "\\uffff" in escaped and "\ufffe" not in escaped
    assert read_check(escaped).changes[0].key == key


# Modules of the configuration that import pydantic until the configuration moves to msgspec as well.
CONFIGURATION_ON_PYDANTIC = frozenset(
    {"cdnpurge.core.spec", "cdnpurge.core.credentials", "cdnpurge.core.verify_settings"}
)


def _imports_pydantic(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        if any(name.split(".")[0] == "pydantic" for name in names):
            return True
    return False


def test_the_decoder_of_own_messages_loads_no_pydantic_and_builds_no_schema_at_import() -> None:
    """Structural: no module of the decode stage imports pydantic (what every cold start would pay for one
    model), what `import cdnpurge.core.events` loads imports pydantic only through the configuration's modules
    (none once they move to msgspec), and no decoder is built until a message of its kind is read."""
    import cdnpurge

    root = Path(cdnpurge.__path__[0]).parent
    assert [path.name for path in sorted((root / "cdnpurge/core/events").glob("*.py")) if _imports_pydantic(path)] == []
    script = (
        "import sys, json, cdnpurge.core.events, cdnpurge.core.events.own as own; print(json.dumps({"
        "'decoders': len(own._DECODERS), 'pydantic': 'pydantic' in sys.modules, "
        "'files': [m.__file__ for n, m in sys.modules.items() if n.startswith('cdnpurge.') and m.__file__]}))"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    )
    assert loaded["decoders"] == 0
    importers = {
        ".".join(Path(file).relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for file in loaded["files"]
        if _imports_pydantic(Path(file))
    }
    assert importers <= CONFIGURATION_ON_PYDANTIC
    assert loaded["pydantic"] == bool(importers)
