"""Every number read back from DynamoDB goes through one bounded reader (`cdnpurge.core.answers.stored_number`).

The table is input too, whoever wrote it: a meter item's far-future `tat` once stalled an account until the item
expired, a window's absurd due time reached a flush message. Each was fixed at its reader; this scan makes the
reader the only way in. It reads every module of the package and the handlers and fails, with file and line, on
any `x["N"]` or `x.get("N")` outside `core/answers.py` (the CLI's trail view deserialises whole items for display
and bounds what it shows through `cli.output`; it reads no `"N"` by hand either).
"""

from __future__ import annotations

import ast
from pathlib import Path

from cdnpurge_local.servers import REPO_ROOT

SCANNED = (REPO_ROOT / "layers/core/cdnpurge", REPO_ROOT / "functions")
READER = REPO_ROOT / "layers/core/cdnpurge/core/answers.py"


def raw_number_reads(source: str) -> list[int]:
    """Lines of `source` that read a DynamoDB number attribute's text (`["N"]` or `.get("N")`) by hand."""

    def reads_number(node: ast.AST) -> bool:
        if isinstance(node, ast.Subscript):
            return isinstance(node.slice, ast.Constant) and node.slice.value == "N"
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and bool(node.args)
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "N"
        )

    return sorted(
        node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.expr) and reads_number(node)
    )


def scanned_modules() -> list[Path]:
    return [path for root in SCANNED for path in sorted(root.rglob("*.py")) if path != READER]


def test_no_module_reads_a_stored_number_outside_the_bounded_reader() -> None:
    found = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in scanned_modules()
        for line in raw_number_reads(path.read_text(encoding="utf-8"))
    ]
    assert found == [], f"read these through cdnpurge.core.answers.stored_number: {found}"


def test_the_scan_finds_both_ways_of_reading_a_number_by_hand() -> None:
    planted = 'def f(item):\n    a = float(item["tat"]["N"])\n    return a + int(item["x"].get("N", 0))\n'
    assert raw_number_reads(planted) == [2, 3]
    assert len(scanned_modules()) > 100  # the scan reads the package, not an empty directory
