"""The provider documentation users read, generated from each adapter's `docs` declaration.

Two outputs, so adding a provider documents it in one place (its module) and nothing can drift:

- `purge_examples()`: the examples of `cdnpurge purge --help`, one line per registered kind;
- `providers_section()`: the provider table of the documentation and its list of unverified facts, kept
  between the `BEGIN` and `END` markers of `docs/providers.md` (`PROVIDERS_PAGE`).
  `tests/unit/test_provider_docs.py` fails when the page is out of step;
  `python -m cdnpurge.cli.provider_docs --write` brings it back in step.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from cdnpurge.core.registry import REGISTRY, ProviderFactory

# The page holding the generated section, relative to the repository's root.
PROVIDERS_PAGE = Path("docs/providers.md")
BEGIN = "<!-- providers:begin (generated: python -m cdnpurge.cli.provider_docs --write) -->"
END = "<!-- providers:end -->"
TABLE_HEADER = (
    "| kind | settings | purges | per call | soft | pacing (declared) | credentials checked by `doctor` with |",
    "|---|---|---|---|---|---|---|",
)
KIND_COLUMN = 11


def purge_examples(factories: Iterable[ProviderFactory] | None = None) -> str:
    """One `cdnpurge purge` line per provider kind, from its declared example."""
    lines = [
        f"  {factory.kind:<{KIND_COLUMN}} cdnpurge purge -c purge.yaml -p {factory.kind} {factory.docs.example}"
        for factory in _all(factories)
    ]
    return "\n".join(lines)


def providers_section(factories: Iterable[ProviderFactory] | None = None) -> str:
    """The documentation's provider table and unverified facts, markers included."""
    chosen = _all(factories)
    rows = [
        f"| `{factory.kind}` | {docs.settings} | {docs.purges} | {docs.per_call} | {docs.soft} | {docs.pacing} "
        f"| {docs.credential_check} |"
        for factory in chosen
        for docs in (factory.docs,)
    ]
    facts = [f"- {fact}" for factory in chosen for fact in factory.docs.unverified]
    intro = "Unverified (each adapter's `docs.unverified`; its fake follows only what is documented):"
    return "\n".join([BEGIN, *TABLE_HEADER, *rows, "", intro, "", *facts, END])


def with_section(page: str, section: str) -> str:
    """`page` with the text between the markers replaced by `section`; ValueError if a marker is missing."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {BEGIN!r} ... {END!r} are missing or out of order")
    return page[:start] + section + page[end + len(END) :]


def _all(factories: Iterable[ProviderFactory] | None) -> list[ProviderFactory]:
    return list(REGISTRY.values() if factories is None else factories)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cdnpurge.cli.provider_docs",
        description="Check or rewrite the documentation's provider section from the adapters' declarations.",
    )
    parser.add_argument(
        "page", type=Path, nargs="?", default=PROVIDERS_PAGE, help=f"the page to check or rewrite ({PROVIDERS_PAGE})"
    )
    parser.add_argument("--write", action="store_true", help="rewrite the section instead of checking it")
    arguments = parser.parse_args(argv)
    current = arguments.page.read_text(encoding="utf-8")
    wanted = with_section(current, providers_section())
    if wanted == current:
        return 0
    if arguments.write:
        arguments.page.write_text(wanted, encoding="utf-8")
        return 0
    print(f"{arguments.page}: provider section out of step; run with --write", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
