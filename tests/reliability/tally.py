"""Session-wide reliability counters, summed across xdist workers and printed at the end of the run.

Tests call `add(faults=1)`, `add(bad_inputs=3)`, `add(lost=..., duplicates=...)` with what they measured
(lost and duplicate counts are measured, then asserted to be zero, so a failing run prints the real
figure). Each process appends to its own JSON file in a directory the controller creates and passes to
the workers through the environment; `pytest_terminal_summary` (registered from tests/conftest.py) merges
them into one line:

    reliability: faults injected 41, bad inputs tried 2713, changes lost 0, duplicate calls 0
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Final

import pytest

ENV: Final = "CDNPURGE_RELIABILITY_TALLY_DIR"
FIELDS: Final = ("faults", "bad_inputs", "changes", "lost", "duplicates", "resent", "scanned_lines")
_lock = threading.Lock()


def add(**counts: int) -> None:
    """Add measured counts (names from `FIELDS`) to this process's tally file."""
    unknown = set(counts) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown tally fields {sorted(unknown)}")
    directory = os.environ.get(ENV)
    if not directory:
        return
    path = Path(directory) / f"{os.getpid()}.json"
    with _lock:
        current: Counter[str] = Counter(json.loads(path.read_text()) if path.exists() else {})
        current.update(counts)
        path.write_text(json.dumps(dict(current)))


def totals(directory: Path) -> Counter[str]:
    merged: Counter[str] = Counter()
    for path in directory.glob("*.json"):
        merged.update(json.loads(path.read_text()))
    return merged


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller's directory is in the environment
        return
    directory = tempfile.mkdtemp(prefix="cdnpurge-tally-")
    os.environ[ENV] = directory
    config.stash[_DIRECTORY] = Path(directory)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    directory = config.stash.get(_DIRECTORY, None)
    if directory is None:
        return
    counts = totals(directory)
    shutil.rmtree(directory, ignore_errors=True)
    if not counts:
        return
    terminalreporter.write_sep("-", "reliability summary")
    terminalreporter.write_line(
        f"reliability: faults injected {counts['faults']}, bad inputs tried {counts['bad_inputs']}, "
        f"changes lost {counts['lost']}, duplicate calls {counts['duplicates']}"
    )
    terminalreporter.write_line(
        f"  {counts['changes']} changes audited; {counts['resent']} call(s) re-sent after a timeout left the "
        f"first unanswered (the CDN may have done it: at-least-once); "
        f"{counts['scanned_lines']} captured lines scanned for credentials"
    )


_DIRECTORY = pytest.StashKey[Path]()
