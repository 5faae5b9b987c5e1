"""The witness, and one local deployment per test module.

Every reliability test runs with all of its output captured and scanned for credentials.

Captured: every log record of the `cdnpurge` logger (the handler's Powertools logger) and the root logger
(libraries), formatted as they would be printed, exceptions included; stdout and stderr (EMF metrics,
`print`, CLI output); and whatever a test hands over with `witness.see(...)` (dead-letter messages,
fake-CDN records, plan output, exceptions). At teardown each credential value is searched for in all
of it; the test errors if one is found.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aws_lambda_powertools import Metrics
from reliability import tally
from reliability.support import LogCapture, Witness, reliability_deployment, reset

from cdnpurge_local.harness import Deployment


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The real handler on DynamoDB Local, moto and the fake CDNs, for the module's own `BUCKET` (each
    module runs in its own xdist group), with its `EXTRA_CONFIG` lines if it has any."""
    module = request.module
    with reliability_deployment(module.BUCKET, extra_config=getattr(module, "EXTRA_CONFIG", "")) as running:
        yield running


@pytest.fixture(autouse=True)
def clean(request: pytest.FixtureRequest) -> None:
    """Tests that use the deployment start from an empty queue, DLQ, table and fake-CDN record."""
    if "deployment" in request.fixturenames:
        reset(request.getfixturevalue("deployment"))


@pytest.fixture(autouse=True)
def witness(capsys: pytest.CaptureFixture[str]) -> Iterator[Witness]:
    handler_logger = logging.getLogger("cdnpurge")
    formatter = next((h.formatter for h in handler_logger.handlers if h.formatter is not None), None)
    capture = LogCapture(formatter)
    root_capture = LogCapture(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root_capture.setLevel(logging.WARNING)
    handler_logger.addHandler(capture)
    logging.getLogger().addHandler(root_capture)
    # Powertools keeps one metric set per process and does not clear it while metrics are disabled (as
    # the integration tests run them): start each test from an empty set so its EMF output is its own.
    Metrics().clear_metrics()
    seen = Witness(capsys=capsys, logs=capture)
    try:
        yield seen
    finally:
        handler_logger.removeHandler(capture)
        logging.getLogger().removeHandler(root_capture)
    seen.logs.lines.extend(root_capture.lines)
    scanned, leaks = seen.scan()
    tally.add(scanned_lines=scanned, credential_fragments=len(leaks))
    assert leaks == [], f"credential found in captured output: {leaks[:5]}"
