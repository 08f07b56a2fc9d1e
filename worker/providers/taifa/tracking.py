"""Following Taifa's emails after the hand-over: beat's tracking run for Taifa.

Two ways, both each run: the feed of status changes (`GET /emails/updates` from the cursor
on) finds the emails whose fate is known with one call per 50 changes, however many wait,
and the poll of each tracked single email's events by id stays as a safety net (it also
records opens and clicks as events). Taifa's own `queued`/`sent` events are not recorded:
hudhud's status changes record those once.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hudhud.worker.ledger.records import iso
from hudhud.worker.ledger.status import Status
from hudhud.worker.providers.errors import ProviderError
from hudhud.worker.providers.taifa.failures import PROVIDER
from hudhud.worker.redaction import NO_SECRETS, scrubbed

if TYPE_CHECKING:
    from hudhud.worker.ledger.tracking import Tracker
    from hudhud.worker.providers.taifa.client import TaifaClient

log = logging.getLogger("hudhud.jobs")

FINAL = {
    "delivered": Status.DELIVERED,
    "bounced": Status.BOUNCED,
    "failed": Status.FAILED,
    "rejected": Status.REJECTED,
    "error": Status.FAILED,
    "cancelled": Status.FAILED,
}
# Taifa's events that are statuses hudhud records itself (its own `queued`, `sent`, and the
# final ones it moves the message to); the others (opened, clicked, ...) are kept as events.
STATUS_EVENTS = frozenset({"queued", "scheduled", "sent", *FINAL})
UPDATES_PAGES = 100  # pages of the updates feed read per run
FULL_PAGE = 50  # the updates feed gives at most this many changes per call
POLL_LIMIT = 200  # tracked single emails polled by id per run
SEEN_FIELD = "taifa_events_seen"


def follow_up(client: TaifaClient, tracker: Tracker, now: float) -> int:
    finished = sum(
        poll_one(client, tracker, message_id, now) for message_id in tracker.tracked(limit=POLL_LIMIT)
    )
    return finished + follow_updates(client, tracker, now)


def follow_updates(client: TaifaClient, tracker: Tracker, now: float, pages: int = UPDATES_PAGES) -> int:
    """Record the final status of each email of ours in the feed; the cursor moves only past
    pages fully recorded."""
    cursor = tracker.cursor()
    if cursor is None:
        return 0  # no email was ever handed to Taifa
    finished = 0
    for _ in range(pages):
        try:
            page = client.updates(cursor)
        except ProviderError as exc:
            log.info("Taifa's updates feed unavailable: %s", exc.kind)
            break
        rows = [row for row in page.items if row.status in FINAL]
        for row, owner in zip(rows, tracker.owners([r.id for r in rows]), strict=True):
            if owner is not None:
                finished += finish_email(client, tracker, row.id, owner, FINAL[row.status], now)
        if not page.next_since or page.next_since == cursor:
            break
        cursor = page.next_since
        tracker.move_cursor(cursor)
        if len(page.items) < FULL_PAGE:
            break
    return finished


def finish_email(
    client: TaifaClient, tracker: Tracker, email_id: str, owner: tuple[str, str], status: Status, now: float
) -> int:
    batch, recipient = owner
    if not recipient:  # a single email: its events and status, as the poll by id does
        finished = poll_one(client, tracker, batch, now)
        tracker.forget(email_id)
        return finished
    error = None
    if status != Status.DELIVERED:
        error = f"{PROVIDER}: {status}"
        with contextlib.suppress(ProviderError):
            for item in client.events(email_id):
                if item.event_type in FINAL:
                    error = reason(item.event_type, item.metadata)
    final = Status.FAILED if status == Status.REJECTED else status
    return int(tracker.finish_recipient(batch, recipient, email_id, final, now=now, error=error))


def poll_one(client: TaifaClient, tracker: Tracker, message_id: str, now: float) -> int:
    record = tracker.record(message_id)
    if record is None or record.get("status") != Status.SENT or not record.get("provider_message_id"):
        tracker.untrack(message_id)
        return 0
    try:
        events = client.events(record["provider_message_id"])
    except ProviderError as exc:
        log.info("events of %s unavailable: %s", message_id, exc.kind)
        return 0
    seen = int(record.get(SEEN_FIELD) or 0)
    reports = [_report(item, now) for item in events[seen:] if item.event_type not in STATUS_EVENTS]
    tracker.add_reports(message_id, reports, seen_field=SEEN_FIELD, seen=len(events))
    final = None
    why = None
    for item in events:
        if item.event_type in FINAL:
            final = FINAL[item.event_type]
            why = reason(item.event_type, item.metadata)
    if final is None:
        return 0
    error = why if final != Status.DELIVERED else None
    tracker.finish(message_id, final, now=now, via=f"{PROVIDER} events", error=error)
    return 1


def _report(item: Any, now: float) -> dict[str, Any]:
    metadata = scrubbed(item.metadata) if item.metadata else None
    return {
        "type": item.event_type,
        "at": _when(item.created_at, now),
        "source": PROVIDER,
        **({"metadata": metadata} if metadata else {}),
    }


def reason(kind: str, metadata: Any) -> str:
    words = ""
    if isinstance(metadata, dict):
        for key in ("reason", "error", "message", "description", "diagnostic"):
            if isinstance(metadata.get(key), str) and metadata[key].strip():
                words = NO_SECRETS(metadata[key].strip())[:300]
                break
    return f"{PROVIDER}: {kind}" + (f": {words}" if words else "")


def _when(moment: Any, now: float) -> str:
    """A provider's time in the ledger's one format (ISO 8601, milliseconds, `Z`)."""
    if isinstance(moment, datetime):
        stamp = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return iso(stamp.timestamp())
    return iso(now)
