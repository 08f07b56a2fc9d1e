"""Waiting out a Redis that cannot take a write now, instead of losing what was to be written.

A Redis at `maxmemory` under `noeviction` refuses every write with "OOM command not allowed";
a Redis that restarts or fails over refuses connections or answers "LOADING" for a while.
The outcome of a provider call, a claim and the record of a foreign producer's send are
worth waiting for: the caller keeps them in memory and writes them once Redis takes writes
again. Only after `patience` seconds does the error reach the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

log = logging.getLogger("hudhud.ledger")

T = TypeVar("T")

WAIT_ON = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
FIRST_WAIT = 0.2
LONGEST_WAIT = 5.0
LOG_EVERY = 30.0


def redis_fault(exc: BaseException) -> str:
    """Words for why Redis did not take a write."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return "Redis is out of memory (maxmemory reached)"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "Redis is a read-only replica"
    return f"Redis cannot be reached ({type(exc).__name__})"


def patiently(
    call: Callable[[], T],
    *,
    what: str,
    patience: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, tried again while Redis refuses it, for up to `patience` seconds."""
    deadline = time.monotonic() + patience
    wait = FIRST_WAIT
    last_log = 0.0
    while True:
        try:
            return call()
        except WAIT_ON as exc:
            now = time.monotonic()
            if now >= deadline:
                raise
            if now - last_log >= LOG_EVERY:
                log.warning("%s waits: %s", what, redis_fault(exc))
                last_log = now
            sleep(min(wait, max(0.0, deadline - now)))
            wait = min(LONGEST_WAIT, wait * 2)
