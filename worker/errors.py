"""Errors that stand outside the provider hierarchy: bad configuration and bad input."""

from __future__ import annotations


class ConfigurationError(Exception):
    """A setting is missing or wrong. Never swallowed by retry logic."""

    def __init__(self, variable: str, detail: str | None = None) -> None:
        self.variable = variable
        self.detail = detail
        super().__init__(f"configuration: {variable} is not set or invalid")


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
