"""The documentation's provider section and the CLI's purge examples are generated from the adapters' `docs`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cdnpurge.cli import provider_docs as docs
from cdnpurge.core.registry import REGISTRY

PAGE = Path(__file__).resolve().parents[2] / docs.PROVIDERS_PAGE


def test_the_documented_provider_section_is_in_step_with_the_adapters() -> None:
    # Given
    page = PAGE.read_text(encoding="utf-8")
    # When
    wanted = docs.with_section(page, docs.providers_section())
    # Then: a changed or added adapter needs `python -m cdnpurge.cli.provider_docs --write`
    assert page == wanted, (
        f"{docs.PROVIDERS_PAGE} provider section is out of step: run python -m cdnpurge.cli.provider_docs --write"
    )


def test_every_registered_kind_has_one_table_row_and_its_unverified_facts() -> None:
    # When
    section = docs.providers_section()
    # Then
    for kind, factory in REGISTRY.items():
        assert len(re.findall(rf"^\| `{kind}` \|", section, flags=re.MULTILINE)) == 1, kind
        for fact in factory.docs.unverified:
            assert f"- {fact}\n" in section + "\n", fact


def test_check_fails_on_a_stale_page_and_write_repairs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given: a page whose table lost a row
    stale = PAGE.read_text(encoding="utf-8").replace("| `fastly` |", "| `fastly-old` |")
    path = tmp_path / "providers.md"
    path.write_text(stale, encoding="utf-8")
    # When / Then
    assert docs.main([str(path)]) == 1
    assert "out of step" in capsys.readouterr().err
    assert docs.main([str(path), "--write"]) == 0
    assert docs.main([str(path)]) == 0
    assert path.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")


def test_a_page_without_the_markers_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"markers .* are missing"):
        docs.with_section("# no section here\n", docs.providers_section())


def test_the_cli_examples_hold_one_line_per_kind_from_its_declared_example() -> None:
    # When
    examples = docs.purge_examples()
    # Then
    for kind, factory in REGISTRY.items():
        assert f" cdnpurge purge -c purge.yaml -p {kind} {factory.docs.example}" in examples
