"""The CLI in a real shell: AWS errors as one line, a closed pipe, --version, redrive progress, validate's size."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from helpers import fresh_parameter_providers
from unit.test_cli import REDRIVE, StubSqs, dead_letter

from cdnpurge.cli.deploy import SSM_ADVANCED_MAX_BYTES, SSM_STANDARD_MAX_BYTES
from cdnpurge.cli.errors import EXIT_READER_GONE
from cdnpurge.cli.main import main
from cdnpurge_local.servers import free_port

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "examples" / "fastly.yaml"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Test credentials and region, no profile files, one attempt per call (a refused connection fails at once)."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return monkeypatch


def test_no_region_is_one_line_and_exit_2(aws_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Given: nothing says which region
    aws_env.delenv("AWS_DEFAULT_REGION")
    # When
    code = main(["redrive", "--dlq-url", "https://sqs/dlq", "--queue-url", "https://sqs/queue"])
    # Then
    assert code == 2
    assert capsys.readouterr().err == (
        "cdnpurge: no AWS region configured: set AWS_DEFAULT_REGION, or region in your AWS profile (AWS_PROFILE)\n"
    )


@pytest.mark.parametrize(
    ("argv", "service"),
    [
        (["enable-eventbridge", "--bucket", "site"], "S3"),
        (["validate", "-c", "ssm:/cdnpurge/core/config"], "SSM"),  # through Powertools, which wraps the error
    ],
)
def test_unreachable_endpoint_is_one_line_naming_it(
    aws_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], service: str
) -> None:
    # Given: the service's endpoint is a loopback port nobody listens on
    fresh_parameter_providers(aws_env)  # fresh clients read this environment
    endpoint = f"http://127.0.0.1:{free_port()}"
    aws_env.setenv(f"AWS_ENDPOINT_URL_{service}", endpoint)
    # When
    code = main(argv)
    # Then
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith(f"cdnpurge: cannot reach the AWS endpoint {endpoint}/")
    assert error.count("\n") == 1 and "Traceback" not in error


def test_access_denied_names_the_operation_and_keeps_aws_message(capsys: pytest.CaptureFixture[str]) -> None:
    # Given: S3 refuses to show the bucket's notifications (the response AWS sends, through a real client)
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(s3) as stubber:
        stubber.add_client_error(
            "get_bucket_notification_configuration", service_error_code="AccessDenied", service_message="Access Denied"
        )
        # When
        code = main(["enable-eventbridge", "--bucket", "site"], s3=s3, out=io.StringIO())
    # Then
    assert code == 2
    assert capsys.readouterr().err == (
        "cdnpurge: access denied to GetBucketNotificationConfiguration (AccessDenied): Access Denied\n"
    )


def test_an_error_that_is_not_aws_still_raises(tmp_path: Path) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise RuntimeError("a bug of ours")

    with pytest.raises(RuntimeError, match="a bug of ours"):
        main(["validate", "-c", str(CONFIG)], out=Broken())


def test_closed_stdout_ends_plan_quietly() -> None:
    # Given: stdout is a pipe whose reader is already gone (`cdnpurge plan ... | head` after head exits)
    reader, writer = os.pipe()
    os.close(reader)
    # When
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdnpurge.cli",
            "plan",
            "-c",
            str(CONFIG),
            "-e",
            str(ROOT / "events/sqs-s3-put.json"),
        ],
        stdout=writer,
        stderr=subprocess.PIPE,
        check=False,
    )
    os.close(writer)
    # Then: no traceback, no "Exception ignored", and the shell's status for SIGPIPE
    assert completed.stderr == b""
    assert completed.returncode == EXIT_READER_GONE == 141


def test_closed_stream_in_process_returns_the_sigpipe_status(capsys: pytest.CaptureFixture[str]) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    assert main(["validate", "-c", str(CONFIG)], out=Closed()) == EXIT_READER_GONE
    assert capsys.readouterr().err == ""


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"cdnpurge {version('cdnpurge')}\n"


class SteppingClock:
    """Advances by `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_long_redrive_prints_progress_to_stderr_and_a_closing_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Given: 1,200 dead letters and a clock that moves 1 ms per reading (no 10 s interval elapses)
    sqs = StubSqs([dead_letter(n, "r") for n in range(1200)])
    out = io.StringIO()
    # When
    code = main(REDRIVE, out=out, sqs=sqs, clock=SteppingClock(0.001))
    # Then: a line every 500 messages, then the total, on stderr; stdout keeps its per-message lines
    assert code == 0 and len(sqs.sent) == 1200
    progress = capsys.readouterr().err.splitlines()
    assert [line.split(" after ")[0] for line in progress[:2]] == [
        "redrive: 500 listed, 500 moved, 0 failed",
        "redrive: 1000 listed, 1000 moved, 0 failed",
    ]
    assert progress[2].startswith("redrive: finished: 1200 listed, 1200 moved, 0 failed in ")
    assert len(progress) == 3
    assert "done: 1200 message(s) moved back to the queue, 0 failed" in out.getvalue()


def test_slow_redrive_prints_progress_every_ten_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    # Given: every clock reading is 4 s later (a slow queue): 10 s pass every third message or so
    sqs = StubSqs([dead_letter(n, "r") for n in range(6)])
    # When
    main([*REDRIVE, "--dry-run"], out=io.StringIO(), sqs=sqs, clock=SteppingClock(4.0))
    # Then
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "redrive: 3 listed after 12 s"
    assert lines[-1].startswith("redrive: finished: 6 listed in ")


def test_short_redrive_prints_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    main(REDRIVE, out=io.StringIO(), sqs=StubSqs([dead_letter(1, "r")]), clock=SteppingClock(0.001))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("padding", "advice"),
    [
        (SSM_STANDARD_MAX_BYTES, "--tier Advanced"),
        (SSM_ADVANCED_MAX_BYTES, "more than any SSM parameter holds"),
    ],
)
def test_validate_warns_when_ssm_standard_cannot_hold_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], padding: int, advice: str
) -> None:
    # Given: a valid configuration made larger by a comment (comments count)
    config = tmp_path / "purge.yaml"
    config.write_text(CONFIG.read_text() + "#" * padding + "\n")
    # When
    code = main(["validate", "-c", str(config)], out=io.StringIO())
    # Then: still valid, with one warning line naming the size and what to do
    (warning,) = capsys.readouterr().err.splitlines()
    assert code == 0
    size = len(config.read_bytes())
    assert warning.startswith(f"cdnpurge: warning: the configuration is {size:,} bytes, more than")
    assert advice in warning


def test_validate_is_silent_about_a_config_that_fits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-c", str(CONFIG)], out=io.StringIO()) == 0
    assert capsys.readouterr().err == ""
