"""Expiry: a message still waiting when its expiry passes ends `expired` then, wherever it
waits (parked for a long back-off, held while its provider is paused, waiting for a top-up),
so that its producer hears of it at that time and not when a task next comes for it."""

from __future__ import annotations

import time

from hudhud.worker.jobs.context import Context, log
from hudhud.worker.providers import registry

SWEEP = 500  # messages looked at per ledger call


def expire_due(ctx: Context) -> int:
    """End every waiting message whose expiry passed; the number ended."""
    now = time.time()
    ended, skip = 0, 0
    while True:
        expired, kept, read = ctx.ledger.expire_due(
            now=now, providers=registry.names(), count=SWEEP, skip=skip
        )
        ended += len(expired)
        skip += kept
        if read < SWEEP:
            break
    if ended:
        log.info("%d messages expired while waiting", ended)
    return ended
