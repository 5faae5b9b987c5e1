"""The decode stage: every trigger shape becomes the same `Change`, and a bad record fails only itself."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdnpurge.core.events import MAX_BODY_BYTES, MAX_TARGETS, Decoded, decode_event
from cdnpurge.core.events.fastpath import parsed_body, plain_s3_change, typed_s3_change
from cdnpurge.core.models import Action, Change, DecodeFailure
from cdnpurge_local import event_builders as builders
from cdnpurge_local.event_builders import sqs_event

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
BUCKET = "example-site-content"


# --- builders: the smallest real shapes, so each test states only what it is about ------------------


SEQUENCER = "0055AED6DCD90281E5"
EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"
SNS_MESSAGE_ID = "95df01b4-ee98-5cb9-9903-4c221d41eb5e"


def s3_record(key: str = "index.html", **fields: Any) -> dict[str, Any]:
    """The shared builder with this module's bucket and fixed identifiers, so expected ids can be spelled out.
    No eTag unless given: the identity tests choose which of sequencer, version, eTag and time are present."""
    return builders.s3_record(BUCKET, key, **{"sequencer": SEQUENCER, "etag": None, "size": 1024, **fields})


def s3_notification(*records: dict[str, Any]) -> dict[str, Any]:
    return builders.s3_notification(*(records or [s3_record()]))


def eventbridge_s3(key: str = "index.html", **fields: Any) -> dict[str, Any]:
    return builders.eventbridge_s3(BUCKET, key, **{"sequencer": SEQUENCER, "event_id": EVENT_ID, **fields})


def sns_envelope(message: Any, message_id: str = SNS_MESSAGE_ID) -> dict[str, Any]:
    return builders.sns_envelope(message, message_id=message_id)


def only_error(decoded: Decoded) -> DecodeFailure:
    assert decoded.changes == ()
    assert len(decoded.errors) == 1, decoded.errors
    return decoded.errors[0]


def only_change(decoded: Decoded) -> Change:
    assert decoded.errors == (), decoded.errors
    assert len(decoded.changes) == 1, decoded.changes
    return decoded.changes[0]


# --- every sample file --------------------------------------------------------------------------------


def s3_change(
    key: str, sequencer: str, source_id: str | None, event_time: str, action: Action = Action.CREATED
) -> Change:
    change_id = f"s3:{BUCKET}/{key}@{sequencer}"
    return Change(
        id=change_id,
        action=action,
        source_id=source_id or change_id,
        bucket=BUCKET,
        key=key,
        event_time=event_time,
    )


MIXED = "11111111-2222-4333-8444-5555555555"
SAMPLES: dict[str, tuple[tuple[Change, ...], tuple[str, ...], tuple[str, ...]]] = {
    # file: (changes, error source ids, ignored source ids)
    "s3-put.json": (
        (s3_change("articles/2026/cdn-purge.html", "0067A1B2C3D4E5F601", None, "2026-11-23T12:00:00.123Z"),),
        (),
        (),
    ),
    "s3-delete.json": (
        (
            s3_change(
                "articles/2025/old-news.html",
                "0067A1B2C3D4E5F702",
                None,
                "2026-11-23T12:01:30.456Z",
                Action.REMOVED,
            ),
        ),
        (),
        (),
    ),
    "s3-test-event.json": ((), (), ("event",)),
    "sqs-s3-put.json": (
        (
            s3_change(
                "docs/annual report+2026.pdf",
                "0067A1B2C3D4E5F803",
                "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "2026-11-23T12:02:10.789Z",
            ),
        ),
        (),
        (),
    ),
    "sqs-sns-s3-put.json": (
        (
            s3_change(
                "images/café/hero banner.jpg",
                "0067A1B2C3D4E5F904",
                "b7e4a2c1-9d3f-4e8a-a6b5-1c2d3e4f5a6b",
                "2026-11-23T12:03:00.000Z",
            ),
        ),
        (),
        (),
    ),
    "eventbridge-s3-object-created.json": (
        (s3_change("products/widget-42.html", "0067A1B2C3D4E5FA05", None, "2026-11-23T12:04:00Z"),),
        (),
        (),
    ),
    "eventbridge-s3-object-deleted.json": (
        (s3_change("products/widget-41.html", "0067A1B2C3D4E5FB06", None, "2026-11-23T12:05:00Z", Action.REMOVED),),
        (),
        (),
    ),
    "sqs-eventbridge-s3-object-created.json": (
        (
            s3_change(
                "index.html",
                "0067A1B2C3D4E5FC07",
                "8a39d5ec-3a82-4ffb-9c2b-8c1506983f98",
                "2026-11-23T12:06:00Z",
            ),
        ),
        (),
        (),
    ),
    "sqs-eventbridge-s3-object-deleted.json": (
        (
            s3_change(
                "products/widget-41.html",
                "0067A1B2C3D4E5FB06",
                "3f1c2a9e-7d41-4b8e-a0f5-2c6d9e8b7a10",
                "2026-11-23T12:05:00Z",
                Action.REMOVED,
            ),
        ),
        (),
        (),
    ),
    "sns-content-published.json": (
        (
            Change(
                id="sns:95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                action=Action.PUBLISHED,
                source_id="sns:95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                event_time="2026-11-23T12:07:00.000Z",
                keys=("article-cdn-purge",),
                paths=("/articles/cdn-purge", "/articles/cdn-purge.html"),
                soft=True,
            ),
        ),
        (),
        (),
    ),
    "sqs-sns-content-published.json": (
        (
            Change(
                id="pub:cms-publish-2026-11-23-0042",
                action=Action.PUBLISHED,
                source_id="c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f",
                event_time="2026-11-23T12:08:00.000Z",
                urls=("https://www.example.com/", "https://www.example.com/news/"),
            ),
        ),
        (),
        (),
    ),
    "eventbridge-content-published.json": (
        (
            Change(
                id="events:a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
                action=Action.PUBLISHED,
                source_id="events:a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
                event_time="2026-11-23T12:09:00Z",
                keys=("section-news",),
                paths=("/news/",),
            ),
        ),
        (),
        (),
    ),
    "sqs-eventbridge-content-published.json": (
        (
            Change(
                id="pub:cms-publish-2026-11-23-0043",
                action=Action.PUBLISHED,
                source_id="d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f70",
                event_time="2026-11-23T12:10:00Z",
                hosts=("static.example.com",),
                soft=False,
            ),
        ),
        (),
        (),
    ),
    "sqs-mixed-batch.json": (
        (
            s3_change("css/site.css", "0067A1B2C3D4E5FD08", f"{MIXED}01", "2026-11-23T12:11:00.000Z"),
            s3_change("css/legacy.css", "0067A1B2C3D4E5FE09", f"{MIXED}04", "2026-11-23T12:11:05Z", Action.REMOVED),
            Change(
                id=f"sqs:{MIXED}05",
                action=Action.PUBLISHED,
                source_id=f"{MIXED}05",
                event_time="2026-11-23T12:11:00.400Z",
                paths=("/css/",),
                soft=True,
            ),
        ),
        (f"{MIXED}02",),
        (f"{MIXED}03",),
    ),
}


def test_every_sample_file_has_an_expectation() -> None:
    # Given the sample directory
    files = {path.name for path in EVENTS_DIR.glob("*.json")}

    # When / Then: no sample is left untested, no expectation names a missing sample
    assert files == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_decodes_to_expected_changes(name: str) -> None:
    # Given a sample event with real AWS field names
    event = json.loads((EVENTS_DIR / name).read_text())
    changes, error_ids, ignored_ids = SAMPLES[name]

    # When
    decoded = decode_event(event)

    # Then
    assert decoded.changes == changes
    assert tuple(error.source_id for error in decoded.errors) == error_ids
    assert tuple(entry.split(": ", 1)[0] for entry in decoded.ignored) == ignored_ids


def test_sqs_sample_md5_matches_body() -> None:
    # Given every SQS sample
    for path in EVENTS_DIR.glob("sqs-*.json"):
        # When / Then: md5OfBody is what SQS would compute, so the samples are byte-faithful
        for record in json.loads(path.read_text())["Records"]:
            assert hashlib.md5(record["body"].encode()).hexdigest() == record["md5OfBody"], path.name  # noqa: S324


# --- key decoding -------------------------------------------------------------------------------------

KEY_CASES = [
    ("annual+report.pdf", "annual report.pdf"),
    ("a%2Bb.txt", "a+b.txt"),
    ("a%20b.txt", "a b.txt"),
    ("caf%C3%A9.html", "café.html"),
    ("100%25.html", "100%.html"),
    ("100%2525.html", "100%25.html"),  # decoded exactly once
    ("docs/annual+report%2B2026.pdf", "docs/annual report+2026.pdf"),
    ("a%2Fb/c%3Ad.txt", "a/b/c:d.txt"),
]


@pytest.mark.parametrize(("raw", "expected"), KEY_CASES)
def test_s3_notification_key_is_url_decoded_once(raw: str, expected: str) -> None:
    # Given an SQS message holding an S3 notification with an encoded key
    event = sqs_event(s3_notification(s3_record(raw)))

    # When
    change = only_change(decode_event(event))

    # Then
    assert change.key == expected
    assert change.id == f"s3:{BUCKET}/{expected}@0055AED6DCD90281E5"


@pytest.mark.parametrize(("raw", "expected"), KEY_CASES)
def test_eventbridge_key_is_url_decoded_once(raw: str, expected: str) -> None:
    # Given an EventBridge S3 event: keys are form-encoded as in notifications (see the cdnpurge.core.events docstring)
    event = sqs_event(eventbridge_s3(raw))

    # When
    change = only_change(decode_event(event))

    # Then
    assert change.key == expected


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=200))
def test_any_key_survives_encode_then_decode(key: str) -> None:
    # Given any printable key, encoded the way S3 encodes it (form encoding)
    encoded = quote_plus(key, safe="/")

    # When it arrives through a notification and through EventBridge
    via_notification = only_change(decode_event(sqs_event(s3_notification(s3_record(encoded)))))
    via_eventbridge = only_change(decode_event(sqs_event(eventbridge_s3(encoded))))

    # Then both give back exactly the original key
    assert via_notification.key == key
    assert via_eventbridge.key == key


# --- errors: one bad record fails only itself, and says precisely why ----------------------------------


def test_one_bad_record_does_not_sink_the_others() -> None:
    # Given a batch whose middle message is not JSON
    event = sqs_event(
        s3_notification(s3_record("a.html")),
        "{not json",
        s3_notification(s3_record("b.html")),
        ids=["good-1", "bad", "good-2"],
    )

    # When
    decoded = decode_event(event)

    # Then the good ones decode and only the bad one is an error
    assert [(change.key, change.source_id) for change in decoded.changes] == [
        ("a.html", "good-1"),
        ("b.html", "good-2"),
    ]
    assert [error.source_id for error in decoded.errors] == ["bad"]


def test_one_bad_s3_record_keeps_the_other_records_of_the_notification() -> None:
    # Given one notification with three records, the second missing its key
    broken = s3_record("b.html")
    del broken["s3"]["object"]["key"]
    event = sqs_event(s3_notification(s3_record("a.html"), broken, s3_record("c.html")), ids=["m"])

    # When
    decoded = decode_event(event)

    # Then each record is its own unit; the message as a whole still fails (and is retried)
    assert [change.key for change in decoded.changes] == ["a.html", "c.html"]
    assert decoded.errors == (DecodeFailure("m", "record m: S3 record [1] missing s3.object.key"),)


def _record_without_key() -> dict[str, Any]:
    record = s3_record()
    del record["s3"]["object"]["key"]
    return record


def _publish(**fields: Any) -> dict[str, Any]:
    return sns_envelope(fields)


ERROR_CASES: list[tuple[str, Any, str]] = [
    ("empty body", "", "body is not JSON: Expecting value at line 1 column 1"),
    ("truncated JSON", '{"Records": [', "body is not JSON: Expecting value at line 1 column 14"),
    ("unknown object", {"foo": 1}, "unknown envelope: JSON object with keys ['foo']"),
    ("JSON array", [1, 2], "unknown envelope: JSON array, expected an object"),
    ("JSON string", '"hello"', "unknown envelope: JSON string, expected an object"),
    ("S3 record without key", s3_notification(_record_without_key()), "S3 record missing s3.object.key"),
    (
        "S3 object not an object",
        s3_notification({**s3_record(), "s3": {"bucket": {"name": BUCKET}, "object": "x"}}),
        "S3 record field s3.object must be an object, got string",
    ),
    ("empty key", s3_notification(s3_record("")), "S3 record field s3.object.key must be a non-empty string"),
    ("NUL in key", s3_notification(s3_record("a%00b")), "contains control character U+0000"),
    ("newline in key", s3_notification(s3_record("a%0Ab")), "contains control character U+000A"),
    ("DEL in key", s3_notification(s3_record("a%7Fb")), "contains control character U+007F"),
    ("invalid UTF-8 key", s3_notification(s3_record("a%FFb")), "does not percent-decode to UTF-8"),
    ("key too long", s3_notification(s3_record("k" * 1025)), "1025 bytes after URL-decoding, over S3's 1024"),
    (
        "unknown event name",
        s3_notification(s3_record(event_name="ObjectMangled:Put")),
        "unsupported eventName",
    ),
    (
        "no identity",
        s3_notification(s3_record(sequencer=None, event_time=None)),
        "has no s3.object.sequencer, s3.object.versionId, s3.object.eTag or eventTime",
    ),
    ("Records empty", {"Records": []}, "S3 notification field Records must be a non-empty array, got array"),
    (
        "EventBridge S3 without key",
        {**eventbridge_s3(), "detail": {"bucket": {"name": BUCKET}, "object": {}}},
        "EventBridge S3 event missing detail.object.key",
    ),
    (
        "EventBridge unknown source",
        {**eventbridge_s3(), "source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"},
        "unsupported EventBridge event: source 'aws.ec2'",
    ),
    (
        "EventBridge detail not an object",
        {**eventbridge_s3(), "detail": "x"},
        "EventBridge event field detail must be an object, got string",
    ),
    ("SNS Message not JSON", sns_envelope("oops"), "SNS Message is not JSON: Expecting value"),
    ("SNS unknown Type", {**sns_envelope({}), "Type": "Weird"}, "SNS message has Type 'Weird'"),
    (
        "publish without targets",
        _publish(keys=[], paths=[]),
        "names no targets: one of keys, paths, urls, hosts",
    ),
    ("publish paths not a list", _publish(paths="/a"), "field paths must be an array of strings, got string"),
    (
        "publish item not a string",
        _publish(paths=["/a", 7]),
        "field paths[1] must be a non-empty string, got number",
    ),
    (
        "publish control char",
        _publish(urls=["https://x/\n"]),
        "field urls[0] 'https://x/\\n' contains control",
    ),
    (
        "publish soft not bool",
        _publish(paths=["/a"], soft="yes"),
        "field soft must be true or false, got string",
    ),
    (
        "publish id not a string",
        _publish(paths=["/a"], id=5),
        "field id must be a non-empty string, got number",
    ),
    (
        "publish too many targets",
        _publish(keys=[f"k{index}" for index in range(MAX_TARGETS + 1)]),
        f"field keys has {MAX_TARGETS + 1} entries, over the limit of {MAX_TARGETS}",
    ),
    (
        "EventBridge publish without targets",
        {
            **eventbridge_s3(),
            "source": "com.example.cms",
            "detail-type": "Content Published",
            "detail": {"x": 1},
        },
        "EventBridge Content Published detail names no targets",
    ),
]


@pytest.mark.parametrize(("body", "expected"), [case[1:] for case in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_names_the_problem(body: Any, expected: str) -> None:
    # Given one malformed SQS message
    event = sqs_event(body, ids=["3fa85f64"])

    # When
    error = only_error(decode_event(event))

    # Then it is attributed to that message and says what is wrong
    assert error.source_id == "3fa85f64"
    assert error.message.startswith("record 3fa85f64: ")
    assert expected in error.message


def test_oversized_body_is_rejected_naming_its_size() -> None:
    # Given a body one byte over SQS's maximum message size
    body = json.dumps({"paths": ["/a"], "pad": "x" * MAX_BODY_BYTES})

    # When
    error = only_error(decode_event(sqs_event(body, ids=["big"])))

    # Then
    assert f"body is {len(body)} bytes, over the {MAX_BODY_BYTES}-byte (256 KiB) SQS message limit" in error.message


@pytest.mark.parametrize("event", [None, "x", 42, [1, 2], {"foo": "bar"}])
def test_unknown_top_level_event_is_one_error_for_the_event(event: Any) -> None:
    # Given something that is not a supported Lambda event
    # When
    error = only_error(decode_event(cast(Any, event)))

    # Then the invocation as a whole fails
    assert error.source_id == "event"


def test_sqs_record_without_message_id_fails_the_whole_batch() -> None:
    # Given an SQS record without messageId: its failure cannot be reported per item
    event = sqs_event(s3_notification())
    del event["Records"][0]["messageId"]

    # When
    error = only_error(decode_event(event))

    # Then the error belongs to "event", which makes the handler fail the batch rather than ack it
    assert error == DecodeFailure("event", "event: SQS record [0] missing messageId")


def test_direct_eventbridge_error_uses_the_event_id() -> None:
    # Given a direct EventBridge invocation with a broken detail
    event = {**eventbridge_s3(event_id="evt-1"), "detail": {"bucket": {"name": BUCKET}}}

    # When
    error = only_error(decode_event(event))

    # Then
    assert error == DecodeFailure("evt-1", "event 'evt-1': EventBridge S3 event missing detail.object.key")


# --- ignored records ----------------------------------------------------------------------------------

TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2026-11-23T11:58:04.000Z",
    "Bucket": BUCKET,
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR",
}


@pytest.mark.parametrize(
    ("event", "source_id"),
    [
        (TEST_EVENT, "event"),
        (sqs_event(TEST_EVENT, ids=["t1"]), "t1"),
        (sqs_event(sns_envelope(TEST_EVENT), ids=["t2"]), "t2"),
    ],
    ids=["direct", "sqs", "sqs-sns"],
)
def test_s3_test_event_is_acknowledged_and_ignored(event: dict[str, Any], source_id: str) -> None:
    # Given an s3:TestEvent, however it arrives
    # When
    decoded = decode_event(event)

    # Then it is neither a change nor an error
    assert decoded.changes == ()
    assert decoded.errors == ()
    assert decoded.ignored == (
        f"{source_id}: s3:TestEvent for bucket {BUCKET!r} (sent when notifications are configured)",
    )


@pytest.mark.parametrize(
    "body",
    [
        s3_notification(s3_record(event_name="ObjectTagging:Put")),
        s3_notification(s3_record(event_name="ObjectRestore:Completed")),
        s3_notification(s3_record(event_name="LifecycleTransition")),
        eventbridge_s3(detail_type="Object Tags Added"),
        {**sns_envelope({}), "Type": "SubscriptionConfirmation"},
    ],
    ids=["tagging", "restore", "transition", "eventbridge-tags", "sns-confirmation"],
)
def test_events_that_do_not_change_content_are_ignored(body: dict[str, Any]) -> None:
    # Given an event that leaves the object's bytes as they were
    # When
    decoded = decode_event(sqs_event(body, ids=["m"]))

    # Then it is acknowledged without a purge
    assert (decoded.changes, decoded.errors) == ((), ())
    assert len(decoded.ignored) == 1
    assert decoded.ignored[0].startswith("m: ")


@pytest.mark.parametrize(
    ("event_name", "action"),
    [
        ("ObjectCreated:Copy", Action.CREATED),
        ("ObjectCreated:CompleteMultipartUpload", Action.CREATED),
        ("ObjectRemoved:DeleteMarkerCreated", Action.REMOVED),
        ("LifecycleExpiration:Delete", Action.REMOVED),
        ("LifecycleExpiration:DeleteMarkerCreated", Action.REMOVED),
        ("s3:ObjectCreated:Put", Action.CREATED),  # tolerated "s3:" prefix (moto, configuration syntax)
    ],
)
def test_s3_event_names_map_to_actions(event_name: str, action: Action) -> None:
    # Given
    event = s3_notification(s3_record(event_name=event_name))

    # When
    change = only_change(decode_event(event))

    # Then
    assert change.action is action


# --- identities ---------------------------------------------------------------------------------------


def test_change_id_is_stable_across_redelivery() -> None:
    # Given the same body delivered twice under different SQS message ids
    body = s3_notification(s3_record("a.html"))

    # When
    first = only_change(decode_event(sqs_event(body, ids=["delivery-1"])))
    second = only_change(decode_event(sqs_event(body, ids=["delivery-2"])))

    # Then the change keeps its identity, while each maps back to its own message
    assert first.id == second.id
    assert (first.source_id, second.source_id) == ("delivery-1", "delivery-2")


def test_new_upload_gets_a_new_id() -> None:
    # Given two uploads of the same key (S3 gives each a new sequencer)
    first = only_change(decode_event(s3_notification(s3_record("a.html", sequencer="0055AED6DCD90281E5"))))
    second = only_change(decode_event(s3_notification(s3_record("a.html", sequencer="0055AED6DCD90281F9"))))

    # When / Then
    assert first.id != second.id


@pytest.mark.parametrize(
    ("record", "suffix"),
    [
        (s3_record(sequencer=None, version_id="v1", etag="e1"), "@version:v1"),
        (s3_record(sequencer=None, etag="e1"), "@etag:e1"),
        (s3_record(sequencer=None, event_time="2026-11-23T10:00:00.000Z"), "@time:2026-11-23T10:00:00.000Z"),
    ],
    ids=["version", "etag", "time"],
)
def test_identity_falls_back_when_sequencer_is_missing(record: dict[str, Any], suffix: str) -> None:
    # Given a record without a sequencer
    # When
    change = only_change(decode_event(s3_notification(record)))

    # Then
    assert change.id == f"s3:{BUCKET}/index.html{suffix}"


def test_same_s3_operation_via_notification_and_eventbridge_has_one_identity() -> None:
    # Given one upload seen through both delivery paths
    via_notification = only_change(decode_event(sqs_event(s3_notification(s3_record("a+b.html")))))
    via_eventbridge = only_change(decode_event(sqs_event(eventbridge_s3("a+b.html"))))

    # When / Then the executor's idempotency sees one change, not two
    assert via_notification.id == via_eventbridge.id == f"s3:{BUCKET}/a b.html@0055AED6DCD90281E5"


def test_notification_with_n_records_gives_n_changes() -> None:
    # Given one notification with three records
    event = s3_notification(*(s3_record(f"p/{index}.html", sequencer=f"00{index}") for index in range(3)))

    # When
    decoded = decode_event(event)

    # Then, invoked directly, each change is its own source
    assert [change.key for change in decoded.changes] == ["p/0.html", "p/1.html", "p/2.html"]
    assert all(change.source_id == change.id for change in decoded.changes)


@pytest.mark.parametrize(
    ("body", "expected_id"),
    [
        (sns_envelope({"paths": ["/a"]}, message_id="sns-1"), "sns:sns-1"),
        (sns_envelope({"paths": ["/a"], "id": "release-7"}, message_id="sns-1"), "pub:release-7"),
        ({"paths": ["/a"]}, "sqs:m"),  # raw message delivery: the SQS message is the only identity
        ({"paths": ["/a"], "id": "release-7"}, "pub:release-7"),
    ],
    ids=["sns", "sns-own-id", "raw", "raw-own-id"],
)
def test_publish_ids(body: dict[str, Any], expected_id: str) -> None:
    # Given a "content published" message
    # When
    change = only_change(decode_event(sqs_event(body, ids=["m"])))

    # Then
    assert change.id == expected_id
    assert change.action is Action.PUBLISHED
    assert change.paths == ("/a",)


def test_bare_publish_invoked_directly_needs_its_own_id() -> None:
    # Given a publish message with no envelope and no id: nothing would make a retry idempotent
    # When
    error = only_error(decode_event({"paths": ["/a"]}))

    # Then
    assert error.source_id == "event"
    assert "needs an id" in error.message


# --- robustness ---------------------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(
    [
        "Records", "eventSource", "EventSource", "Sns", "body", "messageId", "s3", "object", "key",
        "bucket", "name", "eventName", "eventTime", "sequencer", "Type", "Message", "MessageId",
        "detail-type", "detail", "source", "id", "time", "keys", "paths", "urls", "hosts", "soft",
        "Event", "Bucket",
    ]
)  # fmt: skip
INTERESTING = st.sampled_from(
    [
        "aws:sqs", "aws:s3", "aws:sns", "Notification", "SubscriptionConfirmation", "aws.s3",
        "Object Created", "Object Deleted", "Content Published", "ObjectCreated:Put",
        "ObjectRemoved:Delete", "s3:TestEvent", "a+b%2B%C3%A9", "%00", "%FF", "",
    ]
)  # fmt: skip
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | INTERESTING
JSONISH = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(FIELD_NAMES | st.text(max_size=6), children, max_size=5)
        | children.map(json.dumps)  # JSON inside strings, as in SQS bodies and SNS messages
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(JSONISH)
def test_random_events_never_raise(event: Any) -> None:
    # Given anything at all as the Lambda event
    # When
    decoded = decode_event(event)

    # Then it decodes to a result, never an exception
    assert isinstance(decoded, Decoded)


@settings(max_examples=300, deadline=None)
@given(st.lists(JSONISH | st.text(max_size=30), min_size=1, max_size=5))
def test_every_sqs_message_is_accounted_for(bodies: list[Any]) -> None:
    # Given a batch of arbitrary bodies (JSON documents and plain text)
    ids = [f"m{index}" for index in range(len(bodies))]
    event = sqs_event(*(body if isinstance(body, str) else json.dumps(body) for body in bodies), ids=ids)

    # When
    decoded = decode_event(event)

    # Then no message is silently dropped: each has a change, an error, or an ignore reason
    for message_id in ids:
        assert (
            any(change.source_id == message_id for change in decoded.changes)
            or any(error.source_id == message_id for error in decoded.errors)
            or any(entry.startswith(f"{message_id}: ") for entry in decoded.ignored)
        ), (message_id, decoded)


@settings(max_examples=200, deadline=None)
@given(JSONISH)
def test_random_sns_messages_never_raise(message: Any) -> None:
    # Given arbitrary content as an SNS Message (S3 -> SNS -> SQS or a publish)
    event = sqs_event(sns_envelope(message if isinstance(message, str) else json.dumps(message)), ids=["m"])

    # When
    decoded = decode_event(event)

    # Then
    assert isinstance(decoded, Decoded)
    assert all(error.source_id == "m" for error in decoded.errors)


# --- the storm fast path returns exactly what the validating path returns -------------------------------

# Plain ASCII, as the fast path takes it (S3's 1,024-byte key limit included), and anything else
plain = st.one_of(
    st.text(alphabet="abcXYZ019/-_. ", min_size=1, max_size=12), st.sampled_from(["x" * 1024, "y" * 1025])
)
odd = st.one_of(
    st.text(max_size=12),  # +, %, unicode, controls, empty
    st.sampled_from(["a+b.html", "a%2Bb.html", "caf%C3%A9.png", "a/../b", ""]),
    st.none(),
    st.integers(),
    st.just({"nested": 1}),
)
maybe = st.integers(0, 3).flatmap(lambda n: plain if n else odd)  # plain three times in four


@st.composite
def storm_records(draw: st.DrawFn) -> dict[str, Any]:
    """SQS records in the two shapes a storm arrives in, mostly well formed, sometimes not at all."""
    obj = {"key": draw(maybe), "sequencer": draw(maybe), "eTag": draw(maybe), "versionId": draw(maybe)}
    obj = {name: value for name, value in obj.items() if value is not None or draw(st.booleans())}
    if draw(st.booleans()):
        body: Any = {
            "version": "0",
            "id": draw(maybe),
            "detail-type": draw(st.sampled_from(["Object Created", "Object Deleted", "Object Restore Completed", 1])),
            "source": draw(st.sampled_from(["aws.s3", "cms.content"])),
            "time": draw(maybe),
            "detail": {"bucket": {"name": draw(maybe)}, "object": {**obj, "etag": obj.get("eTag")}},
        }
    else:
        record = {
            "eventSource": draw(st.sampled_from(["aws:s3", "aws:sqs"])),
            "eventName": draw(
                st.sampled_from(["ObjectCreated:Put", "s3:ObjectRemoved:Delete", "ObjectTagging:Put", 7])
            ),
            "eventTime": draw(maybe),
            "s3": {"bucket": {"name": draw(maybe)}, "object": obj},
        }
        body = {"Records": draw(st.sampled_from([[record], [record, record], []]))}
    if not draw(st.integers(0, 5)):  # keys of other envelopes too: the validating path's order decides
        body.update(
            draw(
                st.sampled_from(
                    [
                        {"cdnpurge": "repurge"},
                        {"Type": "Notification", "MessageId": "x"},
                        {"Event": "s3:TestEvent"},
                        {"detail-type": "Object Created"},
                    ]
                )
            )
        )
    text = json.dumps(body) if draw(st.integers(0, 9)) else "{broken"
    return {
        "messageId": draw(st.sampled_from(["m-1", "m-2", ""])),
        "body": text,
        "eventSource": "aws:sqs",
        "attributes": {"SentTimestamp": "1795435560329"},
    }


def validated(event: dict[str, Any]) -> Decoded:
    """`decode_event` with no fast path: every body parsed and decoded by the validating path."""
    decoded = decode_event(event, fast_path=False)
    assert decoded.fast_path_records == 0
    return decoded


@settings(max_examples=400, deadline=None)
@given(st.lists(storm_records(), min_size=1, max_size=4))
def test_the_storm_fast_path_decodes_exactly_as_the_validating_path(records: list[dict[str, Any]]) -> None:
    event = {"Records": records}
    assert decode_event(event) == validated(event)


# Each value the fast path must leave to the validating path, in each place it checks, in both shapes
ODD_VALUES = ["a+b.html", "a%2Bb.html", "café.png", "a\x7fb", "a\tb", "", None, 7, {"nested": 1}, "y" * 1025]
CHECKED = [
    (eventbridge_s3, ("id",)),
    (eventbridge_s3, ("time",)),
    (eventbridge_s3, ("detail", "bucket", "name")),
    (eventbridge_s3, ("detail", "object", "key")),
    (eventbridge_s3, ("detail", "object", "sequencer")),
    (s3_notification, ("Records", 0, "eventTime")),
    (s3_notification, ("Records", 0, "s3", "bucket", "name")),
    (s3_notification, ("Records", 0, "s3", "object", "key")),
    (s3_notification, ("Records", 0, "s3", "object", "sequencer")),
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda value: repr(value)[:12])
@pytest.mark.parametrize(
    ("document", "path"), CHECKED, ids=[f"{document.__name__}:{'.'.join(map(str, path))}" for document, path in CHECKED]
)
def test_each_odd_value_decodes_exactly_as_the_validating_path(
    document: Callable[[], dict[str, Any]], path: tuple[str | int, ...], value: Any
) -> None:
    body = document()
    parent: Any = body
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    event = sqs_event(body)
    assert decode_event(event) == validated(event)


@pytest.mark.parametrize("before", ["", " ", "\n", "\ufeff"], ids=repr)
@pytest.mark.parametrize("after", ["", " \n", "x", "{}"], ids=repr)
def test_text_around_a_body_decodes_exactly_as_the_validating_path(before: str, after: str) -> None:
    event = sqs_event(before + json.dumps(eventbridge_s3()) + after)
    assert decode_event(event) == validated(event)


# The typed step of the fast path (`fastpath.typed_s3_change`) decides only what the dictionary step decides the
# same way: a change it returns is the one `plain_s3_change` returns for the same body.
# Where a storm body's plain values sit, and values for them, plain or not: bodies the typed step decodes, and
# bodies one value away from it (each of `plain_s3_change`'s checks), in both shapes.
TYPED_PLACES: dict[str, list[tuple[str | int, ...]]] = {
    "eventbridge": [
        ("id",),
        ("time",),
        ("account",),
        ("source",),
        ("detail-type",),
        ("detail", "bucket", "name"),
        ("detail", "object", "key"),
        ("detail", "object", "sequencer"),
    ],
    "notification": [
        ("Records", 0, "eventSource"),
        ("Records", 0, "eventName"),
        ("Records", 0, "eventTime"),
        ("Records", 0, "s3", "bucket", "name"),
        ("Records", 0, "s3", "object", "key"),
        ("Records", 0, "s3", "object", "sequencer"),
    ],
}
TYPED_VALUES: list[Any] = [
    *ODD_VALUES,
    "a b",
    "x" * 129,
    "Object Deleted",
    "ObjectTagging:Put",
    "s3:ObjectRemoved:Delete",
    "aws.s3",
    "cms",
    "my.bucket",
    "a..b",
    "Legacy_Bucket",
    "123456789012",
    "210987654321",
    "12345",
    [],
    "é",
    "a\u202eb",
]


@st.composite
def typed_bodies(draw: st.DrawFn) -> tuple[str, str | None]:
    """A storm body with a few values replaced (most bodies stay plain), and the stack's account."""
    shape = draw(st.sampled_from(sorted(TYPED_PLACES)))
    body: Any = eventbridge_s3("assets/a.jpg") if shape == "eventbridge" else s3_notification()
    for path in draw(st.lists(st.sampled_from(TYPED_PLACES[shape]), max_size=2, unique=True)):
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.integers(0, 4)):
            parent[path[-1]] = draw(st.sampled_from(TYPED_VALUES))
        else:
            parent.pop(path[-1], None)
    if not draw(st.integers(0, 5)):
        body.update(draw(st.sampled_from([{"Records": []}, {"Type": "x"}, {"Event": "x"}, {"cdnpurge": "repurge"}])))
    return json.dumps(body), draw(st.sampled_from([None, builders.ACCOUNT, "210987654321"]))


