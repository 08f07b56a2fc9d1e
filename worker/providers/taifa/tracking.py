"""Following Taifa's emails after the hand-over: what Taifa's words mean, and beat's tracking
run for Taifa (its webhook, `webhooks`, applies the same meaning through the same writes).

Two ways, both each run: the feed of status changes (`GET /emails/updates` from the cursor
on) finds the emails whose fate is known with one call per 50 changes, however many wait,
and the poll of each tracked single email's events by id stays as a safety net (it also
records opens and clicks as events). Taifa's own `queued`/`sent` events are not recorded:
hudhud's status changes record those once. A hard bounce or a complaint read either way puts
its recipient on the suppression list (`suppressing`, as HUDHUD_SUPPRESS_ON asks).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hudhud.config import get_settings
from hudhud.worker.ledger.records import iso
from hudhud.worker.ledger.status import Status
from hudhud.worker.providers.errors import ProviderError
from hudhud.worker.providers.taifa import suppressing
from hudhud.worker.providers.taifa.failures import PROVIDER
from hudhud.worker.redaction import NO_SECRETS, scrubbed

if TYPE_CHECKING:
    from hudhud.worker.ledger.tracking import Tracker
    from hudhud.worker.providers.taifa.client import TaifaClient

log = logging.getLogger("hudhud.jobs")

# -- what Taifa's event types and statuses mean (the poller's and the webhook's one map) --

FINAL = {
    "delivered": Status.DELIVERED,
    "bounced": Status.BOUNCED,
    "failed": Status.FAILED,
    "rejected": Status.REJECTED,
    "error": Status.FAILED,
    "cancelled": Status.FAILED,
}
# Steps hudhud records as its own status changes before Taifa reports them.
STEPS = frozenset({"queued", "scheduled", "sent"})
# Taifa's events that are statuses hudhud records itself (its own `queued`, `sent`, and the
# final ones it moves the message to); the others (opened, clicked, ...) are kept as events.
STATUS_EVENTS = frozenset({*STEPS, *FINAL})


class Meaning(StrEnum):
    """What one of Taifa's event types does to the message it names."""

    FINISH = "finish"  # a final status: the message (or the campaign recipient) ends
    # a step hudhud records as its own status: changes no status (the poll skips it, a
    # webhook call keeps it as an event of Taifa's)
    STEP = "step"
    EVENT = "event"  # anything else (opened, clicked, a type not known yet): an event


def event_word(kind: str) -> str:
    """Taifa's event type as its events list spells it (a webhook's `email.delivered` ->
    `delivered`)."""
    return kind.strip().lower().removeprefix("email.")


def meaning(kind: str) -> tuple[Meaning, Status | None]:
    """What the event type `kind` does, and the final status it finishes with (if any)."""
    word = event_word(kind)
    if word in FINAL:
        return Meaning.FINISH, FINAL[word]
    return (Meaning.STEP if word in STEPS else Meaning.EVENT), None


def recipient_status(status: Status) -> Status:
    """A campaign recipient's final status for Taifa's (a refused recipient failed)."""
    return Status.FAILED if status == Status.REJECTED else status


def finish_message(
    tracker: Tracker, message_id: str, status: Status, why: str | None, *, now: float, via: str
) -> None:
    """A single email's final status; `why` (Taifa's reason) is its error unless delivered."""
    error = why if status != Status.DELIVERED else None
    tracker.finish(message_id, status, now=now, via=via, error=error)


def finish_recipient(
    tracker: Tracker, owner: tuple[str, str], email_id: str, status: Status, why: str | None, *, now: float
) -> bool:
    """A campaign recipient's final status, recorded once; False if already recorded."""
    batch, recipient = owner
    error = None if status == Status.DELIVERED else (why or f"{PROVIDER}: {status}")
    final = recipient_status(status)
    return tracker.finish_recipient(batch, recipient, email_id, final, now=now, error=error)


# -- beat's tracking run -------------------------------------------------------------------

