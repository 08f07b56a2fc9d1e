"""When a callback is tried: `HUDHUD_CALLBACK_SCHEDULE` lists the seconds before each try
(the first counted from the change, each other one from the failed try before it); after the
last try fails the callback is given up."""

from __future__ import annotations

import math

from hudhud.config import Settings
from hudhud.worker.errors import ConfigurationError

VARIABLE = "HUDHUD_CALLBACK_SCHEDULE"


def parse(text: str) -> tuple[float, ...]:
    try:
        waits = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigurationError(VARIABLE, f"seconds separated by commas, not {text!r}") from exc
    if not waits or any(not math.isfinite(w) or w < 0 for w in waits):
        raise ConfigurationError(
            VARIABLE, f"one or more seconds (0 or more) separated by commas, not {text!r}"
        )
    return waits


def of(settings: Settings) -> tuple[float, ...]:
    return parse(settings.callback_schedule)


def next_try(waits: tuple[float, ...], tries: int, now: float) -> float | None:
    """When the try after `tries` failed ones happens (None: give up)."""
    return now + waits[tries] if tries < len(waits) else None
