"""The message ledger in Redis: one record per message, its history, and the atomic claims.

Every key is built in `keys.py`, which lists them; statuses are `status.Status`.

Every transition is one Lua script, so a record is never half-written and a message is
claimed for a provider call by one worker only.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from hudhud.worker.ledger import scripts
from hudhud.worker.ledger.fingerprint import Fingerprints
from hudhud.worker.ledger.keys import (
    DOUBT,
    GONE,
    LEASES,
    PREFIX,
    QUEUED,
    SCHEDULED,
    TRACKING,
    events_key,
    held_key,
    idem_key,
    msg_key,
    pause_key,
    rate_key,
    short_key,
    slow_key,
)
from hudhud.worker.ledger.status import ERASE_AT, FINAL, WAITING
from hudhud.worker.ledger.status import ClaimOutcome as ClaimOutcome
from hudhud.worker.ledger.status import Status as Status

FINAL_STATUSES = FINAL
GONE_KEEP = 1000
GONE_TTL = 7 * 86400
SAFETY_DAYS = 7  # a live record outlives its retention by this much before Redis drops it
CANCELLABLE = ",".join(sorted(WAITING))


def op_token() -> str:
    """A token for one script call, so that the call sent again recognizes its first run."""
    return uuid.uuid4().hex


@functools.lru_cache(maxsize=256)
def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(kind: str, at: float, **extra: Any) -> str:
    fields = {k: v for k, v in extra.items() if v is not None}
    if not fields:
        return _plain_event(kind, at)
    return json.dumps({"type": kind, "at": iso(at), **fields}, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _plain_event(kind: str, at: float) -> str:
    return json.dumps({"type": kind, "at": iso(at)}, separators=(",", ":"))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class NewMessage:
    """A validated message ready to be recorded."""

    id: str
    channel: str
    provider: str
    payload: Mapping[str, Any]
    request_hash: str
    key: str | None = None
    due: float | None = None  # epoch seconds when scheduled
    retry_of: str | None = None
    status: str = "queued"


@dataclass(frozen=True)
class Created:
    outcome: str  # created | duplicate | exists | conflict
    id: str
    status: str


@dataclass(frozen=True)
class Claim:
    outcome: str  # claimed | skip | missing | held | wait
    attempts: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    channel: str = ""
    provider: str = ""
    in_doubt: bool = False
    status: str = ""
    wait: float = 0.0
    resends: int = 0  # in-doubt resends already made
    reconcile: bool = False  # ask the provider what it has before sending again
    reconciled: dict[str, str] = field(default_factory=dict)  # recipient -> provider id found
    probe: bool = False  # the first claim after the provider asked every caller to slow down
    free_tries: int = 0  # tries that spent no attempt (nothing was sent): they drive the back-off


@dataclass(frozen=True)
class Sweep:
    """What a beat move found: the items it moved, and ids whose record is gone."""

    items: list[tuple[str, ...]]
    gone: list[str]


class Ledger:
    """The record of every message, in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        retention_seconds: int,
        idempotency_ttl: int,
        lease_seconds: int,
        park_after: float = 60.0,
        tracking_seconds: int = 7 * 86400,
        data_key: str | None = None,
    ) -> None:
        self.redis = client
        self.fingerprints = Fingerprints(client, data_key)
        self.park_after = park_after
        self.tracking_seconds = tracking_seconds
        self.retention_seconds = retention_seconds
        self.idempotency_ttl = idempotency_ttl
        self.lease_seconds = lease_seconds
        self._create = client.register_script(scripts.CREATE)
        self._create_many = client.register_script(scripts.CREATE_MANY)
        self._claim = client.register_script(scripts.CLAIM)
        self._transition = client.register_script(scripts.TRANSITION)
        self._release = client.register_script(scripts.RELEASE)
        self._requeue = client.register_script(scripts.REQUEUE)
        self._expired = client.register_script(scripts.EXPIRED_LEASES)
        self._slow_down = client.register_script(scripts.SLOW_DOWN)
        self._flag = client.register_script(scripts.FLAG)
        self.finish_recipient = client.register_script(scripts.FINISH_RECIPIENT)

    # --- recording ----------------------------------------------------------------
    def keyed(self, request_hash: str) -> str:
        """A request's hash as the ledger keeps it: keyed, since the plain hash of a short
        payload (a number and a code) can be found by trying them all."""
        return self.fingerprints.of(request_hash) if request_hash else ""

    def _create_args(self, msg: NewMessage, now: float, op: str | None = None) -> tuple[list[str], list[Any]]:
        """A due time within `park_after` seconds waits as an ETA task (zset `queued`, scored
        by its due time); a later one is parked in `scheduled` for beat to release."""
        status = "scheduled" if msg.status == "queued" and msg.due is not None else msg.status
        target = ""
        if status == "scheduled" and msg.due is not None and msg.due - now > self.park_after:
            target = SCHEDULED
        elif status in ("queued", "scheduled"):
            target = QUEUED
        fields: dict[str, Any] = {
            "id": msg.id,
            "channel": msg.channel,
            "provider": msg.provider,
            "status": status,
            "attempts": 0,
            "created_at": iso(now),
            "updated_at": iso(now),
            "payload": json.dumps(msg.payload, separators=(",", ":"), ensure_ascii=False),
            "request_hash": self.keyed(msg.request_hash),
        }
        if msg.key:
            fields["key"] = msg.key
        if msg.due is not None:
            fields["at"] = iso(msg.due)
            fields["due"] = repr(float(msg.due))
        if msg.retry_of:
            fields["retry_of"] = msg.retry_of
        flat = [item for pair in fields.items() for item in pair]
        keys = [msg_key(msg.id), events_key(msg.id), idem_key(msg.key) if msg.key else "", target]
        score = msg.due if msg.due is not None else now
        args = [
            msg.id,
            now,
            self.idempotency_ttl,
            fields["request_hash"],
            status,
            score,
            event(status, now),
            op or op_token(),
            self._record_life(status, msg.due, now),
            *flat,
        ]
        return keys, args

    def _record_life(self, status: str, due: float | None, now: float) -> int:
        """Seconds a new record is kept: its retention when it is born final, else long
        enough for any wait it may have, so that no key is kept forever."""
        if status in FINAL_STATUSES:
            return self.retention_seconds
        ahead = max(0.0, (due or now) - now)
        return int(ahead + self.retention_seconds + self.tracking_seconds + SAFETY_DAYS * 86400)

    def create(self, msg: NewMessage, *, now: float, op: str | None = None) -> Created:
        """Record `msg`. `op`, made once by a caller that may call again (a Redis that
        refuses writes for a while), lets every call recognize an earlier one that ran."""
        keys, args = self._create_args(msg, now, op)
        outcome, mid, status = self._create(keys=keys, args=args)
        return Created(_s(outcome), _s(mid), _s(status))

    def create_many(
        self,
        messages: Sequence[NewMessage],
        *,
        now: float,
        tasks: Sequence[tuple[str, str] | None] | None = None,
    ) -> list[Created]:
        """Record many messages in one round trip; with `tasks` (a `(queue, task message)` or
        None per message), push each created message's broker task in the same script."""
        items = []
        bodies: list[str] = []
        for index, msg in enumerate(messages):
            keys, args = self._create_args(msg, now)
            task = tasks[index] if tasks is not None else None
            items.append(
                [
                    msg.id,
                    keys[2],
                    str(args[2]),
                    args[3],
                    args[4],
                    repr(args[5]),
                    keys[3],
                    args[6],
                    [str(a) for a in args[9:]],
                    task[0] if task else "",
                    len(bodies) + 3 if task else 0,
                    args[8],
                ]
            )
            if task:
                bodies.append(task[1])
        batch = json.dumps(items, separators=(",", ":"), ensure_ascii=False)
        flat = self._create_many(args=[batch, op_token(), *bodies])
        return [Created(_s(flat[i]), _s(flat[i + 1]), _s(flat[i + 2])) for i in range(0, len(flat), 3)]

    def record_failure(self, message_id: str, channel: str, error: str, *, now: float) -> None:
        """A complete `failed` record for input refused inside the worker (no payload kept)."""
        msg = NewMessage(
            id=message_id, channel=channel, provider="", payload={}, request_hash="", status="failed"
        )
        keys, args = self._create_args(msg, now)
        args += ["error", error]
        self._create(keys=keys, args=args)

    # --- delivery -----------------------------------------------------------------
    def claim(
        self,
        message_id: str,
        provider: str,
        *,
        now: float,
        rate: float = 0.0,
        burst: float = 1.0,
        op: str | None = None,
    ) -> Claim:
        keys = [
            msg_key(message_id),
            events_key(message_id),
            LEASES,
            QUEUED,
            pause_key(provider),
            held_key(provider),
            rate_key(provider),
            slow_key(provider),
        ]
        args: list[Any] = [message_id, now, iso(now), now + self.lease_seconds, rate, burst, op or op_token()]
        reply = self._claim(keys=keys, args=args)
        outcome = _s(reply[0])
        if outcome == "claimed":
            return Claim(
                outcome,
                attempts=int(reply[1]),
                payload=json.loads(_s(reply[2]) or "{}"),
                channel=_s(reply[3]),
                provider=_s(reply[4]),
                in_doubt=_s(reply[5]) == "1",
                resends=int(_s(reply[6]) or 0),
                reconcile=_s(reply[7]) == "1",
                reconciled=json.loads(_s(reply[8]) or "{}"),
                probe=_s(reply[9]) == "1",
                free_tries=int(_s(reply[10]) or 0),
            )
        if outcome == "skip":
            return Claim(outcome, status=_s(reply[1]))
        if outcome == "wait":
            return Claim(outcome, wait=float(_s(reply[1])))
        return Claim(outcome)

    def slow_down(self, provider: str, wait: float, *, now: float) -> None:
        """Every worker waits `wait` seconds for `provider` (its Retry-After), then lets one
        claim through every `wait` seconds until one gets an answer (`speed_up`)."""
        step = max(0.5, wait)
        ttl = int(step * 20 + 60)
        self._slow_down(keys=[slow_key(provider)], args=[repr(now + wait), repr(step), ttl])

    def speed_up(self, provider: str) -> None:
        """A provider that answered again: no more waiting for it."""
        self.redis.delete(slow_key(provider))

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

    def _expire_for(self, to: str, zset: str) -> int:
        if to in FINAL_STATUSES or (to == "sent" and zset != "tracking"):
            return self.retention_seconds
        if to == "sent":
            return self.retention_seconds + self.tracking_seconds
        return 0

    def transition(
        self,
        message_id: str,
        *,
        to: str,
        expect: str,
        now: float,
        event_json: str | None = None,
        token: int | None = None,
        provider: str = "",
        zset: str = "",
        score: float = 0.0,
        attempts_delta: int = 0,
        pause: Mapping[str, Any] | None = None,
        fields: Mapping[str, Any] | None = None,
        guard: str = "",
        op: str | None = None,
    ) -> tuple[str, str]:
        """Move a message to `to` if it is in one of `expect` (comma list), `token` holds
        and the field `guard` (when named) is not set. Entering a final state (or `sent`)
        erases the payload: nothing will be sent from it again."""
        target = self._index(zset, provider) if zset else PREFIX + "none"
        keys = [msg_key(message_id), events_key(message_id), pause_key(provider or "none"), target]
        keys += self._indexes(provider)
        flat = [item for pair in (fields or {}).items() for item in pair]
        args = [
            message_id,
            "" if token is None else token,
            expect,
            to,
            iso(now),
            event_json or event(to, now),
            "1" if zset else "",
            score,
            self._expire_for(to, zset),
            attempts_delta,
            json.dumps(pause) if pause else "",
            guard,
            op or op_token(),
            "1" if to in ERASE_AT else "",
            *flat,
        ]
        reply = self._transition(keys=keys, args=args)
        return _s(reply[0]), _s(reply[1]) if len(reply) > 1 else ""

    def cancel(self, message_id: str, *, now: float) -> tuple[str, str]:
        """Cancel a message not yet handed over; refused (`guarded`) while it is in doubt."""
        return self.transition(
            message_id,
            to="cancelled",
            expect=CANCELLABLE,
            now=now,
            provider=self.provider_of(message_id),
            guard="in_doubt",
        )

    def field(self, message_id: str, name: str) -> str:
        """One field of a record ("" when the record or the field is absent)."""
        value = self.redis.hget(msg_key(message_id), name)
        return _s(value) if value is not None else ""

    def provider_of(self, message_id: str) -> str:
        value = self.redis.hget(msg_key(message_id), "provider")
        return _s(value) if value is not None else ""

    def add_event(self, message_id: str, kind: str, *, now: float, **extra: Any) -> None:
        self.redis.rpush(events_key(message_id), event(kind, now, **extra))

    def flag(self, message_id: str, **fields: str) -> None:
        """Set fields of an existing record (never creates one)."""
        flat = [item for pair in fields.items() for item in pair]
        self._flag(keys=[msg_key(message_id)], args=flat)

    # --- reading ------------------------------------------------------------------
    def get(self, message_id: str) -> dict[str, Any] | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(msg_key(message_id))
        pipe.lrange(events_key(message_id), 0, -1)
        raw, events = pipe.execute()
        if not raw:
            return None
        record: dict[str, Any] = {_s(k): _s(v) for k, v in raw.items()}
        record["events"] = [json.loads(_s(e)) for e in events]
        return record

    def status_of(self, message_ids: Iterable[str]) -> list[str | None]:
        pipe = self.redis.pipeline(transaction=False)
        for mid in message_ids:
            pipe.hget(msg_key(mid), "status")
        return [None if s is None else _s(s) for s in pipe.execute()]

    # --- beat ---------------------------------------------------------------------
    def release_due(self, *, until: float, now: float, count: int = 500) -> Sweep:
        """Scheduled (or backed-off) messages due before `until`, moved to `queued`:
        items (id, channel, provider, due)."""
        reply = self._release(
            keys=[SCHEDULED, QUEUED], args=[until, count, now, iso(now), "due", "scheduled,queued"]
        )
        return self._sweep(reply, 4)

    def release_held(self, zset_key: str, *, now: float, count: int = 1000) -> Sweep:
        """Messages waiting in `zset_key` (a held or short index), moved to `queued`."""
        reply = self._release(keys=[zset_key, QUEUED], args=["+inf", count, now, iso(now), "now", "queued"])
        return self._sweep(reply, 4)

    def requeue_stale(
        self, *, older_than: float, now: float, count: int = 1000, hard_limit: float | None = None
    ) -> Sweep:
        """Queued messages overdue since `older_than` -> items (id, channel, provider). Those
        whose channel queue is not empty wait, unless overdue since `hard_limit` too."""
        limit = older_than if hard_limit is None else hard_limit
        return self._sweep(self._requeue(keys=[QUEUED], args=[older_than, count, now, limit]), 3)

    def expired_leases(self, *, now: float, count: int = 200) -> Sweep:
        """Claims whose lease ran out -> items (id, provider, attempts)."""
        return self._sweep(self._expired(keys=[LEASES], args=[now, count, now + self.lease_seconds]), 3)

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

    # --- provider pauses ----------------------------------------------------------
    def pause(self, provider: str, reason: Mapping[str, Any]) -> bool:
        return bool(self.redis.set(pause_key(provider), json.dumps(reason), nx=True))

    def pause_reason(self, provider: str) -> dict[str, Any] | None:
        raw = self.redis.get(pause_key(provider))
        return None if raw is None else dict(json.loads(_s(raw)))

    def resume(self, provider: str) -> bool:
        return bool(self.redis.delete(pause_key(provider)))

    def held_count(self, provider: str) -> int:
        return int(self.redis.zcard(held_key(provider)))

    def counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        keys = (SCHEDULED, QUEUED, LEASES, TRACKING, DOUBT, held_key("taqnyat"), held_key("taifa"))
        for key in (*keys, short_key("taqnyat"), short_key("taifa")):
            pipe.zcard(key)
        names = (
            "scheduled",
            "queued",
            "sending",
            "tracking",
            "in_doubt_awaiting_decision",
            "held_taqnyat",
            "held_taifa",
            "short_of_balance_taqnyat",
            "short_of_balance_taifa",
        )
        return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))
