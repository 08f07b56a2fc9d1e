"""kombu's Redis transport, with these changes: a broker message that cannot be read is set
aside with a log line instead of stopping the worker; one client object serves the channel's
short commands (acks, the unacked index) instead of a new one for each; the unacked index is
swept on a clock; and a Redis that refuses writes (maxmemory reached) pauses consumption
instead of stopping the worker.

kombu decodes a queue item while taking it off the queue: an item that is not JSON, or an
envelope without its properties, or a body that is not valid base64, raises there, outside
Celery's handling of bad messages, and the worker exits with "Unrecoverable error". Such an
item is now copied to the list `hudhud:unreadable` (the last 1,000, kept 7 days) for a look,
and a readable envelope with a bad body reaches Celery as a message of unknown format, which
Celery rejects; the worker goes on.

**The sweep of the unacked index.** kombu puts a task left unacknowledged longer than the
visibility timeout (its worker was killed) back on its queue, but sweeps only after a poll
that saw nothing, and the poll of an idle consumer without an event loop (the gevent pool)
always sees something: its BRPOP's empty answer. Such a worker never swept. The sweep now
also runs after every poll, at most once per `unacked_restore_interval`.

**A full Redis** (`maxmemory` reached under `noeviction`) refuses every command that may
grow memory, and every command inside MULTI, but still serves BRPOP, pops and deletes. kombu
would lose the message it had just popped (its entry in the unacked index refused) and stop
the worker on the OutOfMemoryError of an ack, a sweep, a queue binding or a publish. Now:
- a refused write closes the channel's gate: it takes nothing more off its queues, and tries
  a small write (SET with a short expiry) at most every second; the first that succeeds
  reopens it;
- the message popped while the gate closed is kept in memory, not handed to Celery, and
  delivered once its unacked entry is written (at shutdown it is pushed back on its queue);
- acks remove the unacked entry without MULTI, which Redis serves when full;
- a sweep or a hand-back that Redis refuses leaves the entries where they are, for a later
  sweep; a queue binding refused at start is written when the gate reopens, so a worker
  starts on a full Redis and begins consuming once memory is freed;
- a publish (a retry, a dispatch) waits up to `oom_publish_wait` seconds for Redis to take
  writes, then raises to its caller.
OutOfMemoryError is deliberately not declared a connection error: Celery would treat it as a
lost connection and cancel the running tasks (worker_cancel_long_running_tasks_on_connection_loss),
cutting provider calls short.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import logging
import time
import uuid
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.transport.virtual import Message as VirtualMessage
from kombu.utils.json import dumps
from redis.exceptions import OutOfMemoryError

from worker import redaction

log = logging.getLogger("hudhud.transport")

UNREADABLE = "application/x-hudhud-unreadable"
UNREADABLE_KEY = "hudhud:unreadable"
UNREADABLE_KEEP = 1000
UNREADABLE_TTL = 7 * 86400
WRITE_PROBE_KEY = "hudhud:broker:write-probe"
WRITE_PROBE_TTL = 10
WRITE_PROBE_EVERY = 1.0  # seconds between two probes while Redis refuses writes
OOM_PUBLISH_WAIT = 10.0  # seconds a publish waits for Redis to take writes again
LOG_EVERY = 30.0  # a refusal is logged at once if none was in this many seconds,
LOG_AFTER = 5.0  # else once it has lasted this long


def set_aside(channel: Any, item: bytes | str, reason: str) -> None:
    """Keep a note of an unreadable queue item (its size, digest and task id, never its
    contents: they may carry recipients and text); never let this step stop the worker."""
    try:
        note = redaction.set_aside_summary(item, reason, time.time())
        with channel.conn_or_acquire() as client:
            pipe = client.pipeline()
            pipe.lpush(UNREADABLE_KEY, note)
            pipe.ltrim(UNREADABLE_KEY, 0, UNREADABLE_KEEP - 1)
            pipe.expire(UNREADABLE_KEY, UNREADABLE_TTL)
            pipe.execute()
    except Exception as exc:  # the item is already off its queue; losing the copy is the lesser harm
        log.error("an unreadable queue item could not be set aside (%s)", type(exc).__name__)


def _placeholder(payload: Any) -> dict[str, Any]:
    properties = payload.get("properties") if isinstance(payload, dict) else None
    properties = properties if isinstance(properties, dict) else {}
    info = properties.get("delivery_info")
    return {
        "body": "",
        "content-type": UNREADABLE,
        "content-encoding": "binary",
        "headers": {},
        "properties": {
            "delivery_tag": properties.get("delivery_tag") or str(uuid.uuid4()),
            "delivery_info": info if isinstance(info, dict) else {},
            "priority": 0,
        },
    }


class Message(VirtualMessage):
    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error(
                "a broker message could not be read (%s): it is set aside in %s",
                type(exc).__name__,
                UNREADABLE_KEY,
            )
            if channel is not None:
                set_aside(channel, json.dumps(payload, default=str), type(exc).__name__)
            super().__init__(_placeholder(payload), channel=channel, **kwargs)
            self._raw = payload


class NotRecorded(Exception):
    """A message taken off its queue whose unacked entry Redis refused (raised to the
    transport's delivery, which keeps the message on its channel)."""

    def __init__(self, channel: Channel) -> None:
        super().__init__("unacked entry refused")
        self.channel = channel


class QoS(kombu_redis.QoS):
    channel: Channel

    def can_consume(self) -> bool:
        if not super().can_consume():
            return False
        # A channel that only listens (fanout: remote control) pops nothing: it goes on.
        return self.channel.takes_writes() or not self.channel.active_queues

    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            super().append(message, delivery_tag)
        except OutOfMemoryError:
            self.channel.refuse_writes("recording a message taken off its queue")
            raise NotRecorded(self.channel) from None

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        if pipe is None:
            # Without MULTI: a full Redis refuses every command queued in a MULTI, even the
            # two removals of an ack, but serves them on their own.
            with self.channel.conn_or_acquire() as client:
                pipe = client.pipeline(transaction=False)
        return super()._remove_from_indices(delivery_tag, pipe)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except OutOfMemoryError:
            # Not handed back: its unacked entry stays, and a sweep hands it back later.
            self.channel.refuse_writes("handing back a rejected message")
            virtual.QoS.ack(self, delivery_tag)

    def restore_unacked(self, client: Any = None) -> None:
        refused = 0
        with self.channel.conn_or_acquire(client) as client:
            for tag in self._delivered:
                try:
                    self.restore_by_tag(tag, client=client)
                except OutOfMemoryError:
                    refused += 1
        self._delivered.clear()
        if refused:
            log.warning(
                "%d tasks not handed back (Redis refuses writes): they come back after the "
                "visibility timeout",
                refused,
            )

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        if self.channel.writes_refused:
            return
        try:
            super().restore_visible(start=start, num=num, interval=interval)
        except OutOfMemoryError:
            self.channel.refuse_writes("sweeping the unacked index")


class Channel(kombu_redis.Channel):
    Message = Message
    QoS = QoS
    connection: Transport

    oom_publish_wait = OOM_PUBLISH_WAIT
    from_transport_options = (*kombu_redis.Channel.from_transport_options, "oom_publish_wait")  # type: ignore[assignment]

    _shared_client: Any = None
    _refused_since: float | None = None
    _probe_at = 0.0
    _logged_at = float("-inf")
    _refusal_said = False
    _refused_while = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._kept: list[tuple[dict[str, Any], str]] = []  # taken off a queue, not yet recorded
        self._bindings_due: dict[tuple[Any, ...], None] = {}  # refused queue bindings, in order
        super().__init__(*args, **kwargs)

    def _create_client(self, asynchronous: bool = False) -> Any:
        # kombu makes a new client object for every ack and every delivered message (two per
        # task); a client is safe to share between green threads, since each command takes
        # its own connection from the pool. One per pool, made again when kombu replaces it.
        if asynchronous:
            return super()._create_client(asynchronous=True)
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = super()._create_client()
        return shared

    def _brpop_read(self, **options: Any) -> bool:
        # kombu takes the item off the list and decodes it in one step; an item that is not
        # JSON raises after it left the list. Take it from the exception's document instead.
        try:
            return bool(super()._brpop_read(**options))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raw = exc.object if isinstance(exc, UnicodeDecodeError) else exc.doc
            log.error(
                "a queue item that is not a broker message could not be read (%s): it is set aside in %s",
                type(exc).__name__,
                UNREADABLE_KEY,
            )
            set_aside(self, raw, type(exc).__name__)
            return True

    # --- a Redis that refuses writes ---------------------------------------------
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
            if self._in_poll:  # kombu reads the pending reply on close: while the pool is up
                with contextlib.suppress(Empty):
                    self._brpop_read()
            self._put_back_kept()
        super().close()


class Poller(kombu_redis.MultiChannelPoller):
    _swept_at = float("-inf")

    def maybe_restore_messages(self) -> Any:
        every = min((c.unacked_restore_interval for c in self._channels), default=0)
        now = time.monotonic()
        if now - self._swept_at < every * 0.95:  # a timer may tick a little early
            return None
        self._swept_at = now
        return super().maybe_restore_messages()

    def on_poll_start(self) -> None:
        for channel in self._channels:
            channel.catch_up()
        super().on_poll_start()

    def get(self, callback: Any, timeout: float | None = None) -> None:
        if any(channel.writes_refused for channel in self._channels):
            timeout = WRITE_PROBE_EVERY if timeout is None else min(timeout, WRITE_PROBE_EVERY)
        # kombu sweeps only after a poll that saw nothing; see the module's docstring.
        try:
            super().get(callback, timeout=timeout)
        except Empty:
            self.maybe_restore_messages()
            raise
        self.maybe_restore_messages()


class Transport(kombu_redis.Transport):
    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = Poller()  # type: ignore[assignment]

    def _deliver(self, message: Any, queue: str) -> None:
        try:
            super()._deliver(message, queue)
        except NotRecorded as refused:
            refused.channel.keep(message, queue)


TRANSPORT = f"{__name__}:Transport"
