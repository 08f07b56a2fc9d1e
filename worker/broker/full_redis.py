"""A broker channel that pauses on a full Redis instead of losing messages or stopping.

A full Redis (`maxmemory` reached under `noeviction`) refuses every command that may grow
memory, and every command inside MULTI, but still serves BRPOP, pops and deletes. kombu would
lose the message it had just popped (its entry in the unacked index refused) and stop the
worker on the OutOfMemoryError of an ack, a sweep, a queue binding or a publish. Here:
- a refused write closes the channel's gate: it takes nothing more off its queues, and tries
  a small write (SET with a short expiry) at most every second; the first that succeeds
  reopens it;
- a message taken without its record is kept in memory (`keep`) and delivered once the gate
  reopens (`catch_up`); at close it is pushed back on its queue;
- a queue binding refused at start is written when the gate reopens, so a worker starts on a
  full Redis and begins consuming once memory is freed;
- a publish (a retry, a dispatch) waits up to `oom_publish_wait` seconds for Redis to take
  writes, then raises to its caller;
- the commands kombu wraps in MULTI for the priority lists of a queue go without it.
OutOfMemoryError is deliberately not declared a connection error: Celery would treat it as a
lost connection and cancel the running tasks (worker_cancel_long_running_tasks_on_connection_loss),
cutting provider calls short.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps
from redis.exceptions import OutOfMemoryError

from hudhud.worker.ledger import keys

if TYPE_CHECKING:
    from hudhud.worker.broker.transport import Transport

log = logging.getLogger("hudhud.transport")

WRITE_PROBE_KEY = keys.BROKER_WRITE_PROBE
WRITE_PROBE_TTL = 10
WRITE_PROBE_EVERY = 1.0  # seconds between two probes while Redis refuses writes
OOM_PUBLISH_WAIT = 10.0  # seconds a publish waits for Redis to take writes again
LOG_EVERY = 30.0  # a refusal is logged at once if none was in this many seconds,
LOG_AFTER = 5.0  # else once it has lasted this long


class GatedChannel(kombu_redis.Channel):
    connection: Transport

    oom_publish_wait = OOM_PUBLISH_WAIT
    from_transport_options = (*kombu_redis.Channel.from_transport_options, "oom_publish_wait")  # type: ignore[assignment]

    _refused_since: float | None = None
    _probe_at = 0.0
    _logged_at = float("-inf")
    _refusal_said = False
    _refused_while = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._kept: list[tuple[dict[str, Any], str]] = []  # taken off a queue, not yet recorded
        self._bindings_due: dict[tuple[Any, ...], None] = {}  # refused queue bindings, in order
        super().__init__(*args, **kwargs)

    @property
    def writes_refused(self) -> bool:
        return self._refused_since is not None

    def refuse_writes(self, where: str) -> None:
        if self._refused_since is not None:
            return
        self._refused_since = now = time.monotonic()
        self._probe_at = now + WRITE_PROBE_EVERY
        self._refused_while = where
        if now - self._logged_at >= LOG_EVERY:  # a Redis at the brink refuses, accepts, refuses...
            self._say_refused(now)

    def _say_refused(self, now: float) -> None:
        self._logged_at = now
        self._refusal_said = True
        log.error(
            "Redis refuses writes (maxmemory reached) while %s: waiting until it accepts them "
            "(no new messages taken meanwhile)",
            self._refused_while,
        )

    def takes_writes(self) -> bool:
        """False while Redis refuses writes. Then a small write is tried at most every
        WRITE_PROBE_EVERY seconds; the first that succeeds writes what was put off."""
        since = self._refused_since
        if since is None:
            return True
        now = time.monotonic()
        if now < self._probe_at:
            return False
        self._probe_at = now + WRITE_PROBE_EVERY
        try:
            with self.conn_or_acquire() as client:
                client.set(WRITE_PROBE_KEY, "1", ex=WRITE_PROBE_TTL)
            for binding in list(self._bindings_due):
                super()._queue_bind(*binding)
                del self._bindings_due[binding]
        except OutOfMemoryError:
            if not self._refusal_said and now - since >= LOG_AFTER:
                self._say_refused(now)
            return False
        if self._refusal_said:
            log.warning("Redis accepts writes again (refused for %.0fs)", now - since)
        self._refused_since = None
        self._refusal_said = False
        return True

    def wait_for_writes(self, deadline: float) -> bool:
        while not self.takes_writes():
            if time.monotonic() >= deadline:
                return False
            time.sleep(max(0.05, min(self._probe_at, deadline) - time.monotonic()))
        return True

    def keep(self, payload: dict[str, Any], queue: str) -> None:
        self._kept.append((payload, queue))

    def catch_up(self) -> None:
        """While Redis refuses writes, probe it (see `takes_writes`); once it takes them, hand
        on the messages taken meanwhile."""
        while self.takes_writes() and self._kept:
            payload, queue = self._kept.pop(0)
            self.connection._deliver(payload, queue)

    def _put_back_kept(self) -> None:
        while self._kept:
            payload, queue = self._kept.pop()
            key = self._q_for_pri(queue, self._get_message_priority(payload, reverse=False))
            try:
                with self.conn_or_acquire() as client:
                    client.rpush(key, dumps(payload))  # the right end: the next one taken
            except Exception as exc:  # closing goes on; Redis still full, or gone
                log.error(
                    "a message taken off queue %s while Redis refused writes was not put back (%s): lost",
                    queue,
                    type(exc).__name__,
                )

    def _queue_bind(self, exchange: Any, routing_key: Any, pattern: Any, queue: Any) -> None:
        try:
            super()._queue_bind(exchange, routing_key, pattern, queue)
        except OutOfMemoryError:
            # Mostly the binding is already there (an earlier start wrote it); either way
            # it is written before the channel takes anything.
            self._bindings_due[(exchange, routing_key, pattern, queue)] = None
            self.refuse_writes(f"binding queue {queue}")

    def maybe_refresh_binding_expiry(self) -> None:
        # kombu logs a refused refresh with its traceback, every second.
        if self.writes_refused:
            return
        try:
            super().maybe_refresh_binding_expiry()
        except OutOfMemoryError:
            self.refuse_writes("refreshing the bindings of expiring queues")

    # A full Redis refuses every command inside MULTI, reads and deletes too, which kombu
    # wraps in MULTI for the priority lists of a queue: these go without it.
    def _per_priority(self, command: str, queue: str) -> list[Any]:
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            for priority in self.priority_steps:
                getattr(pipe, command)(self._q_for_pri(queue, priority))
            return list(pipe.execute())

    def _size(self, queue: str) -> int:
        return sum(size for size in self._per_priority("llen", queue) if isinstance(size, int))

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return any(self._per_priority("exists", queue))

    def _delete(
        self, queue: str, exchange: Any, routing_key: Any, pattern: Any, *args: Any, **kwargs: Any
    ) -> None:
        self.auto_delete_queues.discard(queue)
        member = self.sep.join([routing_key or "", pattern or "", queue or ""])
        with self.conn_or_acquire(client=kwargs.get("client")) as client:
            pipe = client.pipeline(transaction=False)
            pipe.srem(self.keyprefix_queue % (exchange,), member)
            pipe.srem(self.keyprefix_binding_permanent % (exchange,), member)
            for priority in self.priority_steps:
                pipe.delete(self._q_for_pri(queue, priority))
            pipe.execute()

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        deadline = time.monotonic() + self.oom_publish_wait
        while True:
            if self.writes_refused and not self.wait_for_writes(deadline):
                raise OutOfMemoryError(f"Redis refuses writes (maxmemory reached): not published to {queue}")
            try:
                return super()._put(queue, message, **kwargs)
            except OutOfMemoryError:
                self.refuse_writes(f"publishing to {queue}")
                if time.monotonic() >= deadline:
                    raise

    def close(self) -> None:
        if not self.closed:
            self._put_back_kept()
        super().close()
