"""Keep message contents out of Celery's own error logs.

When the worker discards a message it cannot run (an unregistered task name, a malformed
task, a body it cannot decode) Celery logs the whole body and headers, `argsrepr` and
`kwargsrepr` included, and a foreign producer's message carries a send's recipients and text.
This filter rewrites those records to name the task and the fault only.
"""

from __future__ import annotations

import logging

from celery.worker.consumer import consumer

CONSUMER_LOGGER = "celery.worker.consumer.consumer"
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
