"""The runtime's AWS clients come from one boto3 session while the AWS_* environment stays as it was."""

from __future__ import annotations

import pytest

from cdnpurge.runtime.bounded import aws
from cdnpurge.runtime.bounded.aws import aws_client


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_clients_of_one_environment_share_one_session() -> None:
    # Given: a first client made, as a cold start makes DynamoDB's
    aws_client("dynamodb", endpoint_url="http://127.0.0.1:9")
    first = aws._session()
    # When: another service's client is made
    aws_client("sqs", endpoint_url="http://127.0.0.1:9")
    # Then: from the same session (its handlers, endpoint resolver and loader caches made once)
    assert aws._session() is first


def test_a_changed_aws_environment_gets_a_new_session_with_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: a client made under the first credentials
    before = aws_client("dynamodb", endpoint_url="http://127.0.0.1:9")
    # When: the AWS_* environment changes (a session reads credentials once)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second-key")
    after = aws_client("dynamodb", endpoint_url="http://127.0.0.1:9")
    # Then: the new client signs with the new credentials, the one made before with its own
    assert after._request_signer._credentials.access_key == "second-key"
    assert before._request_signer._credentials.access_key == "first-key"
