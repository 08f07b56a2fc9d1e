"""What hudhud is doing, read from the ledger as plain data: the figures behind the metrics,
`hudhud top` and the operator page.

Nothing here writes but `note_in_doubt` and `remember_balance`, which keep what no index
holds. Status changes are counted by `change.lua` as it appends them to the change stream, so
the counts equal the stream and the records. A queue's oldest task is the last item of its
list (kombu pushes on the left and takes from the right); its age comes from the time
hudhud's enqueue wrote into it, or from when this process first saw it there (a foreign
producer's task carries no time).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.inspect import KOMBU_SEP, PRIORITY_STEPS, queue_depths
from hudhud.worker.ledger.keys import (
    CALLBACKS_STATS,
    DOUBT,
    FAILOVER_STATS,
    SCHEDULED,
    STATS_IN_DOUBT,
    STATS_MESSAGES,
    STATS_RECIPIENTS,
    STATS_SEND,
    balance_key,
    held_key,
    pause_key,
)
from hudhud.worker.ledger.lanes import DELIVERY_QUEUES, QUEUED_AT, lane_of

ATTEMPT = "attempt:"  # a callback try's counter in `cb:stats`: `attempt:<what it got>`
# The upper bounds of the send histogram's buckets, as `change.lua` counts them (SEND_BUCKETS).
SEND_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
_first_seen: dict[str, tuple[str, float]] = {}  # queue -> (delivery tag, when first seen)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (upper bound -> count at or below it), their sum and count."""

    buckets: list[tuple[float, int]]
    sum: float
    count: int


@dataclass(frozen=True)
class QueueState:
    name: str
    lane: str
    depth: int
    oldest_age: float  # seconds; 0 when empty


@dataclass(frozen=True)
class ProviderState:
    name: str
    paused: bool
    pause: dict[str, Any] | None
    held: int
    balance: dict[str, Any] | None


@dataclass
class Snapshot:
    """One reading of everything, taken in a few round trips."""

    at: float
    messages: dict[tuple[str, str, str], int] = field(default_factory=dict)
    recipients: dict[tuple[str, str, str], int] = field(default_factory=dict)
    send: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    queues: list[QueueState] = field(default_factory=list)
    providers: list[ProviderState] = field(default_factory=list)
    scheduled: int = 0
    in_doubt_total: int = 0
    in_doubt_waiting: int = 0
    callbacks_pending: int = 0
    callback_attempts: dict[str, int] = field(default_factory=dict)
    failover_moves: dict[tuple[str, str, str], int] = field(default_factory=dict)


def _series(raw: dict[Any, Any]) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = {}
    for key, value in raw.items():
        parts = _s(key).split("|")
        if len(parts) == 3:
            out[(parts[0], parts[1], parts[2])] = int(value)
    return out


def _histograms(raw: dict[Any, Any]) -> dict[tuple[str, str], Histogram]:
    grouped: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in raw.items():
        parts = _s(key).split("|")
        if len(parts) == 3:
            grouped.setdefault((parts[0], parts[1]), {})[parts[2]] = _s(value)
    out = {}
    for series, fields in grouped.items():
        sum_ = float(fields.pop("sum", 0) or 0)
        count = int(fields.pop("count", 0) or 0)
        counted = {float(le): int(n) for le, n in fields.items()}
        running, buckets = 0, []
        for bound in (*SEND_BUCKETS, float("inf")):
            running += counted.get(bound, 0)
            buckets.append((bound, running))
        out[series] = Histogram(buckets, sum_, count)
    return out


def _moves(raw: dict[Any, Any]) -> dict[tuple[str, str, str], int]:
    out = {}
    for key, value in raw.items():
        route, _, reason = _s(key).partition(":")
        old, _, new = route.partition(">")
        out[(old, new, reason)] = int(value)
    return out