@settings(max_examples=500, deadline=None)
@given(typed_bodies())
def test_the_typed_fast_path_returns_what_the_dictionary_fast_path_returns(case: tuple[str, str | None]) -> None:
    body, home_account = case
    typed = typed_s3_change(body, "m", home_account)
    assert typed is None or typed == plain_s3_change(parsed_body(body), "m", home_account)


@pytest.mark.parametrize("document", [eventbridge_s3, s3_notification], ids=["eventbridge", "notification"])
def test_plain_storm_bodies_take_the_typed_fast_path(document: Callable[[], dict[str, Any]]) -> None:
    body = json.dumps(document())
    assert typed_s3_change(body, "m") == plain_s3_change(parsed_body(body), "m") != None  # noqa: E711


# JSON `json.loads` refuses, in a field the typed step skips without building: the typed step refuses it too
# (the validating path then names the problem), as it does keys of other shapes, whatever their value.
SKIPPED_FIELD_VALUES = {
    "control character": '"a\x01b"',
    "invalid escape": '"\\q"',
    "invalid unicode escape": '"\\u12G4"',
    "unbalanced": "[}",
    "bad literal": "tru",
    "trailing comma": "[1,]",
    "leading zero": "01",
    "nested past the parser": "[" * 5000 + "]" * 5000,
}


