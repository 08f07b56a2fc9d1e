"""Provider health: outages and balances watched, paused providers probed and resumed.

Every job loops over the registered providers and asks each only what it says it has: a
status page (`reports_outages`), a balance (`keeps_balance`).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from hudhud.worker.broker.enqueue import DeliveryTask, enqueue, enqueue_many
from hudhud.worker.delivery.attempt import Delivery
from hudhud.worker.jobs.context import Context, log
from hudhud.worker.ledger import held_key, overview
from hudhud.worker.ledger.lanes import lane_or_default
from hudhud.worker.ledger.status import Status
from hudhud.worker.providers import registry
from hudhud.worker.providers.errors import ProviderError

OUTAGE = "outage"
RELEASE = 1000  # held messages released per ledger call


def watch_outages(ctx: Context) -> bool:
    """Pause a provider while its status page reports an outage; resume it when it clears.
    False when some provider reports one."""
    clear = True
    for provider in registry.providers():
        if provider.reports_outages:
            clear = _watch_outage(ctx, provider.name) and clear
    return clear


def _watch_outage(ctx: Context, name: str) -> bool:
    try:
        outage = ctx.clients(name).outage()
    except ProviderError as exc:
        log.warning("%s status unknown: %s", name, exc)
        return True
    reason = ctx.ledger.pause_reason(name)
    if outage is not None:
        if ctx.ledger.pause(name, {"kind": OUTAGE, "error": outage, "since": time.time()}):
            log.warning("%s paused: outage reported (%s)", name, outage)
        return False
    if reason and reason.get("kind") == OUTAGE:
        resume(ctx, name)
    return True


def watch_balances(ctx: Context) -> dict[str, Decimal | None]:
    """Each balance read (None when unknown): low ones said, waiting sends let go after a top-up."""
    return {p.name: _watch_balance(ctx, p.name) for p in registry.providers() if p.keeps_balance}


def _watch_balance(ctx: Context, name: str) -> Decimal | None:
    try:
        balance = ctx.clients(name).balance()
    except ProviderError as exc:
        log.warning("%s balance unknown: %s", name, exc)
        release_short(ctx, name, None)
        return None
    amount = None if balance is None else Decimal(balance.balance)
    if balance is not None:
        overview.remember_balance(ctx.ledger, name, str(amount), balance.currency or "", now=time.time())
    if amount is not None and amount <= Decimal(str(ctx.settings.low_balance)):
        log.warning("%s balance is low: %s %s", name, amount, balance.currency or "")
    release_short(ctx, name, amount)
    return amount


def release_short(ctx: Context, provider: str, balance: Decimal | None) -> int:
    """Sends the balance could not pay for go again after a top-up (or to end)."""
    from hudhud.worker.delivery import shortfall

    now = time.time()
    delivery = Delivery(ctx.ledger, ctx.settings, ctx.clients)
    ready = shortfall.due_again(delivery, provider, balance, now=now)
    for message_id, topped_up in ready:
        outcome, _ = ctx.ledger.transition(
            message_id,
            to=Status.QUEUED,
            expect=Status.QUEUED,
            now=now,
            provider=provider,
            zset="queued",
            score=now,
            fields=shortfall.released_fields(topped_up),
        )
        if outcome == "ok":
            channel = ctx.ledger.field(message_id, "channel") or "sms"
            lane = lane_or_default(ctx.ledger.field(message_id, "lane"))
            enqueue(ctx.app, ctx.ledger, DeliveryTask(message_id, provider, channel, None, lane))
    if ready:
        log.warning("%d sends that waited for a %s top-up go again", len(ready), provider)
    return len(ready)


def probe_paused(ctx: Context) -> list[str]:
    """Probe every paused provider; resume those that answer well."""
    resumed = []
    for name in registry.names():
        reason = ctx.ledger.pause_reason(name)
        if reason is None and ctx.ledger.held_count(name):
            resume(ctx, name)  # held messages left by a pause already lifted
            continue
        if reason is None or reason.get("kind") == OUTAGE:
            continue
        if _probe(ctx, name, reason):
            resume(ctx, name)
            resumed.append(name)
    return resumed


def _probe(ctx: Context, name: str, reason: dict[str, Any]) -> bool:
    from hudhud.worker.delivery import shortfall

    try:
        probe = ctx.clients(name).probe()
    except ProviderError as exc:
        log.info("probe of %s: still failing (%s)", name, exc.kind)
        return False
    if reason.get("kind") == "balance" and probe.balance is not None:
        if not shortfall.grown(probe.balance, reason.get("balance") or 0):
            return False
    return probe.can_send


def resume(ctx: Context, provider: str) -> int:
    ctx.ledger.resume(provider)
    now = time.time()
    moved = 0
    while True:
        sweep = ctx.ledger.release_held(held_key(provider), now=now)
        ctx.report_gone("held", sweep.gone)
        held = (
            DeliveryTask(mid, prov, ch, None, lane_or_default(la)) for mid, ch, prov, _, la in sweep.items
        )
        enqueue_many(ctx.app, ctx.ledger, held, now=now)
        moved += len(sweep.items)
        if len(sweep.items) + len(sweep.gone) < RELEASE:
            break
    log.warning("provider %s resumed; %d held messages re-enqueued", provider, moved)
    return moved
