"""`cdnpurge purge` joins the stack's rate meter on DynamoDB Local: it says which table it shares, its call
reserves a slot in the account's item (the function's invocations see it), and an unreachable table or no
table at all is said, not silent."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
from helpers import FASTLY_SERVICE, FASTLY_TOKEN, create_template_table

from cdnpurge.cli.main import main
from cdnpurge.runtime.meter_dynamodb import KEY_PREFIX
from cdnpurge_local.fakecdn.fastly import FastlyBehaviour
from cdnpurge_local.fakecdn.server import FakeCDN
from cdnpurge_local.servers import DynamoDBLocal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("meter")]
TABLE = "cdnpurge-cli-meter"


@pytest.fixture(scope="module")
def meter_table(dynamodb: Any, dynamodb_local: DynamoDBLocal) -> tuple[Any, str]:
    """The template's idempotency table on the module's DynamoDB Local: (client, the server's endpoint)."""
    create_template_table(dynamodb, "IdempotencyTable", TABLE)
    return dynamodb, dynamodb_local.endpoint


def purge(tmp_path: Path, *extra: str) -> tuple[int, str, int]:
    """`cdnpurge purge` of one key at the fake Fastly: (exit status, output, calls Fastly received)."""
    with FakeCDN([FastlyBehaviour(token=FASTLY_TOKEN, service_id=FASTLY_SERVICE)]) as cdn:
        config = tmp_path / "purge.yaml"
        config.write_text(
            f"providers:\n  - {{name: fastly, kind: fastly, service_id: {FASTLY_SERVICE}, rate_scope: ops-account, "
            f"endpoint: '{cdn.endpoint('fastly')}', credentials: {{token: {{env: FASTLY_API_TOKEN}}}}}}\n"
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["purge", "-c", str(config), "-p", "fastly", "--key", "article-1", *extra], out=out)
        return code, out.getvalue(), len(cdn.received_by("fastly"))


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, meter_table: tuple[Any, str]) -> None:
    monkeypatch.setenv("FASTLY_API_TOKEN", FASTLY_TOKEN)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", meter_table[1])
    for variable, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "testing")):
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for variable in ("RATE_METER_TABLE_NAME", "IDEMPOTENCY_TABLE_NAME"):
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.usefixtures("environment")
def test_a_purge_with_the_stacks_table_reserves_its_slot_in_the_accounts_meter(
    tmp_path: Path, meter_table: tuple[Any, str]
) -> None:
    code, output, calls = purge(tmp_path, "--table", TABLE)
    assert code == 0 and calls == 1, output
    assert f"rate meter: sharing the account rate through table {TABLE}" in output
    item = meter_table[0].get_item(TableName=TABLE, Key={"id": {"S": f"{KEY_PREFIX}fastly/ops-account"}}).get("Item")
    assert item is not None and "requests_tat" in item


@pytest.mark.usefixtures("environment")
def test_the_table_comes_from_the_environment_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", TABLE)
    _code, output, _calls = purge(tmp_path)
    assert f"through table {TABLE}" in output


@pytest.mark.usefixtures("environment")
def test_without_a_table_or_with_an_unreachable_one_the_purge_says_it_paces_alone(tmp_path: Path) -> None:
    code, output, calls = purge(tmp_path)
    assert code == 0 and calls == 1
    assert "rate meter: none" in output
    code, output, calls = purge(tmp_path, "--table", "no-such-table")
    assert code == 0 and calls == 1  # the purge still goes out, paced alone
    assert "rate meter: unreachable for 1 call(s)" in output
