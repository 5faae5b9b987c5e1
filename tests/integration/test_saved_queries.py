"""The saved Logs Insights queries of template.yaml, run against the log lines the function really writes.

The handler runs on the local stack (a purge, a 429 and its retry, a batch of two) with its stdout captured:
those lines are what Lambda sends to the log group. `cdnpurge_local.insights` evaluates the subset of
Logs Insights syntax the saved queries use, with Logs Insights' documented flattening of JSON (nested keys
joined with dots, array items as `name.0`, `name.1`: an array field itself is never `ispresent`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from helpers import FASTLY_PROVIDERS, fastly_deployment

from cdnpurge_local.fakecdn.server import Fault
from cdnpurge_local.insights import LogEvent, run_query
from cdnpurge_local.provision import load_template
from cdnpurge_local.stack import TEMPLATE_PATH

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("flow")]

CONFIG = (
    FASTLY_PROVIDERS
    + """\
rules:
  - bucket: {bucket}
    match: "{{key*}}"
    paths: ["/{{key}}"]
allowed_hosts: [www.example.com]
"""
)
BUCKET = "cdnpurge-it-queries"


@pytest.fixture(scope="module")
def log_lines() -> Iterator[list[str]]:
    """What the function printed for: two uploads in one batch, then an upload whose first call got a 429."""
    with fastly_deployment(CONFIG, bucket_name=BUCKET) as app:
        captured = io.StringIO()
        # The handler's logger writes to the stream it was built with; a second handler with its formatter
        # receives the same lines. Metrics (EMF) are printed to stdout when each batch flushes them.
        logger = logging.getLogger("cdnpurge")
        (written,) = logger.handlers
        copy = logging.StreamHandler(captured)
        copy.setFormatter(written.formatter)
        logger.addHandler(copy)
        with contextlib.redirect_stdout(captured):
            s3 = app.stack.client("s3")
            for name in ("a", "b"):
                s3.put_object(Bucket=BUCKET, Key=f"docs/{name}-{uuid.uuid4().hex[:6]}.html", Body=b"<p>")
            app.event_source().drain()
            app.cdn.inject("fastly", Fault(status=429, count=1))
            s3.put_object(Bucket=BUCKET, Key="docs/KEY-TO-FIND.html", Body=b"<p>")
            app.event_source().drain()
        logger.removeHandler(copy)
        yield [line for line in captured.getvalue().splitlines() if line.startswith("{")]


def saved_query(logical_id: str) -> str:
    return str(load_template(TEMPLATE_PATH)["Resources"][logical_id]["Properties"]["QueryString"])


def events(lines: list[str]) -> list[LogEvent]:
    return [LogEvent(message=line, timestamp=float(number)) for number, line in enumerate(lines)]


def test_the_capture_holds_log_lines_and_metric_documents(log_lines: list[str]) -> None:
    documents = [json.loads(line) for line in log_lines]
    assert any("_aws" in document for document in documents), "no EMF metric document captured"
    assert any(document.get("message") for document in documents), "no log line captured"


def test_what_happened_to_one_key_finds_the_key(log_lines: list[str]) -> None:
    query = saved_query("KeyHistoryQuery").replace("REPLACE/WITH/KEY", "docs/KEY-TO-FIND.html")
    rows = run_query(query, events(log_lines))
    assert "purge accepted" in [row["message"] for row in rows]
    assert all("docs/KEY-TO-FIND.html" in row["@message"] for row in rows)
    assert all(row["provider"] == "fastly" for row in rows if row["message"] == "purge accepted")


def test_slowest_purges_returns_each_batchs_purge_times(log_lines: list[str]) -> None:
    rows = run_query(saved_query("SlowestPurgesQuery"), events(log_lines))
    assert rows, "the slowest-purges query filters on fields the function never writes as single values"
    assert all(row.get("provider") == "fastly" for row in rows)
    assert any(row.get("ChangeToPurgeSeconds") is not None for row in rows)


def test_throttles_by_provider_counts_the_429(log_lines: list[str]) -> None:
    rows = run_query(saved_query("ThrottlesByProviderQuery"), events(log_lines))
    assert rows, "the throttles query filters on fields the function never writes as single values"
    (fastly,) = [row for row in rows if row["provider"] == "fastly"]
    assert fastly["throttles"] >= 1 and fastly["requests"] >= 2
