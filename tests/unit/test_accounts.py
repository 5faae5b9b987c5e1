"""Another account's change: its S3 event, forwarded to this stack's bus, keeps the account in the change's
identity (and so in its ledger keys), survives a re-purge, and is shown by the purge trail; this account's
own changes keep the ids S3 gives them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdnpurge.core.events import decode_event, repurge_messages
from cdnpurge.core.models import Change
from cdnpurge.runtime.trail import source_of

HOME, MEMBER = "123456789012", "210987654321"


def eventbridge_s3(account: Any, key: str = "index.html") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": "2026-12-05T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:s3:::member-site"],
        "detail": {"bucket": {"name": "member-site"}, "object": {"key": key, "sequencer": "0062E99A88DC407460"}},
    }


def in_sqs(*docs: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": f"m-{index}", "body": json.dumps(doc)}
            for index, doc in enumerate(docs)
        ]
    }


@pytest.mark.parametrize("fast_path", [True, False])
def test_another_accounts_change_has_its_account_in_its_id_and_this_accounts_does_not(fast_path: bool) -> None:
    # When
    decoded = decode_event(in_sqs(eventbridge_s3(MEMBER), eventbridge_s3(HOME)), fast_path=fast_path, home_account=HOME)
    # Then
    member, home = decoded.changes
    assert (member.id, member.account) == (f"s3:{MEMBER}:member-site/index.html@0062E99A88DC407460", MEMBER)
    assert (home.id, home.account) == ("s3:member-site/index.html@0062E99A88DC407460", None)


def test_without_a_known_home_account_ids_are_as_s3_names_them() -> None:
    [change] = decode_event(in_sqs(eventbridge_s3(MEMBER))).changes
    assert change.id == "s3:member-site/index.html@0062E99A88DC407460" and change.account is None


@pytest.mark.parametrize("account", ["12345", "abcdefghijkl", 123456789012])
def test_an_account_that_is_not_one_fails_its_record(account: Any) -> None:
    for fast_path in (True, False):
        decoded = decode_event(in_sqs(eventbridge_s3(account)), fast_path=fast_path, home_account=HOME)
        [failure] = decoded.errors
        assert not decoded.changes and "account must be a 12-digit AWS account id" in failure.message


def test_a_repurge_keeps_the_account_and_the_trail_shows_it() -> None:
    [change] = decode_event(in_sqs(eventbridge_s3(MEMBER)), home_account=HOME).changes
    [(body, _)] = repurge_messages([change])
    [again] = decode_event(in_sqs(json.loads(body)), home_account=HOME).changes
    assert again.account == MEMBER and again.id == change.id + "#repurge"
    assert source_of(change) == {
        "bucket": "member-site",
        "key": "index.html",
        "sequencer": "0062E99A88DC407460",
        "account": MEMBER,
    }
    assert "account" not in source_of(Change("s3:b/k@1", change.action, "m", "b", "k"))
