"""The words of a message's life: its statuses, and the answers of a claim and of a delivery."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    IN_DOUBT = "in_doubt"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"


FINAL = frozenset(
    {
        Status.DELIVERED,
        Status.BOUNCED,
        Status.FAILED,
        Status.REJECTED,
        Status.CANCELLED,
        Status.EXPIRED,
        Status.SUPPRESSED,
    }
)
# Ended without reaching anyone, so `hudhud redrive` may send them again as new messages: their
# payload is kept until the redrive is recorded or the record's retention ends.
REDRIVABLE = frozenset({Status.FAILED, Status.EXPIRED})
# Once a message reaches one of these, nothing is sent from its payload again: it is erased.
ERASE_AT = (FINAL - REDRIVABLE) | {Status.SENT}
# Not yet handed to a provider: a cancel still stops it.
WAITING = frozenset({Status.SCHEDULED, Status.QUEUED})
# Not yet answered by a provider: waiting, or in a provider call.
PENDING = WAITING | {Status.SENDING}


class Lane(StrEnum):
    """Which queue a message waits in: transactional sends (one-time passwords, receipts)
    never wait behind bulk ones (campaigns), and bulk sends never take a provider's whole
    rate limit."""

    TRANSACTIONAL = "transactional"
    BULK = "bulk"


class ClaimOutcome(StrEnum):
    """What the claim script answered for one delivery task."""

    CLAIMED = "claimed"  # this worker may call the provider now
    SKIP = "skip"  # the message is past the point where a send could happen
    MISSING = "missing"  # no record
    HELD = "held"  # its provider is paused; the message waits in held:{provider}
    WAIT = "wait"  # not yet: the rate limit or a slow-down asks for a wait
    EXPIRED = "expired"  # its `expires_at` passed before it was handed over: it ended so
    SUPPRESSED = "suppressed"  # every recipient is on the suppression list: it ended so


class DeliveryOutcome(StrEnum):
    """What became of one delivery attempt."""

    SENT = "sent"
    FAILED = "failed"
    REJECTED = "rejected"
    RETRY = "retry"
    HELD = "held"
    SKIP = "skip"
    MISSING = "missing"
    PARKED = "parked"
    DOUBT = "doubt"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
