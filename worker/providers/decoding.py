"""Reading what a provider answers: exact JSON, page words, Retry-After, raw records.

Nothing here knows a provider: a provider module that must read bodies that are not quite
JSON passes its own `salvage` to `decode_body`.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def decode_json(text: str) -> Any:
    """The JSON value of a body, exact: integers stay `int`, fractions become `Decimal`."""
    return json.loads(text, parse_int=int, parse_float=Decimal)


def decode_body(text: str, salvage: Callable[[str], Any] | None = None) -> Any:
    """A body's JSON value; None for anything else, unless `salvage` can read it."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return decode_json(stripped)
    except ValueError:
        pass
    if stripped.startswith("<") or salvage is None:
        return None  # an HTML page from a proxy or a load balancer
    return salvage(stripped)


def plain(value: Any) -> Any:
    """A decoded body in JSON-native types (Decimal -> float), to keep as the raw record."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def page_summary(text: str, limit: int = 200) -> str:
    """The words of a non-JSON page (`<h1>502 Bad Gateway</h1>` -> `502 Bad Gateway`)."""
    title = re.search(r"<(title|h1)[^>]*>(.*?)</\1>", text, re.I | re.S)
    words = title.group(2) if title else re.sub(r"<[^>]*>", " ", text)
    words = " ".join(words.split())
    return words[:limit] + ("..." if len(words) > limit else "")


# --- Retry-After ---------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value, now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until(value: str, now: datetime | None) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()


def first_text(*values: Any) -> str | None:
    """The first value that is a non-empty string once stripped (numbers count as text)."""
    for value in values:
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def join_words(parts: Iterable[str]) -> str:
    return "; ".join(p for p in parts if p)
