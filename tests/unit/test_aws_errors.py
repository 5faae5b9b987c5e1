"""AWS problems named in one line, and the bucket-notification merge that must keep everything else."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError, NoCredentialsError

from cdnpurge.cli.notifications import with_eventbridge
from cdnpurge.runtime.aws_errors import aws_problem


def client_error(code: str, message: str = "", operation: str = "GetParameter") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            client_error("AccessDeniedException", "not authorized"),
            "access denied to GetParameter (AccessDeniedException): not authorized",
        ),
        (client_error("ExpiredTokenException"), "AWS refused the credentials for GetParameter (ExpiredTokenException)"),
        (client_error("ParameterNotFound"), "GetParameter failed: ParameterNotFound"),
        (
            NoCredentialsError(),
            "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
    ],
)
def test_aws_errors_become_one_line(error: Exception, line: str) -> None:
    assert aws_problem(error) == line


def test_a_wrapped_aws_error_is_found_behind_its_wrapper() -> None:
    # Given: Powertools raising its own error while handling the ClientError, as it does
    try:
        try:
            raise client_error("AccessDenied", "no", operation="GetSecretValue")
        except ClientError as exc:
            raise GetParameterError(str(exc))  # noqa: B904 - the way Powertools does it
    except GetParameterError as wrapped:
        # Then
        assert aws_problem(wrapped) == "access denied to GetSecretValue (AccessDenied): no"


def test_other_errors_are_not_aws_problems() -> None:
    assert aws_problem(ValueError("a bug")) is None


QUEUE = {"Id": "q", "QueueArn": "arn:aws:sqs:eu-west-1:123456789012:q", "Events": ["s3:ObjectCreated:*"]}


def test_enabling_adds_eventbridge_and_keeps_the_rest_without_touching_the_input() -> None:
    current = {"QueueConfigurations": [QUEUE]}
    merged = with_eventbridge(current, enabled=True)
    assert merged == {"QueueConfigurations": [QUEUE], "EventBridgeConfiguration": {}}
    assert current == {"QueueConfigurations": [QUEUE]}
    assert with_eventbridge(merged, enabled=True) == merged


def test_disabling_removes_only_eventbridge() -> None:
    current = {"QueueConfigurations": [QUEUE], "EventBridgeConfiguration": {}}
    assert with_eventbridge(current, enabled=False) == {"QueueConfigurations": [QUEUE]}
    assert with_eventbridge({}, enabled=False) == {}
