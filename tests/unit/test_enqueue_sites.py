"""Every message the function enqueues again ends: each send site is named here with the bound that ends its
lineage, and a new one fails this scan until its bound is named (docs/reliability.md, "Rescheduling always ends").

The classes this guards came back stage after stage: a verification check rescheduled without end (fixed by
`resend`'s caps), then a record continued for ever once its progress record was full (a purge not recorded was
counted as progress). Each send of the function's own making is one of the sites below; the scan reads every
module the Lambda runs and fails, with file and function, on any `send_message` / `send_message_batch` call
outside them.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest
from reliability.tally import hostile

from cdnpurge.runtime.continuation import MAX_CONTINUATIONS, continue_progressing, continued_count
from cdnpurge_local.servers import REPO_ROOT

SCANNED = (REPO_ROOT / "layers/core/cdnpurge/runtime", REPO_ROOT / "functions")
# (module, enclosing function) -> what ends the lineage of what it sends.
ENQUEUE_SITES = {
    ("runtime/webhook/stores.py", "send"): "a delivery is enqueued once: the replay record refuses it again",
    ("runtime/service.py", "schedule"): "a verification check again: `resend` caps its sends and its end time",
    ("runtime/service.py", "_schedule_all"): "first checks: encode_check validates them (an end time always set)",
    ("runtime/continuation.py", "continue_progressing"): "recorded progress only, at most MAX_CONTINUATIONS",
    ("runtime/coalesce.py", "send"): "one flush message per joining batch; a window taken once is not purged twice",
    ("runtime/repurge.py", "schedule_repurge"): "a re-purge is never re-purged (SQS's redrive policy ends it)",
    ("runtime/deadletter.py", "dead_letter"): "the dead-letter queue: nothing reads it but an operator's redrive",
    ("runtime/deadletter.py", "dead_letter_body"): "the dead-letter queue, as above",
}


def enqueue_sites() -> set[tuple[str, str]]:
    """(module, innermost enclosing function) of every SQS send in what the Lambda runs."""
    found: set[tuple[str, str]] = set()
    for root in SCANNED:
        for path in root.rglob("*.py"):
            module = str(path.relative_to(REPO_ROOT / "layers/core/cdnpurge")) if "layers" in str(path) else path.name
            found.update((module, name) for name in _sending_functions(ast.parse(path.read_text(), str(path))))
    return found


def _sending_functions(node: ast.AST, enclosing: str = "<module>") -> list[str]:
    names = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            names.extend(_sending_functions(child, child.name))
            continue
        if (
            isinstance(child, ast.Call)
            and isinstance(child.func, ast.Attribute)
            and child.func.attr in ("send_message", "send_message_batch")
        ):
            names.append(enclosing)
        names.extend(_sending_functions(child, enclosing))
    return names


def test_every_send_of_the_function_names_what_ends_its_lineage() -> None:
    found = enqueue_sites()
    unnamed = sorted(site for site in found if site not in ENQUEUE_SITES)
    assert unnamed == [], f"name what ends each new send's lineage in ENQUEUE_SITES: {unnamed}"
    stale = sorted(site for site in ENQUEUE_SITES if site not in found)
    assert stale == [], f"ENQUEUE_SITES names sends that no longer exist: {stale}"


def record(continued: Any, receives: int = 5) -> dict[str, Any]:
    attributes = {} if continued is None else {"cdnpurge-continued": {"dataType": "Number", "stringValue": continued}}
    return {
        "messageId": "m1",
        "body": '{"id": "big", "urls": []}',
        "attributes": {"ApproximateReceiveCount": str(receives)},
        "messageAttributes": attributes,
    }


@pytest.mark.parametrize(
    ("continued", "count"),
    [
        (None, 0),
        ("7", 7),
        (str(MAX_CONTINUATIONS), MAX_CONTINUATIONS),
        ("-1", MAX_CONTINUATIONS),
        ("1.5", MAX_CONTINUATIONS),
        ("1e400", MAX_CONTINUATIONS),
        ("nan", MAX_CONTINUATIONS),
        ("9" * 5000, MAX_CONTINUATIONS),
        ("\x1b[2J", MAX_CONTINUATIONS),
        ("", MAX_CONTINUATIONS),
    ],
)
def test_a_continuation_count_read_back_is_a_bounded_whole_number(continued: Any, count: int) -> None:
    # A publisher may set any attribute on its message: a count this code never writes is taken as the cap
    assert continued_count(record(continued)) == count
    hostile("own_messages")


class Sqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **arguments: Any) -> None:
        self.sent.append(arguments)


def test_a_record_continued_to_the_cap_is_not_continued_again() -> None:
    from cdnpurge.core.deadline import Deadline

    deadline = Deadline(ends_at=100.0, clock=lambda: 0.0)
    for continued, sends in ((str(MAX_CONTINUATIONS - 1), 1), (str(MAX_CONTINUATIONS), 0), ("9" * 50, 0)):
        sqs = Sqs()
        result = continue_progressing(
            sqs,
            "https://sqs.local/purge",
            {"m1": record(continued)},
            progressing=["m1"],
            change_ids={"m1": ("pub:big",)},
            max_receive_count=5,
            redact=str,
            deadline=deadline,
        )
        assert len(sqs.sent) == sends, continued
        if sends:
            attribute = sqs.sent[0]["MessageAttributes"]["cdnpurge-continued"]
            assert attribute == {"DataType": "Number", "StringValue": str(MAX_CONTINUATIONS)}
        else:
            assert result.errors and "not continued" in result.errors[0]
        hostile("own_messages")
