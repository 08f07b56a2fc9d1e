"""Flower on hudhud's app: `hudhud flower` runs `celery -A hudhud.worker.ops.flower flower`.

Celery names hudhud's broker by its transport (`hudhud.worker.broker.transport:Transport://`),
a scheme Flower's queue reader does not know: its Broker tab and `/api/queues/length` answer
"'redis' broker is not supported". The transport changes only how a worker takes a task, not
where tasks wait (kombu's Redis layout: a list per queue, and one per priority step), so here
Flower reads its queue lengths straight from HUDHUD_REDIS_URL (`redis://`, `rediss://` with
its `ssl_*` options, `unix://`, passwords and ACL users alike) and shows that URL, its
password masked. Flower's own events and remote control still go through hudhud's transport.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio

from hudhud.config import get_settings
from hudhud.worker.broker.celery_app import app
from hudhud.worker.ledger.inspect import KOMBU_SEP, PRIORITY_STEPS
from hudhud.worker.redaction import mask_url

__all__ = ["QueueLengths", "app", "install"]

log = logging.getLogger("hudhud.flower")

CONNECT_TIMEOUT = 1.0  # seconds: a page of Flower waits no longer for a Redis that is down
READ_TIMEOUT = 2.0


class QueueLengths:
    """What Flower asks of its broker: `await queues(names)`, the tasks waiting on each."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def queues(self, names: Iterable[str]) -> list[dict[str, Any]]:
        names = list(names)
        client = redis.asyncio.Redis.from_url(
            self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=READ_TIMEOUT
        )
        try:
            pipe = client.pipeline(transaction=False)
            for name in names:
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{name}{KOMBU_SEP}{step}" if step else name)
            # a key of another type under a queue's name is no queue: WRONGTYPE counts as empty
            lengths = [n if isinstance(n, int) else 0 for n in await pipe.execute(raise_on_error=False)]
        finally:
            await client.aclose()
        width = len(PRIORITY_STEPS)
        return [
            {"name": name, "messages": sum(lengths[i * width : (i + 1) * width])}
            for i, name in enumerate(names)
        ]


def install(url: str | None = None) -> None:
    """Flower's views read queue lengths from `url` (default: HUDHUD_REDIS_URL) and show it
    masked as the broker's URL."""
    from flower.app import Flower
    from flower.views import BaseHandler

    url = url or get_settings().redis_url
    if not hasattr(BaseHandler, "get_broker"):
        log.warning("this Flower reads its broker in a way hudhud does not know: no queue lengths")
        return
    reader = QueueLengths(url)
    shown = mask_url(url)
    BaseHandler.get_broker = lambda self: reader
    Flower.broker_uri = property(lambda self: shown)


install()
