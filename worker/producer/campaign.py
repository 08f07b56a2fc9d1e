"""Bulk campaigns: one message to many recipients, in provider-sized batches.

A campaign is split into batches that fit one provider call each (Taqnyat SMS, voice and
email take a recipient list of up to `HUDHUD_SMS_BATCH_SIZE`; Taifa takes up to
`HUDHUD_TAIFA_BATCH_SIZE` emails per `/emails/batch` call, one email per recipient). Each
batch is an ordinary ledger message `{campaign id}.{n}`: it is claimed, retried, held during
a provider pause and recovered like any other, so a campaign inherits every guarantee of a
single send. The provider's reply says which recipients it accepted and which it refused;
the batch record keeps both lists, and an index maps each recipient to its batch, so the
status of any one recipient is a lookup.

The campaign record (`kind` = campaign), its events and its recipient index are written with
the batches in one Redis transaction, so a campaign is recorded whole or not at all; the keys
and how they are read and written are the ledger's (`hudhud.worker.ledger.campaigns`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hudhud.config.settings import Settings
from hudhud.worker.errors import InvalidInput
from hudhud.worker.ledger import FINAL_STATUSES, Ledger, NewMessage, Status, campaigns, event, iso
from hudhud.worker.ledger.status import PENDING, Lane
from hudhud.worker.ledger.suppression import Suppressions
from hudhud.worker.producer import messages
from hudhud.worker.producer import validation as v
from hudhud.worker.producer.public import money_text, ordered_events
from hudhud.worker.providers import registry

MAX_CAMPAIGN_RECIPIENTS = 1_000_000
EXTRA_DAYS = 7  # a campaign's keys outlive its batches' retention by this much

# A batch in one of these has been handed to its provider, which took some or all of it.
HANDED_OVER = frozenset({Status.SENT, Status.DELIVERED, Status.BOUNCED})
# A campaign with no batch handed over ends as the first of these that a batch ended in.
UNSENT_ENDS = (Status.REJECTED, Status.FAILED, Status.EXPIRED, Status.SUPPRESSED, Status.CANCELLED)
BATCH_FIELDS = ("status", "accepted", "rejected", "cost", "currency", "error", "attempts")


def batch_id(campaign_id: str, number: int) -> str:
    return f"{campaign_id}.{number}"


@dataclass(frozen=True)
class Campaign:
    """A checked campaign: the shared request and its recipients, split into batches."""

    request: messages.SendRequest  # the shared payload (its `to` is the first batch's)
    batches: tuple[tuple[str, ...], ...]
    request_hash: str  # of the shared payload and every recipient, for idempotency
    suppressed: int = 0  # recipients dropped: on the suppression list when it was planned

    @property
    def recipients(self) -> int:
        return sum(len(b) for b in self.batches)


@dataclass(frozen=True)
class CampaignReceipt:
    id: str
    status: str
    recipients: int
    batches: int
    duplicate: bool = False
    suppressed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "recipients": self.recipients,
            "batches": self.batches,
            "suppressed": self.suppressed,
            "duplicate": self.duplicate,
        }


def batch_size(provider: str, settings: Settings) -> int:
    return registry.get(provider).batch_limit(settings)[0]


def plan(channel: str, fields: Mapping[str, Any], settings: Settings) -> Campaign:
    """Check a campaign's fields (`to`: the recipient list) and split it into batches."""
    if not isinstance(fields, Mapping):
        raise InvalidInput("fields", "must be an object")
    to = fields.get("to")
    if isinstance(to, str | bytes) or not isinstance(to, Iterable):
        raise InvalidInput("to", "must be a list")
    recipients = list(to)
    if not recipients:
        raise InvalidInput("to", "needs at least one recipient")
    if len(recipients) > MAX_CAMPAIGN_RECIPIENTS:
        raise InvalidInput("to", f"has too many recipients (at most {MAX_CAMPAIGN_RECIPIENTS})")
    lane = fields.get("lane") or Lane.BULK  # a campaign waits in the bulk lane unless told
    request = messages.build(channel, {**fields, "to": recipients[:1], "lane": lane}, settings)
    check = v.email if channel == "email" else v.msisdn
    unique: dict[str, None] = {}
    for index, item in enumerate(recipients):
        unique.setdefault(check(item, f"to[{index}]"), None)
    ordered = tuple(unique)
    size = batch_size(request.provider, settings)
    batches = tuple(ordered[i : i + size] for i in range(0, len(ordered), size))
    payload = dict(request.payload)
    if registry.get(request.provider).one_per_recipient:
        payload["each"] = True  # one message per recipient, through the batch endpoint
    whole = dataclasses.replace(request, payload={**payload, "to": list(ordered)})
    shared = dataclasses.replace(request, payload=payload)
    return Campaign(request=shared, batches=batches, request_hash=whole.request_hash)


