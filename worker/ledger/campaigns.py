"""A campaign in the ledger: its record, its recipient index, and each recipient's fate.

A campaign is a record `m:{id}` (with its events `e:{id}`) whose batches are ordinary
messages, and a hash `r:{id}` (recipient fingerprint -> batch number). After the hand-over to
a provider that reports delivery later, each of its ids has a key `{provider}:id:{its id}` ->
`{message id}|{recipient}` (the recipient empty for a single send) until its fate is known; a
campaign recipient's final status lands once in `rs:{batch}` (recipient -> JSON). Beat's
follow-up reads and ends these (`tracking.py`). `campaign.py` decides what the keys hold;
this module reads and writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from hudhud.worker.ledger import Created, Ledger, NewMessage
from hudhud.worker.ledger.keys import (
    events_key,
    feed_cursor_key,
    idem_key,
    msg_key,
    outcomes_key,
    provider_id_key,
    recipients_key,
)


@dataclass(frozen=True)
class NewCampaign:
    """A campaign ready to be recorded, with its batches."""

    id: str
    header: Mapping[str, Any]  # the campaign record's fields, `status` among them
    first_event: str  # the JSON of its first event
    batches: Sequence[NewMessage]
    recipients: Sequence[Sequence[str]]  # each batch's recipients, in plain form
    request_hash: str  # as the ledger keeps it (keyed)
    key: str | None  # the idempotency key
    expire_at: int  # epoch second at which the campaign's own keys go


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def record(ledger: Ledger, campaign: NewCampaign, *, now: float) -> Created:
    """Record the campaign, its batches and its recipient index in one transaction: whole or
    not at all. Outcome `created`, `duplicate` (same key, same request: the first campaign's
    id and status) or `conflict` (same key, another request: the first campaign's id)."""
    ikey = idem_key(campaign.key) if campaign.key else None
    prints = ledger.fingerprints
    prints.key()  # made (or read) before the transaction, which cannot read it

    def write(pipe: redis.client.Pipeline) -> Created:
        if ikey is not None:
            existing = pipe.get(ikey)
            if existing is not None:
                first, _, hashed = _text(existing).partition("|")
                if hashed != campaign.request_hash:
                    return Created("conflict", first, "")
                found = pipe.hget(msg_key(first), "status")
                return Created("duplicate", first, _text(found) if found else "")
        pipe.multi()
        if ikey is not None:
            pipe.set(ikey, f"{campaign.id}|{campaign.request_hash}", ex=ledger.idempotency_ttl)
        header: dict[Any, Any] = dict(campaign.header)
        pipe.hset(msg_key(campaign.id), mapping=header)
        pipe.rpush(events_key(campaign.id), campaign.first_event)
        index = recipients_key(campaign.id)
        for number, recipients in enumerate(campaign.recipients):
            pipe.hset(index, mapping=dict.fromkeys(prints.of_all(recipients), number))
        for key in (msg_key(campaign.id), events_key(campaign.id), index):
            pipe.expireat(key, campaign.expire_at)
        for msg in campaign.batches:
            keys, args = ledger._create_args(msg, now)
            ledger._create(keys=keys, args=args, client=pipe)
        return Created("created", campaign.id, str(campaign.header["status"]))

    watch = [ikey] if ikey is not None else []
    outcome = ledger.redis.transaction(write, *watch, value_from_callable=True)  # type: ignore[arg-type]
    return cast(Created, outcome)


# --- reading -----------------------------------------------------------------------------


def batch_fields(ledger: Ledger, batch_ids: Sequence[str], names: Sequence[str]) -> list[dict[str, str]]:
    """The named fields of each batch's record, in one round trip ("" where absent)."""
    pipe = ledger.redis.pipeline(transaction=False)
    for batch in batch_ids:
        pipe.hmget(msg_key(batch), list(names))
    return [
        {n: (_text(x) if x is not None else "") for n, x in zip(names, row, strict=True)}
        for row in pipe.execute()
    ]


def recipients_per_batch(ledger: Ledger, campaign_id: str, count: int) -> list[int]:
    """How many recipients the index puts in each of the campaign's `count` batches."""
    sizes = [0] * count
    for _field, number in ledger.redis.hscan_iter(recipients_key(campaign_id), count=5000):
        index = int(number)
        if 0 <= index < count:
            sizes[index] += 1
    return sizes


def batch_of(ledger: Ledger, campaign_id: str, forms: Iterable[str]) -> tuple[str, int] | None:
    """The first of `forms` (ways one recipient may be kept) that the campaign's index holds,
    with the number of its batch; None when it holds none of them."""
    for form in forms:
        number = ledger.redis.hget(recipients_key(campaign_id), form)
        if number is not None:
            return form, int(number)
    return None


def recipient_outcome(ledger: Ledger, batch: str, recipient: str) -> dict[str, Any] | None:
    """A campaign email's final status after the hand-over, once it is known."""
    raw = ledger.redis.hget(outcomes_key(batch), recipient)
    return None if raw is None else dict(json.loads(_text(raw)))


# --- following each provider id after the hand-over ----------------------------------------


def follow_emails(
    ledger: Ledger,
    provider: str,
    message_id: str,
    item_ids: Mapping[str, str],
    *,
    since: str,
    keep_seconds: int,
) -> None:
    """Remember which message (and recipient) each of `provider`'s ids stands for, and make
    sure its feed of changes is read from `since` at the latest. `item_ids`: recipient ->
    provider id."""
    if not item_ids:
        return
    pipe = ledger.redis.pipeline(transaction=False)
    for recipient, provider_id in item_ids.items():
        pipe.set(provider_id_key(provider, provider_id), f"{message_id}|{recipient}", ex=keep_seconds)
    pipe.set(feed_cursor_key(provider), since, nx=True)
    pipe.execute()
