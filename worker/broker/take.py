"""The take: a message comes off its queue and is recorded as unacknowledged in one step.

kombu pops a message with BRPOP and only then writes it to the `unacked` hash and the
`unacked_index` zset, the record from which a dead worker's tasks are handed back: a worker
killed between the two lost the message for good. The BRPOP is replaced by the Lua script
TAKE (`worker/ledger/lua/take.lua`), which pops the first message of the channel's queue keys
(kombu's BRPOP keys, in its order but every transactional lane before the bulk ones: every
queue at priority 0, then at 3, ...) and writes both
entries in kombu's own format, in one step; kombu's later write of them is skipped (see
`QoS.append`). TAKE declares itself a writing script (`#!lua`, no `allow-oom`), which a full
Redis refuses whole: nothing is popped.

A script cannot block: when the queues are empty, the channel waits with a BRPOP of IDLE_WAIT
seconds on a list nobody writes, on the same connection and through the same socket-readable
event, then takes again. An idle channel costs Redis about twenty short calls a second (Redis
ends a blocking wait at its next tick, ten a second when idle: the wait lasts 50 to 100 ms),
and a message that finds the channel idle waits that long; a busy channel makes one call per
message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from queue import Empty
from typing import Any

from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisError

from hudhud.worker.broker import unreadable
from hudhud.worker.broker.full_redis import GatedChannel
from hudhud.worker.ledger import keys, lanes, scripts

IDLE_KEY = keys.BROKER_IDLE  # a list nobody writes: a BRPOP on it is a short wait
IDLE_WAIT = 0.05  # seconds a channel whose queues were empty waits before it takes again
LATE_READ = 5.0  # a take answered this long before it was read gets its index time renewed

TAKE = scripts.source("take")
TAKE_SHA = hashlib.sha1(TAKE.encode(), usedforsecurity=False).hexdigest()  # how Redis names it


class TakingChannel(GatedChannel):
    _in_poll: Any = None  # kombu: the BRPOP connection while a command on it awaits its answer
    _brpop_sent_at: Any = None  # kombu: when it was sent (monotonic)
    _awaiting: str | None = None  # that command: TAKE or the wait's BRPOP
    _found_nothing = False  # the last take found the queues empty: wait before the next
    _take_cached = False  # Redis has TAKE in its script cache (EVALSHA), as far as we know
    _taken_tag: str | None = None  # the message being delivered, recorded by its take

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._take_keys: list[tuple[str, str]] = []  # (queue, key) of the take in flight
        self._no_ack_queues: set[str] = set()
        super().__init__(*args, **kwargs)

    def _brpop_start(self, timeout: Any = None) -> None:
        # every transactional lane before any bulk one (a stable sort keeps kombu's rotation)
        queues = sorted(self._queue_cycle.consume(len(self.active_queues)), key=lanes.is_bulk)
        if not queues:
            return
        if self._found_nothing:
            self._awaiting = "BRPOP"
            command: list[Any] = ["BRPOP", self._key(IDLE_KEY), IDLE_WAIT]
        else:
            self._awaiting = "TAKE"
            self._take_keys = [(q, self._q_for_pri(q, pri)) for pri in self.priority_steps for q in queues]
            command = self._take_command(self._take_keys)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        self.client.connection.send_command(*command)

    def _key(self, name: str) -> str:
        return f"{self.global_keyprefix}{name}"

    def _take_command(self, queue_keys: list[tuple[str, str]]) -> list[Any]:
        keys = [self._key(k) for k in (self.unacked_key, self.unacked_index_key, *(k for _, k in queue_keys))]
        acks = "".join("0" if queue in self._no_ack_queues else "1" for queue, _ in queue_keys)
        args = [len(keys), *keys, time.time(), acks]
        return ["EVALSHA", TAKE_SHA, *args] if self._take_cached else ["EVAL", TAKE, *args]

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._no_ack_queues.add(queue)
        else:
            self._no_ack_queues.discard(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        try:
            return super()._basic_cancel(consumer_tag)
        finally:
            if queue not in self._active_queues:
                self._no_ack_queues.discard(queue)

    def _brpop_read(self, **options: Any) -> bool:
        awaiting, self._awaiting = self._awaiting, None
        try:
            if awaiting == "TAKE":
                return self._read_take(**options)
            self._read_reply("BRPOP", **options)  # the wait: nothing comes of it
            self._found_nothing = False
            raise Empty()
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _poll_error(self, type: str, **options: Any) -> Any:
        if type == "BRPOP":  # kombu would read a take's answer as a BRPOP's and drop it
            return self._brpop_read(**options)
        return super()._poll_error(type, **options)

    def _read_reply(self, command: str, **options: Any) -> Any:
        try:
            return self.client.parse_response(self.client.connection, command, **options)
        except self.connection_errors:
            self.client.connection.disconnect()  # the next poll reconnects
            raise

    def _read_take(self, **options: Any) -> bool:
        sent_at = self._brpop_sent_at or time.monotonic()
        position, item, tag = self._take_reply(**options)
        queue = self._take_keys[position - 1][0]
        self._queue_cycle.rotate(queue)
        tag = bytes_to_str(tag) if tag is not None else None
        if tag is not None and time.monotonic() - sent_at > LATE_READ:
            self._renew_index_time(tag)  # its answer waited (no prefetch credit): not yet due back
        try:
            payload = loads(bytes_to_str(item))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            unreadable.set_aside_undecodable(self, exc)
            if tag is not None:  # JSON to Redis's Lua, not to Python: no record to hand back
                self._forget(tag)
            return True
        self._taken_tag = tag
        try:
            self.connection._deliver(payload, queue)
        finally:
            self._taken_tag = None
        return True

    def _take_reply(self, **options: Any) -> Any:
        """TAKE's answer (position of the queue key, item, delivery tag); Empty if it took
        nothing."""
        try:
            reply = self._read_reply("EVALSHA", **options)
        except NoScriptError:  # Redis restarted, or its script cache was flushed
            self._take_cached = False
            raise Empty() from None
        except OutOfMemoryError:  # refused whole: nothing was taken
            self.refuse_writes("taking a message off its queue")
            raise Empty() from None
        self._take_cached = True
        if not reply:
            self._found_nothing = True
            raise Empty()
        return reply

    def recorded_by_take(self, delivery_tag: Any) -> bool:
        """True once for the message being delivered if its take wrote its unacked entries."""
        if delivery_tag is None or delivery_tag != self._taken_tag:
            return False
        self._taken_tag = None
        return True

    def _renew_index_time(self, tag: str) -> None:
        with contextlib.suppress(RedisError), self.conn_or_acquire() as client:
            client.zadd(self.unacked_index_key, {tag: time.time()}, xx=True)

    def _forget(self, tag: str) -> None:
        with contextlib.suppress(RedisError):
            self.qos._remove_from_indices(tag).execute()

    def close(self) -> None:
        if not self.closed and self._in_poll:  # kombu reads the pending reply on close: while the pool is up
            with contextlib.suppress(Empty):
                self._brpop_read()
        super().close()
