"""`hudhud callbacks replay --since ISO`: the callbacks of every change recorded since then
queued again, with their first `webhook-id`s (a receiver that kept them sees repeats)."""

from __future__ import annotations

import time
from datetime import datetime

from hudhud.config import Settings
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger.callbacks import CallbackStore
from hudhud.worker.web.callbacks import intake, schedule


def since_ms(text: str) -> int:
    """An ISO 8601 time with an offset or `Z`, in epoch milliseconds (a stream id's time)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput("since", "must be an ISO 8601 time, e.g. 2026-01-31T08:00:00Z") from exc
    if moment.tzinfo is None:
        raise InvalidInput("since", "must carry an offset or Z")
    return max(0, int(moment.timestamp() * 1000))


def replay(store: CallbackStore, settings: Settings, since: str) -> dict[str, int]:
    """Queue again; how many were queued, pending still, without an endpoint, or disabled."""
    start = since_ms(since)
    first_wait = schedule.of(settings)[0]
    counts = {"queued": 0, "pending": 0, intake.NO_ENDPOINT.replace(" ", "_"): 0, intake.DISABLED: 0}
    for change in store.changes_since(start):
        prepared = intake.prepare(change, store, settings)
        if prepared.callback is None:
            counts[prepared.why_not.replace(" ", "_")] += 1
            if prepared.why_not == intake.DISABLED:
                store.count("dropped")
        elif store.queue(prepared.callback, due=time.time() + first_wait, replay=True):
            counts["queued"] += 1
        else:
            counts["pending"] += 1
    return counts
