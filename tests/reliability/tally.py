"""Session-wide reliability counters, summed across xdist workers and printed at the end of the run.

Tests call `add(...)` with what they measured (names from `FIELDS`): `faults=1`, `bad_inputs=3`,
`lost=..., duplicates=...` (lost and duplicate counts are measured, then asserted to be zero, so a failing
run prints the real figure), `credential_fragments=...` (the witness's scan), `handler_runs=...,
past_deadline=...` (handler runs, and those that answered after their deadline).

Hostile inputs are counted per class of guarantee, one line each in the summary: call
`hostile(CLASS, count)` with a key of `CLASSES` and how many hostile inputs (messages, keys, responses,
configuration files, injected faults) the test threw at the code, once each was checked (a hypothesis test
counts its examples: `hostile("unexpected")` inside the test body runs once per example). To add to a
class, call `hostile` with its key; to add a class, add a line to `CLASSES` (its key, then what it
covers). `bad_inputs` and `faults` are the counts of the suites written before the classes; the total of
hostile inputs includes them.

Each process appends to its own JSON file in a directory the controller creates and passes to the workers
through the environment; `pytest_terminal_summary` (registered from tests/conftest.py) merges them:

    reliability: 2713 hostile inputs (target >= 2000): changes lost 0, duplicate calls 0,
      credential fragments 0, handler runs past the deadline 0 of 212
      anything unexpected fails its own record or request: 1204
      ...
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
FIELDS: Final = (
    "faults",
    "bad_inputs",
    "changes",
    "lost",
    "duplicates",
    "resent",
    "scanned_lines",
    "credential_fragments",
    "handler_runs",
    "past_deadline",
)
# The classes of hostile input, one per guarantee: key -> the line the summary prints.
CLASSES: Final = {
    "unexpected": "anything unexpected fails its own record or request",
    "bounds": "bounds, in linear time",
    "canonical": "canonical URLs",
    "secrets": "secrets never leak",
    "waits": "every wait is bounded",
    "fate": "twins share their fate",
    "queue": "before and after the queue",
    "own_messages": "the function's own queue messages are validated and bounded, and their rescheduling ends",
    "answers": "numbers and ids from CDN answers are finite and bounded before use",
    "output": "operator output escapes external text; operator commands bound their input",
    "deadline": "one deadline bounds every call (dripping edges, hanging endpoints, slow tables)",
    "attempts": "a new attempt is a new invalidation, a redelivery the same one",
    "coverage": "economising never drops a target",
    "progress": "a change too big for one receive advances on each",
    "iam": "what the function's role would be refused, the local stack refuses",
    "webhooks": "a webhook delivery is named only by what its signature covers; what it maps is bounded before "
    "it is enqueued",
    "stored": "items read back from the table are input; what is written fits DynamoDB's documented limits",
}
HOSTILE_TARGET: Final = 2000
FRAGMENT_CHARS: Final = 12  # a credential fragment: any piece of a test token this long
_HOSTILE = "hostile."
_lock = threading.Lock()


def hostile(kind: str, count: int = 1) -> None:
    """Count `count` hostile inputs of class `kind` (a key of `CLASSES`)."""
    if kind not in CLASSES:
        raise ValueError(f"unknown hostile-input class {kind!r}; one of {sorted(CLASSES)}")
    _write({_HOSTILE + kind: count})


def add(**counts: int) -> None:
    """Add measured counts (names from `FIELDS`) to this process's tally file."""
    unknown = set(counts) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown tally fields {sorted(unknown)}")
    _write(counts)


def _write(counts: dict[str, int]) -> None:
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
    for line in summary_lines(counts):
        terminalreporter.write_line(line)


def summary_lines(counts: Counter[str]) -> list[str]:
    """The summary: totals and the zeros the suite asks for, then one line per class of hostile input."""
    per_class = {kind: counts[_HOSTILE + kind] for kind in CLASSES}
    total = sum(per_class.values()) + counts["bad_inputs"] + counts["faults"]
    return [
        f"reliability: {total} hostile inputs (target >= {HOSTILE_TARGET}): changes lost {counts['lost']}, "
        f"duplicate calls {counts['duplicates']}, credential fragments {counts['credential_fragments']}, "
        f"handler runs past the deadline {counts['past_deadline']} of {counts['handler_runs']}",
        *(f"  {CLASSES[kind]}: {count}" for kind, count in per_class.items()),
        f"  earlier suites: faults injected {counts['faults']}, bad inputs tried {counts['bad_inputs']}",
        f"  {counts['changes']} changes audited; {counts['resent']} call(s) re-sent after a timeout left the "
        f"first unanswered (the CDN may have done it: at-least-once); "
        f"{counts['scanned_lines']} captured lines scanned for credentials (any {FRAGMENT_CHARS}-character piece)",
    ]


_DIRECTORY = pytest.StashKey[Path]()
