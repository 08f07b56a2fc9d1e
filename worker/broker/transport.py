"""kombu's Redis transport, with these changes: a message is taken off its queue and recorded
as unacknowledged in one step; a broker message that cannot be read is set aside with a log
line instead of stopping the worker; one client object serves the channel's short commands
(acks, the unacked index) instead of a new one for each; the unacked index is swept on a
clock; and a Redis that refuses writes (maxmemory reached) pauses consumption instead of
stopping the worker.

**The take.** kombu pops a message with BRPOP and only then writes it to the `unacked` hash
and the `unacked_index` zset, the record from which a dead worker's tasks are handed back: a
worker killed between the two lost the message for good. The BRPOP is replaced by the Lua
script TAKE, which pops the first message of the channel's queue keys (kombu's BRPOP keys, in
its order: every queue at priority 0, then at 3, ...) and writes both entries in kombu's own
format, in one step; kombu's later write of them is skipped. A script cannot block: when the
queues are empty, the channel waits with a BRPOP of IDLE_WAIT seconds on a list nobody
writes, on the same connection and through the same socket-readable event, then takes
again. An idle channel costs Redis about twenty short calls a second (Redis ends a blocking
wait at its next tick, ten a second when idle: the wait lasts 50 to 100 ms), and a message
that finds the channel idle waits that long; a busy channel makes one call per message.

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
- TAKE declares itself a writing script (`#!lua`, no `allow-oom`), which a full Redis refuses
  whole: nothing is popped;
- a refused write closes the channel's gate: it takes nothing more off its queues, and tries
  a small write (SET with a short expiry) at most every second; the first that succeeds
  reopens it; a take already answered is still read and handed on (it is recorded);
- a message taken without its record (one TAKE could not read) whose unacked entry Redis
  refuses is kept in memory, not handed to Celery, and delivered once its unacked entry is
  written (at shutdown it is pushed back on its queue);
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
import hashlib
import json
import logging
import time
import uuid
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.transport.virtual import Message as VirtualMessage
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisError

from hudhud.worker import redaction
from hudhud.worker.ledger import keys, scripts

log = logging.getLogger("hudhud.transport")

UNREADABLE = "application/x-hudhud-unreadable"
UNREADABLE_KEY = keys.UNREADABLE
UNREADABLE_KEEP = 1000
UNREADABLE_TTL = 7 * 86400
WRITE_PROBE_KEY = keys.BROKER_WRITE_PROBE
WRITE_PROBE_TTL = 10
WRITE_PROBE_EVERY = 1.0  # seconds between two probes while Redis refuses writes
OOM_PUBLISH_WAIT = 10.0  # seconds a publish waits for Redis to take writes again
LOG_EVERY = 30.0  # a refusal is logged at once if none was in this many seconds,
LOG_AFTER = 5.0  # else once it has lasted this long
IDLE_KEY = keys.BROKER_IDLE  # a list nobody writes: a BRPOP on it is a short wait
IDLE_WAIT = 0.05  # seconds a channel whose queues were empty waits before it takes again
LATE_READ = 5.0  # a take answered this long before it was read gets its index time renewed

# TAKE pops the first message of a channel's queues and records its unacked entry in the same
# step (`lua/take.lua` says how).
TAKE = scripts.source("take")
TAKE_SHA = hashlib.sha1(TAKE.encode(), usedforsecurity=False).hexdigest()  # how Redis names it


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
        channel = self.channel
        # A channel that only listens (fanout: remote control) pops nothing: it goes on; and
        # a take already sent is read even while Redis refuses writes: what it took is recorded.
        return bool(channel._in_poll) or channel.takes_writes() or not channel.active_queues

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.recorded_by_take(delivery_tag):
            virtual.QoS.append(self, message, delivery_tag)
            return
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

    _in_poll: Any = None  # kombu: the BRPOP connection while a command on it awaits its answer
    _brpop_sent_at: Any = None  # kombu: when it was sent (monotonic)
    _awaiting: str | None = None  # that command: TAKE or the wait's BRPOP
    _found_nothing = False  # the last take found the queues empty: wait before the next
    _take_cached = False  # Redis has TAKE in its script cache (EVALSHA), as far as we know
    _taken_tag: str | None = None  # the message being delivered, recorded by its take

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._take_keys: list[tuple[str, str]] = []  # (queue, key) of the take in flight
        self._no_ack_queues: set[str] = set()
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

    # --- the take --------------------------------------------------------------------
    def _brpop_start(self, timeout: Any = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
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
        position, item, tag = reply
        queue = self._take_keys[position - 1][0]
        self._queue_cycle.rotate(queue)
        tag = bytes_to_str(tag) if tag is not None else None
        if tag is not None and time.monotonic() - sent_at > LATE_READ:
            self._renew_index_time(tag)  # its answer waited (no prefetch credit): not yet due back
        try:
            # An item that is not JSON is off its list by now: set it aside, from the
            # exception's document.
            payload = loads(bytes_to_str(item))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raw = exc.object if isinstance(exc, UnicodeDecodeError) else exc.doc
            log.error(
                "a queue item that is not a broker message could not be read (%s): it is set aside in %s",
                type(exc).__name__,
                UNREADABLE_KEY,
            )
            set_aside(self, raw, type(exc).__name__)
            if tag is not None:  # JSON to Redis's Lua, not to Python: no record to hand back
                self._forget(tag)
            return True
        self._taken_tag = tag
        try:
            self.connection._deliver(payload, queue)
        finally:
            self._taken_tag = None
        return True

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
