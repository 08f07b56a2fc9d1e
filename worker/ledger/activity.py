"""The last hour of sending, read from the change stream: hand-overs and failures minute by
minute, the latest failures, and the messages in doubt that wait for an operator.

The change stream's entry ids are the milliseconds Redis recorded each change at, so a time
range is an id range (`XRANGE` from `<ms>` to `+`). Only fields without personal data are
read; a change's error words are the provider's, as the ledger keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.changes import Change, newest_first
from hudhud.worker.ledger.keys import CHANGES, DOUBT, msg_key
from hudhud.worker.ledger.records import iso
from hudhud.worker.ledger.records import text as _s
from hudhud.worker.ledger.status import Status

HANDED_OVER = frozenset({Status.SENT})
FAILED = frozenset({Status.FAILED, Status.REJECTED, Status.BOUNCED})
PAGE = 1000
MINUTE = 60.0
DOUBT_FIELDS = ("channel", "provider", "error", "updated_at")


@dataclass(frozen=True)
class Minute:
    """One minute of the change stream: messages handed over and messages that failed."""

    start: float  # seconds since the epoch
    sent: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Doubt:
    """A message whose hand-over is in doubt and waits for an operator's decision."""

    id: str
    channel: str
    provider: str
    error: str
    at: str


def _entries(ledger: Ledger, start: str, end: str = "+") -> Iterator[tuple[str, dict[Any, Any]]]:
    """The stream's entries from `start` to `end`, oldest first, read in pages."""
    cursor = start
    while True:
        page: Any = ledger.redis.xrange(CHANGES, cursor, end, count=PAGE)
        for entry, fields in page:
            yield _s(entry), fields
        if len(page) < PAGE:
            return
        cursor = f"({_s(page[-1][0])}"


def _millis(entry: str) -> int:
    return int(entry.partition("-")[0])


def per_minute(ledger: Ledger, *, now: float, minutes: int = 60) -> list[Minute]:
    """The last `minutes` whole minutes up to the current one, oldest first."""
    first = (math.floor(now / MINUTE) - minutes + 1) * MINUTE
    sent = [0] * minutes
    failed = [0] * minutes
    for entry, fields in _entries(ledger, str(int(first * 1000))):
        slot = int((_millis(entry) / 1000 - first) // MINUTE)
        if not 0 <= slot < minutes:
            continue
        status = _s(fields.get(b"status", fields.get("status", "")))
        if status in HANDED_OVER:
            sent[slot] += 1
        elif status in FAILED:
            failed[slot] += 1
    return [Minute(first + i * MINUTE, sent[i], failed[i]) for i in range(minutes)]


def latest_failures(ledger: Ledger, *, limit: int = 20, scan: int = 5000) -> list[Change]:
    """The last `limit` changes to a failed, rejected or bounced status among the last `scan`
    changes, newest first."""
    found: list[Change] = []
    for entry, fields in newest_first(ledger, scan=scan):
        change = _change(entry, fields)
        if change is not None and change.status in FAILED:
            found.append(change)
            if len(found) == limit:
                break
    return found


def _change(entry: Any, fields: dict[Any, Any]) -> Change | None:
    try:
        return Change.from_entry(entry, fields)
    except ValueError:
        return None


def in_doubt(ledger: Ledger, *, limit: int = 20) -> list[Doubt]:
    """The messages in doubt that wait for a decision, the longest waiting first."""
    rows: Any = ledger.redis.zrange(DOUBT, 0, limit - 1, withscores=True)
    pipe = ledger.redis.pipeline(transaction=False)
    for member, _score in rows:
        pipe.hmget(msg_key(_s(member)), *DOUBT_FIELDS)
    out = []
    for (member, score), values in zip(rows, pipe.execute() if rows else [], strict=True):
        channel, provider, error, updated = (_s(v) if v is not None else "" for v in values)
        out.append(Doubt(_s(member), channel, provider, error, updated or iso(float(score))))
    return out
