"""The broker queues of the lanes, named beside the ledger, which keeps each message's lane:
each channel's transactional lane is the queue named after the channel (where producers'
`send_task` calls arrive too), its bulk lane `{channel}.bulk`. Workers take from every
transactional queue before any bulk one."""

from __future__ import annotations

from hudhud.worker.ledger.status import Lane

CHANNELS = ("sms", "email", "voice")
BULK_SUFFIX = ".bulk"
QUEUED_AT = "hudhud_queued"  # a task message's header: when hudhud enqueued it (epoch seconds)


def queue(channel: str, lane: str = Lane.TRANSACTIONAL) -> str:
    """The queue a delivery of `channel` in `lane` waits in."""
    return f"{channel}{BULK_SUFFIX}" if lane == Lane.BULK else channel


def is_bulk(queue_name: str) -> bool:
    return queue_name.endswith(BULK_SUFFIX)


def lane_of(queue_name: str) -> Lane:
    return Lane.BULK if is_bulk(queue_name) else Lane.TRANSACTIONAL


def lane_or_default(value: str | None) -> Lane:
    """A record's lane (records written before lanes existed have none: transactional)."""
    return Lane.BULK if value == Lane.BULK else Lane.TRANSACTIONAL


# Every delivery queue, transactional lanes first.
DELIVERY_QUEUES = (*CHANNELS, *(queue(c, Lane.BULK) for c in CHANNELS))
