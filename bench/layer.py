"""CoreLayer's size budget and how it is measured, shared by `bench.coldstart` and the layer test.

The budget is on the unzipped bytes (the sum of file sizes under the built layer, what Lambda extracts into
/opt and counts against its 250 MB limit); the untrimmed layer was 19 MB by this measure.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What `sam build` (make sam-build) produces for the deployed arm64 layer.
BUILT_LAYER = ROOT / ".aws-sam" / "build" / "CoreLayer"
# The layer's budget: trimmed and bundled (Powertools included), at most 8 MiB unzipped: 5.5 MiB since the
# configuration left pydantic (which alone would bring back 5.7 MiB, and its import into every cold start).
LAYER_BUDGET_BYTES = 8 * 1024 * 1024


def layer_bytes(layer: Path) -> int:
    """Sum of the sizes of every file under `layer` (apparent size, not disk blocks)."""
    return sum(path.stat().st_size for path in layer.rglob("*") if path.is_file() and not path.is_symlink())


def mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