UPDATES_PAGES = 100  # pages of the updates feed read per run
FULL_PAGE = 50  # the updates feed gives at most this many changes per call
POLL_LIMIT = 200  # tracked single emails polled by id per run
SEEN_FIELD = "taifa_events_seen"


def follow_up(client: TaifaClient, tracker: Tracker, now: float) -> int:
    on = get_settings().suppress_on  # what puts a recipient on the suppression list
    finished = sum(
        poll_one(client, tracker, message_id, now, on=on) for message_id in tracker.tracked(limit=POLL_LIMIT)
    )
    return finished + follow_updates(client, tracker, now, on=on)


def follow_updates(
    client: TaifaClient, tracker: Tracker, now: float, pages: int = UPDATES_PAGES, *, on: str = ""
) -> int:
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
        rows = [(row.id, status) for row in page.items if (status := meaning(row.status)[1]) is not None]
        for (email_id, status), owner in zip(rows, tracker.owners([i for i, _ in rows]), strict=True):
            if owner is not None:
                finished += finish_email(client, tracker, email_id, owner, status, now, on=on)
        if not page.next_since or page.next_since == cursor:
            break
        cursor = page.next_since
        tracker.move_cursor(cursor)
        if len(page.items) < FULL_PAGE:
            break
    return finished


def finish_email(
    client: TaifaClient,
    tracker: Tracker,
    email_id: str,
    owner: tuple[str, str],
    status: Status,
    now: float,
    *,
    on: str = "",
) -> int:
    batch, recipient = owner
    if not recipient:  # a single email: its events and status, as the poll by id does
        finished = poll_one(client, tracker, batch, now, on=on)
        tracker.forget(email_id)
        return finished
    why = None
    if status != Status.DELIVERED:
        with contextlib.suppress(ProviderError):
            for item in client.events(email_id):
                suppressing.suppress(tracker, owner, item.event_type, item.metadata, on=on, now=now)
                if meaning(item.event_type)[0] is Meaning.FINISH:
                    why = reason(item.event_type, item.metadata)
    return int(finish_recipient(tracker, owner, email_id, status, why, now=now))


def poll_one(client: TaifaClient, tracker: Tracker, message_id: str, now: float, *, on: str = "") -> int:
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
    reports = [
        report(item.event_type, item.metadata, item.created_at, now)
        for item in events[seen:]
        if meaning(item.event_type)[0] is Meaning.EVENT
    ]
    for item in events[seen:]:  # a bounce or a complaint, once (an operator may remove it)
        suppressing.suppress(tracker, (message_id, ""), item.event_type, item.metadata, on=on, now=now)
    tracker.add_reports(message_id, reports, seen_field=SEEN_FIELD, seen=len(events))
    final = None
    why = None
    for item in events:
        kind, status = meaning(item.event_type)
        if kind is Meaning.FINISH:
            final = status
            why = reason(item.event_type, item.metadata)
    if final is None:
        return 0
    finish_message(tracker, message_id, final, why, now=now, via=f"{PROVIDER} events")
    return 1


def report(kind: str, metadata: Any, moment: Any, now: float, **extra: str) -> dict[str, Any]:
    """One of Taifa's events as the message's events keep it (metadata scrubbed of secrets)."""
    kept = scrubbed(metadata) if metadata else None
    return {
        "type": event_word(kind),
        "at": _when(moment, now),
        "source": PROVIDER,
        **extra,
        **({"metadata": kept} if kept else {}),
    }


def reason(kind: str, metadata: Any) -> str:
    words = ""
    if isinstance(metadata, dict):
        for key in ("reason", "error", "message", "description", "diagnostic"):
            if isinstance(metadata.get(key), str) and metadata[key].strip():
                words = NO_SECRETS(metadata[key].strip())[:300]
                break
    return f"{PROVIDER}: {event_word(kind)}" + (f": {words}" if words else "")


def _when(moment: Any, now: float) -> str:
    """A provider's time in the ledger's one format (ISO 8601, milliseconds, `Z`)."""
    if isinstance(moment, datetime):
        stamp = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return iso(stamp.timestamp())
    return iso(now)
