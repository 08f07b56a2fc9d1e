"""Scheduling: parked messages that fall due become tasks again."""

from __future__ import annotations

import time

from hudhud.worker.broker.enqueue import DeliveryTask, enqueue_many
from hudhud.worker.jobs.context import Context
from hudhud.worker.ledger.lanes import lane_or_default

SWEEP = 500  # messages released per ledger call


def release_due(ctx: Context) -> int:
    """Parked messages due within the ETA window become ETA tasks (exact due time)."""
    now = time.time()
    released = 0
    while True:
        sweep = ctx.ledger.release_due(until=now + ctx.ledger.park_after, now=now, count=SWEEP)
        ctx.report_gone("scheduled", sweep.gone)
        due_soon = (
            DeliveryTask(mid, prov, channel, float(due), lane_or_default(lane))
            for mid, channel, prov, due, lane in sweep.items
        )
        enqueue_many(ctx.app, ctx.ledger, due_soon, now=now)
        released += len(sweep.items)
        if len(sweep.items) + len(sweep.gone) < SWEEP:
            return released
