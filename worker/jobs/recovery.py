"""Recovery: tasks that were lost, and claims whose worker died during the provider call."""

from __future__ import annotations

import time

from hudhud.worker.broker.enqueue import DeliveryTask, enqueue, enqueue_many
from hudhud.worker.delivery.attempt import Delivery
from hudhud.worker.jobs.context import Context, log
from hudhud.worker.ledger.lanes import lane_or_default
from hudhud.worker.ledger.status import DeliveryOutcome

# A message waiting behind a backlog in its queue is enqueued again only once it is this many
# times `requeue_after` overdue (its own task is most likely still in the queue).
BACKLOG_PATIENCE = 10


def requeue_stale(ctx: Context) -> int:
    """Queued messages whose task never ran (lost publish, Redis crash, a worker killed
    while it held the ETA task of a message due soon): enqueue again once they are
    `requeue_after` seconds overdue. A duplicate task is harmless: the claim lets only one
    through."""
    now = time.time()
    after = ctx.settings.requeue_after
    sweep = ctx.ledger.requeue_stale(
        older_than=now - after, now=now, hard_limit=now - after * BACKLOG_PATIENCE
    )
    ctx.report_gone("queued", sweep.gone)
    enqueue_many(
        ctx.app,
        ctx.ledger,
        (DeliveryTask(mid, prov, ch, None, lane_or_default(la)) for mid, ch, prov, la in sweep.items),
        now=now,
    )
    if sweep.items:
        log.warning("re-enqueued %d queued messages whose task was not seen", len(sweep.items))
    return len(sweep.items)


def recover_leases(ctx: Context) -> int:
    """A worker died during a provider call: the send is in doubt (`hudhud.worker.delivery.doubt`)."""
    from hudhud.worker.delivery import doubt

    sweep = ctx.ledger.expired_leases(now=time.time())
    ctx.report_gone("sending", sweep.gone)
    delivery = Delivery(ctx.ledger, ctx.settings, ctx.clients)
    for message_id, provider, attempts, channel, lane in sweep.items:
        outcome = doubt.lease_ran_out(delivery, message_id, provider, int(attempts or 0))
        if outcome.result is DeliveryOutcome.RETRY:
            due = time.time() + (outcome.retry_in or 0)
            retry = DeliveryTask(message_id, provider, channel or "sms", due, lane_or_default(lane))
            enqueue(ctx.app, ctx.ledger, retry)
    if sweep.items:
        log.warning("recovered %d expired claims", len(sweep.items))
    return len(sweep.items)
