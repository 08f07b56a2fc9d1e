"""The ledger's indexes (sorted sets of message ids): beat's sweeps over them and their reads.

A sweep reads its candidates first, then one script checks each again (still in the index,
still due) and moves it: the script is given every key it touches, as Redis Cluster needs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import redis
from redis.commands.core import Script

from hudhud.worker.ledger import lanes
from hudhud.worker.ledger.keys import (
    CHANGES,
    DOUBT,
    EXPIRIES,
    GONE,
    LEASES,
    QUEUED,
    SCHEDULED,
    TRACKING,
    events_key,
    held_key,
    msg_key,
    short_key,
)
from hudhud.worker.ledger.records import Sweep, iso
from hudhud.worker.ledger.records import text as _s
from hudhud.worker.ledger.status import WAITING, Status

GONE_KEEP = 1000
GONE_TTL = 7 * 86400


class Indexes:
    """The index side of `Ledger` (which it is mixed into)."""

    redis: redis.Redis
    changes_maxlen: int
    lease_seconds: int
    retention_seconds: int
    _release: Script
    _requeue: Script
    _expired: Script
    _expire_due: Script

    def _fields(self, message_ids: Iterable[str], name: str) -> list[str | None]:
        """One field of each record (None where the record or the field is absent)."""
        pipe = self.redis.pipeline(transaction=False)
        for mid in message_ids:
            pipe.hget(msg_key(mid), name)
        return [None if s is None else _s(s) for s in pipe.execute()]

    def _indexes(self, provider: str) -> list[str]:
        name = provider or "none"
        return [LEASES, QUEUED, SCHEDULED, held_key(name), TRACKING, DOUBT, short_key(name)]

    def _index(self, zset: str, provider: str) -> str:
        """The key of a named index: queued, scheduled, held, tracking, doubt or short."""
        name = provider or "none"
        return {
            "queued": QUEUED,
            "scheduled": SCHEDULED,
            "held": held_key(name),
            "tracking": TRACKING,
            "doubt": DOUBT,
            "short": short_key(name),
        }[zset]

    # --- beat's sweeps -----------------------------------------------------------
    def release_due(self, *, until: float, now: float, count: int = 500) -> Sweep:
        """Scheduled (or backed-off) messages due before `until`, moved to `queued`:
        items (id, channel, provider, due, lane)."""
        return self._release_from(SCHEDULED, until, now, count, "due", WAITING)

    def release_held(self, zset_key: str, *, now: float, count: int = 1000) -> Sweep:
        """Messages waiting in `zset_key` (a held or short index), moved to `queued`."""
        return self._release_from(zset_key, "+inf", now, count, "now", {Status.QUEUED})

    def _release_from(
        self, source: str, limit: float | str, now: float, count: int, mode: str, accept: Collection[Status]
    ) -> Sweep:
        ids = self._due(source, limit, count)
        if not ids:
            return Sweep([], [])
        keys = [source, QUEUED, CHANGES, *(k for mid in ids for k in (msg_key(mid), events_key(mid)))]
        args = [limit, now, iso(now), mode, ",".join(sorted(accept)), self.changes_maxlen, *ids]
        return self._sweep(self._release(keys=keys, args=args), 5)

    def _due(self, zset: str, limit: float | str, count: int) -> list[str]:
        """The first `count` members of `zset` scored up to `limit`: the candidates a beat
        script then checks again, as another caller may have moved them meanwhile."""
        return [_s(m) for m in self.redis.zrangebyscore(zset, "-inf", limit, start=0, num=count)]

    def requeue_stale(
        self, *, older_than: float, now: float, count: int = 1000, hard_limit: float | None = None
    ) -> Sweep:
        """Queued messages overdue since `older_than` -> items (id, channel, provider, lane).
        Those whose broker queue is not empty wait, unless overdue since `hard_limit` too."""
        limit = older_than if hard_limit is None else hard_limit
        ids = self._due(QUEUED, older_than, count)
        if not ids:
            return Sweep([], [])
        # a message's channel and lane never change: read apart, they name the broker queue to look at
        channels, lanes_ = self._fields(ids, "channel"), self._fields(ids, "lane")
        queues = [
            lanes.queue(c, lanes.lane_or_default(la)) if c else ""
            for c, la in zip(channels, lanes_, strict=True)
        ]
        keys = [QUEUED, *(k for mid, queue in zip(ids, queues, strict=True) for k in (msg_key(mid), queue))]
        return self._sweep(self._requeue(keys=keys, args=[older_than, now, limit, *ids]), 4)

    def expired_leases(self, *, now: float, count: int = 200) -> Sweep:
        """Claims whose lease ran out -> items (id, provider, attempts, channel, lane)."""
        ids = self._due(LEASES, now, count)
        if not ids:
            return Sweep([], [])
        keys = [LEASES, *(msg_key(mid) for mid in ids)]
        return self._sweep(self._expired(keys=keys, args=[now, now + self.lease_seconds, *ids]), 5)

    def expire_due(
        self, *, now: float, providers: Iterable[str] = (), count: int = 500, skip: int = 0
    ) -> tuple[list[str], int, int]:
        """Messages whose expiry passed while they wait, ended `expired` (out of every index,
        `providers`' held and short ones among them); entries of messages no longer waiting
        dropped. `skip`: entries to pass over (those kept by an earlier call). Returns the ids
        ended, the entries kept (in a provider call: they may come back to wait) and how many
        were read."""
        ids = [_s(m) for m in self.redis.zrangebyscore(EXPIRIES, "-inf", now, start=skip, num=count)]
        if not ids:
            return [], 0, 0
        names = {*providers, *(p for p in self._fields(ids, "provider") if p)}
        waiting = [key for name in sorted(names) for key in (held_key(name), short_key(name))]
        keys = [EXPIRIES, SCHEDULED, QUEUED, CHANGES, *waiting]
        keys += [k for mid in ids for k in (msg_key(mid), events_key(mid))]
        args: list[Any] = [now, iso(now), self.retention_seconds, self.changes_maxlen, len(waiting), *ids]
        ended, kept = self._expire_due(keys=keys, args=args)
        return [_s(e) for e in ended], int(kept), len(ids)

    def _sweep(self, reply: Any, width: int) -> Sweep:
        flat, gone = reply[0], [_s(g) for g in reply[1]]
        items = [tuple(_s(x) for x in flat[i : i + width]) for i in range(0, len(flat), width)]
        if gone:
            pipe = self.redis.pipeline(transaction=False)
            pipe.lpush(GONE, *gone)
            pipe.ltrim(GONE, 0, GONE_KEEP - 1)
            pipe.expire(GONE, GONE_TTL)
            pipe.execute()
        return Sweep(items, gone)

    def gone(self) -> list[str]:
        """Ids recently found in an index without their record."""
        return [_s(g) for g in self.redis.lrange(GONE, 0, -1)]

    def in_index(self, zset: str, provider: str = "", *, limit: int = 1000) -> list[tuple[str, float]]:
        """(id, score) of the messages in a named index, oldest first."""
        rows: Any = self.redis.zrange(self._index(zset, provider), 0, limit - 1, withscores=True)
        return [(_s(row[0]), float(row[1])) for row in rows]

    def is_in(self, zset: str, message_id: str, provider: str = "") -> bool:
        """Whether a message sits in a named index."""
        return self.redis.zscore(self._index(zset, provider), message_id) is not None

    def tracked(self, *, limit: int = 200) -> list[str]:
        return [_s(m) for m in self.redis.zrange(TRACKING, 0, limit - 1)]

    def untrack_older_than(self, cutoff: float) -> int:
        return int(self.redis.zremrangebyscore(TRACKING, "-inf", cutoff))

    def held_count(self, provider: str) -> int:
        return int(self.redis.zcard(held_key(provider)))

    def counts(self, providers: Iterable[str] = ()) -> dict[str, int]:
        """The size of each index, with each of `providers`' held and short-of-balance ones
        (`held_{provider}`, `short_of_balance_{provider}`)."""
        chosen = list(providers)
        keyed = {
            "scheduled": SCHEDULED,
            "queued": QUEUED,
            "sending": LEASES,
            "tracking": TRACKING,
            "in_doubt_awaiting_decision": DOUBT,
            **{f"held_{name}": held_key(name) for name in chosen},
            **{f"short_of_balance_{name}": short_key(name) for name in chosen},
        }
        pipe = self.redis.pipeline(transaction=False)
        for key in keyed.values():
            pipe.zcard(key)
        return dict(zip(keyed, (int(n) for n in pipe.execute()), strict=True))
