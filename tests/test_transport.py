"""hudhud's kombu Redis transport and Celery app settings on the hot path, against a real
redis-server: shared objects where Celery and kombu would make one per task."""

from __future__ import annotations

import threading

from kombu import Connection

from hudhud.config import Settings
from hudhud.worker.broker.celery_app import create_app
from hudhud.worker.broker.transport import TRANSPORT
from tests.helpers import RedisServer


def test_short_commands_share_one_client_per_pool(redis_server: RedisServer) -> None:
    with Connection(redis_server.url, transport=TRANSPORT) as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._pool = None  # kombu drops its pool after a connection fault
        with channel.conn_or_acquire() as third:
            assert third is not first and third.connection_pool is channel.pool
            assert third.ping()
        assert channel.client is not third, "the blocking BRPOP client stays its own"


def test_the_disabled_result_backend_is_one_for_all_threads(redis_server: RedisServer) -> None:
    app = create_app(Settings(redis_url=redis_server.url))
    made = app.backend
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(app.backend)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 3 and all(backend is made for backend in seen)
    assert type(app.backend).__name__ == "DisabledBackend", "no task results are stored"
