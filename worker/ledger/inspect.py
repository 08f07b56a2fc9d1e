"""What the Redis server and the broker's queues look like, read as plain data.

`hudhud check` and the start of a worker or beat judge these facts (`redis_safety`, `check`);
this module only reads them. Settings come from CONFIG GET where it is allowed and from INFO
where it is not (managed Redis services often disable CONFIG); a fact neither tells is None.

Queues are read in kombu's Redis layout: a queue is the list named after it, a message sent
with a priority waits in a list of its own (`<queue><sep><step>`), and the set
`_kombu.binding.<exchange>` holds `routing key, pattern, queue` joined by the separator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.keys import CHECK_WRITE_PROBE

BINDING_PREFIX = kombu_redis.Channel.keyprefix_queue % ""
KOMBU_SEP = kombu_redis.Channel.sep
PRIORITY_STEPS = tuple(kombu_redis.Channel.priority_steps)
START_TIMEOUT = 5  # seconds the start check waits for Redis before it gives up asking


@dataclass(frozen=True)
class ServerFacts:
    """What could be read of the server's settings (None: it could not be read)."""

    policy: str | None
    aof: bool | None
    save: str | None  # the RDB `save` setting; "" means no snapshots
    used_memory: int | None
    maxmemory: int | None

    @property
    def rdb(self) -> bool | None:
        return None if self.save is None else bool(self.save.strip())

    @property
    def memory_share(self) -> float | None:
        if not self.maxmemory or self.used_memory is None:
            return None  # maxmemory 0: no limit
        return self.used_memory / self.maxmemory


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _config(client: redis.Redis, name: str) -> str | None:
    """CONFIG GET `name`, or None where CONFIG is refused (disabled, renamed, no ACL right)."""
    try:
        reply = client.config_get(name)
    except redis.ResponseError:
        return None
    for key, value in (reply or {}).items():
        if _text(key) == name:
            return _text(value)
    return None


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    try:
        return dict(client.info(section))
    except redis.ResponseError:
        return {}


def _read_facts(client: redis.Redis) -> ServerFacts:
    memory = _info(client, "memory")
    persistence = _info(client, "persistence")
    policy = _config(client, "maxmemory-policy") or (
        _text(memory["maxmemory_policy"]) if "maxmemory_policy" in memory else None
    )
    appendonly = _config(client, "appendonly")
    if appendonly is not None:
        aof: bool | None = appendonly == "yes"
    else:
        enabled = _number(persistence.get("aof_enabled"))
        aof = None if enabled is None else enabled == 1
    maxmemory = _number(memory.get("maxmemory"))
    if maxmemory is None:
        maxmemory = _number(_config(client, "maxmemory"))
    return ServerFacts(
        policy=policy,
        aof=aof,
        save=_config(client, "save"),  # INFO does not tell the snapshot schedule
        used_memory=_number(memory.get("used_memory")),
        maxmemory=maxmemory,
    )


def ping(ledger: Ledger) -> None:
    """Raises `redis.RedisError` when the ledger's Redis cannot be reached."""
    ledger.redis.ping()


def server_facts(ledger: Ledger) -> ServerFacts:
    """The eviction policy, persistence and memory of the ledger's Redis. Raises
    `redis.RedisError` only when Redis cannot be reached; a refused command leaves its fact
    unknown."""
    return _read_facts(ledger.redis)


def server_facts_at(url: str) -> ServerFacts:
    """The same facts through a client of its own with short timeouts and no retries, so that
    an unreachable Redis does not hold up the start of a worker or beat."""
    client = redis.Redis.from_url(
        url,
        socket_timeout=START_TIMEOUT,
        socket_connect_timeout=START_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return _read_facts(client)
    finally:
        client.close()


def write_refusal(ledger: Ledger) -> str | None:
    """The name of the error a short-lived test write meets (`OutOfMemoryError` when Redis is
    full, `ReadOnlyError` on a replica, ...), or None when Redis takes writes."""
    try:
        ledger.redis.set(CHECK_WRITE_PROBE, "1", ex=60)
        ledger.redis.delete(CHECK_WRITE_PROBE)
    except redis.ResponseError as exc:
        return type(exc).__name__
    return None


def bound_queues(ledger: Ledger) -> list[str]:
    """Every queue bound to an exchange, but for remote-control and event exchanges."""
    client = ledger.redis
    names: dict[str, None] = {}
    for key in client.scan_iter(match=f"{BINDING_PREFIX}*", count=500):
        exchange = _text(key)[len(BINDING_PREFIX) :]
        if exchange.endswith("pidbox") or exchange.startswith("celeryev"):
            continue
        for member in client.smembers(key):
            queue = _text(member).split(KOMBU_SEP)[-1]
            if queue and not queue.endswith(".pidbox"):
                names.setdefault(queue)
    return list(names)


def queue_depths(ledger: Ledger, known: Iterable[str]) -> dict[str, int]:
    """Tasks waiting on each queue: the `known` ones first, then every bound one."""
    return queue_lengths(ledger, dict.fromkeys((*known, *bound_queues(ledger))))


def queue_lengths(ledger: Ledger, queues: Iterable[str]) -> dict[str, int]:
    """Tasks waiting on each of `queues` (every priority step of each)."""
    names = list(queues)
    pipe = ledger.redis.pipeline(transaction=False)
    for name in names:
        for step in PRIORITY_STEPS:
            pipe.llen(f"{name}{KOMBU_SEP}{step}" if step else name)
    # a key of another type under a queue's name is no queue: WRONGTYPE counts as empty
    lengths = [n if isinstance(n, int) else 0 for n in pipe.execute(raise_on_error=False)]
    width = len(PRIORITY_STEPS)
    return {name: sum(lengths[i * width : (i + 1) * width]) for i, name in enumerate(names)}
