"""Timestamps as the sandbox prints and reads them (UTC, ISO 8601)."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso_time(stamp: float) -> str:
    """A UTC timestamp as ISO 8601 with microseconds and a `Z`."""
    return iso_micros(micros(stamp))


def _parse(value: str) -> datetime | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_iso(value: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (`Z`, an offset or none, meaning UTC)."""
    moment = _parse(value)
    return None if moment is None else moment.timestamp()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(stamp: float) -> int:
    """A timestamp in whole microseconds, the precision the sandbox prints."""
    return round(stamp * 1_000_000)


def iso_micros(value: int) -> str:
    """Whole microseconds since the epoch as ISO 8601 with a `Z` (exact, no float rounding)."""
    seconds, fraction = divmod(value, 1_000_000)
    return f"{_second(seconds)}.{fraction:06d}Z"


def parse_iso_micros(value: str) -> int | None:
    """Whole microseconds since the epoch of an ISO 8601 time (no offset means UTC)."""
    moment = _parse(value)
    return None if moment is None else (moment - _EPOCH) // timedelta(microseconds=1)
