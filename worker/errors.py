"""Errors that stand outside the provider hierarchy: bad configuration and bad input."""

from __future__ import annotations


class ConfigurationError(Exception):
    """A setting is missing or wrong. Never swallowed by retry logic."""

    def __init__(self, variable: str, detail: str | None = None) -> None:
        self.variable = variable
        self.detail = detail
        super().__init__(f"configuration: {variable} is not set or invalid")


class InvalidInput(ValueError):
    """Bad input, caught before anything is recorded or sent. Names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
