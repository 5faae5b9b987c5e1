"""The layer build refuses, loudly and before downloading anything, to ship a layer Lambda must compile on
every cold start: `sam build` shows a failed build, where a warning scrolled by unseen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cdnpurge_local.servers import REPO_ROOT

LAYER = REPO_ROOT / "layers" / "core"


def build(artifacts: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-C",
            str(LAYER),
            "build-CoreLayer",
            f"ARTIFACTS_DIR={artifacts}",
            f"PYTHON={sys.executable}",
            *overrides,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_without_the_runtimes_python_the_build_fails_and_says_how_to_get_it(tmp_path: Path) -> None:
    # Given no interpreter for the runtime's version (none named, and a version no machine has)
    result = build(tmp_path, "BYTECODE_PYTHON=", "PYTHON_VERSION=3.99")
    # Then the build fails before pip runs, naming the two ways to install it and the way around it
    assert result.returncode != 0
    assert "no python3.99 to precompile CoreLayer" in result.stderr
    assert "uv python install 3.99" in result.stderr and "pyenv install 3.99" in result.stderr
    assert "SOURCE_ONLY_LAYER=1 sam build" in result.stderr
    assert not (tmp_path / "python").exists()
