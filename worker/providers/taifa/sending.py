"""A recorded email handed to Taifa: one send, a retry by id, or a campaign batch.

Every email carries its message's tag (`hudhud-<id>`), so that a send whose reply was lost
can be found again; a campaign's emails also carry `campaign-<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hudhud.worker.providers.base import reconcile_tag
from hudhud.worker.providers.results import SendResult
from hudhud.worker.providers.taifa.failures import PROVIDER
from hudhud.worker.redaction import NO_SECRETS

if TYPE_CHECKING:
    from hudhud.worker.providers.taifa.client import TaifaClient

REFUSED = ("failed", "rejected")
RETRY_OF = "retry_of_provider_id"  # a retry's payload: the id of the email Taifa sends again


def common_fields(message_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every email of this message carries, its tags included."""
    tags = [*payload.get("tags", []), reconcile_tag(message_id)]
    if payload.get("campaign"):
        tags.append(f"campaign-{payload['campaign']}"[:100])
    return {
        "html": payload.get("html"),
        "text": payload.get("text"),
        "reply_to": payload.get("reply_to"),
        "headers": payload.get("headers"),
        "tags": tags,
        "attachments": payload.get("attachments"),
    }


def deliver(client: TaifaClient, message_id: str, payload: Mapping[str, Any]) -> SendResult:
    if RETRY_OF in payload:
        return client.retry(payload[RETRY_OF])
    if payload.get("each"):
        return deliver_batch(client, message_id, payload)
    common = common_fields(message_id, payload)
    return client.send(
        payload["from"],
        payload["to"],
        payload["subject"],
        cc=payload.get("cc"),
        bcc=payload.get("bcc"),
        **common,
    )


def deliver_batch(client: TaifaClient, message_id: str, payload: Mapping[str, Any]) -> SendResult:
    """A campaign batch: one email per recipient in one `/emails/batch` call.

    Taifa answers per item, in order: an item it refuses comes back "failed" or "rejected"
    with its reason, and the others were accepted."""
    common = {k: v for k, v in common_fields(message_id, payload).items() if v}
    recipients = list(payload["to"])
    items = [
        {"from_": payload["from"], "to": [r], "subject": payload["subject"], **common} for r in recipients
    ]
    reply = client.batch_send(items)
    accepted: list[str] = []
    rejected: list[str] = []
    ids: dict[str, str] = {}
    reasons = []
    for recipient, item in zip(recipients, reply.results, strict=False):
        if item.status in REFUSED:
            rejected.append(recipient)
            reasons.append(NO_SECRETS(item.rejection_reason or item.status))
        else:
            accepted.append(recipient)
            if item.provider_message_id:
                ids[recipient] = item.provider_message_id
    rejected += recipients[len(reply.results) :]
    return SendResult(
        provider=PROVIDER,
        provider_message_id=None,
        status="queued" if accepted else "rejected",
        accepted=tuple(accepted),
        rejected=tuple(rejected),
        rejection_reason=reasons[0] if reasons else None,
        item_ids=ids,
    )
