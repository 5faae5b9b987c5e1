"""What SQS refuses, the local stack's moto server refuses (`cdnpurge_local.sqs_contents`), and what the function
writes to its own queue is what SQS accepts.

SQS refuses a body with a character outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF
(`InvalidMessageContents`) and measures its limit in bytes; moto checked neither. An S3 key may hold U+FFFF (its
event carries it percent-encoded), and a verification check or re-purge names the key: written raw, SQS refused
the message, so the check was never scheduled. `encode_own` now escapes those characters as JSON does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from reliability import tally

from cdnpurge.core.events.own import read_own
from cdnpurge.core.events.repurge import repurge_messages
from cdnpurge.core.events.verify import CheckedChange, VerifyCheck, encode_check
from cdnpurge.core.models import Action, Change
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import MotoServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("sqs-contents")]

NOW = 1_764_000_000.0
KEY = "reports/q3\uffff\ufffe.html"  # a key S3 accepts, its event percent-encoded


@pytest.fixture(scope="module")
def queue() -> Iterator[tuple[Any, str]]:
    with MotoServer() as moto:
        sqs = local_client(boto3.session.Session(), "sqs", endpoint=moto.endpoint, region="us-east-1")
        url = sqs.create_queue(QueueName="contents", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
        yield sqs, url


# DEL is allowed (#x20-#xD7FF): in the last body, the U+FFFE after it is what is refused.
@pytest.mark.parametrize("body", ["a\x00b", "a\x1bb", "\ufffe", "x\uffff", "\x0b", "\x7f\ufffe"])
def test_the_local_queue_refuses_what_sqs_documents_it_refuses(queue: tuple[Any, str], body: str) -> None:
    sqs, url = queue
    with pytest.raises(ClientError, match="InvalidMessageContents"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    tally.hostile("own_messages")


def test_the_local_queue_measures_its_limit_in_bytes(queue: tuple[Any, str]) -> None:
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="é" * 512)  # 1,024 bytes: at the limit
    (accepted,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=accepted["ReceiptHandle"])
    with pytest.raises(ClientError, match="shorter than 1024 bytes"):
        sqs.send_message(QueueUrl=url, MessageBody="é" * 513)  # 513 characters, 1,026 bytes
    tally.hostile("own_messages")


def test_own_messages_naming_any_key_s3_accepts_are_accepted_by_sqs_and_read_back_the_same(
    queue: tuple[Any, str],
) -> None:
    sqs, url = queue
    check = VerifyCheck(
        provider="fastly",
        accepted_at=NOW,
        changes=(CheckedChange("s3:b/k@1", Action.CREATED, "bucket-1", KEY, NOW, ("https://www.example.com/k",)),),
        expires_at=NOW + 3600,
    )
    ((repurge, _),) = repurge_messages([Change("s3:bucket-1/k@1", Action.CREATED, "m", "bucket-1", KEY, "t")])
    for body, kind in ((encode_check(check), VerifyCheck), (repurge, None)):
        sqs.send_message(QueueUrl=url, MessageBody=body)  # refused before: U+FFFF and U+FFFE written raw
        (received,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
        assert received["Body"] == body
        if kind is not None:
            assert read_own(kind, received["Body"], what="check") == check
        tally.hostile("own_messages")
