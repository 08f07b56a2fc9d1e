"""Pipelined publishing of `hudhud.deliver` tasks for the bulk producer API.

Celery's `send_task` costs a few Redis round trips and much Python per message. For bulk
sends the producer instead builds each task message once with Celery's own protocol-2
builder (`app.amqp.as_task_v2`), wraps it as kombu's Redis transport stores it, and pushes
many at once in one pipeline together with the ledger records: a message is pushed only
when its record was created in the same round trip (so a duplicate or a key conflict
enqueues nothing).

The broker is the Redis of `HUDHUD_REDIS_URL`, the same server as the ledger, and a queue
with the default priority is the Redis list named after it (kombu's layout).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from celery import Celery

DELIVER_TASK = "hudhud.deliver"

# KEYS: the message record, the queue list; ARGV: the kombu message.
# Pushes only when the record exists, i.e. when CREATE (run just before) made it.
PUSH_IF_RECORDED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


class TaskMessages:
    """Builds broker messages for `hudhud.deliver(message_id, provider)`."""

    def __init__(self, app: Celery) -> None:
        template = app.amqp.as_task_v2(
            "00000000-0000-0000-0000-000000000000", DELIVER_TASK, args=["", ""], kwargs={}
        )
        headers, properties, _body, _sent = template
        self._headers = dict(headers)
        self._properties = {
            "delivery_mode": 2,
            "priority": 0,
            "body_encoding": "base64",
            **{k: v for k, v in properties.items() if k not in ("correlation_id",)},
        }
        self._embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

    def build(self, message_id: str, provider: str, queue: str, eta: datetime | None = None) -> str:
        """One task message as kombu's Redis transport stores it in the list `queue`."""
        task_id = str(uuid.uuid4())
        args = [message_id, provider]
        headers = {
            **self._headers,
            "id": task_id,
            "root_id": task_id,
            "eta": eta.isoformat() if eta is not None else None,
            "argsrepr": repr(args),
        }
        body = json.dumps([args, {}, self._embed], separators=(",", ":")).encode()
        properties = {
            **self._properties,
            "correlation_id": task_id,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "delivery_tag": str(uuid.uuid4()),
        }
        return json.dumps(
            {
                "body": base64.b64encode(body).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": properties,
            },
            separators=(",", ":"),
        )


def push(client: Any, app: Celery, tasks: Iterable[tuple[str, str, str, datetime | None]]) -> int:
    """Enqueue `hudhud.deliver` for (message id, provider, channel, eta) in one pipeline."""
    builder = messages_for(app)
    pipe = client.pipeline(transaction=False)
    count = 0
    for message_id, provider, channel, eta in tasks:
        pipe.lpush(channel, builder.build(message_id, provider, channel, eta))
        count += 1
    if count:
        pipe.execute()
    return count


def messages_for(app: Celery) -> TaskMessages:
    cached: Any = getattr(app, "_hudhud_task_messages", None)
    if cached is None:
        cached = TaskMessages(app)
        app._hudhud_task_messages = cached
    return cached
