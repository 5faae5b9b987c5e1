"""The deploy guide, run as written against moto server: parameters, secrets, bucket notifications.

Each ```bash block of docs/deploy.md is read and its commands run in order (the README's five-minute deploy is
the guide's first block, checked to be the same): `cdnpurge`
through `cdnpurge.cli.main.main`, `aws SERVICE OPERATION --option value` through boto3 with the AWS CLI's own
argument rules (option = the input member's name in kebab case, `file://` reads a file, booleans are flags,
structures are JSON). `sam` and `aws lambda` need a real account and are skipped; nothing else is.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import boto3
import httpx
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from helpers import fresh_parameter_providers

from cdnpurge.cli.main import main
from cdnpurge_local.servers import MotoServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("deploy-guide")]

ROOT = Path(__file__).parents[2]
BUCKET = "my-site-content"
REGION: Final = "eu-west-1"
# The guide's commands that need a deployed stack or an account: not run here.
NEEDS_AN_ACCOUNT = (("sam",), ("aws", "lambda"))
# A configuration the bucket already had: the guide must keep all of it.
QUEUE_NOTIFICATION = {
    "Id": "thumbnails",
    "QueueArn": f"arn:aws:sqs:{REGION}:123456789012:thumbnails",
    "Events": ["s3:ObjectCreated:*"],
    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "images/"}]}},
}
TOPIC_NOTIFICATION = {
    "Id": "audit",
    "TopicArn": f"arn:aws:sns:{REGION}:123456789012:audit",
    "Events": ["s3:ObjectRemoved:*"],
}
LAMBDA_NOTIFICATION = {
    "Id": "index",
    "LambdaFunctionArn": f"arn:aws:lambda:{REGION}:123456789012:function:indexer",
    "Events": ["s3:ObjectCreated:Put"],
}
EXISTING = {
    "QueueConfigurations": [QUEUE_NOTIFICATION],
    "TopicConfigurations": [TOPIC_NOTIFICATION],
    "LambdaFunctionConfigurations": [LAMBDA_NOTIFICATION],
}


def bash_blocks(markdown: str) -> list[list[list[str]]]:
    """The ```bash blocks of a page, each a list of commands (argv), comments and continuations resolved."""
    blocks = re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL)
    return [
        [argv for line in block.replace("\\\n", " ").splitlines() if (argv := shlex.split(line, comments=True))]
        for block in blocks
    ]


def guide_blocks() -> list[list[list[str]]]:
    """The deploy guide's blocks: deploy, update, teardown."""
    return bash_blocks((ROOT / "docs/deploy.md").read_text(encoding="utf-8"))


def test_the_readmes_five_minute_deploy_is_the_guides_first_block() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Deploy in five minutes\n", 1)[1].split("\n## ", 1)[0]
    assert bash_blocks(section) == guide_blocks()[:1]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with MotoServer() as server:
        yield server.endpoint


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[boto3.session.Session]:
    """Every AWS client of this process (ours and boto3's defaults in the CLI) aimed at a reset moto server."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    environment = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    fresh_parameter_providers(monkeypatch)  # fresh clients read this environment and this account
    httpx.post(f"{moto_endpoint}/moto-api/reset").raise_for_status()  # each test starts from an empty account
    yield boto3.session.Session()


def run_aws(argv: list[str], session: boto3.session.Session) -> dict[str, Any]:
    """`aws SERVICE OPERATION --options` through boto3, with the AWS CLI's mapping of options to members."""
    service, operation, *options = argv[1:]
    client = session.client("s3" if service == "s3api" else service)  # type: ignore[call-overload]
    service_model = client.meta.service_model
    model = service_model.operation_model(
        next(name for name in service_model.operation_names if xform_name(name, "-") == operation)
    )
    members = {xform_name(name, "-"): (name, shape) for name, shape in model.input_shape.members.items()}
    request: dict[str, Any] = {}
    while options:
        option = options.pop(0).removeprefix("--")
        negated = option.startswith("no-") and option not in members
        name, shape = members[option.removeprefix("no-") if negated else option]
        if shape.type_name == "boolean":
            request[name] = not negated
            continue
        text = options.pop(0)
        if text.startswith("file://"):
            text = Path(text.removeprefix("file://")).read_text(encoding="utf-8")
        request[name] = (
            int(text)
            if shape.type_name in ("integer", "long")
            else (json.loads(text) if shape.type_name in ("structure", "list", "map") else text)
        )
    response: dict[str, Any] = getattr(client, xform_name(model.name))(**request)
    return response


def run_guide_block(commands: list[list[str]], session: boto3.session.Session) -> list[str]:
    """Run one block's commands in order, as a shell with `set -e` would; returns what `cdnpurge` printed."""
    printed = []
    for argv in commands:
        if any(tuple(argv[: len(prefix)]) == prefix for prefix in NEEDS_AN_ACCOUNT):
            continue
        if argv[0] == "cdnpurge":
            out = io.StringIO()
            assert main(argv[1:], out=out) == 0, f"{shlex.join(argv)}: {out.getvalue()}"
            printed.append(out.getvalue())
        else:
            assert argv[0] == "aws", f"the guide runs only cdnpurge, aws and sam: {shlex.join(argv)}"
            run_aws(argv, session)
    return printed


def notifications(session: boto3.session.Session) -> dict[str, Any]:
    response = session.client("s3").get_bucket_notification_configuration(Bucket=BUCKET)
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def test_deploy_update_and_teardown_as_the_guide_says(
    aws: boto3.session.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a bucket with a queue, a topic and a Lambda notification of someone else's, and the guide's files
    deploy, update, teardown = guide_blocks()
    s3, ssm, secrets = aws.client("s3"), aws.client("ssm"), aws.client("secretsmanager")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=EXISTING)  # type: ignore[arg-type]
    monkeypatch.chdir(tmp_path)
    config = (ROOT / "examples/fastly.yaml").read_text(encoding="utf-8")
    Path("purge.yaml").write_text(config, encoding="utf-8")
    Path("fastly-secret.json").write_text('{"token": "test-token-1"}', encoding="utf-8")

    # When: the deploy steps run
    printed = run_guide_block(deploy, aws)
    # Then: the parameter and the secret hold the files, EventBridge is on and every other notification kept
    parameter = ssm.get_parameter(Name="/cdnpurge/core/config")["Parameter"]
    assert parameter["Value"] == config and parameter["Type"] == "String"
    assert secrets.get_secret_value(SecretId="cdnpurge/fastly")["SecretString"] == '{"token": "test-token-1"}'
    assert notifications(aws) == {**EXISTING, "EventBridgeConfiguration": {}}
    dry_run, enabled, validated = printed[1:]
    assert json.loads(dry_run.split("\n", 1)[1]) == {**EXISTING, "EventBridgeConfiguration": {}}
    assert "turned on; kept 1 topic, 1 queue, 1 Lambda notification(s)" in enabled
    assert validated.startswith("configuration OK: 1 provider(s)")

    # When: the configuration and the secret change, and the update steps run
    Path("purge.yaml").write_text(config.replace("soft: true", "soft: false"), encoding="utf-8")
    Path("fastly-secret.json").write_text('{"token": "test-token-2"}', encoding="utf-8")
    with pytest.raises(ClientError, match="ParameterAlreadyExists"):  # why the guide says --overwrite
        ssm.put_parameter(Name="/cdnpurge/core/config", Type="String", Value="version: 1")
    run_guide_block(update, aws)
    # Then
    parameter = ssm.get_parameter(Name="/cdnpurge/core/config")["Parameter"]
    assert "soft: false" in parameter["Value"] and parameter["Version"] == 2
    assert secrets.get_secret_value(SecretId="cdnpurge/fastly")["SecretString"] == '{"token": "test-token-2"}'

    # When: the teardown steps run
    run_guide_block(teardown, aws)
    # Then: EventBridge off, the others still there; the parameter gone, the secret scheduled for deletion
    assert notifications(aws) == EXISTING
    with pytest.raises(ClientError, match="ParameterNotFound"):
        ssm.get_parameter(Name="/cdnpurge/core/config")
    assert "DeletedDate" in secrets.describe_secret(SecretId="cdnpurge/fastly")


def test_enable_twice_writes_once_and_dry_run_writes_nothing(aws: boto3.session.Session) -> None:
    # Given: a bucket with one queue notification
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    existing = {"QueueConfigurations": [QUEUE_NOTIFICATION]}
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=existing)  # type: ignore[arg-type]
    # When: a dry run
    out = io.StringIO()
    assert main(["enable-eventbridge", "--bucket", BUCKET, "--dry-run"], out=out) == 0
    # Then: the merged document is shown, the bucket is unchanged
    assert out.getvalue().startswith(f"dry run: {BUCKET}: would turn EventBridge delivery on, keeping 0 topic, 1 queue")
    assert notifications(aws) == existing
    # When: enabled twice
    first, second = io.StringIO(), io.StringIO()
    assert main(["enable-eventbridge", "--bucket", BUCKET], out=first) == 0
    assert main(["enable-eventbridge", "--bucket", BUCKET], out=second) == 0
    # Then: the second run finds nothing to do
    assert notifications(aws) == {**existing, "EventBridgeConfiguration": {}}
    assert second.getvalue() == (
        f"{BUCKET}: EventBridge delivery is already on; nothing written (0 topic, 1 queue, 0 Lambda notification(s))\n"
    )


def test_disable_on_a_bucket_without_eventbridge_changes_nothing(aws: boto3.session.Session) -> None:
    aws.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    out = io.StringIO()
    assert main(["disable-eventbridge", "--bucket", BUCKET], out=out) == 0
    assert "EventBridge delivery is already off; nothing written" in out.getvalue()
    assert notifications(aws) == {}


def test_a_missing_bucket_is_one_line_and_exit_2(
    aws: boto3.session.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enable-eventbridge", "--bucket", "no-such-bucket"], out=io.StringIO()) == 2
    assert capsys.readouterr().err.startswith("cdnpurge: GetBucketNotificationConfiguration failed: NoSuchBucket")


def test_a_secret_that_cannot_be_read_names_the_aws_problem(
    aws: boto3.session.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given: the example configuration, and no secret created yet (step 2 of the guide skipped)
    # When: a manual purge needs the credential
    code = main(["purge", "-c", str(ROOT / "examples/fastly.yaml"), "-p", "fastly", "--key", "home"], out=io.StringIO())
    # Then: one line naming the credential, the secret and what AWS said, before any CDN call
    assert code == 2
    assert capsys.readouterr().err.startswith(
        "cdnpurge: providers.fastly.credentials.token: cannot read secret cdnpurge/fastly: "
        "GetSecretValue failed: ResourceNotFoundException"
    )
