"""kombu's Redis transport, as hudhud's broker, with these changes:
- a message is taken off its queue and recorded as unacknowledged in one step (`take.py`);
- a broker message that cannot be read is set aside with a log line instead of stopping the
  worker (`unreadable.py`);
- a Redis that refuses writes (maxmemory reached) pauses consumption instead of stopping the
  worker or losing a message (`full_redis.py`, and the unacked bookkeeping in `qos.py`);
- the unacked index is swept on a clock (`poller.py`);
- one client object serves the channel's short commands (acks, the unacked index) instead of
  a new one for each.

Celery names the transport by `TRANSPORT`.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

from hudhud.worker.broker import qos, unreadable
from hudhud.worker.broker.poller import Poller
from hudhud.worker.broker.take import IDLE_KEY, TakingChannel
from hudhud.worker.broker.unreadable import UNREADABLE_KEY

__all__ = ["IDLE_KEY", "TRANSPORT", "UNREADABLE_KEY", "Channel", "Transport"]


class Channel(TakingChannel):
    Message = unreadable.Message
    QoS = qos.QoS

    _shared_client: Any = None

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


class Transport(kombu_redis.Transport):
    Channel = Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = Poller()  # type: ignore[assignment]

    def _deliver(self, message: Any, queue: str) -> None:
        try:
            super()._deliver(message, queue)
        except qos.NotRecorded as refused:
            refused.channel.keep(message, queue)


TRANSPORT = f"{__name__}:Transport"
