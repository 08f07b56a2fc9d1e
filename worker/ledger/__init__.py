"""The message ledger in Redis: one record per message, its history, and the atomic claims.

Every key is built in `keys.py`, which lists them; statuses are `status.Status`; what the
ledger takes and answers is in `records.py`, its indexes and beat's sweeps in `indexes.py`.

Every transition is one Lua script (`lua/`, loaded by `scripts.py`), so a record is never
half-written, a message is claimed for a provider call by one worker only, and each change of
status is appended to the change stream in the same step.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import redis

from hudhud.worker.ledger import scripts
from hudhud.worker.ledger.fingerprint import Fingerprints
from hudhud.worker.ledger.indexes import GONE_KEEP as GONE_KEEP
from hudhud.worker.ledger.indexes import GONE_TTL as GONE_TTL
from hudhud.worker.ledger.indexes import Indexes
from hudhud.worker.ledger.keys import (
    CHANGES,
    EXPIRIES,
    LEASES,
    NONE,
    QUEUED,
    SCHEDULED,
    SUPPRESSED,
    bulk_rate_key,
    events_key,
    held_key,
    idem_key,
    msg_key,
    outcomes_key,
    pause_key,
    rate_key,
    slow_key,
)
from hudhud.worker.ledger.keys import DOUBT as DOUBT
from hudhud.worker.ledger.keys import GONE as GONE
from hudhud.worker.ledger.keys import TRACKING as TRACKING
from hudhud.worker.ledger.keys import short_key as short_key
from hudhud.worker.ledger.placement import Placement, placement
from hudhud.worker.ledger.records import Claim as Claim
from hudhud.worker.ledger.records import Created as Created
from hudhud.worker.ledger.records import NewMessage as NewMessage
from hudhud.worker.ledger.records import Sweep as Sweep
from hudhud.worker.ledger.records import event as event
from hudhud.worker.ledger.records import iso as iso
from hudhud.worker.ledger.records import op_token as op_token
from hudhud.worker.ledger.records import text as _s
from hudhud.worker.ledger.status import ERASE_AT, FINAL, WAITING
from hudhud.worker.ledger.status import ClaimOutcome as ClaimOutcome
from hudhud.worker.ledger.status import Status as Status

FINAL_STATUSES = FINAL
SAFETY_DAYS = 7  # a live record outlives its retention by this much before Redis drops it
CREATE_FIELDS = 10  # create.lua's ARGV: the record's fields follow its first ten values
CREATE_MANY_TASKS = 6  # create_many.lua's ARGV: the task messages start here (Lua counts from 1)
WRITE, WHOLE, CHECK = "", "whole", "check"  # create_many.lua's modes
CHANGES_MAXLEN = 100_000  # entries the change stream keeps (about: trimmed with MAXLEN ~)


def many_answer(flat: Sequence[Any]) -> list[Created]:
    """What `create_many.lua` answered, one `Created` per message (a duplicate's status not
    yet read)."""
    return [Created(_s(flat[i]), _s(flat[i + 1]), _s(flat[i + 2])) for i in range(0, len(flat), 3)]


def duplicated(created: Sequence[Created]) -> list[str]:
    """The ids of the messages that `created` holds duplicates of."""
    return [c.id for c in created if c.outcome == "duplicate"]


def with_statuses(created: Sequence[Created], statuses: Iterable[Any]) -> list[Created]:
    """`created`, each duplicate with the status read of its first message (in order)."""
    found = iter(statuses)
    return [
        Created(c.outcome, c.id, _s(next(found) or "")) if c.outcome == "duplicate" else c for c in created
    ]


class Ledger(Indexes):
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
        changes_maxlen: int = CHANGES_MAXLEN,
    ) -> None:
        self.redis = client
        self.changes_maxlen = changes_maxlen
        self.fingerprints = Fingerprints(client, data_key)
        self.park_after = park_after
        self.tracking_seconds = tracking_seconds
        self.retention_seconds = retention_seconds
        self.idempotency_ttl = idempotency_ttl
        self.lease_seconds = lease_seconds
        registered = scripts.register(client)
        self._create = registered["create"]
        self._create_many = registered["create_many"]
        self._claim = registered["claim"]
        self._transition = registered["transition"]
        self._release = registered["release"]
        self._requeue = registered["requeue"]
        self._expired = registered["expired_leases"]
        self._slow_down = registered["slow_down"]
        self._flag = registered["flag"]
        self._finish_recipient = registered["finish_recipient"]
        self._expire_due = registered["expire_due"]

    # --- recording ----------------------------------------------------------------
    def keyed(self, request_hash: str) -> str:
        """A request's hash as the ledger keeps it: keyed, since the plain hash of a short
        payload (a number and a code) can be found by trying them all."""
        return self.fingerprints.of(request_hash) if request_hash else ""

    def _create_args(self, msg: NewMessage, now: float, op: str | None = None) -> tuple[list[str], list[Any]]:
        """A due time within `park_after` seconds waits as an ETA task (zset `queued`, scored
        by its due time); a later one is parked in `scheduled` for beat to release."""
        status = Status.SCHEDULED if msg.status == Status.QUEUED and msg.due is not None else msg.status
        target = ""
        if status == Status.SCHEDULED and placement(msg.due, now, self.park_after) is Placement.PARK:
            target = SCHEDULED
        elif status in WAITING:
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
        if msg.reference:
            fields["reference"] = msg.reference
        if msg.callback_url:
            fields["callback_url"] = msg.callback_url
        fields["lane"] = msg.lane
        if msg.expires is not None:
            fields["expires"] = repr(float(msg.expires))
            fields["expires_at"] = iso(msg.expires)
        if msg.pinned:
            fields["pinned"] = "1"
        fps = self.recipient_fingerprints(msg.payload)
        if fps:
            fields["fps"] = fps
        flat = [item for pair in fields.items() for item in pair]
        keys = [
            msg_key(msg.id),
            events_key(msg.id),
            idem_key(msg.key) if msg.key else "",
            target,
            CHANGES,
            EXPIRIES,
        ]
        score = msg.due if msg.due is not None else now
        args = [
            msg.id,
            self.idempotency_ttl,
            fields["request_hash"],
            status,
            score,
            event(status, now),
            op or op_token(),
            self._record_life(status, msg.due, now),
            iso(now),
            self.changes_maxlen,
            *flat,
        ]
        return keys, args

    def recipient_fingerprints(self, payload: Mapping[str, Any]) -> str:
        """The keyed fingerprints of a message's recipients, as the claim checks them against
        the suppression list: `to` comma-separated, then `|` and cc and bcc ("" for a
        campaign's batch, whose recipients were checked when it was planned)."""
        if payload.get("batch") or not payload.get("to"):
            return ""
        primary = self.fingerprints.of_all(str(r) for r in payload["to"])
        copies = self.fingerprints.of_all(str(r) for r in (*payload.get("cc", ()), *payload.get("bcc", ())))
        return ",".join(primary) + ("|" + ",".join(copies) if copies else "")

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
        created = Created(_s(outcome), _s(mid), _s(status))
        return self._with_statuses([created])[0]

    def _with_statuses(self, created: list[Created]) -> list[Created]:
        """Duplicates with the status of the message they duplicate (read after the script,
        which touches only the keys it is given)."""
        firsts = duplicated(created)
        return with_statuses(created, self.status_of(firsts)) if firsts else created

    def create_many(
        self,
        messages: Sequence[NewMessage],
        *,
        now: float,
        tasks: Sequence[tuple[str, str] | None] | None = None,
        all_or_nothing: bool = False,
    ) -> list[Created]:
        """Record many messages in one round trip; with `tasks` (a `(queue, task message)` or
        None per message), push each created message's broker task in the same script.

        Each message is created, a duplicate or a conflict on its own; `all_or_nothing` makes
        a batch of them: if any message's key was used for another request (before, or by an
        earlier message of `messages`), nothing is written, those messages answer `conflict`
        (with the id that holds the key) and the others `withheld`."""
        return self._many(messages, now, tasks, WHOLE if all_or_nothing else WRITE)

    def key_conflicts(self, messages: Sequence[NewMessage], *, now: float) -> dict[int, str]:
        """The messages (by index) whose key was used for another request, before or by an
        earlier message of `messages`, each with the id that holds it. Only reads: for a
        batch written in several `create_many` calls, checked whole first."""
        keyed = [(index, msg) for index, msg in enumerate(messages) if msg.key]
        if not keyed:
            return {}
        found = self._many([msg for _, msg in keyed], now, None, CHECK)
        return {index: c.id for (index, _), c in zip(keyed, found, strict=True) if c.outcome == "conflict"}

    def _many(
        self,
        messages: Sequence[NewMessage],
        now: float,
        tasks: Sequence[tuple[str, str] | None] | None,
        mode: str,
    ) -> list[Created]:
        keys, args = self.many_call(messages, now, tasks, mode)
        return self._with_statuses(many_answer(self._create_many(keys=keys, args=args)))

    def many_call(
        self,
        messages: Sequence[NewMessage],
        now: float,
        tasks: Sequence[tuple[str, str] | None] | None,
        mode: str,
    ) -> tuple[list[str], list[Any]]:
        """The keys and arguments of one `create_many.lua` call (`mode`: WRITE, WHOLE, CHECK)."""
        keys: list[str] = [CHANGES]
        items = []
        bodies: list[str] = []
        for index, msg in enumerate(messages):
            msg_keys, args = self._create_args(msg, now)
            task = tasks[index] if tasks is not None else None
            keys += [*msg_keys[:4], task[0] if task else ""]
            ttl, request_hash, status, score, entry, _op, life = args[1:8]
            fields = [str(a) for a in args[CREATE_FIELDS:]]
            position = len(bodies) + CREATE_MANY_TASKS if task else 0
            items.append([msg.id, str(ttl), request_hash, status, repr(score), entry, fields, life, position])
            if task:
                bodies.append(task[1])
        keys.append(EXPIRIES)
        batch = json.dumps(items, separators=(",", ":"), ensure_ascii=False)
        return keys, [batch, op_token(), iso(now), self.changes_maxlen, mode, *bodies]

    def record_failure(self, message_id: str, channel: str, error: str, *, now: float) -> None:
        """A complete `failed` record for input refused inside the worker (no payload kept)."""
        msg = NewMessage(
            id=message_id, channel=channel, provider="", payload={}, request_hash="", status=Status.FAILED
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
        share: float = 0.0,
    ) -> Claim:
        """Claim a message for one provider call. `rate` is the provider's global limit (calls
        a second, 0: none); a bulk message leaves `share` of it to transactional ones."""
        keys = [
            msg_key(message_id),
            events_key(message_id),
            LEASES,
            QUEUED,
            pause_key(provider),
            held_key(provider),
            rate_key(provider),
            slow_key(provider),
            CHANGES,
            SUPPRESSED,
            bulk_rate_key(provider),
        ]
        lease_until = now + self.lease_seconds
        op = op or op_token()
        args: list[Any] = [
            message_id,
            now,
            iso(now),
            lease_until,
            rate,
            burst,
            op,
            self.changes_maxlen,
            share,
            self.retention_seconds,
        ]
        reply = self._claim(keys=keys, args=args)
        outcome = ClaimOutcome(_s(reply[0]))
        if outcome is ClaimOutcome.CLAIMED:
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
                lane=_s(reply[11]),
                expires=float(_s(reply[12])) if _s(reply[12]) else None,
                suppressed=tuple(int(p) for p in _s(reply[13]).split(",") if p),
            )
        if outcome is ClaimOutcome.SKIP:
            return Claim(outcome, status=Status(_s(reply[1])))
        if outcome is ClaimOutcome.WAIT:
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

    def _expire_for(self, to: str, zset: str) -> int:
        if to in FINAL_STATUSES or (to == Status.SENT and zset != "tracking"):
            return self.retention_seconds
        if to == Status.SENT:
            return self.retention_seconds + self.tracking_seconds
        return 0

    def transition(
        self,
        message_id: str,
        *,
        to: str,
        expect: str | Collection[str],
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
        """Move a message to `to` if it is in `expect` (a status, or several), `token` holds
        and the field `guard` (when named) is not set. Entering a final state (or `sent`)
        erases the payload: nothing will be sent from it again."""
        target = self._index(zset, provider) if zset else NONE
        keys = [msg_key(message_id), events_key(message_id), pause_key(provider or "none"), target, CHANGES]
        keys += self._indexes(provider)
        flat = [item for pair in (fields or {}).items() for item in pair]
        args = [
            message_id,
            "" if token is None else token,
            expect if isinstance(expect, str) else ",".join(sorted(expect)),
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
            self.changes_maxlen,
            *flat,
        ]
        reply = self._transition(keys=keys, args=args)
        return _s(reply[0]), _s(reply[1]) if len(reply) > 1 else ""

    def cancel(self, message_id: str, *, now: float) -> tuple[str, str]:
        """Cancel a message not yet handed over; refused (`guarded`) while it is in doubt."""
        return self.transition(
            message_id,
            to=Status.CANCELLED,
            expect=WAITING,
            now=now,
            provider=self.provider_of(message_id),
            guard="in_doubt",
        )

    def finish_recipient(
        self,
        batch: str,
        recipient: str,
        *,
        campaign: str,
        forget: str,
        status: Status,
        now: float,
        error: str | None = None,
    ) -> bool:
        """Record a campaign recipient's final status once (on the batch's outcomes, counted
        on the campaign record `campaign`) and delete the key `forget` (the provider id that
        led here); False if it was recorded already."""
        outcome = {"status": status, "at": iso(now), **({"error": error} if error else {})}
        keys = [outcomes_key(batch), msg_key(campaign), forget, msg_key(batch), CHANGES]
        args: list[str | int] = [
            batch,
            recipient,
            json.dumps(outcome),
            f"recipients_{status}",
            status,
            iso(now),
            error or "",
            self.changes_maxlen,
        ]
        return bool(self._finish_recipient(keys=keys, args=args))

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
        return self._fields(message_ids, "status")

    # --- provider pauses ----------------------------------------------------------
    def pause(self, provider: str, reason: Mapping[str, Any]) -> bool:
        return bool(self.redis.set(pause_key(provider), json.dumps(reason), nx=True))

    def pause_reason(self, provider: str) -> dict[str, Any] | None:
        raw = self.redis.get(pause_key(provider))
        return None if raw is None else dict(json.loads(_s(raw)))

    def resume(self, provider: str) -> bool:
        return bool(self.redis.delete(pause_key(provider)))

    # --- the broker's queues --------------------------------------------------------
    def push_tasks(self, tasks: Iterable[tuple[str, str]]) -> int:
        """Push prebuilt task messages `(queue, message)` onto their queues, in one round trip.
        In kombu's Redis layout a queue of the default priority is the list named after it."""
        pipe = self.redis.pipeline(transaction=False)
        count = 0
        for queue, message in tasks:
            pipe.lpush(queue, message)
            count += 1
        if count:
            pipe.execute()
        return count