def without_suppressed(campaign: Campaign, ledger: Ledger, settings: Settings) -> Campaign:
    """The campaign without its recipients on the suppression list, in batches made again
    (its request hash stays that of the recipients given). Every recipient listed: InvalidInput
    on `to`, nothing recorded."""
    ordered = [r for batch in campaign.batches for r in batch]
    prints = ledger.fingerprints.of_all(ordered)
    listed = Suppressions(ledger).listed(prints)
    if not listed:
        return campaign
    kept = tuple(r for r, fp in zip(ordered, prints, strict=True) if fp not in listed)
    if not kept:
        raise InvalidInput("to", "every recipient is on the suppression list: nothing to send")
    size = batch_size(campaign.request.provider, settings)
    batches = tuple(kept[i : i + size] for i in range(0, len(kept), size))
    return dataclasses.replace(campaign, batches=batches, suppressed=len(ordered) - len(kept))


def batch_messages(campaign: Campaign, campaign_id: str) -> list[NewMessage]:
    request = campaign.request
    return [
        NewMessage(
            id=batch_id(campaign_id, number),
            channel=request.channel,
            provider=request.provider,
            payload={**request.payload, "to": list(recipients), "batch": True},
            request_hash=campaign.request_hash,
            due=request.due.timestamp() if request.due else None,
            reference=request.reference,
            callback_url=request.callback_url,
            lane=request.lane,
            expires=request.expires.timestamp() if request.expires else None,
        )
        for number, recipients in enumerate(campaign.batches)
    ]


def record(ledger: Ledger, campaign: Campaign, campaign_id: str, *, now: float) -> tuple[str, str, str]:
    """Record the campaign, its batches and its recipient index in one transaction.

    -> (outcome, id, status): outcome `created`, `duplicate` (same key, same request: the
    first campaign's id) or `conflict` (same key, another request)."""
    request = campaign.request
    keyed_hash = ledger.keyed(campaign.request_hash)
    status = Status.SCHEDULED if request.due else Status.QUEUED
    expire_at = int((request.due.timestamp() if request.due else now) + ledger.retention_seconds) + (
        EXTRA_DAYS * 86400
    )
    header: dict[str, Any] = {
        "id": campaign_id,
        "kind": "campaign",
        "channel": request.channel,
        "provider": request.provider,
        "status": status,
        "recipients": campaign.recipients,
        "batches": len(campaign.batches),
        "suppressed": campaign.suppressed,
        "created_at": iso(now),
        "updated_at": iso(now),
        "request_hash": keyed_hash,
    }
    if request.key:
        header["key"] = request.key
    if request.reference:
        header["reference"] = request.reference
    if request.due:
        header["at"] = iso(request.due.timestamp())
    new = campaigns.NewCampaign(
        id=campaign_id,
        header=header,
        first_event=event(
            status, now, recipients=campaign.recipients, suppressed=campaign.suppressed or None
        ),
        batches=batch_messages(campaign, campaign_id),
        recipients=campaign.batches,
        request_hash=keyed_hash,
        key=request.key,
        expire_at=expire_at,
    )
    created = campaigns.record(ledger, new, now=now)
    return created.outcome, created.id, created.status


# --- reading -----------------------------------------------------------------------------


def is_campaign(record: Mapping[str, Any]) -> bool:
    return record.get("kind") == "campaign"


def batch_rows(ledger: Ledger, campaign_id: str, count: int) -> list[dict[str, str]]:
    ids = [batch_id(campaign_id, number) for number in range(count)]
    return campaigns.batch_fields(ledger, ids, BATCH_FIELDS)


def summary(ledger: Ledger, record: Mapping[str, Any]) -> dict[str, Any]:
    """The campaign's public record: status, recipient counts by state, cost, events."""
    campaign_id = str(record["id"])
    rows = batch_rows(ledger, campaign_id, int(record.get("batches") or 0))
    counts = {
        "sent": 0,
        "delivered": 0,
        "bounced": 0,
        "rejected": 0,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
        "suppressed": 0,
        "pending": 0,
    }
    batch_counts: dict[str, int] = {}
    cost = 0.0
    currency = None
    errors = []
    for row, size in zip(rows, campaigns.recipients_per_batch(ledger, campaign_id, len(rows)), strict=True):
        status = row["status"] or "missing"
        batch_counts[status] = batch_counts.get(status, 0) + 1
        if status in PENDING:
            counts["pending"] += size
        elif status in HANDED_OVER:
            rejected = len(json.loads(row["rejected"])) if row["rejected"] else 0
            counts["rejected"] += rejected
            counts["sent"] += size - rejected
        elif status in counts:
            counts[status] += size
        if row["cost"]:
            cost += float(row["cost"])
            currency = currency or row["currency"] or None
        if row["error"] and status in FINAL_STATUSES:
            errors.append((status, row["error"]))
    status_now = overall_status(batch_counts)
    # Taifa emails whose fate is known after the hand-over leave `sent` for it.
    for status in AFTER_SENT:
        known = int(record.get(f"recipients_{status}") or 0)
        counts["sent"] -= known
        counts[status] = counts.get(status, 0) + known
    return {
        "id": campaign_id,
        "kind": "campaign",
        "channel": record.get("channel"),
        "provider": record.get("provider") or None,
        "status": status_now.value,  # a plain word: the summary is printed as it is
        "final": not any(s in PENDING for s in batch_counts),
        "attempts": sum(int(r["attempts"] or 0) for r in rows),
        "provider_message_id": None,
        "cost": money_text(cost) if currency or cost else None,
        "currency": currency,
        "error": campaign_error(status_now, errors, len(rows)),
        "events": ordered_events(record.get("events") or []),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        "at": record.get("at") or None,
        "key": record.get("key") or None,
        "reference": record.get("reference") or None,
        "recipients": int(record.get("recipients") or 0),
        "suppressed": int(record.get("suppressed") or 0),
        "recipient_counts": counts,
        "batches": len(rows),
        "batch_statuses": batch_counts,
    }


