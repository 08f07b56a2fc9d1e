"""What status callbacks keep in Redis: the callback of each change until it is done, each
message's pending callbacks in stream order, endpoints disabled by a 410, counters.

A callback is queued (`queue`) under its change's stream entry, before that change is
acknowledged, and stays `pending` until it is done: delivered, given up, dropped or refused.
A message with pending callbacks has one place in `due`; `take` leases due messages to one
dispatcher (their due time moves to the lease's end, so a dispatcher that dies mid-call leaves
them to another) with the first of each one's pending callbacks by stream order, whatever
order they were queued in; `retry` sets the next try, `done` ends one and lets the message's
next one in. Counters (`stats`): `pending`, `queued`, `replayed`, the outcomes (`delivered`,
`given_up`, `dropped`, `refused`, `disabled`) and `attempt:<what it got>`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis

from hudhud.worker.ledger import changes, scripts
from hudhud.worker.ledger.keys import (
    CALLBACKS_DISABLED,
    CALLBACKS_DISPATCHERS,
    CALLBACKS_DUE,
    CALLBACKS_GIVEN_UP,
    CALLBACKS_STATS,
    NONE,
    callback_key,
    callback_queue_key,
    msg_key,
)
from hudhud.worker.ledger.records import text as _s

if TYPE_CHECKING:
    from hudhud.worker.ledger import Ledger

DONE_KEPT = 2 * 86400  # seconds a done callback's mark stays (a change read again is not resent)
GIVEN_UP_KEPT = 100  # given-up callbacks listed for `hudhud callbacks status`
DISABLED_KEPT = 1000  # endpoints disabled by a 410 that are remembered (the oldest forgotten)
DISPATCHER_SEEN = 30.0  # seconds a dispatcher counts as running after its last sign of life
RECORD_FIELDS = (
    "key",
    "provider_message_id",
    "cost",
    "currency",
    "at",
    "callback_url",
    "channel",
    "provider",
    "reference",
)
SCRIPTS = ("callback_queue", "callback_take", "callback_retry", "callback_done")


@dataclass(frozen=True)
class Callback:
    """One change's callback: where it goes (`target` '': HUDHUD_CALLBACK_URL at call time)
    and the body it sends, the same on every try."""

    entry: str
    message_id: str
    target: str
    body: str

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.entry}"

    @property
    def place(self) -> str:
        return place_of(self.entry)


def place_of(entry: str) -> str:
    """A stream entry id (`ms-seq`) in a fixed-width form: places sort as the stream does."""
    ms, _, seq = entry.partition("-")
    return f"{int(ms):020d}-{int(seq or 0):020d}"


def entry_of(place: str) -> str:
    ms, _, seq = place.partition("-")
    return f"{int(ms)}-{int(seq or 0)}"


@dataclass(frozen=True)
class Taken:
    """A callback leased to this dispatcher until `lease`."""

    callback: Callback
    attempts: int  # tries made before this one
    lease: float


class CallbackStore:
    def __init__(self, source: Ledger | redis.Redis) -> None:
        client = cast(redis.Redis, getattr(source, "redis", source))
        self.redis = client
        self._scripts = {name: client.register_script(scripts.source(name)) for name in SCRIPTS}

    # --- the message a change is about ------------------------------------------------
    def message_fields(self, message_id: str) -> dict[str, str]:
        """The record's fields a callback needs ({} when the record is gone)."""
        values = self.redis.hmget(msg_key(message_id), RECORD_FIELDS)
        return {name: _s(value) for name, value in zip(RECORD_FIELDS, values, strict=True) if value}

    def changes_since(self, ms: int) -> Iterator[changes.Change]:
        """Every change recorded from the millisecond `ms` on, oldest first."""
        cursor = f"{ms - 1}-18446744073709551615" if ms > 0 else "0-0"  # `after` starts past it
        yield from changes.after(self.redis, cursor)

    # --- the life of a callback -------------------------------------------------------
    def queue(self, callback: Callback, *, due: float, replay: bool = False) -> bool:
        """Keep the callback until it is done (False: it is kept already)."""
        fields = {
            "id": callback.message_id,
            "target": callback.target,
            "body": callback.body,
        }
        args: list[Any] = [callback.place, callback.message_id, repr(due), "1" if replay else "0"]
        args += [item for pair in fields.items() for item in pair]
        keys = [
            callback_key(callback.entry),
            callback_queue_key(callback.message_id),
            CALLBACKS_DUE,
            CALLBACKS_STATS,
        ]
        return bool(self._scripts["callback_queue"](keys=keys, args=args))

    def take(self, *, now: float, lease: float, limit: int) -> list[Taken]:
        """The first pending callback of up to `limit` due messages, leased until `lease`."""
        if limit <= 0:
            return []
        found = self._scripts["callback_take"](keys=[CALLBACKS_DUE], args=[repr(now), repr(lease), limit])
        if not found:
            return []
        messages = [_s(message_id) for message_id in found]
        with self.redis.pipeline(transaction=False) as pipe:
            for message_id in messages:
                pipe.zrange(callback_queue_key(message_id), 0, 0)
            firsts = pipe.execute()
        heads = {m: entry_of(_s(first[0])) for m, first in zip(messages, firsts, strict=True) if first}
        with self.redis.pipeline(transaction=False) as pipe:
            for entry in heads.values():
                pipe.hgetall(callback_key(entry))
            rows = dict(zip(heads, pipe.execute(), strict=True))
        taken = []
        for message_id in messages:
            row = {_s(k): _s(v) for k, v in rows.get(message_id, {}).items()}
            entry = heads.get(message_id, "")
            if row.get("state") != "pending":  # done since by an operator's step: the next is let in
                self._release(message_id, entry, lease, now)
                continue
            callback = Callback(entry, message_id, row.get("target", ""), row.get("body", ""))
            taken.append(Taken(callback, int(row.get("attempts") or 0), lease))
        return taken

    def _release(self, message_id: str, entry: str, lease: float, next_due: float) -> None:
        """Free a leased message whose first callback was done meanwhile (or is missing)."""
        keys = [
            callback_key(entry) if entry else NONE,
            callback_queue_key(message_id),
            CALLBACKS_DUE,
            CALLBACKS_STATS,
        ]
        args: list[str | int] = [
            place_of(entry) if entry else "",
            message_id,
            repr(lease),
            repr(next_due),
            "dropped",
            "",
            DONE_KEPT,
        ]
        self._scripts["callback_done"](keys=keys, args=args)

    def retry(self, taken: Taken, *, at: float, got: str) -> bool:
        """A try that got `got` failed: the next one at `at`."""
        keys = [callback_key(taken.callback.entry), CALLBACKS_DUE, CALLBACKS_STATS]
        args: list[str | int] = [
            taken.callback.message_id,
            repr(taken.lease),
            repr(at),
            taken.attempts + 1,
            got,
            f"attempt:{got}",
        ]
        return bool(self._scripts["callback_retry"](keys=keys, args=args))

    def done(
        self,
        callback: Callback,
        outcome: str,
        *,
        next_due: float,
        lease: float | None = None,
        got: str | None = None,
    ) -> bool:
        """The callback ends with `outcome`; the message's next one is due at `next_due`."""
        keys = [
            callback_key(callback.entry),
            callback_queue_key(callback.message_id),
            CALLBACKS_DUE,
            CALLBACKS_STATS,
        ]
        args: list[str | int] = [
            callback.place,
            callback.message_id,
            "" if lease is None else repr(lease),
            repr(next_due),
            outcome,
            f"attempt:{got}" if got else "",
            DONE_KEPT,
        ]
        return bool(self._scripts["callback_done"](keys=keys, args=args))

    def give_up_note(self, note: Mapping[str, Any]) -> None:
        """Remember a given-up callback (no URL, nothing personal) for `status`."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(CALLBACKS_GIVEN_UP, json.dumps(dict(note), sort_keys=True))
            pipe.ltrim(CALLBACKS_GIVEN_UP, 0, GIVEN_UP_KEPT - 1)
            pipe.execute()

    def count(self, counter: str, by: int = 1) -> None:
        self.redis.hincrby(CALLBACKS_STATS, counter, by)

    # --- endpoints that answered 410 ----------------------------------------------------
    def disable(self, endpoint: str, note: Mapping[str, Any]) -> bool:
        """False when it was disabled already. Past DISABLED_KEPT endpoints, the oldest is
        forgotten."""
        if not self.redis.hsetnx(CALLBACKS_DISABLED, endpoint, json.dumps(dict(note), sort_keys=True)):
            return False
        if int(cast(int, self.redis.hlen(CALLBACKS_DISABLED))) > DISABLED_KEPT:
            kept = sorted(self.disabled().items(), key=lambda item: float(item[1].get("at") or 0))
            extra = [name for name, _note in kept[: len(kept) - DISABLED_KEPT] if name != endpoint]
            if extra:
                self.redis.hdel(CALLBACKS_DISABLED, *extra)
        return True

    def is_disabled(self, endpoint: str) -> bool:
        return bool(self.redis.hexists(CALLBACKS_DISABLED, endpoint))

    def disabled(self) -> dict[str, dict[str, Any]]:
        """Disabled endpoints: URL or origin -> what disabled it."""
        raw: Any = self.redis.hgetall(CALLBACKS_DISABLED)
        return {_s(url): json.loads(_s(note)) for url, note in raw.items()}

    def enable(self, endpoint: str) -> bool:
        return bool(self.redis.hdel(CALLBACKS_DISABLED, endpoint))

    # --- what `status` and `check` show -------------------------------------------------
    def stats(self) -> dict[str, int]:
        raw: Any = self.redis.hgetall(CALLBACKS_STATS)
        return {_s(k): int(v) for k, v in raw.items()}

    def given_up(self, count: int = 10) -> list[dict[str, Any]]:
        return [json.loads(_s(item)) for item in self.redis.lrange(CALLBACKS_GIVEN_UP, 0, count - 1)]

    def waiting(self, now: float) -> tuple[int, int]:
        """Messages whose first pending callback is due now, and those waiting for a later
        try (or a lease's end)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(CALLBACKS_DUE, "-inf", repr(now))
            pipe.zcount(CALLBACKS_DUE, f"({now!r}", "+inf")
            due_now, later = pipe.execute()
        return int(due_now), int(later)

    def alive(self, dispatcher: str, now: float) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(CALLBACKS_DISPATCHERS, {dispatcher: now})
            pipe.zremrangebyscore(CALLBACKS_DISPATCHERS, "-inf", repr(now - 10 * DISPATCHER_SEEN))
            pipe.execute()

    def gone(self, dispatcher: str) -> None:
        self.redis.zrem(CALLBACKS_DISPATCHERS, dispatcher)

    def dispatchers(self, now: float) -> list[str]:
        found = self.redis.zrangebyscore(CALLBACKS_DISPATCHERS, repr(now - DISPATCHER_SEEN), "+inf")
        return [_s(name) for name in found]
