"""`cdnpurge validate`: check a configuration file as the service would, and list its providers."""

from __future__ import annotations

import argparse
import sys

from cdnpurge.cli.command import EXIT_OK, Commands, Context, add_command, add_config_option, load_config
from cdnpurge.cli.deploy import parameter_size_warning
from cdnpurge.core.registry import specs


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "validate",
        run,
        help="check a configuration file",
        description="Validate a configuration file and list providers.",
    )
    add_config_option(parser)


def run(args: argparse.Namespace, context: Context) -> int:
    config, text = load_config(args, require_credentials=True)
    out = context.out
    print(f"configuration OK: {len(config.providers)} provider(s), {len(config.rules)} rule(s)", file=out)
    for name, spec in specs(config.providers).items():
        kinds = ", ".join(f"{kind.value}<={limit}" for kind, limit in spec.capabilities.max_targets.items())
        receives = "" if spec.purge_by is None else "; purge_by=" + ",".join(sorted(k.value for k in spec.purge_by))
        print(f"  {name}: {kinds}; soft={'yes' if spec.capabilities.soft_purge else 'no'}{receives}", file=out)
    warning = parameter_size_warning(text)
    if warning:
        print(f"cdnpurge: warning: {warning}", file=sys.stderr)
    return EXIT_OK
