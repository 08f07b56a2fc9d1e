"""Queue items the broker cannot read, set aside instead of stopping the worker.

kombu decodes a queue item while taking it off the queue: an item that is not JSON, or an
envelope without its properties, or a body that is not valid base64, raises there, outside
Celery's handling of bad messages, and the worker exits with "Unrecoverable error". Instead, a
note of such an item (its size, digest and task id) goes to the list `hudhud:unreadable` (the
last 1,000, kept 7 days) for a look, and a readable envelope with a bad body reaches Celery as
a message of unknown format, which Celery rejects; the worker goes on.
"""

from __future__ import annotations

import binascii
import json
import logging
import time
import uuid
from typing import Any

from kombu.transport.virtual import Message as VirtualMessage

from hudhud.worker import redaction
from hudhud.worker.ledger import keys

log = logging.getLogger("hudhud.transport")

UNREADABLE = "application/x-hudhud-unreadable"
UNREADABLE_KEY = keys.UNREADABLE
UNREADABLE_KEEP = 1000
UNREADABLE_TTL = 7 * 86400


def set_aside(channel: Any, item: bytes | str, reason: str) -> None:
    """Keep a note of an unreadable queue item (its size, digest and task id, never its
    contents: they may carry recipients and text); never let this step stop the worker."""
    try:
        note = redaction.set_aside_summary(item, reason, time.time())
        with channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            pipe.lpush(UNREADABLE_KEY, note)
            pipe.ltrim(UNREADABLE_KEY, 0, UNREADABLE_KEEP - 1)
            pipe.expire(UNREADABLE_KEY, UNREADABLE_TTL)
            pipe.execute()
    except Exception as exc:  # the item is already off its queue; losing the copy is the lesser harm
        log.error("an unreadable queue item could not be set aside (%s)", type(exc).__name__)


def set_aside_undecodable(channel: Any, exc: json.JSONDecodeError | UnicodeDecodeError) -> None:
    """Set aside a queue item that is not JSON: it is off its list by now, and only the
    decoding error still holds it."""
    raw = exc.object if isinstance(exc, UnicodeDecodeError) else exc.doc
    log.error(
        "a queue item that is not a broker message could not be read (%s): it is set aside in %s",
        type(exc).__name__,
        UNREADABLE_KEY,
    )
    set_aside(channel, raw, type(exc).__name__)


def _placeholder(payload: Any) -> dict[str, Any]:
    properties = payload.get("properties") if isinstance(payload, dict) else None
    properties = properties if isinstance(properties, dict) else {}
    info = properties.get("delivery_info")
    return {
        "body": "",
        "content-type": UNREADABLE,
        "content-encoding": "binary",
        "headers": {},
        "properties": {
            "delivery_tag": properties.get("delivery_tag") or str(uuid.uuid4()),
            "delivery_info": info if isinstance(info, dict) else {},
            "priority": 0,
        },
    }


class Message(VirtualMessage):
    """kombu's message, which a broken envelope or body turns into a placeholder of unknown
    format (Celery rejects it) after the original is set aside."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error(
                "a broker message could not be read (%s): it is set aside in %s",
                type(exc).__name__,
                UNREADABLE_KEY,
            )
            if channel is not None:
                set_aside(channel, json.dumps(payload, default=str), type(exc).__name__)
            super().__init__(_placeholder(payload), channel=channel, **kwargs)
            self._raw = payload
