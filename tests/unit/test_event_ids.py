"""Bounds on what becomes a change id or a log field: S3 bucket names by S3's naming rules,
SNS MessageIds, EventBridge ids, S3 identities (sequencer, version id, ETag) and publisher ids are length-
and character-checked at decode, failing their own record only, on the fast path and the validating one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability import tally

from cdnpurge.core.events import decode_event
from cdnpurge.core.events.reading import MAX_ENVELOPE_ID_CHARS, S3_BUCKET
from cdnpurge_local.event_builders import (
    eventbridge_published,
    eventbridge_s3,
    s3_notification,
    s3_record,
    sns_envelope,
    sqs_event,
)

GOOD = s3_notification(s3_record("example-site-content", "docs/a.html"))


def decoded_both_ways(body: Any) -> tuple[list[str], list[str]]:
    """Change ids and failed record ids for `body` beside a good record, on both decode paths (which agree)."""
    event = sqs_event(body, GOOD, ids=["bad", "good"])
    fast, slow = decode_event(event), decode_event(event, fast_path=False)
    assert fast.changes == slow.changes and fast.errors == slow.errors
    assert [change.source_id for change in fast.changes if change.source_id == "good"] == ["good"]
    return [change.id for change in fast.changes], [error.source_id for error in fast.errors]


@pytest.mark.parametrize(
    "bucket",
    ["a/b", "site@evil", "ab", "with space", "bücket", "-leading", "trailing.", "two..dots", "x" * 256, "tab\tbucket"],
)
@pytest.mark.parametrize("shape", ["notification", "eventbridge"])
def test_a_bucket_that_is_not_an_s3_bucket_name_fails_its_record_only(bucket: str, shape: str) -> None:
    body = s3_notification(s3_record(bucket, "a.html")) if shape == "notification" else eventbridge_s3(bucket, "a.html")
    _, failed = decoded_both_ways(body)
    assert failed == ["bad"]


@pytest.mark.parametrize("bucket", ["example-site-content", "my.bucket.name", "Legacy_Bucket_Name", "abc"])
def test_real_bucket_names_including_legacy_ones_are_accepted(bucket: str) -> None:
    ids, failed = decoded_both_ways(s3_notification(s3_record(bucket, "a.html")))
    assert failed == [] and any(change_id.startswith(f"s3:{bucket}/a.html@") for change_id in ids)


@pytest.mark.parametrize(
    "identifier",
    ["x" * (MAX_ENVELOPE_ID_CHARS + 1), "with space", "tab\there", "bidi\u202eevil", "ünïcode", "line\nbreak"],
)
@pytest.mark.parametrize("envelope", ["sns", "eventbridge-published", "eventbridge-s3"])
def test_envelope_ids_are_bounded_printable_ascii(identifier: str, envelope: str) -> None:
    if envelope == "sns":
        body = sns_envelope({"paths": ["/a"]}, message_id=identifier)
    elif envelope == "eventbridge-published":
        body = eventbridge_published({"paths": ["/a"]}, event_id=identifier)
    else:
        body = eventbridge_s3("example-site-content", "a.html", event_id=identifier)
    _, failed = decoded_both_ways(body)
    assert failed == ["bad"]


@pytest.mark.parametrize("sequencer", ["A" * 1025, "00 11", "0\u202e1", "é1"])
def test_s3_identities_that_become_change_ids_are_bounded(sequencer: str) -> None:
    _, failed = decoded_both_ways(s3_notification(s3_record("example-site-content", "a.html", sequencer=sequencer)))
    assert failed == ["bad"]


@pytest.mark.parametrize("own_id", ["release\u202e42", "zero\u200bwidth", "x" * 513])
def test_publisher_ids_that_would_disguise_themselves_in_logs_are_refused(own_id: str) -> None:
    _, failed = decoded_both_ways(sns_envelope({"id": own_id, "paths": ["/a"]}))
    assert failed == ["bad"]


@given(identifier=st.text(max_size=200), bucket=st.text(max_size=80))
def test_whatever_the_ids_decoded_ids_are_printable_and_bounded(identifier: str, bucket: str) -> None:
    tally.hostile("bounds")
    # Given: arbitrary text as an EventBridge id and as a bucket name
    body = eventbridge_s3(bucket or "b", "a.html", event_id=identifier, sequencer=identifier or "1")
    # When
    ids, failed = decoded_both_ways(body)
    # Then: accepted only when both are what S3 and EventBridge could have sent; the id then reads plainly
    accepted = "bad" not in failed
    assert accepted is bool(
        S3_BUCKET.fullmatch(bucket or "b")
        and ".." not in bucket
        and identifier
        and len(identifier) <= MAX_ENVELOPE_ID_CHARS
        and identifier.isascii()
        and identifier.isprintable()
        and " " not in identifier
    )
    assert all(change_id.isascii() and change_id.isprintable() for change_id in ids)
