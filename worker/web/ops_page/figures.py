"""The operator page's figures as plain, masked data: what `/ops/data` answers and `/ops`
renders. Read from the ledger (`overview`, `activity`, `lookup`), never written."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from hudhud.worker.ledger import Ledger, activity, lookup, overview
from hudhud.worker.ledger.records import iso
from hudhud.worker.producer import campaign
from hudhud.worker.producer.public import public_record
from hudhud.worker.web.ops_page import masking

LOOKUPS = {"id": "message or campaign id", "key": "idempotency key", "reference": "reference"}
ID_FIELDS = frozenset({"id", "retry_of", "redriven_to", "provider_message_id"})
HANDED_OVER = ("sent", "delivered", "bounced")
FAILED = ("failed", "rejected")
MAX_QUERY = 200


def live(ledger: Ledger, providers: Iterable[str], *, now: float) -> dict[str, Any]:
    """Everything that changes by itself: providers, queues, the last hour, failures, doubt."""
    shot = overview.snapshot(ledger, providers, now=now)
    minutes = activity.per_minute(ledger, now=now)
    return {
        "at": iso(now),
        "providers": [_provider(p) for p in shot.providers],
        "queues": [
            {"name": q.name, "lane": q.lane, "depth": q.depth, "oldest_age": round(q.oldest_age, 1)}
            for q in shot.queues
        ],
        "scheduled": shot.scheduled,
        "in_doubt_waiting": shot.in_doubt_waiting,
        "callbacks_pending": shot.callbacks_pending,
        "last_hour": {
            "sent": sum(m.sent for m in minutes),
            "failed": sum(m.failed for m in minutes),
            "minutes": [{"at": iso(m.start), "sent": m.sent, "failed": m.failed} for m in minutes],
        },
        "failures": [
            {
                "id": c.id,
                "status": str(c.status),
                "channel": c.channel,
                "provider": c.provider,
                "error": masking.words(c.error),
                "at": c.at,
            }
            for c in activity.latest_failures(ledger)
        ],
        "in_doubt": [
            {
                "id": d.id,
                "channel": d.channel,
                "provider": d.provider,
                "error": masking.words(d.error),
                "at": d.at,
            }
            for d in activity.in_doubt(ledger)
        ],
    }


def _provider(state: overview.ProviderState) -> dict[str, Any]:
    pause = state.pause or {}
    since = pause.get("since")
    balance = state.balance
    return {
        "name": state.name,
        "paused": state.paused,
        "why": masking.words(": ".join(str(pause[k]) for k in ("kind", "error") if pause.get(k))) or None,
        "since": _moment(since) if state.paused else None,
        "held": state.held,
        "balance": None
        if not balance
        else {
            "amount": balance.get("amount"),
            "currency": balance.get("currency") or None,
            "at": _moment(balance.get("at")),
        },
    }


def _moment(value: Any) -> str | None:
    try:
        return iso(float(value))
    except (TypeError, ValueError):
        return None


# --- a lookup ---------------------------------------------------------------------------


def find(ledger: Ledger, by: str, query: str) -> dict[str, Any]:
    """A message (or campaign) by id, idempotency key or reference: the ids found and the
    record of the first, masked."""
    query = query.strip()[:MAX_QUERY]
    asked = {"by": by, "query": masking.words(query)}
    if by not in LOOKUPS or not query:
        return {**asked, "ids": [], "record": None}
    if by == "id":
        ids = [query]
    elif by == "key":
        found = lookup.id_of_key(ledger, query)
        ids = [found] if found else []
    else:
        ids = lookup.ids_of_reference(ledger, query)
    records = [r for r in (ledger.get(i) for i in ids) if r is not None]
    return {
        **asked,
        "ids": [_row(r) for r in records],
        "record": shown(ledger, records[0]) if records else None,
    }


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("id", "status", "channel", "provider", "updated_at")}


def shown(ledger: Ledger, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the page shows it: the public fields masked, recipients masked, no body."""
    if campaign.is_campaign(record):
        public = campaign.summary(ledger, record)
        counts = public.get("recipient_counts") or {}
        public["handed_over"] = sum(int(counts.get(s, 0)) for s in HANDED_OVER)
        public["failed"] = sum(int(counts.get(s, 0)) for s in FAILED)
    else:
        public = public_record(record)
        public["to"] = _recipients(record.get("payload"))
    return {k: v if k in ID_FIELDS else masked(v) for k, v in public.items()}


def _recipients(payload: Any) -> list[str] | None:
    """The masked `to` while the record still has its payload (None once it was erased)."""
    try:
        data = json.loads(payload) if payload else None
    except ValueError:
        return None
    to = data.get("to") if isinstance(data, dict) else None
    return masking.recipients(to if isinstance(to, list) else [to]) if to else None


def masked(value: Any) -> Any:
    """`value` (JSON-like) with every text's addresses and long digit runs masked."""
    if isinstance(value, Mapping):
        return {str(k): v if k in ID_FIELDS else masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return masking.words(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**masking.LONG_DIGITS:
        return masking.words(str(value))
    return value
