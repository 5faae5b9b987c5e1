"""Cold start and size of CoreLayer: handler import against a bare `import boto3`, and the built layer's bytes.

    python -m bench.coldstart            # 9 rounds per layer variant (make bench runs this)
    python -m bench.coldstart --runs 15

What runs:

- size: the deployed arm64 layer that `make sam-build` left in .aws-sam/build/CoreLayer, against
  `bench.layer.LAYER_BUDGET_BYTES` (unzipped bytes);
- cold start: the layer cannot be imported here as built (its msgspec, PyYAML and wrapt extensions are aarch64), so the
  same recipe (layers/core/Makefile) is built again for this machine, once as built (bytecode from the
  Makefile's Python 3.13, when one is found) and once with sources only (how a layer ships without
  precompiled bytecode). Each is copied to a temporary directory with the function's app.py and a boto3
  "runtime" (boto3 at the version .venv has, compiled, as Lambda's /var/runtime is), made read-only, and
  imported the way Lambda does: a fresh interpreter with PYTHONDONTWRITEBYTECODE=1, sys.path = task, layer, runtime,
  Lambda's environment variables set (so Tracer is enabled and patches), `import app` and nothing else;
- the yardstick: `import boto3` in the same interpreter and environment. The two run in turn, with import +
  first batch (`FIRST_BATCH`: the service built from a file configuration, one event planned) for each of two
  configurations (`FIRST_BATCH_CONFIGS`: a minimal one, one Fastly provider; and one that turns on what is
  loaded only when named: verification, coalescing, re-purges, webhooks, the purge trail, a second provider),
  so that cost moved from the import into the first invocation still shows; the figures are the median of
  the per-round ratios, in CPU time (user + system: on a shared, loaded machine the wall clock mostly
  measures waiting) and, for reference, in wall time.
- every process ends with `os._exit(0)` once its work is done: a cold start ends when the handler's import (or
  the first batch) returns, and the interpreter's teardown (freeing every module's objects: more of them for
  the handler than for boto3 alone, and far cheaper once init froze them) is no part of it.

Caveats printed with the figures: the interpreter is this machine's (x86_64 here, arm64 on Lambda), and
when no Python 3.13 is found it is the local Python, whose timings of a sources-only layer are not 3.13's.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import resource
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


# Ends every timed process as soon as its work is done (see the module docstring: teardown is no cold start).
EXIT_NOW = "\nimport os; os._exit(0)\n"
# The first batch's work that needs no network, after the import: the service built from a file configuration
# (its adapter loaded, its clients made, the configuration parsed) and one S3 event planned. Timed too, so that
# cost moved out of the import into the first invocation is still counted.
FIRST_BATCH = """
import json, sys
import app
from cdnpurge.core.registry import specs
from cdnpurge.runtime.pipeline import preview
service = app.service()
event = json.loads(open(sys.argv[1], encoding="utf-8").read())
_, _, plan, _ = preview(event, service.config, specs(service.config.providers), month="2026-01", month_so_far=None)
assert plan.requests, "the first batch planned nothing"
"""
# name -> (configuration, environment variables it needs beyond the minimal one's)
FIRST_BATCH_CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    "minimal": (
        """version: 1
providers:
  - {name: fastly, kind: fastly, service_id: SU1Z0isxPaozGVKXdv0eY, hosts: [www.example.com],
     credentials: {token: {env: FASTLY_TOKEN}}}
""",
        {},
    ),
    "features": (
        """version: 1
repurge_delay_seconds: 30
providers:
  - {name: fastly, kind: fastly, service_id: SU1Z0isxPaozGVKXdv0eY, hosts: [www.example.com],
     credentials: {token: {env: FASTLY_TOKEN}}, coalesce_seconds: 60,
     verify: {version_header: ETag, interval_seconds: 10}}
  - {name: cloudfront, kind: cloudfront, distribution_id: E2QWRUHAPOMQZL, cache_tags: true}
webhooks:
  - {name: publisher, scheme: standard, secret: {env: WEBHOOK_SECRET}, map: {keys: "data.surrogate_keys"}}
""",
        {
            "PURGE_QUEUE_URL": "http://127.0.0.1:9/123456789012/cdnpurge-purge",
            "DEAD_LETTER_QUEUE_URL": "http://127.0.0.1:9/123456789012/cdnpurge-dead-letters",
            "TRAIL_TABLE_NAME": "cdnpurge-coldstart-trail",
            "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        },
    ),
}
FIRST_BATCH_EVENT = ROOT / "events" / "sqs-s3-put.json"


@dataclass(frozen=True)
class Run:
    """One process: wall seconds, and CPU seconds (user + system), which a loaded machine does not inflate."""

    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class Timing:
    """One layer variant: per round, `import app`, `import boto3` and import + first batch with each
    configuration, in turn."""

    label: str
    handler: list[Run]
    boto3: list[Run]
    first_batch: dict[str, list[Run]]  # by configuration name (`FIRST_BATCH_CONFIGS`)

    def runs(self, what: str) -> list[Run]:
        """`app`, `boto3`, or a configuration's name: its import + first batch."""
        return {"app": self.handler, "boto3": self.boto3}.get(what) or self.first_batch[what]

    def ratios(self, what: str, *, cpu: bool) -> list[float]:
        return [
            (run.cpu_s / base.cpu_s) if cpu else (run.wall_s / base.wall_s)
            for run, base in zip(self.runs(what), self.boto3, strict=True)
        ]

    def ratio(self, what: str, *, cpu: bool) -> float:
        return statistics.median(self.ratios(what, cpu=cpu))


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
            # The sources-only variant on purpose (without it the recipe refuses to build one).
            f"SOURCE_ONLY_LAYER={'' if bytecode else '1'}",
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


