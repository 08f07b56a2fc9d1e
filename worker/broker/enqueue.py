"""Enqueue the delivery of recorded messages: the one place that pushes delivery tasks.

A message is enqueued by its id, provider, channel and due time (none: now), where
`ledger.placement` puts it:
- due now: a `hudhud.deliver` task on its lane's queue (`ledger.lanes`);
- due within the ETA window (`HUDHUD_ETA_WINDOW`, at most half the broker's visibility
  timeout: `runtime.park_after`, kept by the ledger as `park_after`): the same task with an
  ETA, which a worker holds until the due time;
- due later: parked, in the ledger's `scheduled` index, until beat's release finds it within
  the window and enqueues it here again.

Parking is a ledger write: the write that records a due time (a new record, a retry's back-off,
a wait) places the message in `scheduled` or `queued` by the same `placement`, in the same
script, so that the index and the record never disagree. Enqueueing a parked message pushes
nothing.

The task messages are built once per app (`publish.TaskMessages`) and pushed by the ledger,
many in one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from hudhud.worker.broker import publish
from hudhud.worker.ledger import lanes
from hudhud.worker.ledger.placement import SOON as SOON
from hudhud.worker.ledger.placement import Placement as Placement
from hudhud.worker.ledger.placement import placement as placement
from hudhud.worker.ledger.status import Lane

if TYPE_CHECKING:
    from celery import Celery

    from hudhud.worker.ledger import Ledger


class DeliveryTask(NamedTuple):
    """The delivery of one recorded message, to enqueue."""

    message_id: str
    provider: str
    channel: str
    due: float | None = None  # epoch seconds; None: now
    lane: str = Lane.TRANSACTIONAL


def broker_message(app: Celery, task: DeliveryTask, *, window: float, now: float) -> tuple[str, str] | None:
    """The `(queue, task message)` that enqueues `task`; None when it is parked."""
    where = placement(task.due, now, window)
    if where is Placement.PARK:
        return None
    eta = datetime.fromtimestamp(task.due, UTC) if where is Placement.ETA and task.due is not None else None
    body = publish.messages_for(app).build(task.message_id, task.provider, task.channel, eta)
    return lanes.queue(task.channel, task.lane), body


def enqueue(app: Celery, ledger: Ledger, task: DeliveryTask, *, now: float | None = None) -> Placement:
    """Enqueue one delivery, or leave it parked; where it went."""
    moment = time.time() if now is None else now
    enqueue_many(app, ledger, (task,), now=moment)
    return placement(task.due, moment, ledger.park_after)


def enqueue_many(
    app: Celery, ledger: Ledger, tasks: Iterable[DeliveryTask], *, now: float | None = None
) -> int:
    """Enqueue many deliveries in one round trip; the number pushed (parked ones are not)."""
    moment = time.time() if now is None else now
    window = ledger.park_after
    messages = [m for m in (broker_message(app, t, window=window, now=moment) for t in tasks) if m]
    return ledger.push_tasks(messages)
