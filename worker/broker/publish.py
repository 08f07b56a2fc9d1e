"""The broker message of a `hudhud.deliver` task, built without Celery's per-message cost.

Celery's `send_task` costs a few Redis round trips and much Python per message. hudhud
instead builds each task message with Celery's own protocol-2 builder (`app.amqp.as_task_v2`)
once per app, wrapped as kombu's Redis transport stores it, and fills in what changes from one
message to the next (`hudhud.worker.broker.enqueue` decides when a message goes; the ledger pushes
it, many in one round trip, or in the script that creates their records).

The broker is the Redis of `HUDHUD_REDIS_URL`, the same server as the ledger, and a queue
with the default priority is the Redis list named after it (kombu's layout).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime
from typing import Any

from celery import Celery

from hudhud.worker.ledger.lanes import QUEUED_AT

DELIVER_TASK = "hudhud.deliver"

_SLOTS = ("task_id", "eta", "argsrepr", "queued", "queue", "tag", "body")


def _slot(name: str) -> str:
    return f"\x00{name}\x00"


class TaskMessages:
    """Builds broker messages for `hudhud.deliver(message_id, provider)`.

    The envelope is serialised once, with a marked slot for each value that changes from
    one message to the next; building a message fills the slots."""

    def __init__(self, app: Celery) -> None:
        headers, properties, _body, _sent = app.amqp.as_task_v2(
            _slot("task_id"), DELIVER_TASK, args=["", ""], kwargs={}
        )
        envelope = {
            "body": _slot("body"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                **headers,
                "id": _slot("task_id"),
                "root_id": _slot("task_id"),
                "eta": _slot("eta"),
                "argsrepr": _slot("argsrepr"),
                QUEUED_AT: _slot("queued"),
            },
            "properties": {
                **properties,
                "correlation_id": _slot("task_id"),
                "delivery_mode": 2,
                "priority": 0,
                "body_encoding": "base64",
                "delivery_info": {"exchange": "", "routing_key": _slot("queue")},
                "delivery_tag": _slot("tag"),
            },
        }
        text = json.dumps(envelope, separators=(",", ":"))
        # Split the text at each slot (in JSON a slot reads \u0000name\u0000); `eta` is a
        # JSON value rather than a string, so its quotes go with it.
        self._parts: list[str] = []
        self._order: list[str] = []
        rest = text
        while True:
            found = [(rest.find(json.dumps(_slot(n))[1:-1]), n) for n in _SLOTS]
            found = [(i, n) for i, n in found if i >= 0]
            if not found:
                break
            index, name = min(found)
            marker = json.dumps(_slot(name))[1:-1]
            if name == "eta":
                self._parts.append(rest[: index - 1])
                rest = rest[index + len(marker) + 1 :]
            else:
                self._parts.append(rest[:index])
                rest = rest[index + len(marker) :]
            self._order.append(name)
        self._parts.append(rest)
        self._embed = ',{},{"callbacks":null,"errbacks":null,"chain":null,"chord":null}]'

    def build(self, message_id: str, provider: str, queue: str, eta: datetime | None = None) -> str:
        """One task message as kombu's Redis transport stores it in the list `queue`."""
        task_id = str(uuid.uuid4())
        args = json.dumps([message_id, provider], separators=(",", ":"))
        body = base64.b64encode(f"[{args}{self._embed}".encode()).decode()
        values = {
            "task_id": task_id,
            "eta": json.dumps(eta.isoformat()) if eta is not None else "null",
            "argsrepr": _inner(repr([message_id, provider])),
            "queued": f"{time.time():.3f}",
            "queue": _inner(queue),
            "tag": str(uuid.uuid4()),
            "body": body,
        }
        out = [self._parts[0]]
        for name, part in zip(self._order, self._parts[1:], strict=True):
            out.append(values[name])
            out.append(part)
        return "".join(out)


def _inner(text: str) -> str:
    """`text` escaped as the inside of a JSON string."""
    return json.dumps(text)[1:-1]


def messages_for(app: Celery) -> TaskMessages:
    cached: Any = getattr(app, "_hudhud_task_messages", None)
    if cached is None:
        cached = TaskMessages(app)
        app._hudhud_task_messages = cached
    return cached
