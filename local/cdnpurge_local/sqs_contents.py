"""SQS's documented message-content rules, for moto (which checks neither).

The SendMessage API reference (`MessageBody`): "A message can include only XML, JSON, and unformatted text.
The following Unicode characters are allowed: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to
#x10FFFF. Any characters not included in this list will be rejected" (error `InvalidMessageContents`), and the
size limit is in bytes ("the message size ... in bytes"), where moto compares the body's *characters* with the
queue's `MaximumMessageSize`, and lets any character through. So a body the function writes with U+FFFF in it
(an S3 key may hold one: its event carries it percent-encoded) was accepted here and refused by SQS.

`enforce_message_contents` patches moto's `SQSBackend.send_message` (every single send, and each entry of a
batch) in the process that serves moto (`moto_launcher`), following the documented rules only: the body's
characters, then its UTF-8 size against the queue's `MaximumMessageSize`. String message attributes follow the
same character rule.
"""

from __future__ import annotations

import re
from typing import Any, Final

INVALID_CONTENTS: Final = "InvalidMessageContents"
NOT_SQS_TEXT: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def content_problem(body: str, maximum_bytes: int) -> str | None:
    """Why SQS refuses `body` (None: it does not)."""
    bad = NOT_SQS_TEXT.search(body)
    if bad is not None:
        return f"Invalid binary character '#x{ord(bad.group()):X}' was found in the message body"
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > maximum_bytes:
        return f"One or more parameters are invalid. Reason: Message must be shorter than {maximum_bytes} bytes."
    return None


def enforce_message_contents() -> None:
    """Patch moto's `SQSBackend.send_message` to refuse what SQS documents it refuses."""
    from moto.sqs.exceptions import InvalidParameterValue, SQSException
    from moto.sqs.models import SQSBackend

    send = SQSBackend.send_message
    if getattr(send, "enforces_contents", False):
        return

    def send_message(self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        problem = content_problem(message_body, int(queue.maximum_message_size))
        if problem is not None and problem.startswith("Invalid binary"):
            raise SQSException(INVALID_CONTENTS, problem)
        if problem is not None:
            raise InvalidParameterValue(problem)
        for name, attribute in (kwargs.get("message_attributes") or {}).items():
            value = attribute.get("StringValue") if isinstance(attribute, dict) else None
            if isinstance(value, str) and NOT_SQS_TEXT.search(value):
                raise SQSException(INVALID_CONTENTS, f"Invalid binary character in message attribute {name}")
        return send(self, queue_name, message_body, *args, **kwargs)

    send_message.enforces_contents = True  # type: ignore[attr-defined]
    SQSBackend.send_message = send_message  # type: ignore[method-assign]
