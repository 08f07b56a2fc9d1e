"""Process-wide resources, created lazily: the Redis client, the ledger, provider clients.

Each is made once per process (and again in a forked child, so no socket is shared).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from hudhud.config import Settings, get_settings
from hudhud.worker.ledger import Ledger, connection
from hudhud.worker.providers import registry
from hudhud.worker.providers.base import Provider

T = TypeVar("T")

_lock = threading.Lock()
_cache: dict[str, Any] = {}
_pid = 0


def _fresh() -> dict[str, Any]:
    global _pid
    if _pid != os.getpid():
        _cache.clear()
        _pid = os.getpid()
    return _cache


def _once(key: str, make: Callable[[], T]) -> T:
    """The process's one `key` resource, made by `make` on first use."""
    with _lock:
        cache = _fresh()
        if key not in cache:
            cache[key] = make()
        return cast(T, cache[key])


def redis_client(settings: Settings | None = None) -> connection.Client:
    """The process's Redis client (`ledger.connection`), made once per URL and pool size."""
    cfg = settings or get_settings()
    size = redis_pool_size(cfg)

    def make() -> connection.Client:
        return connection.connect(cfg.redis_url, size=size, timeout=cfg.redis_pool_timeout)

    return _once(f"redis:{cfg.redis_url}:{size}:{cfg.redis_pool_timeout}", make)


def redis_pool_size(settings: Settings) -> int:
    """Redis connections per process: HUDHUD_REDIS_POOL_SIZE, else two per task run at once
    (at least 64)."""
    return settings.redis_pool_size or max(64, pool_size(settings) * 2)


def make_ledger(settings: Settings, client: connection.Client) -> Ledger:
    return Ledger(
        client,
        retention_seconds=int(settings.retention_days * 86400),
        idempotency_ttl=settings.idempotency_ttl,
        lease_seconds=lease_seconds(settings),
        park_after=park_after(settings),
        tracking_seconds=int(settings.tracking_days * 86400),
        data_key=settings.data_key.get_secret_value() if settings.data_key else None,
        changes_maxlen=settings.changes_maxlen,
    )


def ledger(settings: Settings | None = None) -> Ledger:
    cfg = settings or get_settings()
    client = redis_client(cfg)
    return _once(f"ledger:{cfg.redis_url}", lambda: make_ledger(cfg, client))


def park_after(settings: Settings) -> float:
    """ETA tasks only for the near future, well inside the broker's visibility timeout."""
    return float(min(settings.eta_window, settings.visibility_timeout // 2))


def lease_seconds(settings: Settings) -> int:
    """A claim outlives the longest provider call, short retries included."""
    per_call = settings.http_connect_timeout + settings.http_read_timeout
    return max(settings.lease_seconds, int(per_call * (settings.http_retries + 1) * 2 + 10))


def pool_size(settings: Settings) -> int:
    """HTTP connections per provider: as many as the worker runs tasks at once."""
    if settings.http_pool_size:
        return settings.http_pool_size
    try:
        return max(10, int(os.environ.get("HUDHUD_CONCURRENCY", "0")))
    except ValueError:
        return 10


def provider_client(name: str, settings: Settings | None = None) -> Provider:
    """The process's client of the registered provider `name` (built on first use)."""
    cfg = settings or get_settings()
    provider = registry.get(name)
    return _once(f"client:{name}", lambda: provider.from_settings(cfg, pool_size=pool_size(cfg)))


def reset() -> None:
    """Forget every resource (tests change settings between runs)."""
    with _lock:
        _cache.clear()
