"""Keep message contents out of Celery's own error logs.

When the worker discards a message it cannot run (an unregistered task name, a malformed
task, a body it cannot decode) Celery logs the whole body and headers, `argsrepr` and
`kwargsrepr` included, and a foreign producer's message carries a send's recipients and text.
This filter rewrites those records to name the task and the fault only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime

from celery.worker.consumer import consumer

CONSUMER_LOGGER = "celery.worker.consumer.consumer"
_NAME = re.compile(r"[\w.:-]{1,200}")
_WITHHELD = "(body and headers withheld: they may carry personal data)"


class MessageContentFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg == consumer.UNKNOWN_TASK_ERROR:
            record.msg = "Received unregistered task of type %s; the message was discarded %s"
            record.args = (args[0] if args else "?", _WITHHELD)
        elif record.msg == consumer.INVALID_TASK_ERROR:
            record.msg = "Received an invalid task message (%s); the message was discarded %s"
            record.args = (type(args[0]).__name__ if args else "?", _WITHHELD)
        elif record.msg == consumer.MESSAGE_DECODE_ERROR:
            record.msg = "Cannot decode a message body (%s, type %r); the message was discarded %s"
            record.args = (
                type(args[0]).__name__ if args else "?",
                args[1] if len(args) > 1 else "?",
                _WITHHELD,
            )
        elif record.msg == consumer.UNKNOWN_FORMAT:
            record.msg = "Received a message in an unknown format; it was rejected %s"
            record.args = (_WITHHELD,)
        else:
            return True
        record.exc_info = None
        record.exc_text = None
        return True


def install() -> None:
    logger = logging.getLogger(CONSUMER_LOGGER)
    if not any(isinstance(f, MessageContentFilter) for f in logger.filters):
        logger.addFilter(MessageContentFilter())


def set_aside_summary(item: bytes | str, reason: str, now: float) -> str:
    """What is kept of a queue item that could not be read: never its contents (a foreign
    producer's task carries recipients and text), only enough to find where it came from —
    its size, a digest, and the task name and id when its envelope is readable JSON."""
    raw = item.encode("utf-8", "replace") if isinstance(item, str) else item
    summary: dict[str, object] = {
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "reason": reason,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest()[:16],
    }
    try:
        envelope = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        envelope = None
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    if isinstance(headers, dict):
        for name in ("task", "id"):
            value = headers.get(name)
            if isinstance(value, str) and _NAME.fullmatch(value):
                summary[name] = value
    return json.dumps(summary, separators=(",", ":"))
