"""Each provider's recent call outcomes, counted in buckets of time, and email moves between
providers (`move_provider.lua`).

A call is counted `ok` (the provider answered) or `failed` (a 5xx, a timeout, a retryable
fault); a rejection of bad input is the sender's fault and counts as neither.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hudhud.worker.ledger import scripts
from hudhud.worker.ledger.keys import FAILOVER_STATS, calls_key, events_key, msg_key
from hudhud.worker.ledger.records import iso
from hudhud.worker.ledger.status import WAITING

if TYPE_CHECKING:
    from hudhud.worker.ledger import Ledger

BUCKET = 10  # seconds per bucket of counts


@dataclass(frozen=True)
class Calls:
    ok: int
    failed: int

    @property
    def total(self) -> int:
        return self.ok + self.failed

    def failing(self, share: float, min_calls: int) -> bool:
        """Whether more than `share` of at least `min_calls` calls failed."""
        return self.total >= max(1, min_calls) and self.failed > share * self.total


OK, NOT_OK = "ok", "not_ok"  # the fields of a bucket: calls answered, calls that failed


def record_call(ledger: Ledger, provider: str, *, ok: bool, window: float, now: float | None = None) -> None:
    bucket = int((time.time() if now is None else now) // BUCKET)
    key = calls_key(provider, bucket)
    pipe = ledger.redis.pipeline(transaction=True)
    pipe.hincrby(key, OK if ok else NOT_OK, 1)
    pipe.expire(key, int(window) + 2 * BUCKET)
    pipe.execute()


def recent_calls(ledger: Ledger, provider: str, *, window: float, now: float | None = None) -> Calls:
    """The provider's call outcomes over the last `window` seconds (to the bucket)."""
    last = int((time.time() if now is None else now) // BUCKET)
    first = last - max(0, int(window) // BUCKET - 1)
    pipe = ledger.redis.pipeline(transaction=False)
    for bucket in range(first, last + 1):
        pipe.hmget(calls_key(provider, bucket), OK, NOT_OK)
    ok = failed = 0
    for row in pipe.execute():
        ok += int(row[0] or 0)
        failed += int(row[1] or 0)
    return Calls(ok, failed)


def move_or_refusal(
    ledger: Ledger,
    message_id: str,
    to: str,
    *,
    reason: str,
    now: float,
    afresh: bool = False,
    payload: str = "",
) -> tuple[bool, str]:
    """Move a waiting, unpinned, never-moved email to provider `to`: (True, the provider it
    left) or (False, why not: missing, pinned, in_doubt, moved, status, same)."""
    script = ledger.redis.register_script(scripts.source("move_provider"))
    waiting = ",".join(sorted(str(s) for s in WAITING))
    answer = script(
        keys=[msg_key(message_id), events_key(message_id), FAILOVER_STATS],
        args=[to, reason, iso(now), "1" if afresh else "", waiting, payload],
    )
    outcome, detail = (x.decode() if isinstance(x, bytes) else str(x) for x in answer)
    return outcome == "moved", detail


def failover_stats(ledger: Ledger) -> dict[str, int]:
    raw = ledger.redis.hgetall(FAILOVER_STATS)
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


def fields_of(ledger: Ledger, message_id: str, *names: str) -> list[str | None]:
    """Fields of a message's record, None for those it lacks."""
    row = ledger.redis.hmget(msg_key(message_id), list(names))
    return [v.decode() if isinstance(v, bytes) else v for v in row]
