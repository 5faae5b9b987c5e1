"""`cdnpurge purge` joins the stack's shared rate meter, so an operator's purge and the function draw on one
account rate instead of each running at the whole of it.

The table is `--table` (the stack output IdempotencyTableName, or the stack's RateMeterTableName when it
shares another stack's), else `RATE_METER_TABLE_NAME`, else `IDEMPOTENCY_TABLE_NAME` from the environment.
Without one, or when the table cannot be written, the command says so and paces alone at the provider's
declared rate, as before. Needs `dynamodb:UpdateItem` on the table's `cdnpurge#meter#*` items.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TextIO

from cdnpurge.runtime.execute import Outcome
from cdnpurge.runtime.meter import Meter

ENVIRONMENT = ("RATE_METER_TABLE_NAME", "IDEMPOTENCY_TABLE_NAME")


def join_meter(table: str | None, out: TextIO, environ: Mapping[str, str] | None = None) -> Meter | None:
    """The stack's meter on `table` (or the environment's), announced on `out`; None, said so, without one."""
    env = os.environ if environ is None else environ
    name = table or next((env[variable] for variable in ENVIRONMENT if env.get(variable)), None)
    if name is None:
        print(
            "rate meter: none (no --table, RATE_METER_TABLE_NAME or IDEMPOTENCY_TABLE_NAME): pacing alone at the "
            "provider's rate; a running stack may see 429s meanwhile",
            file=out,
        )
        return None
    from cdnpurge.runtime.bounded.aws import aws_client
    from cdnpurge.runtime.meter_dynamodb import DynamoDBMeter

    print(f"rate meter: sharing the account rate through table {name}", file=out)
    return DynamoDBMeter(aws_client("dynamodb"), name)


def report_unmetered(outcomes: Sequence[Outcome], out: TextIO) -> None:
    """Say when calls went out without the meter (it could not be reached): paced alone, not shared."""
    unmetered = sum(outcome.unmetered for outcome in outcomes)
    if unmetered:
        print(
            f"rate meter: unreachable for {unmetered} call(s), paced alone at the provider's rate "
            "(check the table name and dynamodb:UpdateItem on its cdnpurge#meter#* items)",
            file=out,
        )
