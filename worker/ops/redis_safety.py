"""Is the Redis under hudhud safe to keep messages in?

- **Eviction**: with a `maxmemory-policy` other than `noeviction`, a full Redis deletes keys
  without a sign: queued tasks, scheduled messages, idempotency keys, records. Workers and
  beat refuse to start on such a Redis unless HUDHUD_ALLOW_EVICTION=1 (then they warn).
- **Persistence**: with neither AOF nor RDB snapshots, a restart loses every queued and
  scheduled message. Workers and beat warn at start.
- **Memory**: `used_memory` near `maxmemory` (under `noeviction`, Redis then refuses writes).

The facts are read by the ledger (`hudhud.worker.ledger.inspect`); what it cannot read is
reported as not verified. `hudhud check` reports the same findings (see `hudhud.worker.ops.check`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import redis

from hudhud.config import Settings, get_settings
from hudhud.worker.ledger import inspect
from hudhud.worker.ledger.inspect import ServerFacts

log = logging.getLogger("hudhud.redis_safety")

NOEVICTION = "noeviction"
MEMORY_WARNING = 0.80
MEMORY_PROBLEM = 0.95
EXIT_REFUSED = os.EX_CONFIG if hasattr(os, "EX_CONFIG") else 78
ALLOW_VARIABLE = "HUDHUD_ALLOW_EVICTION"


def facts_report(facts: ServerFacts) -> dict[str, str]:
    """The facts as `hudhud check` shows them."""
    share = facts.memory_share
    return {
        "maxmemory_policy": facts.policy or "unknown",
        "aof": _yes_no(facts.aof),
        "rdb": "unknown" if facts.save is None else (f"save {facts.save}" if facts.rdb else "off"),
        "used_memory": _size(facts.used_memory),
        "maxmemory": "none" if facts.maxmemory == 0 else _size(facts.maxmemory),
        "memory_used": "n/a" if share is None else f"{share:.0%}",
    }


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("on" if value else "off")


def _size(value: int | None) -> str:
    if value is None:
        return "unknown"
    return f"{value / (1024 * 1024):.1f} MiB"


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


def refusal_text(error: str) -> str:
    """Words for a test write that Redis refused with the error named `error`."""
    if error == "OutOfMemoryError":
        return "redis: out of memory: it refuses writes (OOM), so every send fails"
    return f"redis: a test write was refused ({error}), so every send fails"


# --- at the start of a worker or beat -------------------------------------------------------
def check_at_start(role: str, settings: Settings | None = None) -> None:
    """Log what is unsafe about the Redis of `settings` (as warnings); raise SystemExit when
    its policy evicts keys and HUDHUD_ALLOW_EVICTION is not set."""
    cfg = settings or get_settings()
    try:
        facts = inspect.server_facts_at(cfg.redis_url)
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
    and `celery -A hudhud.worker.broker.celery_app worker|beat` alike)."""
    from celery import signals

    signals.celeryd_after_setup.connect(on_worker_start, weak=False, dispatch_uid="hudhud-redis-worker")
    signals.beat_init.connect(on_beat_start, weak=False, dispatch_uid="hudhud-redis-beat")
