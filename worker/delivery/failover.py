"""Email failover: a waiting email moves to the other email provider when its own is paused
(an outage is a pause), fails too many of its recent calls, or has spent its retries on it.

Only an email that names no provider (`pinned` not set), has never been in doubt, was never
moved before, and carries nothing the other provider cannot take moves; a `from` that was the
old provider's default becomes the other one's. The move itself is `move_provider.lua`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from hudhud.config import Settings
from hudhud.worker.delivery.attempt import Delivery, Outcome
from hudhud.worker.ledger import Claim, Ledger, Status, event
from hudhud.worker.ledger.calls import fields_of, move_or_refusal, recent_calls, record_call
from hudhud.worker.ledger.status import DeliveryOutcome
from hudhud.worker.providers import registry
from hudhud.worker.providers.errors import ProviderError, RetryableError

log = logging.getLogger("hudhud.failover")

PAUSED = "paused"
OUTAGE = "outage"
FAILURES = "failures"
RETRIES_SPENT = "retries spent"


def configured(name: str, settings: Settings) -> bool:
    """Whether provider `name` can send email: its secret and a from address are set."""
    if not registry.known(name) or not registry.get(name).serves("email"):
        return False
    provider = registry.get(name)
    secret = getattr(settings, getattr(provider, "secret_setting", "") or "", None)
    return bool(secret) and bool(provider.default_sender("email", settings)[0])


def other(name: str, settings: Settings) -> str | None:
    """The other configured email provider, when failover is on and both are configured."""
    if not settings.email_failover or not configured(name, settings):
        return None
    others = [n for n in registry.serving("email") if n != name and configured(n, settings)]
    return others[0] if others else None


def trouble(ledger: Ledger, name: str, settings: Settings) -> str | None:
    """Why new email should avoid provider `name` now, or None."""
    pause = ledger.pause_reason(name)
    if pause is not None:
        return OUTAGE if pause.get("kind") == OUTAGE else PAUSED
    calls = recent_calls(ledger, name, window=settings.failover_window)
    if calls.failing(settings.failover_share, settings.failover_min_calls):
        return FAILURES
    return None


def count_call(ledger: Ledger, name: str, settings: Settings, *, ok: bool) -> None:
    """Count one call's outcome for the failure share (never fails a delivery)."""
    try:
        record_call(ledger, name, ok=ok, window=settings.failover_window)
    except redis.RedisError:
        log.warning("the call outcome of %s was not counted", name)


def movable(ledger: Ledger, message_id: str, to: str, settings: Settings) -> dict[str, Any] | None:
    """The payload the message would carry with `to`, or None when it cannot move."""
    channel, raw, provider = fields_of(ledger, message_id, "channel", "payload", "provider")
    if channel != "email" or not raw or not provider:
        return None
    payload: dict[str, Any] = json.loads(raw)
    if payload.get("batch") or payload.get("each"):
        return None  # a campaign's batch follows its campaign's provider
    target = registry.get(to)
    if any(payload.get(field) for field in target.unsupported_fields("email")):
        return None
    old = registry.get(provider)
    if old.retries_by_id and old.retry_payload("x").keys() & payload.keys():
        return None  # a retry that only the old provider understands
    old_from = old.default_sender("email", settings)[0]
    if payload.get("from") == old_from:
        payload["from"] = target.default_sender("email", settings)[0]
    return payload


def move(ledger: Ledger, message_id: str, to: str, settings: Settings, *, reason: str) -> bool:
    """Move a waiting email to provider `to`; False when it may not move."""
    payload = movable(ledger, message_id, to, settings)
    if payload is None:
        return False
    moved, detail = move_or_refusal(
        ledger,
        message_id,
        to,
        reason=reason,
        now=time.time(),
        afresh=reason == RETRIES_SPENT,
        payload=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
    )
    if moved:
        log.info("message %s moved from %s to %s: %s", message_id, detail, to, reason)
    return moved


def before_claim(ledger: Ledger, message_id: str, provider: str, settings: Settings) -> str:
    """The provider to claim a message with: the record's own (a moved message's task still
    names the old one), or the other one for a new email its provider should not take now."""
    names = ("provider", "channel", "attempts", "pinned", "moved_from")
    current, channel, attempts, pinned, moved = fields_of(ledger, message_id, *names)
    current = current or provider
    if channel != "email" or pinned == "1" or moved or int(attempts or 0) > 0:
        return current
    to = other(current, settings)
    reason = trouble(ledger, current, settings) if to else None
    if to and reason and move(ledger, message_id, to, settings, reason=reason):
        return to
    return current


def count_outcome(ledger: Ledger, claim: Claim, settings: Settings, exc: Exception | None) -> None:
    """Count an email call: ok, or failed for a fault of the provider's (a 5xx, a timeout, a
    lost reply); a refusal of the message, the balance or the account counts as neither."""
    if claim.channel != "email" or not settings.email_failover:
        return
    if exc is None:
        count_call(ledger, claim.provider, settings, ok=True)
    elif isinstance(exc, RetryableError) or type(exc) is ProviderError:
        count_call(ledger, claim.provider, settings, ok=False)


def spent_elsewhere(
    delivery: Delivery, message_id: str, claim: Claim, error: str, fields: dict[str, Any]
) -> Outcome | None:
    """A message whose retries are spent on its provider, moved to the other one (once, its
    attempts counted afresh) and tried there at once; None when it may not move: never one
    whose reply was lost."""
    lost = claim.in_doubt or claim.resends or claim.reconcile or claim.reconciled or fields.get("in_doubt")
    to = other(claim.provider, delivery.settings) if claim.channel == "email" and not lost else None
    if to is None:
        return None
    pinned, moved = ledger_flags(delivery.ledger, message_id)
    if pinned or moved or movable(delivery.ledger, message_id, to, delivery.settings) is None:
        return None
    now = time.time()
    if delivery.expires_by(claim, now):
        return delivery.expire(message_id, claim, now)
    released = delivery.record(
        message_id,
        claim,
        Status.QUEUED,
        now,
        event("retry", now, error=error, delay=0),
        {"error": error, "next_attempt_at": now, **fields},
        zset="queued",
        score=now,
    )
    if released and not move(delivery.ledger, message_id, to, delivery.settings, reason=RETRIES_SPENT):
        log.warning("message %s was not moved to %s: it is tried again on %s", message_id, to, claim.provider)
    return Outcome(DeliveryOutcome.RETRY, retry_in=0.0)


def ledger_flags(ledger: Ledger, message_id: str) -> tuple[bool, bool]:
    pinned, moved = fields_of(ledger, message_id, "pinned", "moved_from")
    return pinned == "1", bool(moved)
