"""No I/O call site of the function outside the deadline mechanism, found by reading the code.

Two halves make the guarantee structural (docs/reliability.md, "One deadline, one budget"):

- statically (this scan of everything the Lambda runs: `cdnpurge/runtime` and `functions/`): no HTTP or
  AWS client, session, Powertools parameter read, raw socket or sleep is made anywhere but in the sanctioned
  factory modules under `cdnpurge/runtime/bounded/`; any other is reported with its file and line;
- dynamically (tests/unit/test_bounded_clients.py): every client those factories make refuses a call made
  outside `bounded_call`, and ends the calls made inside it by their deadline.

So a new stage can neither build a client of its own nor use a factory client without a deadline.
"""

from __future__ import annotations

import ast

from cdnpurge_local.servers import REPO_ROOT

SCANNED = (REPO_ROOT / "layers/core/cdnpurge/runtime", REPO_ROOT / "functions")
FACTORIES = REPO_ROOT / "layers/core/cdnpurge/runtime/bounded"
# module.function calls that make a client, a session, a connection or a wait of their own
FORBIDDEN_CALLS = {
    ("httpx", name)
    for name in ("Client", "AsyncClient", "HTTPTransport", "request", "get", "post", "put", "delete", "head", "stream")
} | {
    ("boto3", "client"),
    ("boto3", "resource"),
    ("session", "Session"),  # boto3.session.Session()
    ("time", "sleep"),
    ("socket", "create_connection"),
    ("socket", "socket"),
    ("request", "urlopen"),  # urllib.request.urlopen
    ("parameters", "get_parameter"),
    ("parameters", "get_secret"),
    ("parameters", "get_parameters"),
}
# Calls that make a client whatever they are called on (`session.client(...)`, `SSMProvider(...)`).
FORBIDDEN_NAMES = {"client", "resource", "SSMProvider", "SecretsProvider", "ConnectionPool", "sleep"}


def violations(source: str, filename: str) -> list[str]:
    """`file:line: what` for every forbidden call in `source`."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = func.value
            owner_name = (
                owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            )
            if (owner_name, func.attr) in FORBIDDEN_CALLS or func.attr in FORBIDDEN_NAMES - {"sleep"}:
                found.append(f"{filename}:{node.lineno}: {owner_name}.{func.attr}(...)")
        elif isinstance(func, ast.Name) and func.id in FORBIDDEN_NAMES:
            found.append(f"{filename}:{node.lineno}: {func.id}(...)")
    return found


def test_every_client_and_wait_of_the_function_comes_from_the_bounded_factories() -> None:
    # Given: every module the Lambda runs, but the factories themselves
    found = []
    for root in SCANNED:
        for path in sorted(root.rglob("*.py")):
            if path.is_relative_to(FACTORIES):
                continue
            found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT)))
    # Then
    assert found == [], "I/O outside cdnpurge.runtime.bounded (use its factories and bounded_call):\n" + "\n".join(
        found
    )


def test_the_scan_finds_each_kind_of_call_a_new_stage_might_make() -> None:
    # Given: a stage written without the mechanism
    stage = """
import boto3, httpx, time
from aws_lambda_powertools.utilities import parameters

def stage(session):
    sqs = boto3.client("sqs")
    table = session.client("dynamodb")
    http = httpx.Client(timeout=1)
    httpx.get("https://example.com")
    time.sleep(1)
    parameters.get_secret("token")
"""
    # When
    found = violations(stage, "stage.py")
    # Then: each one, with its line
    assert [line.split(":")[1] for line in found] == ["6", "7", "8", "9", "10", "11"]
