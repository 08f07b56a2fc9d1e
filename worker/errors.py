"""Errors that stand outside the provider hierarchy: bad configuration and bad input."""

from __future__ import annotations

from redis.exceptions import OutOfMemoryError


class ConfigurationError(Exception):
    """A setting is missing (no `detail`) or wrong (`detail` says how, what is allowed and,
    unless the setting is a secret, the value given). Never swallowed by retry logic."""

    def __init__(self, variable: str, detail: str | None = None) -> None:
        self.variable = variable
        self.detail = detail
        problem = f"is invalid: {detail}" if detail else "is not set"
        super().__init__(f"configuration: {variable} {problem}")


def printable(text: str) -> str:
    """`text` with anything UTF-8 cannot carry (lone surrogates) escaped, so it can be
    written to Redis, a log or a terminal."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class InvalidInput(ValueError):
    """Bad input, caught before anything is recorded or sent. Names the field.

    The text is `"<field>: <problem>"`; it never carries the value itself.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = printable(field)
        self.message = printable(message)
        super().__init__(f"{self.field}: {self.message}")


class RedisFull(OutOfMemoryError):
    """Redis is out of memory and refuses writes (`used_memory` reached `maxmemory` under the
    `noeviction` policy). Raised by the producer API instead of redis-py's `OutOfMemoryError`
    (of which it is a subclass, so `except redis.RedisError` still catches it).

    The ledger records a message with one Lua script, which Redis refuses whole: a send that
    raises this was not recorded, unless Redis filled up between the record and the enqueue,
    in which case the message is `queued` and beat enqueues it again once Redis takes writes
    (sending again with the same `key` returns that message)."""

    def __init__(self) -> None:
        super().__init__(
            "Redis is out of memory and refuses writes "
            "(used_memory reached maxmemory; free memory or raise maxmemory)"
        )
