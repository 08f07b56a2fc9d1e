"""Is the Redis under hudhud safe to keep messages in?

- **Eviction**: with a `maxmemory-policy` other than `noeviction`, a full Redis deletes keys
  without a sign: queued tasks, scheduled messages, idempotency keys, records. Workers and
  beat refuse to start on such a Redis unless HUDHUD_ALLOW_EVICTION=1 (then they warn).
- **Persistence**: with neither AOF nor RDB snapshots, a restart loses every queued and
  scheduled message. Workers and beat warn at start.
- **Memory**: `used_memory` near `maxmemory` (under `noeviction`, Redis then refuses writes).

The settings are read with CONFIG GET where it is allowed and from INFO where it is not
(managed Redis services often disable CONFIG); what neither tells is reported as not verified.
`hudhud check` reports the same findings (see `hudhud.worker.check`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hudhud.config import Settings, get_settings

log = logging.getLogger("hudhud.redis_safety")

NOEVICTION = "noeviction"
MEMORY_WARNING = 0.80
MEMORY_PROBLEM = 0.95
PROBE_KEY = "hudhud:check:write-probe"
EXIT_REFUSED = os.EX_CONFIG if hasattr(os, "EX_CONFIG") else 78
ALLOW_VARIABLE = "HUDHUD_ALLOW_EVICTION"


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

    def as_dict(self) -> dict[str, Any]:
        share = self.memory_share
        return {
            "maxmemory_policy": self.policy or "unknown",
            "aof": _yes_no(self.aof),
            "rdb": "unknown" if self.save is None else (f"save {self.save}" if self.rdb else "off"),
            "used_memory": _size(self.used_memory),
            "maxmemory": "none" if self.maxmemory == 0 else _size(self.maxmemory),
            "memory_used": "n/a" if share is None else f"{share:.0%}",
        }


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("on" if value else "off")


def _size(value: int | None) -> str:
    if value is None:
        return "unknown"
    return f"{value / (1024 * 1024):.1f} MiB"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_facts(client: redis.Redis) -> ServerFacts:
    """The server's eviction policy, persistence and memory. Raises `redis.RedisError` only
    when Redis cannot be reached; a refused command leaves its fact unknown."""
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


# --- findings ---------------------------------------------------------------------------
def eviction_text(policy: str) -> str:
    return (
        f"maxmemory-policy is {policy}: when its memory is full Redis deletes keys without a "
        "sign (queued tasks, scheduled messages, idempotency keys, records); "
        f"set maxmemory-policy {NOEVICTION} on the Redis server"
    )


def persistence_text(facts: ServerFacts) -> str | None:
    if facts.aof or facts.rdb:
        return None
    if facts.aof is None:
        return (
            "persistence could not be verified (CONFIG and INFO persistence refused): without "
            "AOF or RDB a restart of Redis loses every queued and scheduled message"
        )
    if facts.rdb is None:
        return (
            "AOF is off and RDB snapshots could not be verified (CONFIG refused): without either "
            "a restart of Redis loses every queued and scheduled message; turn on appendonly yes"
        )
    return (
        'Redis persists nothing (appendonly no, save ""): a restart loses every queued and '
        "scheduled message; turn on appendonly yes"
    )


def memory_text(facts: ServerFacts) -> tuple[str, str] | None:
    """("problem" | "warning", text) when memory is short."""
    share = facts.memory_share
    if share is None or share < MEMORY_WARNING:
        return None
    text = (
        f"memory is {share:.0%} used (used_memory {_size(facts.used_memory)} of maxmemory "
        f"{_size(facts.maxmemory)})"
    )
    if share >= MEMORY_PROBLEM:
        return "problem", f"{text}: Redis refuses writes (sends fail) once it is full"
    return "warning", f"{text}: sends fail once it is full"


def evicts(facts: ServerFacts) -> bool:
    return facts.policy is not None and facts.policy != NOEVICTION


def cautions(facts: ServerFacts, *, allow_eviction: bool) -> list[str]:
    """Warnings about the policy and persistence, each prefixed `redis: `."""
    warnings: list[str] = []
    if facts.policy is None:
        warnings.append(
            "redis: maxmemory-policy could not be verified (CONFIG and INFO refused): "
            f"it must be {NOEVICTION}"
        )
    elif evicts(facts) and allow_eviction:
        warnings.append(f"redis: {eviction_text(str(facts.policy))} ({ALLOW_VARIABLE}=1 accepts it)")
    persistence = persistence_text(facts)
    if persistence:
        warnings.append(f"redis: {persistence}")
    return warnings


def judge(facts: ServerFacts, *, allow_eviction: bool) -> tuple[list[str], list[str]]:
    """(problems, warnings) about a Redis with these facts, each prefixed `redis: `."""
    problems: list[str] = []
    if evicts(facts) and not allow_eviction:
        problems.append(f"redis: {eviction_text(str(facts.policy))}")
    warnings = cautions(facts, allow_eviction=allow_eviction)
    memory = memory_text(facts)
    if memory:
        (problems if memory[0] == "problem" else warnings).append(f"redis: {memory[1]}")
    return problems, warnings


def write_refused(client: redis.Redis) -> str | None:
    """Why a short-lived test write is refused (out of memory, a read-only replica), if it is."""
    try:
        client.set(PROBE_KEY, "1", ex=60)
        client.delete(PROBE_KEY)
    except redis.exceptions.OutOfMemoryError:
        return "redis: out of memory: it refuses writes (OOM), so every send fails"
    except redis.ResponseError as exc:
        return f"redis: a test write was refused ({type(exc).__name__}), so every send fails"
    return None


# --- at the start of a worker or beat -------------------------------------------------------
def _client(settings: Settings) -> redis.Redis:
    """A client of its own: short timeouts and no retries, so that an unreachable Redis does not
    hold up the start (Celery then reports it and retries as it does)."""
    return redis.Redis.from_url(
        settings.redis_url, socket_timeout=5, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0)
    )


def check_at_start(role: str, settings: Settings | None = None) -> None:
    """Log what is unsafe about the Redis of `settings` (as warnings); raise SystemExit when
    its policy evicts keys and HUDHUD_ALLOW_EVICTION is not set."""
    cfg = settings or get_settings()
    try:
        client = _client(cfg)
        try:
            facts = read_facts(client)
        finally:
            client.close()
    except redis.RedisError as exc:
        log.warning(
            "hudhud %s: the Redis eviction policy and persistence could not be verified (%s)",
            role,
            type(exc).__name__,
        )
        return
    warnings = cautions(facts, allow_eviction=cfg.allow_eviction)
    memory = memory_text(facts)
    if memory:
        warnings.append(f"redis: {memory[1]}")
    for warning in warnings:
        log.warning("hudhud %s: %s", role, warning)
    if evicts(facts) and not cfg.allow_eviction:
        log.critical(
            "hudhud %s will not start: redis: %s, or set %s=1 to start anyway",
            role,
            eviction_text(str(facts.policy)),
            ALLOW_VARIABLE,
        )
        raise SystemExit(EXIT_REFUSED)


def on_worker_start(**_: Any) -> None:
    """`celeryd_after_setup`: in the worker's main process once logging is set up, before the
    consumer connects (a SystemExit here stops the worker with that exit code)."""
    check_at_start("worker")


def on_beat_start(**_: Any) -> None:
    """`beat_init`: before beat's first tick."""
    check_at_start("beat")


def install() -> None:
    """Check Redis when a worker or beat of this app starts (`hudhud worker`/`hudhud beat`
    and `celery -A hudhud.worker.celery_app worker|beat` alike)."""
    from celery import signals

    signals.celeryd_after_setup.connect(on_worker_start, weak=False, dispatch_uid="hudhud-redis-worker")
    signals.beat_init.connect(on_beat_start, weak=False, dispatch_uid="hudhud-redis-beat")