def campaign_error(status: str, errors: list[tuple[str, str]], batches: int) -> str | None:
    """The campaign's error as its batches make it: none while every batch that ended is
    well; else how many batches ended how, with the first one's words."""
    if not errors:
        return None
    ended, words = errors[0]
    if len(errors) == batches and status == ended:
        return words
    return f"{len(errors)} of {batches} batches ended {ended} or worse; the first: {words}"


def overall_status(batch_counts: Mapping[str, int]) -> Status:
    pending = {s: n for s, n in batch_counts.items() if s in PENDING}
    if pending:
        if set(pending) == {Status.SCHEDULED}:
            return Status.SCHEDULED
        started = Status.SENDING in pending or any(s not in PENDING for s in batch_counts)
        return Status.SENDING if started else Status.QUEUED
    if any(batch_counts.get(status) for status in HANDED_OVER):
        return Status.SENT
    for status in UNSENT_ENDS:
        if batch_counts.get(status):
            return status
    return Status.FAILED


def recipient_status(ledger: Ledger, campaign_id: str, recipient: str) -> dict[str, Any] | None:
    """What became of one recipient of a campaign, or None if it is not one of them."""
    # a campaign recorded before recipients were kept as fingerprints holds them plain
    found = campaigns.batch_of(ledger, campaign_id, (ledger.fingerprints.of(recipient), recipient))
    if found is None:
        return None
    recipient, number = found
    bid = batch_id(campaign_id, number)
    row = campaigns.batch_fields(ledger, [bid], ("status", "rejected", "provider_ids", "error"))[0]
    status, rejected, ids, error = row["status"], row["rejected"], row["provider_ids"], row["error"]
    out: dict[str, Any] = {"campaign": campaign_id, "batch": bid, "status": status or "missing"}
    if status in HANDED_OVER:
        if rejected and recipient in json.loads(rejected):
            out["status"] = Status.REJECTED.value
        if ids:
            out["provider_message_id"] = json.loads(ids).get(recipient)
        known = campaigns.recipient_outcome(ledger, bid, recipient) if out["status"] == Status.SENT else None
        if known is not None:
            out["status"] = known["status"]
            error = known.get("error") or ""
            out["final_at"] = known.get("at")
    if error and out["status"] in FINAL_STATUSES:
        out["error"] = error
    return out


def cancel(ledger: Ledger, record: Mapping[str, Any], *, now: float) -> int:
    """Cancel every batch not yet handed to the provider; the number cancelled."""
    campaign_id = str(record["id"])
    cancelled = 0
    for number in range(int(record.get("batches") or 0)):
        outcome, _ = ledger.cancel(batch_id(campaign_id, number), now=now)
        cancelled += outcome == "ok"
    return cancelled


# --- what became of each Taifa email after the hand-over ---------------------------------
# A Taifa batch gives one email id per accepted recipient, a single send one email id. The
# ledger follows each (kept `HUDHUD_TRACKING_DAYS`) while beat reads Taifa's account-wide feed
# of status changes (`GET /emails/updates`). A campaign email's final status is recorded once
# per recipient and counted on the campaign record (`recipients_<status>`); a single email's
# is the message's own status.
AFTER_SENT = (Status.DELIVERED, Status.BOUNCED, Status.FAILED)
UPDATES_FULL_PAGE = 50  # Taifa's updates feed gives at most this many changes per call
CLOCK_SKEW = 60  # seconds the feed is read from before a hand-over, for the clocks' skew


def follow_recipients(
    ledger: Ledger,
    message_id: str,
    item_ids: Mapping[str, str],
    *,
    provider: str,
    now: float,
    keep_seconds: int,
) -> None:
    """Remember which message (and recipient, for a batch) each of `provider`'s ids stands
    for, and make sure its feed of changes is read from before this hand-over. `item_ids`:
    recipient ("" for a single send) -> the provider's id."""
    campaigns.follow_emails(
        ledger, provider, message_id, item_ids, since=iso(now - CLOCK_SKEW), keep_seconds=keep_seconds
    )