def time_imports(
    python: str, task: Path, layer: Path, runtime: Path, first_batch: Path, *, runs: int, label: str
) -> Timing:
    """`import app`, `import boto3` and import + first batch with each configuration, in turn, one warm-up
    round first."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(task),
        "PYTHONPATH": os.pathsep.join(str(path) for path in (task, layer, runtime)),
        **LAMBDA_ENVIRONMENT,
        # The first batch's service: a file configuration and clients aimed at a port nothing listens on
        # (building a client connects nowhere; planning makes no call).
        "IDEMPOTENCY_TABLE_NAME": "cdnpurge-coldstart",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "FASTLY_TOKEN": "coldstart-token",
    }

    def timed(code: str, configuration: str = "minimal") -> Run:
        config_environment = {
            "PURGE_CONFIG": str(first_batch / f"{configuration}.yaml"),
            **FIRST_BATCH_CONFIGS[configuration][1],
        }
        before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        # -S: no site module. Lambda's interpreter imports site, but its site-packages holds no .pth files,
        # while a developer's interpreter may hold some that import packages at start-up (both sides alike),
        # which would shrink the ratio; site itself costs both sides the same few milliseconds.
        subprocess.run(
            [python, "-S", "-c", code + EXIT_NOW, str(FIRST_BATCH_EVENT)],
            check=True,
            env={**environment, **config_environment},
            cwd=task,
        )
        wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
        return Run(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))

    handler: list[Run] = []
    boto3: list[Run] = []
    first: dict[str, list[Run]] = {name: [] for name in FIRST_BATCH_CONFIGS}
    for round_number in range(runs + 1):  # round 0 warms the page cache: not counted
        measured = (timed("import app"), timed("import boto3"))
        batches = {name: timed(FIRST_BATCH, name) for name in FIRST_BATCH_CONFIGS}
        if round_number:
            handler.append(measured[0])
            boto3.append(measured[1])
            for name, run in batches.items():
                first[name].append(run)
    return Timing(label, handler, boto3, first)


def measure(python: str, layer: Path, runtime: Path, scratch: Path, *, runs: int, label: str) -> Timing:
    """Copies the task, layer and runtime side by side, read-only, and times them."""
    mounted = scratch / label.replace(" ", "-")
    task = mounted / "task"
    first_batch = scratch / "first-batch"
    first_batch.mkdir(exist_ok=True)
    for name, (configuration, _) in FIRST_BATCH_CONFIGS.items():
        (first_batch / f"{name}.yaml").write_text(configuration, encoding="utf-8")
    shutil.copytree(FUNCTION_SOURCE, task, ignore=shutil.ignore_patterns("__pycache__", "Makefile"))
    shutil.copytree(layer, mounted / "opt" / "python")
    shutil.copytree(runtime, mounted / "runtime")
    read_only(mounted)
    try:
        return time_imports(
            python, task, mounted / "opt" / "python", mounted / "runtime", first_batch, runs=runs, label=label
        )
    finally:
        for entry in [mounted, *mounted.rglob("*")]:
            if not entry.is_symlink():
                entry.chmod(entry.stat().st_mode | 0o200)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="rounds per layer variant (at least 7)")
    options = parser.parse_args(argv)
    if options.runs < 7:
        parser.error("--runs must be at least 7 (the figure is a median of rounds)")

    compiler = bytecode_python()
    python = compiler or sys.executable
    interpreter = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version(), platform.machine())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"cold start: Python {interpreter} (Lambda: 3.13 arm64), {options.runs} rounds per variant, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
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
        columns = ["app", "boto3", *FIRST_BATCH_CONFIGS]
        cpu = {what: statistics.median(run.cpu_s for run in timing.runs(what)) for what in columns}
        print(
            f"  {timing.label:>12}: CPU import app {cpu['app']:.3f} s, import boto3 {cpu['boto3']:.3f} s, "
            + ", ".join(f"import + first batch ({name}) {cpu[name]:.3f} s" for name in FIRST_BATCH_CONFIGS)
            + " (medians)"
        )
        for what in ("app", *FIRST_BATCH_CONFIGS):
            title = "import app" if what == "app" else f"+ first batch ({what})"
            print(
                f"    {title:>26}: {timing.ratio(what, cpu=True):.2f}x import boto3 in CPU "
                f"(rounds: {', '.join(f'{r:.2f}' for r in timing.ratios(what, cpu=True))}); "
                f"{timing.ratio(what, cpu=False):.2f}x in wall time"
            )
    shipped = timings[-1]
    met = verdict(shipped.ratio("app", cpu=True) <= RATIO_GOAL)
    print(f"  goal: handler import <= {RATIO_GOAL}x import boto3 ({shipped.label}, CPU): {met}")

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
