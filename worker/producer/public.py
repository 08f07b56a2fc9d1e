"""What `hudhud status` shows of a record: no recipients, bodies or addresses; one time
format (ISO 8601, milliseconds, `Z`), one money format with its currency, events once each
and in order, and whether the state is final."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from hudhud.worker.ledger import FINAL_STATUSES, Status

MONEY_PLACES = Decimal("0.001")  # Taqnyat prices to the thousandth of a riyal (0.026 SAR)


def money_text(value: Any) -> str | None:
    """An amount as text with three decimals (`0.026`, `26.000`), or None."""
    if value is None or value == "":
        return None
    try:
        return str(Decimal(str(value)).quantize(MONEY_PLACES))
    except (InvalidOperation, ValueError):
        return None


def is_final(status: str | None, tracked: bool) -> bool:
    """A final state changes no more: the ends, and `sent` where nothing follows it."""
    return status in FINAL_STATUSES or (status == Status.SENT and not tracked)


def ordered_events(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Events in time order (stable for equal times), each once."""
    seen: set[str] = set()
    out = []
    for item in sorted(events, key=lambda e: str(e.get("at") or "")):
        text = json.dumps(item, sort_keys=True, default=str)
        if text not in seen:
            seen.add(text)
            out.append(dict(item))
    return out


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `hudhud status` shows."""
    cost = money_text(record.get("cost"))
    out: dict[str, Any] = {
        "id": record.get("id"),
        "channel": record.get("channel"),
        "provider": record.get("provider") or None,
        "status": record.get("status"),
        "final": is_final(record.get("status"), record.get("tracked") == "1"),
        "attempts": int(record.get("attempts") or 0),
        "provider_message_id": record.get("provider_message_id") or None,
        "cost": cost,
        "currency": (record.get("currency") or None) if cost else None,
        "error": record.get("error") or None,
        "events": ordered_events(record.get("events") or []),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        "at": record.get("at") or None,
        "in_doubt": record.get("in_doubt") == "1",
        "retry_of": record.get("retry_of") or None,
        "redriven_to": record.get("redriven_to") or None,
        "key": record.get("key") or None,
        "reference": record.get("reference") or None,
        "lane": record.get("lane") or "transactional",
        "expires_at": record.get("expires_at") or None,
    }
    for name in ("accepted", "rejected"):
        if record.get(name):
            out[f"{name}_count"] = len(json.loads(record[name]))
    return out
