"""Taifa's successful replies read into hudhud's results."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from hudhud.worker.providers.decoding import plain
from hudhud.worker.providers.results import (
    BatchResult,
    EmailStatus,
    Page,
    SendResult,
    TaifaEmail,
    TaifaEvent,
    Updates,
    Validation,
    ValidationIssue,
    exact_id,
    mapping,
    text_or_none,
    timestamp,
    whole_number,
)
from hudhud.worker.providers.taifa.failures import PROVIDER


def parse_send(data: Any) -> SendResult:
    """`{"id","status","message_id","rejection_reason"}` (also a batch or retry item)."""
    body = mapping(data)
    return SendResult(
        provider=PROVIDER,
        provider_message_id=exact_id(body.get("id")),
        status=text_or_none(body.get("status")) or "queued",
        rejection_reason=text_or_none(body.get("rejection_reason")),
        raw=plain(body),
    )


def parse_event(data: Any) -> TaifaEvent:
    body = mapping(data)
    return TaifaEvent(
        id=exact_id(body.get("id")),
        event_type=text_or_none(body.get("event_type") or body.get("type")) or "unknown",
        metadata=dict(plain(mapping(body.get("metadata")))),
        created_at=timestamp(body.get("created_at")),
    )


def parse_events(data: Any) -> tuple[TaifaEvent, ...]:
    """A bare list of events, or `{"events": [...]}`."""
    items = data if isinstance(data, list) else mapping(data).get("events")
    return tuple(parse_event(e) for e in items) if isinstance(items, list) else ()


def parse_email(data: Any) -> TaifaEmail:
    body = mapping(data)
    headers = mapping(body.get("headers"))
    return TaifaEmail(
        id=exact_id(body.get("id")) or "",
        status=text_or_none(body.get("status")) or "unknown",
        subject=text_or_none(body.get("subject")),
        from_address=_address_text(body.get("from_address") or body.get("from_")),
        to_addresses=tuple(a for a in map(_address_text, _as_list(body.get("to_addresses"))) if a),
        tags=tuple(str(t) for t in _as_list(body.get("tags"))),
        scheduled_at=timestamp(body.get("scheduled_at")),
        created_at=timestamp(body.get("created_at")),
        sent_at=timestamp(body.get("sent_at")),
        delivered_at=timestamp(body.get("delivered_at")),
        retry_of_id=exact_id(body.get("retry_of_id")),
        html=body.get("html") if isinstance(body.get("html"), str) else None,
        text=body.get("text") if isinstance(body.get("text"), str) else None,
        headers={str(k): str(v) for k, v in headers.items()},
        events=parse_events(body.get("events")),
        raw=plain(body),
    )


def parse_page(data: Any, read: Any, *, page: int, limit: int) -> Page[Any]:
    """`{"items": [...], "total", "page", "limit"}` (or `results` / `data` for `items`)."""
    body = mapping(data)
    items = next(
        (body[k] for k in ("items", "results", "data") if isinstance(body.get(k), list)),
        data if isinstance(data, list) else [],
    )
    parsed = tuple(read(item) for item in items)
    return Page(
        items=parsed,
        total=_int_or(body.get("total"), len(parsed)),
        page=_int_or(body.get("page"), page),
        limit=_int_or(body.get("limit"), limit),
    )


def parse_status(data: Any) -> EmailStatus:
    body = mapping(data)
    return EmailStatus(
        id=exact_id(body.get("id")) or "",
        status=text_or_none(body.get("status")) or "unknown",
        updated_at=timestamp(body.get("updated_at")),
    )


def parse_updates(data: Any) -> Updates:
    body = mapping(data)
    return Updates(
        items=tuple(parse_status(i) for i in _as_list(body.get("items"))),
        next_since=text_or_none(body.get("next_since")),
    )


def parse_batch(data: Any) -> BatchResult:
    body = mapping(data)
    results = tuple(parse_send(r) for r in _as_list(body.get("results")))
    sent = sum(1 for r in results if r.status not in ("failed", "rejected"))
    return BatchResult(
        total=_int_or(body.get("total"), len(results)),
        sent=_int_or(body.get("sent"), sent),
        failed=_int_or(body.get("failed"), len(results) - sent),
        results=results,
    )


def parse_validation(data: Any) -> Validation:
    body = mapping(data)
    issues = tuple(
        ValidationIssue(
            text_or_none(mapping(i).get("field")),
            text_or_none(mapping(i).get("error") or mapping(i).get("message")) or "invalid",
        )
        for i in _as_list(body.get("issues"))
    )
    valid = body.get("valid") is True
    return Validation(valid=valid, can_send=body.get("can_send", valid) is True, issues=issues)


def _as_list(value: Any) -> builtins.list[Any]:
    return value if isinstance(value, list) else []


def _int_or(value: Any, default: int) -> int:
    number = whole_number(value)
    return default if number is None else number


def _address_text(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return text_or_none(value.get("email"))
    return text_or_none(value)
