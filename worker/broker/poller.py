"""kombu's poller of a worker's channels, which also sweeps the unacked index on a clock.

kombu puts a task left unacknowledged longer than the visibility timeout (its worker was
killed) back on its queue, but sweeps only after a poll that saw nothing, and the poll of an
idle consumer without an event loop (the gevent pool) always sees something: its BRPOP's empty
answer. Such a worker never swept. The sweep here also runs after every poll, at most once per
`unacked_restore_interval`. While Redis refuses writes, a poll waits at most a probe's interval
and hands on what its channels kept meanwhile.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis

from hudhud.worker.broker.full_redis import WRITE_PROBE_EVERY


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
        try:
            super().get(callback, timeout=timeout)
        except Empty:
            self.maybe_restore_messages()
            raise
        self.maybe_restore_messages()
