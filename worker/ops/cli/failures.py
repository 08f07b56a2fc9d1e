"""A Redis failure in words that say what to do, and where a setting was read from."""

from __future__ import annotations

import os
from pathlib import Path

import redis

from hudhud.worker.errors import ConfigurationError, RedisFull
from hudhud.worker.redaction import mask_url


def redis_failure(exc: redis.RedisError) -> str:
    """What went wrong with Redis, in words that say what to do. An unreachable Redis is named
    by its URL (the password masked) and where that URL was read from."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return str(exc) if isinstance(exc, RedisFull) else str(RedisFull())
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"cannot reach Redis{_redis_url_told()} ({type(exc).__name__}): {origin('HUDHUD_REDIS_URL')}"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "Redis refuses writes: it is a read-only replica (ReadOnlyError)"
    return f"Redis refused the command ({type(exc).__name__})"


def _redis_url_told() -> str:
    from hudhud.config import get_settings

    try:
        return f" at {mask_url(get_settings().redis_url)}"
    except ConfigurationError:
        return ""


def origin(variable: str) -> str:
    """Where a setting was read from: the environment, or a settings file of the current
    folder (`.env`, `.hudhud/dev.env`), or nowhere (its default)."""
    from dotenv import dotenv_values

    from hudhud.config import Settings

    configured = Settings.model_config.get("env_file")
    listed = [configured] if isinstance(configured, str | Path) else list(configured or ())
    files = [str(f) for f in listed]
    folder = Path.cwd()
    if any(name.upper() == variable for name in os.environ):
        return f"{variable} is set in the environment"
    for file in reversed(files):  # the later file wins, as in Settings
        if (folder / file).is_file() and variable in {k.upper() for k in dotenv_values(folder / file)}:
            return f"{variable} is read from {file} in the current folder ({folder})"
    return (
        f"{variable} is set neither in the environment nor in {' or '.join(files)} of the current "
        f"folder ({folder}), so this is its default (`hudhud dev` writes .hudhud/dev.env in the "
        "folder it runs in: run commands from there)"
    )