@pytest.mark.parametrize("value", SKIPPED_FIELD_VALUES.values(), ids=SKIPPED_FIELD_VALUES.keys())
def test_the_typed_fast_path_refuses_malformed_json_in_fields_it_skips(value: str) -> None:
    body = json.dumps(eventbridge_s3())
    malformed = body[:-1] + ',"skipped":' + value + "}"
    with pytest.raises((ValueError, RecursionError)):
        json.loads(malformed)
    assert typed_s3_change(malformed, "m") is None


@pytest.mark.parametrize("key", ["cdnpurge", "Records", "Event", "Type", "MessageId", "cdnpurg\\u0065"])
@pytest.mark.parametrize("value", ["null", '"repurge"', "{}"])
def test_a_key_of_another_shape_leaves_the_body_to_the_dictionary_step(key: str, value: str) -> None:
    body = json.dumps(eventbridge_s3())
    assert typed_s3_change(body[:-1] + f',"{key}":{value}}}', "m") is None


def test_plain_storm_records_take_the_fast_path() -> None:
    # Given: a sample EventBridge upload as the deployed wiring delivers it
    event = json.loads((EVENTS_DIR / "sqs-eventbridge-s3-object-created.json").read_text())
    # When
    decoded = decode_event(event)
    # Then: decoded by the fast path, as the validating path decodes it
    assert decoded.fast_path_records == 1 and decoded == validated(event)
    (change,) = decoded.changes
    assert change.key == "index.html" and change.source_id == "8a39d5ec-3a82-4ffb-9c2b-8c1506983f98"
