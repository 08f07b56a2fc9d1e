"""What a provider's pushed delivery reports (calls to its webhook) read and write of the
ledger, beside `Tracker`'s writes: the provider's id of a message remembered at the
hand-over, a report kept as an event, a campaign batch's recipient found by its fingerprint
and finished.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from hudhud.worker.ledger import Ledger
from hudhud.worker.ledger.keys import events_key, msg_key, provider_id_key, recipients_key
from hudhud.worker.ledger.records import text
from hudhud.worker.ledger.status import Status
from hudhud.worker.ledger.tracking import Tracker, campaign_of


class Membership(StrEnum):
    """Whether a message is a campaign batch, and a recipient one of that batch's."""

    NOT_A_BATCH = "not a batch"
    MEMBER = "member"
    STRANGER = "stranger"


def remember(ledger: Ledger, provider: str, message_id: str, provider_id: str, *, keep_seconds: int) -> None:
    """The message `provider_id` stands for, for a provider that reports to a webhook (the
    whole message: a batch's recipients are told apart by their numbers)."""
    ledger.redis.set(provider_id_key(provider, provider_id), f"{message_id}|", ex=keep_seconds)


def fingerprint(tracker: Tracker, number: str) -> str:
    return tracker.ledger.fingerprints.of(number)


def keep(tracker: Tracker, message_id: str, report: Mapping[str, Any]) -> None:
    """Append a report (already stripped of personal data) to the message's events."""
    tracker.ledger.redis.rpush(events_key(message_id), json.dumps(dict(report), default=str))


def membership(tracker: Tracker, message_id: str, recipient: str) -> Membership:
    """Whether `message_id` is a batch of a campaign and `recipient` (a fingerprint) is in it."""
    campaign = campaign_of(message_id)
    if not campaign:
        return Membership.NOT_A_BATCH
    pipe = tracker.ledger.redis.pipeline(transaction=False)
    pipe.hget(msg_key(campaign), "kind")
    pipe.hget(recipients_key(campaign), recipient)
    kind, number = pipe.execute()
    if kind is None or text(kind) != "campaign":
        return Membership.NOT_A_BATCH
    if number is None or f"{campaign}.{int(number)}" != message_id:
        return Membership.STRANGER
    return Membership.MEMBER


def finish_member(
    tracker: Tracker, batch: str, recipient: str, status: Status, *, now: float, error: str | None
) -> bool:
    """A batch recipient's final status, recorded once; False if already recorded."""
    # The key to forget is one that never exists: the batch's own provider id must stay, its
    # other recipients' reports still come by it.
    keep_id = provider_id_key(tracker.provider, f"{batch}|{recipient}")
    return tracker.ledger.finish_recipient(
        batch, recipient, campaign=campaign_of(batch), forget=keep_id, status=status, now=now, error=error
    )
