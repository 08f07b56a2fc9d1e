"""What the operator page shows of a number, an address or words from outside: enough to
recognise one (`9665••••0777`, `s•••@example.com`), never the whole of it."""

from __future__ import annotations

import re
from collections.abc import Iterable

DOTS = "••••"
LONG_DIGITS = 6  # a run of this many digits in words may be a number
_ADDRESS = re.compile(r"[^\s@<>\"',;:()\[\]]+@[^\s@<>\"',;:()\[\]]+")
_DIGITS = re.compile(rf"\d{{{LONG_DIGITS},}}")


def number(value: str) -> str:
    """A phone number with its middle hidden: four digits each side of a full number, fewer
    of a short one."""
    text = value.strip()
    keep = 4 if len(text) >= 10 else max(1, len(text) // 4)
    if len(text) <= 2 * keep:
        return DOTS
    return f"{text[:keep]}{DOTS}{text[-keep:]}"


def address(value: str) -> str:
    """An email address with its local part hidden but for its first character."""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local:
        return DOTS
    return f"{local[0]}•••@{domain}"


def recipient(value: object) -> str:
    text = str(value)
    return address(text) if "@" in text else number(text)


def recipients(values: Iterable[object]) -> list[str]:
    return [recipient(v) for v in values]


def words(text: object) -> str:
    """Words from outside (a provider's error, a reference) with every address and every run
    of six or more digits masked."""
    if text is None:
        return ""
    masked = _ADDRESS.sub(lambda found: address(found.group(0)), str(text))
    return _DIGITS.sub(lambda found: number(found.group(0)), masked)
