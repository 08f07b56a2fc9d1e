"""Where a message due at a given time waits: the one decision of now, ETA or parking.

- due now (or past): a task on its channel's queue, to run at once;
- due within the window (`park_after`, at most half the broker's visibility timeout): the
  same task with an ETA, which a worker holds until the due time;
- due later: parked in the ledger's `scheduled` index until beat releases it. An ETA task
  far ahead would sit in a worker's memory and be handed out again once it outlived the
  visibility timeout.

The ledger places a record by it when it writes a due time; the broker's enqueue pushes by it.
"""

from __future__ import annotations

from enum import StrEnum

SOON = 0.05  # seconds: a due time closer than this is now


class Placement(StrEnum):
    NOW = "now"  # on its queue, to run at once
    ETA = "eta"  # on its queue, held by a worker until due
    PARK = "park"  # in the ledger's `scheduled` index, for beat to release


def placement(due: float | None, now: float, window: float) -> Placement:
    """Where a message due at `due` waits, `window` being the ledger's `park_after`."""
    if due is None or due <= now + SOON:
        return Placement.NOW
    if due - now <= window:
        return Placement.ETA
    return Placement.PARK
