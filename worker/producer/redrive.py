"""`hudhud redrive`: messages that ended `failed` or `expired`, sent again as new messages.

Each new message has the old one's channel, provider, payload, reference, callback URL and
lane, `retry_of` naming the old one, and (when the old one had an expiry) an expiry of the
same span counted from now. The old record gets `redriven_to` and an event `redriven`, and its
payload is erased, in the same script that records the new one and pushes its task: running
a redrive twice sends nothing twice.

Left alone, and listed with the reason: a message without a payload (its input was refused
before it was recorded, or it failed after it was handed over, when its payload was erased as
every sent message's is), one in doubt (an earlier attempt may have been delivered), and a
campaign batch (its recipients are counted on their campaign: send them again as a campaign).
`rejected` messages are never redriven: the provider refused their input.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hudhud.worker.broker import enqueue
from hudhud.worker.ledger import NewMessage, Status, redrives
from hudhud.worker.ledger.status import Lane

if TYPE_CHECKING:
    from hudhud.worker.producer.api import Hudhud


class Outcome(StrEnum):
    REDRIVEN = "redriven"  # sent again: `new_id` is the new message
    WOULD_REDRIVE = "would_redrive"  # a dry run: it would be sent again
    SKIPPED = "skipped"  # left alone: `reason` says why


@dataclass(frozen=True)
class Redrive:
    """What a redrive did with one ended message (ids and statuses only)."""

    id: str
    outcome: Outcome
    provider: str = ""
    new_id: str | None = None
    status: str | None = None  # the new message's status
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "outcome": self.outcome.value, "provider": self.provider}
        for name in ("new_id", "status", "reason"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def redrive(
    hudhud: Hudhud,
    status: Status,
    *,
    since: float | None = None,
    provider: str | None = None,
    dry_run: bool = False,
) -> list[Redrive]:
    """Send again every message that ended `status` (failed or expired) at or after `since`
    (epoch seconds), of `provider` when named; with `dry_run`, only say what would be sent."""
    ledger = hudhud.ledger
    found = redrives.ended(ledger, status, now=time.time(), since=since)
    done: list[Redrive] = []
    gone: list[str] = []
    for message_id, _ended in found:
        record = ledger.get(message_id)
        if record is None or record.get("status") != status or record.get("redriven_to"):
            gone.append(message_id)
            continue
        if provider and record.get("provider") != provider:
            continue
        reason = why_not(record)
        if reason:
            done.append(Redrive(message_id, Outcome.SKIPPED, record.get("provider", ""), reason=reason))
        elif dry_run:
            done.append(Redrive(message_id, Outcome.WOULD_REDRIVE, record["provider"]))
        else:
            done.append(send_again(hudhud, record, status))
    redrives.forget(ledger, status, gone)
    return done


def why_not(record: Mapping[str, Any]) -> str | None:
    """Why an ended message is not sent again (None: it is)."""
    try:
        payload = json.loads(record.get("payload") or "{}")
    except ValueError:
        payload = {}
    if not payload:
        return "no payload kept: refused before it was recorded, or failed after it was sent"
    if payload.get("batch"):
        return "a campaign batch: send its recipients again as a new campaign"
    if record.get("in_doubt") == "1":
        return "in doubt: an earlier attempt may have been delivered"
    if not record.get("provider") or not record.get("channel"):
        return "no provider recorded"
    return None


def send_again(hudhud: Hudhud, record: Mapping[str, Any], status: Status) -> Redrive:
    """Record the new message, push its task and mark the old one, in one script."""
    old_id, provider = record["id"], record["provider"]
    now = time.time()
    new = new_message(record, now)
    task = enqueue.DeliveryTask(new.id, new.provider, new.channel, None, new.lane)
    body = enqueue.broker_message(hudhud.app, task, window=hudhud.ledger.park_after, now=now)
    answer = redrives.redrive(hudhud.ledger, old_id, status, new, body, now=now)
    if answer.outcome == "redriven":
        return Redrive(old_id, Outcome.REDRIVEN, provider, new_id=answer.new_id, status=answer.status)
    if answer.outcome == "empty":
        return Redrive(old_id, Outcome.SKIPPED, provider, reason="no payload kept")
    if answer.outcome == "done":  # another redrive got there first
        return Redrive(old_id, Outcome.SKIPPED, provider, new_id=answer.new_id, reason="redriven already")
    reason = f"not redriven ({answer.outcome} {answer.status})".strip()
    return Redrive(old_id, Outcome.SKIPPED, provider, reason=reason)


def new_message(record: Mapping[str, Any], now: float) -> NewMessage:
    """The new message an ended record makes: its own payload, lane, reference and callback
    URL, linked to it, under the key `redrive:{old id}`."""
    old_id = record["id"]
    return NewMessage(
        id=str(uuid.uuid4()),
        channel=record["channel"],
        provider=record["provider"],
        payload=json.loads(record["payload"]),
        request_hash=hashlib.sha256(f"redrive:{old_id}".encode()).hexdigest(),
        key=f"redrive:{old_id}",
        retry_of=old_id,
        reference=record.get("reference") or None,
        callback_url=record.get("callback_url") or None,
        lane=record.get("lane") or Lane.TRANSACTIONAL,
        expires=new_expiry(record, now),
    )


def new_expiry(record: Mapping[str, Any], now: float) -> float | None:
    """The old message's expiry span (from its due time, or its creation) counted from now."""
    if not record.get("expires"):
        return None
    start = float(record["due"]) if record.get("due") else _epoch(record["created_at"])
    return now + max(0.0, float(record["expires"]) - start)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
