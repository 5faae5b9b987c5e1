"""`make demo` as CI sees it: the whole main job on the local stack, exit status and what a person reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdnpurge.charts import read_run, render_run
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
    assert "created s3://example-site-content/docs/annual report+2026.pdf" in output
    assert "cloudfront path" in output and "medianova path" in output and "fastly key" in output
    assert demo.DEMO_TOKEN not in output and demo.MEDIANOVA_TOKEN not in output
    # and the run it saved (`make demo` passes --save) is one `cdnpurge report` draws
    first, second = read_run(tmp_path / "runs" / "demo.json").runs
    assert first.calls > 0 and second.calls == 0 and first.size == second.size > 0
    assert [path.name for path in render_run(tmp_path / "runs" / "demo.json")] == ["demo.calls.png", "demo.wall.png"]
