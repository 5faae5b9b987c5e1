"""Cold start and size of CoreLayer: handler import against a bare `import boto3`, and the built layer's bytes.

    python -m bench.coldstart            # 9 pairs per layer variant (make bench runs this)
    python -m bench.coldstart --runs 15

What runs:

- size: the deployed arm64 layer that `make sam-build` left in .aws-sam/build/CoreLayer, against
  `bench.layer.LAYER_BUDGET_BYTES` (unzipped bytes);
- cold start: the layer cannot be imported here as built (its pydantic_core and wrapt are aarch64), so the
  same recipe (layers/core/Makefile) is built again for this machine, once as built (bytecode from the
  Makefile's Python 3.13, when one is found) and once with sources only (how a layer ships without
  precompiled bytecode). Each is copied to a temporary directory with the function's app.py and a boto3
  "runtime" (boto3 at the version .venv has, compiled, as Lambda's /var/runtime is), made read-only, and
  imported the way Lambda does: a fresh interpreter with PYTHONDONTWRITEBYTECODE=1, sys.path = task, layer, runtime,
  Lambda's environment variables set (so Tracer is enabled and patches), `import app` and nothing else;
- the yardstick: `import boto3` in the same interpreter and environment. The two run in turn (A B A B ...);
  the figure is the median of the pairwise ratios.

Caveats printed with the figures: the interpreter is this machine's (x86_64 here, arm64 on Lambda), and
when no Python 3.13 is found it is the local Python, whose timings of a sources-only layer are not 3.13's.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.layer import BUILT_LAYER, LAYER_BUDGET_BYTES, ROOT, layer_bytes, mib

LAYER_SOURCE = ROOT / "layers" / "core"
FUNCTION_SOURCE = ROOT / "functions" / "purge"
RATIO_GOAL = 1.5
# Lambda's variables that the handler's import reads: Tracer is enabled only where LAMBDA_TASK_ROOT is set.
LAMBDA_ENVIRONMENT = {
    "AWS_LAMBDA_FUNCTION_NAME": "cdnpurge-PurgeFunction",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "cdnpurge",
    "POWERTOOLS_METRICS_NAMESPACE": "CDNPurge",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass(frozen=True)
class Timing:
    """One layer variant: per-pair seconds of `import app` and `import boto3`, and their pairwise ratios."""

    label: str
    handler_s: list[float]
    boto3_s: list[float]

    @property
    def ratios(self) -> list[float]:
        return [handler / boto3 for handler, boto3 in zip(self.handler_s, self.boto3_s, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def bytecode_python() -> str | None:
    """The Python 3.13 the layer Makefile compiles with (its own probe), or None when it found none."""
    found = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(LAYER_SOURCE), "bytecode-python"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return found or None


def minor_version(python: str) -> str:
    """The interpreter's minor version, e.g. 3.13: which wheels a layer for it needs."""
    return subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def build_layer(into: Path, *, python: str, bytecode: str | None) -> Path:
    """The CoreLayer recipe for this machine's platform and `python`'s version (3.13 unless no 3.13 was
    found); `bytecode` None builds it with sources only."""
    subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-C",
            str(LAYER_SOURCE),
            "build-CoreLayer",
            f"ARTIFACTS_DIR={into}",
            f"PLATFORM=manylinux2014_{platform.machine()}",
            f"PYTHON_VERSION={minor_version(python)}",
            f"PYTHON={sys.executable}",
            f"BYTECODE_PYTHON={bytecode or ''}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return into / "python"


