"""The body of a status callback: what became of a message, never to whom it goes nor what
it says (no body text, no address, no number)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hudhud.worker.ledger.changes import Change
from hudhud.worker.producer.public import money_text
from hudhud.worker.redaction import NO_SECRETS


def event_type(change: Change) -> str:
    return f"message.{change.status}"


def data_of(change: Change, record: Mapping[str, str]) -> dict[str, Any]:
    """The callback's `data`: the change, with the record's ids, key and cost beside it.
    `recipient` (a campaign recipient's fingerprint) only in a recipient's own change."""
    data: dict[str, Any] = {
        "id": change.id,
        "reference": change.reference or record.get("reference") or None,
        "key": record.get("key") or None,
        "channel": change.channel or record.get("channel") or None,
        "provider": change.provider or record.get("provider") or None,
        "status": str(change.status),
        "error": NO_SECRETS(change.error) if change.error else None,
        "provider_message_id": record.get("provider_message_id") or None,
        "cost": money_text(record.get("cost")),
        "at": record.get("at") or None,
    }
    if change.recipient is not None:
        data["recipient"] = change.recipient
    return data


def body_of(change: Change, record: Mapping[str, str]) -> str:
    """The JSON text sent (and signed) on every try of the change's callback."""
    payload = {"type": event_type(change), "timestamp": change.at, "data": data_of(change, record)}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
