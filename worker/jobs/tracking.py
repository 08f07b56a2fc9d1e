"""Tracking: what providers report after the hand-over (delivered, bounced, opened, ...).

Each provider that reports delivery later (`tracks_delivery`) is asked to follow up, one
run at a time per provider; what its reports mean is its own module's business.
"""

from __future__ import annotations

import time

from hudhud.worker.jobs.context import Context
from hudhud.worker.ledger.tracking import Tracker
from hudhud.worker.providers import registry


def follow_deliveries(ctx: Context) -> int:
    """One follow-up of every tracking provider; the number of messages finished."""
    finished = 0
    for provider in registry.providers():
        if provider.tracks_delivery:
            finished += follow(ctx, provider.name)
    return finished


def follow(ctx: Context, name: str) -> int:
    now = time.time()
    tracker = Tracker(ctx.ledger, name)
    # One run at a time: two would both append the same new events.
    with tracker.lock(max(60.0, ctx.settings.events_interval * 4)) as mine:
        if not mine:
            return 0
        tracker.untrack_older_than(now - ctx.settings.tracking_days * 86400)
        return int(ctx.clients(name).follow_up(tracker, now))