def build_runtime(into: Path, python: str) -> Path:
    """boto3 (the version .venv resolves) and its dependencies, compiled: Lambda's /var/runtime stand-in."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            "--python-version",
            minor_version(python),
            "--target",
            str(into),
            f"boto3=={importlib.metadata.version('boto3')}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run([python, "-m", "compileall", "-q", str(into)], check=True, stdout=subprocess.DEVNULL)
    return into


def read_only(path: Path) -> None:
    """chmod -R a-w: what Lambda mounts is read-only (PYTHONDONTWRITEBYTECODE also stops root writing)."""
    for entry in [path, *path.rglob("*")]:
        entry.chmod(entry.stat().st_mode & ~0o222)


def time_imports(python: str, task: Path, layer: Path, runtime: Path, *, runs: int, label: str) -> Timing:
    """`import app` against `import boto3`, in turn, one warm-up pair first; wall seconds per process."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(task),
        "PYTHONPATH": os.pathsep.join(str(path) for path in (task, layer, runtime)),
        **LAMBDA_ENVIRONMENT,
    }

    def seconds(statement: str) -> float:
        started = time.perf_counter()
        # -S: no site module. Lambda's interpreter imports site, but its site-packages holds no .pth files,
        # while a developer's interpreter may hold some that import packages at start-up (both sides alike),
        # which would shrink the ratio; site itself costs both sides the same few milliseconds.
        subprocess.run([python, "-S", "-c", statement], check=True, env=environment, cwd=task)
        return time.perf_counter() - started

    seconds("import app")
    seconds("import boto3")
    handler_s: list[float] = []
    boto3_s: list[float] = []
    for _ in range(runs):
        handler_s.append(seconds("import app"))
        boto3_s.append(seconds("import boto3"))
    return Timing(label, handler_s, boto3_s)


def measure(python: str, layer: Path, runtime: Path, scratch: Path, *, runs: int, label: str) -> Timing:
    """Copies the task, layer and runtime side by side, read-only, and times them."""
    mounted = scratch / label.replace(" ", "-")
    task = mounted / "task"
    shutil.copytree(FUNCTION_SOURCE, task, ignore=shutil.ignore_patterns("__pycache__", "Makefile"))
    shutil.copytree(layer, mounted / "opt" / "python")
    shutil.copytree(runtime, mounted / "runtime")
    read_only(mounted)
    try:
        return time_imports(python, task, mounted / "opt" / "python", mounted / "runtime", runs=runs, label=label)
    finally:
        for entry in [mounted, *mounted.rglob("*")]:
            if not entry.is_symlink():
                entry.chmod(entry.stat().st_mode | 0o200)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="pairs per layer variant (at least 7)")
    options = parser.parse_args(argv)
    if options.runs < 7:
        parser.error("--runs must be at least 7 (the figure is a median of pairs)")

    compiler = bytecode_python()
    python = compiler or sys.executable
    interpreter = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version(), platform.machine())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"cold start: Python {interpreter} (Lambda: 3.13 arm64), {options.runs} pairs per variant")
    if compiler is None:
        print("  no Python 3.13 found: the layer is built and timed with sources only, on the local Python")

    with tempfile.TemporaryDirectory(prefix="cdnpurge-coldstart-") as scratch_name:
        scratch = Path(scratch_name)
        runtime = build_runtime(scratch / "runtime-build", python)
        variants = [("sources only", None)] + ([("as built", compiler)] if compiler else [])
        timings = [
            measure(
                python,
                build_layer(scratch / f"layer-{index}", python=python, bytecode=bytecode),
                runtime,
                scratch,
                runs=options.runs,
                label=label,
            )
            for index, (label, bytecode) in enumerate(variants)
        ]

    for timing in timings:
        print(
            f"  {timing.label:>12}: import app {statistics.median(timing.handler_s):.3f} s, "
            f"import boto3 {statistics.median(timing.boto3_s):.3f} s (medians); "
            f"ratio {timing.ratio:.2f}x (pairs: {', '.join(f'{ratio:.2f}' for ratio in timing.ratios)})"
        )
    shipped = timings[-1]
    met = verdict(shipped.ratio <= RATIO_GOAL)
    print(f"  goal: handler import <= {RATIO_GOAL}x import boto3 ({shipped.label}): {met}")

    if BUILT_LAYER.is_dir():
        size = layer_bytes(BUILT_LAYER)
        print(
            f"layer size: {mib(size)} unzipped ({BUILT_LAYER.relative_to(ROOT)}); "
            f"goal <= {mib(LAYER_BUDGET_BYTES)}: {verdict(size <= LAYER_BUDGET_BYTES)}"
        )
    else:
        print(f"layer size: {BUILT_LAYER.relative_to(ROOT)} is missing: run make sam-build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
