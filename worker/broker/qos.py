"""kombu's bookkeeping of unacknowledged messages (the `unacked` hash and the `unacked_index`
zset), on a Redis that may refuse writes (`maxmemory` reached under `noeviction`).

- A message whose take already wrote its entries is not written again.
- A message taken without its entries (one the take could not read) whose entry Redis refuses
  raises `NotRecorded`: the transport keeps it on its channel, not handed to Celery, until
  the entry is written.
- Acks remove the entries without MULTI, which a full Redis serves.
- A hand-back or a sweep that Redis refuses leaves the entries where they are, for a later
  sweep.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from redis.exceptions import OutOfMemoryError

if TYPE_CHECKING:
    from hudhud.worker.broker.transport import Channel

log = logging.getLogger("hudhud.transport")


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
