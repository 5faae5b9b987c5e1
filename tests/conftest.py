"""Suite-wide fixtures: the fake CDN on loopback, DynamoDB Local, and credential environment for the tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import FASTLY_SERVICE, FASTLY_TOKEN
from reliability.tally import pytest_configure, pytest_terminal_summary

from cdnpurge.core.deadline import Deadline
from cdnpurge.runtime.bounded import bounded_call
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN
from cdnpurge_local.provision import local_client
from cdnpurge_local.servers import DynamoDBLocal

# The reliability suite's end-of-run summary (faults injected, bad inputs, changes lost, duplicate calls).
__all__ = ["pytest_configure", "pytest_terminal_summary"]


@pytest.fixture
def fake_cdn() -> Iterator[FakeCDN]:
    """A fresh fake CDN server with every provider behaviour, on a free loopback port."""
    with FakeCDN([FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE)]) as cdn:
        yield cdn


@pytest.fixture(scope="module")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local (its JVM) per test module that asks for it, stopped after the module."""
    with DynamoDBLocal() as server:
        yield server


@pytest.fixture(scope="module")
def dynamodb(dynamodb_local: DynamoDBLocal) -> Any:
    """A DynamoDB client on the module's DynamoDB Local."""
    return local_client(boto3.session.Session(), "dynamodb", endpoint=dynamodb_local.endpoint, region="us-east-1")


@pytest.fixture
def credentials_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTLY_API_TOKEN", FASTLY_TOKEN)


@pytest.fixture
def within_a_minute() -> Iterator[None]:
    """Calls a test makes on a store directly (the ledger, the trail) run inside one bounded call of a
    minute, as the pipeline's own calls do (the runtime's clients and back-offs refuse to run outside one)."""
    with bounded_call(Deadline.after(60), 60, what="a test's direct store call"):
        yield