def snapshot(ledger: Ledger, providers: Iterable[str], *, now: float | None = None) -> Snapshot:
    """Every figure at once (`providers`: the names whose pause, held count and balance to read)."""
    now = time.time() if now is None else now
    names = list(providers)
    pipe = ledger.redis.pipeline(transaction=False)
    for key in (STATS_MESSAGES, STATS_RECIPIENTS, STATS_SEND, CALLBACKS_STATS, FAILOVER_STATS):
        pipe.hgetall(key)
    pipe.zcard(SCHEDULED)
    pipe.get(STATS_IN_DOUBT)
    pipe.zcard(DOUBT)
    for name in names:
        pipe.get(pause_key(name))
        pipe.zcard(held_key(name))
        pipe.hgetall(balance_key(name))
    replies = pipe.execute()
    messages, recipients, send, callbacks, moves, scheduled, doubted, waiting = replies[:8]
    shot = Snapshot(
        at=now,
        messages=_series(messages),
        recipients=_series(recipients),
        send=_histograms(send),
        scheduled=int(scheduled),
        in_doubt_total=int(doubted or 0),
        in_doubt_waiting=int(waiting),
        callbacks_pending=max(0, int(callbacks.get(b"pending", 0))),
        callback_attempts={
            _s(k)[len(ATTEMPT) :]: int(v) for k, v in callbacks.items() if _s(k).startswith(ATTEMPT)
        },
        failover_moves=_moves(moves),
    )
    rest = replies[8:]
    for i, name in enumerate(names):
        pause, held, balance = rest[3 * i : 3 * i + 3]
        shot.providers.append(_provider(name, pause, held, balance))
    shot.queues = queues(ledger, now=now)
    return shot


def _provider(name: str, pause: Any, held: Any, balance: Any) -> ProviderState:
    reason = dict(json.loads(_s(pause))) if pause is not None else None
    read = {_s(k): _s(v) for k, v in balance.items()} if balance else None
    return ProviderState(name, reason is not None, reason, int(held), read)


def queues(
    ledger: Ledger, *, now: float | None = None, known: Iterable[str] = DELIVERY_QUEUES
) -> list[QueueState]:
    """Each delivery queue (and every other bound one): depth and the age of its oldest task."""
    now = time.time() if now is None else now
    depths = queue_depths(ledger, known)
    pipe = ledger.redis.pipeline(transaction=False)
    names = list(depths)
    for name in names:
        for step in PRIORITY_STEPS:
            pipe.lindex(f"{name}{KOMBU_SEP}{step}" if step else name, -1)
    tails = pipe.execute(raise_on_error=False)
    width = len(PRIORITY_STEPS)
    out = []
    for i, name in enumerate(names):
        oldest = [t for t in tails[i * width : (i + 1) * width] if isinstance(t, bytes | str)]
        ages = [_age(name, item, now) for item in oldest]
        out.append(QueueState(name, str(lane_of(name)), depths[name], max(ages, default=0.0)))
    return out


def _age(queue: str, item: Any, now: float) -> float:
    try:
        message = json.loads(_s(item))
        headers = message.get("headers") or {}
        tag = str((message.get("properties") or {}).get("delivery_tag", ""))
    except (ValueError, AttributeError):
        return 0.0
    since = headers.get(QUEUED_AT)
    try:
        return max(0.0, now - float(since)) if since is not None else _seen_since(queue, tag, now)
    except (TypeError, ValueError):
        return _seen_since(queue, tag, now)


def _seen_since(queue: str, tag: str, now: float) -> float:
    seen = _first_seen.get(queue)
    if seen is None or seen[0] != tag:
        _first_seen[queue] = (tag, now)
        return 0.0
    return max(0.0, now - seen[1])


# --- the two things kept only for these figures ---------------------------------------------


def note_in_doubt(ledger: Ledger) -> None:
    ledger.redis.incr(STATS_IN_DOUBT)


def remember_balance(ledger: Ledger, provider: str, amount: str, currency: str, *, now: float) -> None:
    ledger.redis.hset(
        balance_key(provider), mapping={"amount": amount, "currency": currency, "at": repr(now)}
    )
