"""kombu's Redis transport, with two changes: a broker message that cannot be read is set
aside with a log line instead of stopping the worker, and one client object serves the
channel's short commands (acks, the unacked index) instead of a new one for each.

kombu decodes a queue item while taking it off the queue: an item that is not JSON, or an
envelope without its properties, or a body that is not valid base64, raises there, outside
Celery's handling of bad messages, and the worker exits with "Unrecoverable error". Such an
item is now copied to the list `hudhud:unreadable` (the last 1,000, kept 7 days) for a look,
and a readable envelope with a bad body reaches Celery as a message of unknown format, which
Celery rejects; the worker goes on.
"""

from __future__ import annotations

import binascii
import json
import logging
import uuid
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Message as VirtualMessage

log = logging.getLogger("hudhud.transport")

UNREADABLE = "application/x-hudhud-unreadable"
UNREADABLE_KEY = "hudhud:unreadable"
UNREADABLE_KEEP = 1000
UNREADABLE_TTL = 7 * 86400


def set_aside(channel: Any, item: bytes | str) -> None:
    """Keep an unreadable queue item for a look; never let this step stop the worker."""
    try:
        with channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            pipe.lpush(UNREADABLE_KEY, item)
            pipe.ltrim(UNREADABLE_KEY, 0, UNREADABLE_KEEP - 1)
            pipe.expire(UNREADABLE_KEY, UNREADABLE_TTL)
            pipe.execute()
    except Exception as exc:  # the item is already off its queue; losing the copy is the lesser harm
        log.error("an unreadable queue item could not be set aside (%s)", type(exc).__name__)


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
            log.error(
                "a broker message could not be read (%s): it is set aside in %s",
                type(exc).__name__,
                UNREADABLE_KEY,
            )
            if channel is not None:
                set_aside(channel, json.dumps(payload, default=str))
            super().__init__(_placeholder(payload), channel=channel, **kwargs)
            self._raw = payload


class Channel(kombu_redis.Channel):
    Message = Message

    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        # kombu makes a new client object for every ack and every delivered message (two per
        # task); a client is safe to share between green threads, since each command takes
        # its own connection from the pool. One per pool, made again when kombu replaces it.
        if asynchronous:
            return super()._create_client(asynchronous=True)
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = super()._create_client()
        return shared

    def _brpop_read(self, **options: Any) -> bool:
        # kombu takes the item off the list and decodes it in one step; an item that is not
        # JSON raises after it left the list. Take it from the exception's document instead.
        try:
            return bool(super()._brpop_read(**options))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raw = exc.object if isinstance(exc, UnicodeDecodeError) else exc.doc
            log.error(
                "a queue item that is not a broker message could not be read (%s): it is set aside in %s",
                type(exc).__name__,
                UNREADABLE_KEY,
            )
            set_aside(self, raw)
            return True


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
