"""Flower on hudhud's app: `hudhud flower` runs `celery -A hudhud.worker.ops.flower flower`.

Celery names hudhud's broker by its transport (`hudhud.worker.broker.transport:Transport://`),
a scheme Flower's queue reader does not know: its Broker tab and `/api/queues/length` answer
"'redis' broker is not supported". The transport changes only how a worker takes a task, not
where tasks wait (kombu's Redis layout: a list per queue, and one per priority step), so here
Flower reads its queue lengths through the ledger's client of HUDHUD_REDIS_URL (`redis://`,
`rediss://` with its `ssl_*` options, `unix://`, passwords and ACL users alike) and shows that
URL, its password masked. Flower's own events and remote control still go through hudhud's transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from hudhud.config import get_settings
from hudhud.worker import runtime
from hudhud.worker.broker.celery_app import app
from hudhud.worker.ledger import inspect
from hudhud.worker.redaction import mask_url

__all__ = ["QueueLengths", "app", "install"]

log = logging.getLogger("hudhud.flower")


class QueueLengths:
    """What Flower asks of its broker: `await queues(names)`, the tasks waiting on each (read
    by the ledger, in a thread: Flower's loop does not wait on Redis)."""

    async def queues(self, names: Iterable[str]) -> list[dict[str, Any]]:
        names = list(names)
        ledger = runtime.ledger(get_settings())
        lengths = await asyncio.to_thread(inspect.queue_lengths, ledger, names)
        return [{"name": name, "messages": lengths.get(name, 0)} for name in names]


def install(url: str | None = None) -> None:
    """Flower's views read queue lengths from `url` (default: HUDHUD_REDIS_URL) and show it
    masked as the broker's URL."""
    from flower.app import Flower
    from flower.views import BaseHandler

    url = url or get_settings().redis_url
    if not hasattr(BaseHandler, "get_broker"):
        log.warning("this Flower reads its broker in a way hudhud does not know: no queue lengths")
        return
    reader = QueueLengths()
    shown = mask_url(url)
    BaseHandler.get_broker = lambda self: reader
    Flower.broker_uri = property(lambda self: shown)


install()
