"""kombu's Redis transport, with one change: a broker message that cannot be read is
discarded with a log line instead of stopping the worker.

kombu decodes a message's body while taking it off the queue; a body that is not valid
base64 (or an envelope without its properties) raises there, outside Celery's handling of
bad messages, and the worker exits with "Unrecoverable error". Such a message now reaches
Celery as a message of unknown format, which Celery rejects; the worker goes on.
"""

from __future__ import annotations

import binascii
import logging
import uuid
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Message as VirtualMessage

log = logging.getLogger("hudhud.transport")

UNREADABLE = "application/x-hudhud-unreadable"


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
    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("a broker message could not be read (%s): it is discarded", type(exc).__name__)
            super().__init__(_placeholder(payload), channel=channel, **kwargs)
            self._raw = payload


class Channel(kombu_redis.Channel):
    Message = Message


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
