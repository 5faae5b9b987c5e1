"""`make demo` as CI sees it: the whole main job on the local stack, exit status and what a person reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdnpurge.cli.charts import read_run, render_run
from cdnpurge_local import demo

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo")]


def test_the_demo_purges_once_skips_the_redelivery_and_dead_letters_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # When
    status = demo.run(save=tmp_path / "runs" / "demo.json")
    # Then
    output = capsys.readouterr().out
    assert status == 0, output
    assert "0 record(s) failed" in output and "FAILED" not in output
    assert "round 2: 1 invocation(s), 0 CDN call(s): duplicates skipped by the table" in output
    assert "dead-letter queue: 0 message(s)" in output
    # A signed webhook goes through the endpoint's handler to the queue and the CDNs; a replay or forgery does not
    webhook = output.split("a signed CMS webhook", 1)[1]
    assert "signed: HTTP 202" in webhook and "the same delivery again: HTTP 200" in webhook
    assert "signed with another secret: HTTP 401" in webhook and "fastly key x2" in webhook
    assert "created s3://example-site-content/docs/annual report+2026.pdf" in output
    assert "cloudfront path" in output and "medianova path" in output and "fastly key" in output
    assert demo.DEMO_TOKEN not in output and demo.MEDIANOVA_TOKEN not in output
    # Verification: stale copies served before the purge; Fastly's silent failure seen and purged again;
    # every edge fresh in the end, each provider saying after how long. (Whether Medianova's job is still
    # in progress at the first check depends on this machine's speed: tests/unit/test_verification.py
    # asserts that wait on an injected clock.)
    assert "before the purge: fastly     https://www.example.com/ " in output and "(STALE;" in output
    assert "verify: fastly still stale: purged again (1 URL(s))" in output
    for provider in demo.EDGES:
        assert f"verify: {provider} fresh after " in output
    assert "0 after verification" in output and "verify: FAILED" not in output
    # The purge trail answers for one object, as `cdnpurge status` prints it for an operator
    assert "cdnpurge status --bucket example-site-content --key 'docs/annual report+2026.pdf'" in output
    assert "docs/annual report+2026.pdf" in output.split("cdnpurge status --bucket", 1)[1]
    # and the run it saved (`make demo` passes --save) is one `cdnpurge report` draws
    first, second = read_run(tmp_path / "runs" / "demo.json").runs
    assert first.calls > 0 and second.calls == 0 and first.size == second.size > 0
    assert [path.name for path in render_run(tmp_path / "runs" / "demo.json")] == ["demo.calls.png", "demo.wall.png"]
