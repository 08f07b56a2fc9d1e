"""What status callbacks keep in Redis: the callback of each change until it is done, each
message's callbacks in order, endpoints disabled by a 410, counters.

A callback is queued (`queue`) under its change's stream entry, before that change is
acknowledged, and stays `pending` until it is done: delivered, given up, dropped or refused.
Only the first pending callback of a message is in `due`; `take` leases due callbacks to one
dispatcher (their due time moves to the lease's end, so a dispatcher that dies mid-call leaves
them to another); `retry` sets the next try, `done` ends one and lets the message's next one
in. Counters (`stats`): `pending`, `queued`, `replayed`, the outcomes (`delivered`,
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
    callback_key,
    callback_queue_key,
    msg_key,
)
from hudhud.worker.ledger.records import text as _s

if TYPE_CHECKING:
    from hudhud.worker.ledger import Ledger

DONE_KEPT = 2 * 86400  # seconds a done callback's mark stays (a change read again is not resent)
GIVEN_UP_KEPT = 100  # given-up callbacks listed for `hudhud callbacks status`
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
        args: list[Any] = [callback.entry, repr(due), "1" if replay else "0"]
        args += [item for pair in fields.items() for item in pair]
        keys = [
            callback_key(callback.entry),
            callback_queue_key(callback.message_id),
            CALLBACKS_DUE,
            CALLBACKS_STATS,
        ]
        return bool(self._scripts["callback_queue"](keys=keys, args=args))

    def take(self, *, now: float, lease: float, limit: int) -> list[Taken]:
        """Up to `limit` due callbacks, leased until `lease`."""
        if limit <= 0:
            return []
        entries = self._scripts["callback_take"](keys=[CALLBACKS_DUE], args=[repr(now), repr(lease), limit])
        if not entries:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.hgetall(callback_key(_s(entry)))
            rows = pipe.execute()
        taken = []
        for raw_entry, raw in zip(entries, rows, strict=True):
            row = {_s(k): _s(v) for k, v in raw.items()}
            if row.get("state") != "pending":
                continue  # done by another step since: `done` with no lease removes it
            callback = Callback(_s(raw_entry), row.get("id", ""), row.get("target", ""), row.get("body", ""))
            taken.append(Taken(callback, int(row.get("attempts") or 0), lease))
        return taken

    def retry(self, taken: Taken, *, at: float, got: str) -> bool:
        """A try that got `got` failed: the next one at `at`."""
        keys = [callback_key(taken.callback.entry), CALLBACKS_DUE, CALLBACKS_STATS]
        args: list[str | int] = [
            taken.callback.entry,
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
            callback.entry,
            "" if lease is None else repr(lease),
            repr(next_due),
            outcome,
            f"attempt:{got}" if got else "",
            DONE_KEPT,
        ]
        return bool(self._scripts["callback_done"](keys=keys, args=args))

    def heads(self) -> Iterator[Callback]:
        """The first pending callback of every message (those in `due`)."""
        cursor = 0
        while True:
            cursor, found = self.redis.zscan(CALLBACKS_DUE, cursor, count=500)
            entries = [_s(entry) for entry, _score in found]
            if entries:
                with self.redis.pipeline(transaction=False) as pipe:
                    for entry in entries:
                        pipe.hmget(callback_key(entry), ["id", "target", "state"])
                    rows = pipe.execute()
                for entry, (message_id, target, state) in zip(entries, rows, strict=True):
                    if state is not None and _s(state) == "pending":
                        yield Callback(entry, _s(message_id or b""), _s(target or b""), "")
            if not cursor:
                return

    def give_up_note(self, note: Mapping[str, Any]) -> None:
        """Remember a given-up callback (no URL, nothing personal) for `status`."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(CALLBACKS_GIVEN_UP, json.dumps(dict(note), sort_keys=True))
            pipe.ltrim(CALLBACKS_GIVEN_UP, 0, GIVEN_UP_KEPT - 1)
            pipe.execute()

    def count(self, counter: str, by: int = 1) -> None:
        self.redis.hincrby(CALLBACKS_STATS, counter, by)

    # --- endpoints that answered 410 ----------------------------------------------------
    def disable(self, url: str, note: Mapping[str, Any]) -> bool:
        """False when it was disabled already."""
        return bool(self.redis.hsetnx(CALLBACKS_DISABLED, url, json.dumps(dict(note), sort_keys=True)))

    def is_disabled(self, url: str) -> bool:
        return bool(self.redis.hexists(CALLBACKS_DISABLED, url))

    def disabled(self) -> dict[str, dict[str, Any]]:
        """Disabled endpoints: URL -> what disabled it."""
        raw: Any = self.redis.hgetall(CALLBACKS_DISABLED)
        return {_s(url): json.loads(_s(note)) for url, note in raw.items()}

    def enable(self, url: str) -> bool:
        return bool(self.redis.hdel(CALLBACKS_DISABLED, url))

    # --- what `status` and `check` show -------------------------------------------------
    def stats(self) -> dict[str, int]:
        raw: Any = self.redis.hgetall(CALLBACKS_STATS)
        return {_s(k): int(v) for k, v in raw.items()}

    def given_up(self, count: int = 10) -> list[dict[str, Any]]:
        return [json.loads(_s(item)) for item in self.redis.lrange(CALLBACKS_GIVEN_UP, 0, count - 1)]

    def waiting(self, now: float) -> tuple[int, int]:
        """Message heads due now, and those waiting for a later try (or a lease's end)."""
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
