"""The one Redis client of a process, made for the ledger."""

from __future__ import annotations

import redis

Client = redis.Redis


def connect(url: str, *, size: int, timeout: float) -> redis.Redis:
    """A client shared by all the process's threads (and green threads). Its pool holds
    `size` connections; a caller that finds them all taken waits up to `timeout` seconds for
    one (then `redis.ConnectionError`), instead of failing at once with "Too many
    connections" as redis-py's default pool does."""
    # from_url understands redis://, rediss:// (with ssl_* query options) and unix://
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=size,
        timeout=timeout,
        socket_timeout=30,
        socket_connect_timeout=10,
        health_check_interval=25,
        retry_on_timeout=True,
    )
    client = redis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client
